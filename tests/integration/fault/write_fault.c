/*
 * write_fault.c: an LD_PRELOAD shim that makes writes to one file fail, for the scan fault
 * tests (built by test_scan_shards.py with `cc -shared -fPIC`; not part of any binary).
 *
 *   SG_FAULT_PATH   writes to a file whose path ends with this are counted
 *   SG_FAULT_AFTER  bytes that succeed; the write that crosses it writes the bytes up to it (a
 *                   torn line), then it and every later write(2) and fsync(2) on such a file
 *                   fail with
 *   SG_FAULT_ERRNO  this errno (default EIO)
 *   SG_FAULT_FSYNC  when set, every fsync(2) on such a file fails so from the start
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static long long written;
static int failing;

static int targeted(int fd)
{
    const char *want = getenv("SG_FAULT_PATH");
    char link[64], path[PATH_MAX];
    ssize_t n;
    size_t w;

    if (!want || !*want)
        return 0;
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    n = readlink(link, path, sizeof path - 1);
    if (n <= 0)
        return 0;
    path[n] = '\0';
    w = strlen(want);
    return (size_t)n >= w && strcmp(path + n - w, want) == 0;
}

static int fault_errno(void)
{
    const char *e = getenv("SG_FAULT_ERRNO");

    return e ? atoi(e) : EIO;
}

ssize_t write(int fd, const void *buf, size_t n)
{
    static ssize_t (*real)(int, const void *, size_t);
    long long after;

    if (!real)
        real = (ssize_t (*)(int, const void *, size_t))dlsym(RTLD_NEXT, "write");
    if (!targeted(fd))
        return real(fd, buf, n);
    if (failing) {
        errno = fault_errno();
        return -1;
    }
    after = atoll(getenv("SG_FAULT_AFTER") ? getenv("SG_FAULT_AFTER") : "0");
    if (written + (long long)n > after) {
        size_t part = (size_t)(after - written);

        failing = 1;
        if (part > 0) {
            ssize_t w = real(fd, buf, part);

            written += w > 0 ? w : 0;
            return w; /* a short write; the next one fails */
        }
        errno = fault_errno();
        return -1;
    }
    ssize_t w = real(fd, buf, n);

    written += w > 0 ? w : 0;
    return w;
}

int fsync(int fd)
{
    static int (*real)(int);

    if (!real)
        real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    if ((failing || getenv("SG_FAULT_FSYNC")) && targeted(fd)) {
        errno = fault_errno();
        return -1;
    }
    return real(fd);
}
