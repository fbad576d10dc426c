/* A percore module used by the loop-lag tests: it holds the worker's event loop. With the
 * argument "spin" each request burns 50 ms of the thread's CPU time before it is answered
 * (or, on a path ending in "/later", in a percore_defer callback); with "hang" it never
 * returns. */
#include <string.h>
#include <time.h>

#include <percore/module.h>

#define SPIN_NS 50000000LL

static int
spin_init(const char *arg, void **data)
{
    *data = (void *)(arg != NULL && strcmp(arg, "hang") == 0 ? "hang" : "spin");
    return 0;
}

static long long
cpu_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (long long)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* CPU time, not wall time: a loaded machine makes it last longer, never cost less. */
static void
burn(void)
{
    long long until = cpu_ns() + SPIN_NS;

    while (cpu_ns() < until)
        ;
}

static void
answer_later(struct percore_request *req, void *arg)
{
    (void)arg;
    burn();
    percore_respond(req, 200, "text/plain", "spun later\n", 11);
}

static int
spin_handle(void *data, struct percore_request *req)
{
    volatile unsigned long n = 0;
    size_t len;
    const char *path = percore_req_path(req, &len);

    if (strcmp(data, "hang") == 0)
        for (;;)
            n++;
    if (len >= 6 && memcmp(path + len - 6, "/later", 6) == 0)
        return percore_defer(req, 0, answer_later, NULL) == 0 ? PERCORE_DONE : PERCORE_DECLINED;
    burn();
    percore_respond(req, 200, "text/plain", "spun\n", 5);
    return PERCORE_DONE;
}

const struct percore_module percore_module = {
    .abi = PERCORE_MODULE_ABI,
    .name = "spin",
    .init = spin_init,
    .handle = spin_handle,
};
