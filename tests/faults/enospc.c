/* A full disk on demand, for K2's tests and fault storm (LD_PRELOAD; no root, no mount).
 *
 * While the file named by K2_FAULT_ENOSPC_FLAG exists, every write to a file under the directory
 * K2_FAULT_ENOSPC_DIR fails with ENOSPC, exactly as the kernel answers when a filesystem is full:
 * write, pwrite, writev, pwritev, fallocate and posix_fallocate (chDB's ClickHouse and Python both
 * call them through the C library, so both see it). While K2_FAULT_ENOSPC_FLAG.statvfs exists too,
 * statvfs()/fstatvfs() of that directory also report no free space (ClickHouse's own space
 * reservation and K2's reserve check then refuse before writing). Remove the files and the disk has
 * room again. Everything outside the directory is untouched.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

static const char *flag_path(void) { return getenv("K2_FAULT_ENOSPC_FLAG"); }

static int flag_exists(const char *suffix) {
    const char *flag = flag_path();
    char buf[4096];
    if (!flag || !*flag) return 0;
    snprintf(buf, sizeof buf, "%s%s", flag, suffix);
    return access(buf, F_OK) == 0;
}

static int under_dir(const char *path) {
    const char *dir = getenv("K2_FAULT_ENOSPC_DIR");
    size_t n;
    if (!dir || !*dir || !path) return 0;
    n = strlen(dir);
    return strncmp(path, dir, n) == 0 && (path[n] == '/' || path[n] == '\0');
}

static int fd_full(int fd) {
    char link[64], target[4096];
    ssize_t n;
    if (fd <= 2 || !flag_exists("")) return 0;
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    n = readlink(link, target, sizeof target - 1);
    if (n <= 0) return 0;
    target[n] = '\0';
    return under_dir(target);
}

typedef ssize_t (*write_fn)(int, const void *, size_t);
typedef ssize_t (*pwrite_fn)(int, const void *, size_t, off_t);
typedef ssize_t (*writev_fn)(int, const struct iovec *, int);
typedef ssize_t (*pwritev_fn)(int, const struct iovec *, int, off_t);
typedef int (*fallocate_fn)(int, int, off_t, off_t);
typedef int (*posix_fallocate_fn)(int, off_t, off_t);
typedef int (*statvfs_fn)(const char *, struct statvfs *);
typedef int (*fstatvfs_fn)(int, struct statvfs *);

static void *real(const char *name) { return dlsym(RTLD_NEXT, name); }

ssize_t write(int fd, const void *buf, size_t count) {
    static write_fn f;
    if (!f) f = (write_fn)real("write");
    if (count && fd_full(fd)) { errno = ENOSPC; return -1; }
    return f(fd, buf, count);
}

ssize_t pwrite(int fd, const void *buf, size_t count, off_t offset) {
    static pwrite_fn f;
    if (!f) f = (pwrite_fn)real("pwrite");
    if (count && fd_full(fd)) { errno = ENOSPC; return -1; }
    return f(fd, buf, count, offset);
}

ssize_t pwrite64(int fd, const void *buf, size_t count, off_t offset) {
    static pwrite_fn f;
    if (!f) f = (pwrite_fn)real("pwrite64");
    if (count && fd_full(fd)) { errno = ENOSPC; return -1; }
    return f(fd, buf, count, offset);
}

ssize_t writev(int fd, const struct iovec *iov, int iovcnt) {
    static writev_fn f;
    if (!f) f = (writev_fn)real("writev");
    if (iovcnt > 0 && fd_full(fd)) { errno = ENOSPC; return -1; }
    return f(fd, iov, iovcnt);
}

ssize_t pwritev(int fd, const struct iovec *iov, int iovcnt, off_t offset) {
    static pwritev_fn f;
    if (!f) f = (pwritev_fn)real("pwritev");
    if (iovcnt > 0 && fd_full(fd)) { errno = ENOSPC; return -1; }
    return f(fd, iov, iovcnt, offset);
}

int fallocate(int fd, int mode, off_t offset, off_t len) {
    static fallocate_fn f;
    if (!f) f = (fallocate_fn)real("fallocate");
    if (fd_full(fd)) { errno = ENOSPC; return -1; }
    return f(fd, mode, offset, len);
}

int posix_fallocate(int fd, off_t offset, off_t len) {
    static posix_fallocate_fn f;
    if (!f) f = (posix_fallocate_fn)real("posix_fallocate");
    if (fd_full(fd)) return ENOSPC;
    return f(fd, offset, len);
}

static void no_room(struct statvfs *buf) {
    buf->f_bfree = 0;
    buf->f_bavail = 0;
}

int statvfs(const char *path, struct statvfs *buf) {
    static statvfs_fn f;
    int r;
    if (!f) f = (statvfs_fn)real("statvfs");
    r = f(path, buf);
    if (r == 0 && flag_exists(".statvfs") && under_dir(path)) no_room(buf);
    return r;
}

int fstatvfs(int fd, struct statvfs *buf) {
    static fstatvfs_fn f;
    int r;
    if (!f) f = (fstatvfs_fn)real("fstatvfs");
    r = f(fd, buf);
    if (r == 0 && flag_exists(".statvfs")) {
        char link[64], target[4096];
        ssize_t n;
        snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
        n = readlink(link, target, sizeof target - 1);
        if (n > 0) { target[n] = '\0'; if (under_dir(target)) no_room(buf); }
    }
    return r;
}

/* the 64-bit names (CPython calls these) */
typedef int (*statvfs64_fn)(const char *, struct statvfs64 *);
typedef int (*fstatvfs64_fn)(int, struct statvfs64 *);

int statvfs64(const char *path, struct statvfs64 *buf) {
    static statvfs64_fn f;
    int r;
    if (!f) f = (statvfs64_fn)real("statvfs64");
    r = f(path, buf);
    if (r == 0 && flag_exists(".statvfs") && under_dir(path)) { buf->f_bfree = 0; buf->f_bavail = 0; }
    return r;
}

int fstatvfs64(int fd, struct statvfs64 *buf) {
    static fstatvfs64_fn f;
    int r;
    if (!f) f = (fstatvfs64_fn)real("fstatvfs64");
    r = f(fd, buf);
    if (r == 0 && flag_exists(".statvfs")) {
        char link[64], target[4096];
        ssize_t n;
        snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
        n = readlink(link, target, sizeof target - 1);
        if (n > 0) { target[n] = '\0'; if (under_dir(target)) { buf->f_bfree = 0; buf->f_bavail = 0; } }
    }
    return r;
}
