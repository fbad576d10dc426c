/* percore: command line, config check (-t), and start-up of the master. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf.h"
#include "ctl.h"
#include "log.h"
#include "master.h"
#include "priv.h"
#include "tls.h"
#include "top.h"

#ifndef PERCORE_CONF_PATH
#define PERCORE_CONF_PATH "/etc/percore/percore.conf"
#endif

static void
usage(FILE *out)
{
    fprintf(out,
            "usage: percore [-c FILE] [-t] [-f] [-w N] [-v] [-V] [-h]\n"
            "       percore [-c FILE] -s reload|status\n"
            "       percore [-c FILE] -s top [-n COUNT]\n"
            "\n"
            "Serve the HTTP services described in FILE, with one single-threaded event\n"
            "loop per CPU core.\n"
            "\n"
            "  -c FILE  configuration file (default: %s)\n"
            "  -t       check the configuration, print 'syntax ok' or the errors, and exit\n"
            "  -f       stay in the foreground (use this under systemd or a supervisor)\n"
            "  -w N     run N workers, overriding the 'workers' directive\n"
            "  -s CMD   ask the running percore of FILE to 'reload' (and wait: exit 0 when\n"
            "           the new config serves, 1 with its errors when the old one stays)\n"
            "           or for its 'status'; 'top' shows its workers every second\n"
            "  -n COUNT with -s top: show COUNT snapshots and exit (default: until\n"
            "           interrupted on a terminal, else 1)\n"
            "  -v       verbose: log debug messages\n"
            "  -V       print the version and exit\n"
            "  -h       print this help and exit\n"
            "\n"
            "Signals to the master: HUP reloads the configuration (a bad one is logged and\n"
            "the running one keeps serving); TERM, INT or QUIT stop gracefully;\n"
            "USR1 reopens the log file and the access logs.\n"
            "See percore(8) and percore.conf(5).\n",
            PERCORE_CONF_PATH);
}

static unsigned
parse_workers_opt(const char *s)
{
    char *end;
    unsigned long v;

    errno = 0;
    v = strtoul(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < 1 || v > CONF_WORKERS_MAX) {
        fprintf(stderr, "percore: -w: expected a number from 1 to %d, got '%s'\n",
                CONF_WORKERS_MAX, s);
        exit(1);
    }
    return (unsigned)v;
}

/* Detach from the terminal once the listeners are open, so start-up errors still reach the
 * caller and its exit status. */
static void
detach(void)
{
    pid_t pid;
    int fd;

    pid = fork();
    if (pid == -1)
        fatal("fork");
    if (pid > 0)
        _exit(0);
    if (setsid() == -1)
        fatal("setsid");
    fd = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (fd != -1) {
        dup2(fd, STDIN_FILENO);
        dup2(fd, STDOUT_FILENO);
        if (fd > STDERR_FILENO)
            close(fd);
    }
}

/* -n: a count of snapshots, from 1 to a million. */
static int
parse_count_opt(const char *s, unsigned *count)
{
    char *end;
    unsigned long v;

    errno = 0;
    v = strtoul(s, &end, 10);
    if (errno != 0 || *end != '\0' || s[0] == '-' || v < 1 || v > 1000000) {
        fprintf(stderr, "percore: -n: expected a number from 1 to 1000000, got '%s'\n", s);
        return -1;
    }
    *count = (unsigned)v;
    return 0;
}

/* What the command line asks for, besides the master's options. */
struct cli {
    struct master_opts opts;
    const char *cmd; /* -s */
    unsigned count;  /* -n */
    int test;        /* -t */
    int foreground;  /* -f */
};

/* Fill cli from argv. -1: done, exit with *status (help, version, or a usage error). */
static int
parse_args(int argc, char **argv, struct cli *cli, int *status)
{
    int ch;

    *status = 0;
    while ((ch = getopt(argc, argv, "c:tfw:s:n:vVh")) != -1) {
        switch (ch) {
        case 'c': cli->opts.conf_path = optarg; break;
        case 't': cli->test = 1; break;
        case 'f': cli->foreground = 1; break;
        case 'w': cli->opts.workers_override = parse_workers_opt(optarg); break;
        case 's': cli->cmd = optarg; break;
        case 'n':
            if (parse_count_opt(optarg, &cli->count) == -1) {
                *status = 1;
                return -1;
            }
            break;
        case 'v': log_set_verbose(1); break;
        case 'V':
            printf("percore %s\n", PACKAGE_VERSION);
            return -1;
        case 'h':
            usage(stdout);
            return -1;
        default:
            usage(stderr);
            *status = 1;
            return -1;
        }
    }
    if (cli->count != 0 && (cli->cmd == NULL || strcmp(cli->cmd, "top") != 0)) {
        fprintf(stderr, "percore: -n goes with -s top\n");
        *status = 1;
        return -1;
    }
    if (optind != argc) {
        fprintf(stderr, "percore: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        *status = 1;
        return -1;
    }
    return 0;
}

/* Load the config, or print every problem in it and return NULL. */
static struct conf *
load_or_report(const char *path, const struct conf_sockets *socks)
{
    struct conf_diag diag = {0};
    struct conf *conf;

    conf = conf_load(path, socks, &diag);
    if (conf != NULL)
        return conf;
    for (size_t i = 0; i < diag.n; i++)
        fprintf(stderr, "%s\n", diag.msgs[i]);
    fprintf(stderr, "%s: configuration has %zu error%s\n", path, diag.n,
            diag.n == 1 ? "" : "s");
    conf_diag_clear(&diag);
    return NULL;
}

int
main(int argc, char **argv)
{
    struct cli cli = {.opts = {.conf_path = PERCORE_CONF_PATH}};
    struct conf_sockets socks = {NULL, 0, 0};
    struct conf *conf;
    char err[256];
    int status;

    if (parse_args(argc, argv, &cli, &status) == -1)
        return status;
    if (cli.cmd != NULL && strcmp(cli.cmd, "top") == 0)
        return top_run(cli.opts.conf_path, cli.count);
    if (cli.cmd != NULL)
        return ctl_command(cli.opts.conf_path, cli.cmd);
    /* Passed sockets are taken before the config is read: they decide which services may
     * go without `listen`. percore -t cannot know them (ExecStartPre gets none). */
    if (!cli.test) {
        master_adopt_sockets(&socks);
        tls_tickets_init(); /* before any TLS context is made */
    }
    conf = load_or_report(cli.opts.conf_path, &socks);
    if (conf == NULL)
        return 1;
    if (cli.test) {
        printf("%s: syntax ok\n", cli.opts.conf_path);
        conf_free(conf);
        return 0;
    }
    if (priv_check(conf, err, sizeof(err)) == -1) {
        fprintf(stderr, "percore: %s\n", err);
        conf_free(conf);
        return 1;
    }
    log_set_role(-1, 0);
    if (log_open(conf->log_target, conf->log_path) == -1)
        fatal("cannot open log '%s'", conf->log_path);
    master_open_listeners(conf, &cli.opts);
    if (!cli.foreground)
        detach();
    return master_run(conf, &cli.opts);
}
