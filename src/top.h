/* `percore -s top`: the workers of a running percore, one line each, refreshed every second
 * like top(1). A client of the control socket (ctl.c), run by the user's command. */
#ifndef PERCORE_TOP_H
#define PERCORE_TOP_H

/* Show the master of conf_path's workers: count snapshots, a second apart (each with the
 * rates of the second before it), then return; count 0: until interrupted on a terminal,
 * one snapshot otherwise. On a terminal each snapshot replaces the last (ANSI clear), else
 * they follow each other, a blank line apart. The exit status: 0, or 1 when the master
 * could not be asked (with a message). */
int top_run(const char *conf_path, unsigned count);

#endif
