/* A percore module used by the sandbox tests: on request it makes system calls the worker
 * sandbox forbids. /exec calls execve (of a program that does not exist, so that without
 * the sandbox the worker goes on: it answers with the error), /fork forks a child that
 * exits at once, /setown asks for a signal when its socket is ready
 * (F_SETOWN: with it a worker could signal any process of its user). Built with
 * -DNEEDS_SYSCALLS it says it needs the sandbox off. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <percore/module.h>

#ifdef NEEDS_SYSCALLS
const int percore_module_needs_syscalls = 1;
#endif

static int
answer(struct percore_request *req, const char *text)
{
    percore_respond(req, 200, "text/plain", text, strlen(text));
    return PERCORE_DONE;
}

static int
sandbox_handle(void *data, struct percore_request *req)
{
    static char *const argv[] = {"percore-no-such-program", NULL};
    char body[128];
    const char *path;
    size_t len;
    pid_t pid;
    int status;

    (void)data;
    path = percore_req_path(req, &len);
    if (len >= 7 && memcmp(path, "/x/exec", 7) == 0) {
        execve("/nonexistent/percore-no-such-program", argv, argv + 1);
        snprintf(body, sizeof(body), "execve: %s\n", strerror(errno));
        return answer(req, body);
    }
    if (len >= 7 && memcmp(path, "/x/fork", 7) == 0) {
        pid = fork();
        if (pid == 0)
            _exit(0);
        if (pid == -1 || waitpid(pid, &status, 0) != pid)
            return answer(req, "fork failed\n");
        return answer(req, "forked\n");
    }
    if (len >= 9 && memcmp(path, "/x/setown", 9) == 0) {
        int fd = socket(AF_INET, SOCK_DGRAM, 0); /* allowed: the fcntl is what is refused */
        int rc = fcntl(fd, F_SETOWN, getpid()); /* any pid: the call is refused */
        close(fd);
        return answer(req, rc == 0 ? "setown\n" : "setown failed\n");
    }
    return answer(req, "no call\n");
}

const struct percore_module percore_module = {
    .abi = PERCORE_MODULE_ABI,
    .name = "sandbox",
    .handle = sandbox_handle,
};
