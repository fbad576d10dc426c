/* The workers' seccomp sandbox: each worker, once set up and with its privileges dropped,
 * confines itself to the system calls serving needs; the master names the call that killed
 * one. */
#ifndef PERCORE_SANDBOX_H
#define PERCORE_SANDBOX_H

#include <stddef.h>

struct conf;
struct metrics_slot;

/* Worker, last step before READY: install the allowlist for serving c (the log files'
 * append-only open only when c writes a log file or an access log). A forbidden call then
 * records its number in slot (sandbox_syscall) and kills the worker with SIGSYS. 0, or -1
 * with the reason in err; nothing is installed then. */
int sandbox_install(const struct conf *c, struct metrics_slot *slot, char *err, size_t errlen);

/* Master: the name of the forbidden call a dead worker recorded in slot (a value the worker
 * wrote: only ever looked up, never trusted), as "execve" or "syscall 999"; empty when it
 * recorded none. */
void sandbox_describe(const struct metrics_slot *slot, char *buf, size_t len);

#endif
