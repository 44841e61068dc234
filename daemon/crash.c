/*
 * crash.c: see crash.h. Only async-signal-safe calls: write(2), sigaction(2), raise(3).
 */
#include "crash.h"

#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

static int crash_journal;

/* Append v in hex to buf at *n (no libc formatting in a signal handler). */
static void put_hex(char *buf, size_t *n, uintptr_t v)
{
    char tmp[2 * sizeof v];
    int k = 0;

    do {
        tmp[k++] = "0123456789abcdef"[v & 15];
        v >>= 4;
    } while (v != 0);
    buf[(*n)++] = '0';
    buf[(*n)++] = 'x';
    while (k > 0)
        buf[(*n)++] = tmp[--k];
}

static void put_str(char *buf, size_t *n, const char *s)
{
    size_t l = strlen(s);

    memcpy(buf + *n, s, l);
    *n += l;
}

static void on_fault(int sig, siginfo_t *si, void *ctx)
{
    char line[512];
    size_t n = 0;

    (void)ctx;
    if (crash_journal)
        put_str(line, &n, "<2>");
    put_str(line, &n, "shieldd: fatal: ");
    put_str(line, &n, "SIGBUS reading ");
    put_hex(line, &n, (uintptr_t)si->si_addr);
    put_str(line, &n, ": a mapped file (the model's weights or the pack cache) was truncated "
                      "or rewritten in place while serving; replace model files by rename "
                      "instead. Exiting; a restart loads the new file");
    line[n++] = '\n';
    (void)!write(STDERR_FILENO, line, n);
    /* SA_RESETHAND restored the default action: die of the same signal. */
    raise(sig);
}

void crash_install(int journal)
{
    struct sigaction sa;

    crash_journal = journal;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_fault;
    sa.sa_flags = SA_SIGINFO | SA_RESETHAND | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGBUS, &sa, NULL);
}
