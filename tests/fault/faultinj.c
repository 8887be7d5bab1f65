/* tests/fault/faultinj.c - fault injection for tests, as an LD_PRELOAD library ($(O)/bin/libfaultinj.so).
 *
 * Makes chosen libc calls fail on their Nth call (counted from arming), to test that recd survives a
 * full disk, a failing fsync or rename, a refused mmap, or an allocation failure:
 *
 *   op       calls                                                      fails with
 *   write    write, pwrite, pwrite64, writev, pwritev, pwritev64        -1, ENOSPC
 *   fsync    fsync, fdatasync                                           -1, EIO
 *   rename   rename, renameat, renameat2                                -1, EIO
 *   mmap     mmap, mmap64                                               MAP_FAILED, ENOMEM
 *   malloc   malloc, calloc, realloc, aligned_alloc, posix_memalign     NULL (or ENOMEM), ENOMEM
 *
 * (LMDB 0.9 writes pages with pwrite and lseek+writev, syncs with fdatasync, maps with mmap; recd
 * itself fsyncs and renames.) Calls made inside libc (stdio's own writes) are not seen.
 *
 * Configuration: a spec, comma-separated items:
 *   OP:N      fail the Nth OP call only        OP:N+   fail the Nth and every later one (a full disk)
 *   path=S    count write/fsync/mmap calls only on fds whose path (/proc/self/fd) contains S, and
 *             renames whose old or new path contains S (default: every call)
 *   thread=P  count malloc calls only on threads whose name starts with P (e.g. "MHD": libmicrohttpd
 *             names its threads "MHD-listen", "MHD-worker", "MHD-single")
 *   off       nothing fails (counting still runs)
 * RECD_FAULT holds the spec armed at start. RECD_FAULT_FILE names a file: on SIGUSR2 the spec is read
 * again from it (or, without the variable, the RECD_FAULT spec is kept), and the counters restart
 * from zero: a running server can be hit mid-request; the handler then writes the number of SIGUSR2
 * armings so far to FILE.ack (a test waits for it before sending requests). RECD_FAULT_REPORT names a file that gets, at
 * exit, "write=N fsync=N rename=N mmap=N malloc=N" (matching calls counted since the last arming;
 * malloc calls only while a malloc fault is set, to keep allocation cheap) and "injected=N". Each injected failure prints one line "faultinj: OP call #N fails" on stderr.
 *
 * malloc: the real functions are found with dlsym(RTLD_NEXT) (so under ASan they are ASan's; run
 * with ASAN_OPTIONS=verify_asan_link_order=0); while dlsym runs, its own allocations come from a
 * static buffer (never freed). Counters are atomics; the spec lives in two slots swapped atomically
 * by the signal handler (which only uses async-signal-safe calls). Built without sanitizers.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

enum { OP_WRITE, OP_FSYNC, OP_RENAME, OP_MMAP, OP_MALLOC, NOPS };
static const char *const op_names[NOPS] = {"write", "fsync", "rename", "mmap", "malloc"};
static const int op_errno[NOPS] = {ENOSPC, EIO, EIO, ENOMEM, ENOMEM};

struct spec {
    long n[NOPS]; /* 0: never fails */
    int sticky[NOPS];
    char path[256];
    char thread[16];
};

static struct spec specs[2];
static _Atomic int cur_spec;
static _Atomic unsigned long counts[NOPS], injected, armings;

/* ---- the real functions ---- */
static ssize_t (*r_write)(int, const void *, size_t);
static ssize_t (*r_pwrite)(int, const void *, size_t, off_t);
static ssize_t (*r_pwrite64)(int, const void *, size_t, off_t);
static ssize_t (*r_writev)(int, const struct iovec *, int);
static ssize_t (*r_pwritev)(int, const struct iovec *, int, off_t);
static ssize_t (*r_pwritev64)(int, const struct iovec *, int, off_t);
static int (*r_fsync)(int);
static int (*r_fdatasync)(int);
static int (*r_rename)(const char *, const char *);
static int (*r_renameat)(int, const char *, int, const char *);
static int (*r_renameat2)(int, const char *, int, const char *, unsigned);
static void *(*r_mmap)(void *, size_t, int, int, int, off_t);
static void *(*r_mmap64)(void *, size_t, int, int, int, off_t);
static void *(*r_malloc)(size_t);
static void *(*r_calloc)(size_t, size_t);
static void *(*r_realloc)(void *, size_t);
static void (*r_free)(void *);
static void *(*r_aligned_alloc)(size_t, size_t);
static int (*r_posix_memalign)(void **, size_t, size_t);

static _Atomic int init_state; /* 0 not yet, 1 resolving, 2 done */
static _Atomic long resolver_tid;

/* Allocations made while dlsym runs: a bump allocator over a static buffer, each block preceded by
 * its size (for realloc); never freed. */
static _Alignas(64) unsigned char boot_buf[1 << 16];
static _Atomic size_t boot_used;

static int is_boot(const void *p)
{
    return (const unsigned char *)p >= boot_buf && (const unsigned char *)p < boot_buf + sizeof boot_buf;
}

static void *boot_alloc(size_t n)
{
    size_t need = (n + 16 + 15) & ~(size_t)15;
    size_t off = atomic_fetch_add(&boot_used, need);
    if (off + need > sizeof boot_buf) return NULL;
    unsigned char *p = boot_buf + off;
    memcpy(p, &n, sizeof n);
    memset(p + 16, 0, n);
    return p + 16;
}

static long my_tid(void)
{
    return (long)syscall(SYS_gettid);
}

static void resolve(void)
{
    int expect = 0;
    if (atomic_compare_exchange_strong(&init_state, &expect, 1)) {
        atomic_store(&resolver_tid, my_tid());
#define R(name) r_##name = (__typeof__(r_##name))dlsym(RTLD_NEXT, #name)
        R(malloc);
        R(calloc);
        R(realloc);
        R(free);
        R(aligned_alloc);
        R(posix_memalign);
        R(write);
        R(pwrite);
        R(pwrite64);
        R(writev);
        R(pwritev);
        R(pwritev64);
        R(fsync);
        R(fdatasync);
        R(rename);
        R(renameat);
        R(renameat2);
        R(mmap);
        R(mmap64);
#undef R
        atomic_store(&init_state, 2);
        return;
    }
    if (atomic_load(&resolver_tid) == my_tid()) return; /* re-entered from dlsym */
    while (atomic_load(&init_state) != 2) {
    }
}

/* 1 while this thread is inside resolve() (its allocations come from boot_buf). */
static int resolving_here(void)
{
    return atomic_load(&init_state) == 1 && atomic_load(&resolver_tid) == my_tid();
}

#define READY()                                                                                    \
    do {                                                                                           \
        if (atomic_load_explicit(&init_state, memory_order_acquire) != 2) resolve();              \
    } while (0)

/* ---- messages without stdio (also called from the signal handler) ---- */
static size_t fmt_ulong(char *b, unsigned long v)
{
    char t[24];
    size_t n = 0;
    do {
        t[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        b[i] = t[n - 1 - i];
    return n;
}

static void say(const char *op, unsigned long nth)
{
    char b[96];
    size_t o = 0;
    const char *a = "faultinj: ", *c = " call #", *d = " fails\n";
    memcpy(b + o, a, strlen(a)), o += strlen(a);
    memcpy(b + o, op, strlen(op)), o += strlen(op);
    memcpy(b + o, c, strlen(c)), o += strlen(c);
    o += fmt_ulong(b + o, nth);
    memcpy(b + o, d, strlen(d)), o += strlen(d);
    if (r_write) {
        ssize_t w = r_write(2, b, o);
        (void)w;
    }
}

/* ---- the spec ---- */
static void parse_spec(const char *s, size_t len, struct spec *out)
{
    memset(out, 0, sizeof *out);
    size_t i = 0;
    while (i < len) {
        size_t j = i;
        while (j < len && s[j] != ',' && s[j] != '\n' && s[j] != ' ') j++;
        const char *it = s + i;
        size_t il = j - i;
        if (il > 5 && memcmp(it, "path=", 5) == 0) {
            size_t n = il - 5 < sizeof out->path - 1 ? il - 5 : sizeof out->path - 1;
            memcpy(out->path, it + 5, n);
            out->path[n] = '\0';
        } else if (il > 7 && memcmp(it, "thread=", 7) == 0) {
            size_t n = il - 7 < sizeof out->thread - 1 ? il - 7 : sizeof out->thread - 1;
            memcpy(out->thread, it + 7, n);
            out->thread[n] = '\0';
        } else {
            for (int op = 0; op < NOPS; op++) {
                size_t nl = strlen(op_names[op]);
                if (il > nl + 1 && memcmp(it, op_names[op], nl) == 0 && it[nl] == ':') {
                    long v = 0;
                    size_t k = nl + 1;
                    while (k < il && it[k] >= '0' && it[k] <= '9') v = v * 10 + (it[k++] - '0');
                    out->n[op] = v;
                    out->sticky[op] = k < il && it[k] == '+';
                }
            }
        }
        i = j + 1;
    }
}

static void arm(const char *s, size_t len)
{
    int next = !atomic_load(&cur_spec);
    parse_spec(s, len, &specs[next]);
    for (int op = 0; op < NOPS; op++)
        atomic_store(&counts[op], 0);
    atomic_store(&cur_spec, next);
}

static void on_usr2(int sig)
{
    (void)sig;
    int saved = errno;
    const char *file = getenv("RECD_FAULT_FILE"); /* environ is not changed after start */
    char buf[512];
    ssize_t n = -1;
    if (file) {
        int fd = open(file, O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
            n = read(fd, buf, sizeof buf);
            close(fd);
        }
    }
    if (n >= 0) {
        arm(buf, (size_t)n);
    } else {
        const char *e = getenv("RECD_FAULT");
        arm(e ? e : "", e ? strlen(e) : 0);
    }
    /* acknowledge: FILE.ack gets the number of armings so far */
    unsigned long gen = atomic_fetch_add(&armings, 1) + 1;
    size_t fl = file ? strlen(file) : 0;
    if (file && fl + 5 < sizeof buf) {
        memcpy(buf, file, fl);
        memcpy(buf + fl, ".ack", 5);
        int fd = open(buf, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd >= 0) {
            char t[24];
            size_t k = fmt_ulong(t, gen);
            t[k++] = '\n';
            ssize_t w = r_write ? r_write(fd, t, k) : -1;
            (void)w;
            close(fd);
        }
    }
    errno = saved;
}

__attribute__((constructor)) static void faultinj_init(void)
{
    READY();
    const char *e = getenv("RECD_FAULT");
    arm(e ? e : "", e ? strlen(e) : 0);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr2;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR2, &sa, NULL);
}

__attribute__((destructor)) static void faultinj_report(void)
{
    const char *file = getenv("RECD_FAULT_REPORT");
    if (!file || !r_write) return;
    int fd = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return;
    char b[256];
    size_t o = 0;
    for (int op = 0; op < NOPS; op++) {
        size_t nl = strlen(op_names[op]);
        memcpy(b + o, op_names[op], nl), o += nl;
        b[o++] = '=';
        o += fmt_ulong(b + o, atomic_load(&counts[op]));
        b[o++] = ' ';
    }
    memcpy(b + o, "injected=", 9), o += 9;
    o += fmt_ulong(b + o, atomic_load(&injected));
    b[o++] = '\n';
    ssize_t w = r_write(fd, b, o);
    (void)w;
    close(fd);
}

/* ---- the decision ---- */
static int fd_matches(const struct spec *sp, int fd)
{
    if (!sp->path[0]) return 1;
    if (fd < 0) return 0;
    char link[40], target[4096];
    const char *pre = "/proc/self/fd/";
    size_t o = strlen(pre);
    memcpy(link, pre, o);
    o += fmt_ulong(link + o, (unsigned long)fd);
    link[o] = '\0';
    ssize_t n = readlink(link, target, sizeof target - 1);
    if (n <= 0) return 0;
    target[n] = '\0';
    return strstr(target, sp->path) != NULL;
}

static int thread_matches(const struct spec *sp)
{
    if (!sp->thread[0]) return 1;
    char name[17] = "";
    if (prctl(PR_GET_NAME, name, 0, 0, 0) != 0) return 0;
    return strncmp(name, sp->thread, strlen(sp->thread)) == 0;
}

/* Count one matching call of op; 1 (errno set) when it must fail. fd for fd-based ops, else -1;
 * p1/p2 the paths of a rename. */
static int should_fail(int op, int fd, const char *p1, const char *p2)
{
    const struct spec *sp = &specs[atomic_load_explicit(&cur_spec, memory_order_acquire)];
    if (op == OP_RENAME) {
        if (sp->path[0] && !(p1 && strstr(p1, sp->path)) && !(p2 && strstr(p2, sp->path))) return 0;
    } else if (op == OP_MALLOC) {
        if (!sp->n[op]) return 0; /* not counted when off: keeps malloc cheap */
        if (!thread_matches(sp)) return 0;
    } else if (!fd_matches(sp, fd)) {
        return 0;
    }
    unsigned long nth = atomic_fetch_add(&counts[op], 1) + 1;
    long want = sp->n[op];
    if (want <= 0 || !(nth == (unsigned long)want || (sp->sticky[op] && nth > (unsigned long)want))) return 0;
    atomic_fetch_add(&injected, 1);
    say(op_names[op], nth);
    errno = op_errno[op];
    return 1;
}

/* ---- wrappers ---- */
ssize_t write(int fd, const void *b, size_t n)
{
    READY();
    return should_fail(OP_WRITE, fd, NULL, NULL) ? -1 : r_write(fd, b, n);
}
ssize_t pwrite(int fd, const void *b, size_t n, off_t off)
{
    READY();
    return should_fail(OP_WRITE, fd, NULL, NULL) ? -1 : r_pwrite(fd, b, n, off);
}
ssize_t pwrite64(int fd, const void *b, size_t n, off_t off)
{
    READY();
    return should_fail(OP_WRITE, fd, NULL, NULL) ? -1 : r_pwrite64(fd, b, n, off);
}
ssize_t writev(int fd, const struct iovec *v, int c)
{
    READY();
    return should_fail(OP_WRITE, fd, NULL, NULL) ? -1 : r_writev(fd, v, c);
}
ssize_t pwritev(int fd, const struct iovec *v, int c, off_t off)
{
    READY();
    return should_fail(OP_WRITE, fd, NULL, NULL) ? -1 : r_pwritev(fd, v, c, off);
}
ssize_t pwritev64(int fd, const struct iovec *v, int c, off_t off)
{
    READY();
    return should_fail(OP_WRITE, fd, NULL, NULL) ? -1 : r_pwritev64(fd, v, c, off);
}
int fsync(int fd)
{
    READY();
    return should_fail(OP_FSYNC, fd, NULL, NULL) ? -1 : r_fsync(fd);
}
int fdatasync(int fd)
{
    READY();
    return should_fail(OP_FSYNC, fd, NULL, NULL) ? -1 : r_fdatasync(fd);
}
int rename(const char *a, const char *b)
{
    READY();
    return should_fail(OP_RENAME, -1, a, b) ? -1 : r_rename(a, b);
}
int renameat(int da, const char *a, int db, const char *b)
{
    READY();
    return should_fail(OP_RENAME, -1, a, b) ? -1 : r_renameat(da, a, db, b);
}
int renameat2(int da, const char *a, int db, const char *b, unsigned flags)
{
    READY();
    return should_fail(OP_RENAME, -1, a, b) ? -1 : r_renameat2(da, a, db, b, flags);
}
void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    READY();
    return should_fail(OP_MMAP, fd, NULL, NULL) ? MAP_FAILED : r_mmap(addr, len, prot, flags, fd, off);
}
void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    READY();
    return should_fail(OP_MMAP, fd, NULL, NULL) ? MAP_FAILED : r_mmap64(addr, len, prot, flags, fd, off);
}

void *malloc(size_t n)
{
    if (resolving_here()) return boot_alloc(n);
    READY();
    return should_fail(OP_MALLOC, -1, NULL, NULL) ? NULL : r_malloc(n);
}
void *calloc(size_t a, size_t b)
{
    if (resolving_here()) return b && a > SIZE_MAX / b ? NULL : boot_alloc(a * b);
    READY();
    return should_fail(OP_MALLOC, -1, NULL, NULL) ? NULL : r_calloc(a, b);
}
void *realloc(void *p, size_t n)
{
    if (resolving_here() && (!p || is_boot(p))) {
        void *q = boot_alloc(n);
        if (q && p) {
            size_t old;
            memcpy(&old, (unsigned char *)p - 16, sizeof old);
            memcpy(q, p, old < n ? old : n);
        }
        return q;
    }
    READY();
    if (p && is_boot(p)) { /* a bootstrap block grows into a real one */
        size_t old;
        memcpy(&old, (unsigned char *)p - 16, sizeof old);
        void *q = r_malloc(n);
        if (q) memcpy(q, p, old < n ? old : n);
        return q;
    }
    return should_fail(OP_MALLOC, -1, NULL, NULL) ? NULL : r_realloc(p, n);
}
void free(void *p)
{
    if (!p || is_boot(p)) return;
    READY();
    if (r_free) r_free(p);
}
void *aligned_alloc(size_t al, size_t n)
{
    READY();
    return should_fail(OP_MALLOC, -1, NULL, NULL) ? NULL : r_aligned_alloc(al, n);
}
int posix_memalign(void **out, size_t al, size_t n)
{
    READY();
    return should_fail(OP_MALLOC, -1, NULL, NULL) ? ENOMEM : r_posix_memalign(out, al, n);
}
