/* tests/testlib.c - runner for bin/recd-tests: forks each test with a timeout and a temp dir. */
#include "tests/testlib.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"

#if defined(__SANITIZE_ADDRESS__)
#define TEST_LSAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TEST_LSAN 1
#endif
#endif
#ifdef TEST_LSAN
/* LeakSanitizer: a test's child ends with _exit, which skips the check at exit, so run it here. */
int __lsan_do_recoverable_leak_check(void);
#endif

#define TEST_MAX 2048
#define SKIP_STATUS 77

struct test_case {
    const char *name, *file;
    test_fn fn;
    int timeout_s;
};

static struct test_case tests[TEST_MAX];
static int ntests;
static char tmpdir_path[4096];
static char shared_path[4096];
static char bin_path[4096];

void test_register(const char *name, const char *file, test_fn fn, int timeout_s)
{
    if (ntests == TEST_MAX) {
        fprintf(stderr, "testlib: too many tests\n");
        abort();
    }
    tests[ntests++] = (struct test_case){name, file, fn, timeout_s};
}

void test_fail_(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "    %s:%d: ", file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n");
    fflush(NULL);
    _exit(1);
}

void test_skip_(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "    skipped: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n");
    fflush(NULL);
    _exit(SKIP_STATUS);
}

const char *test_tmpdir(void)
{
    return tmpdir_path;
}

const char *test_shared_data(const char *name)
{
    const char *root = getenv("RECD_SHARED");
    struct stat st;
    if (root && *root)
        snprintf(shared_path, sizeof shared_path, "%s/data/%s", root, name);
    else
        snprintf(shared_path, sizeof shared_path, "../shared/data/%s", name);
    if (stat(shared_path, &st) != 0 || !S_ISDIR(st.st_mode)) return NULL;
    char *abs = realpath(shared_path, NULL);
    if (abs) {
        snprintf(shared_path, sizeof shared_path, "%s", abs);
        free(abs);
    }
    return shared_path;
}

const char *test_recd_bin(void)
{
    const char *b = getenv("RECD_BIN");
    if (b && *b) return b;
    char *abs = realpath("bin/recd", NULL);
    snprintf(bin_path, sizeof bin_path, "%s", abs ? abs : "bin/recd");
    free(abs);
    return bin_path;
}

int test_run(char *out, size_t cap, const char *fmt, ...)
{
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    char full[8300];
    snprintf(full, sizeof full, "(%s) 2>&1", cmd);
    FILE *p = popen(full, "r");
    if (!p) return -1;
    size_t n = 0;
    if (out && cap) {
        size_t r;
        while (n + 1 < cap && (r = fread(out + n, 1, cap - 1 - n, p)) > 0) n += r;
        out[n] = '\0';
    }
    char sink[4096];
    while (fread(sink, 1, sizeof sink, p) > 0) {
    }
    int st = pclose(p);
    if (st == -1 || !WIFEXITED(st)) return -1;
    return WEXITSTATUS(st);
}

void test_write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f) FAIL("cannot write %s: %s", path, strerror(errno));
    fputs(text, f);
    if (fclose(f) != 0) FAIL("cannot write %s: %s", path, strerror(errno));
}

int test_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0)
        FAIL("cannot find a free port: %s", strerror(errno));
    close(fd);
    return ntohs(a.sin_port);
}


static int cmp_tests(const void *a, const void *b)
{
    const struct test_case *x = a, *y = b;
    int c = strcmp(x->file, y->file);
    return c ? c : strcmp(x->name, y->name);
}

static int selected(const char *name, int argc, char **argv)
{
    if (argc < 2) return 1;
    for (int i = 1; i < argc; i++)
        if (strncmp(name, argv[i], strlen(argv[i])) == 0) return 1;
    return 0;
}

int main(int argc, char **argv)
{
    int passed = 0, failed = 0, skipped = 0;
    char failed_names[8192] = "";
    const char *base = getenv("TMPDIR");
    if (!base || !*base) base = "/tmp";
    int scale = getenv("RECD_ASAN") ? 3 : 1;

    qsort(tests, ntests, sizeof tests[0], cmp_tests);
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (int i = 0; i < ntests; i++) {
        struct test_case *t = &tests[i];
        if (!selected(t->name, argc, argv)) continue;
        snprintf(tmpdir_path, sizeof tmpdir_path, "%s/recd-test-%s-XXXXXX", base, t->name);
        if (!mkdtemp(tmpdir_path)) {
            fprintf(stderr, "testlib: mkdtemp %s: %s\n", tmpdir_path, strerror(errno));
            return 2;
        }
        double t0 = clock_mono_s();
        fflush(NULL);
        pid_t pid = fork();
        if (pid == 0) {
            setpgid(0, 0);
            alarm((unsigned)(t->timeout_s * scale));
            t->fn();
            fflush(NULL);
#ifdef TEST_LSAN
            if (__lsan_do_recoverable_leak_check()) {
                fprintf(stderr, "    leaks found (LeakSanitizer report above)\n");
                _exit(1);
            }
#endif
            _exit(0);
        }
        int st = 0;
        while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
        }
        kill(-pid, SIGKILL); /* anything the test left running (servers) */
        double dt = clock_mono_s() - t0;
        if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
            passed++;
            printf("ok    %-44s %6.2fs\n", t->name, dt);
        } else if (WIFEXITED(st) && WEXITSTATUS(st) == SKIP_STATUS) {
            skipped++;
            printf("skip  %-44s\n", t->name);
        } else {
            failed++;
            if (WIFSIGNALED(st))
                printf("FAIL  %-44s %6.2fs (%s%s)\n", t->name, dt, strsignal(WTERMSIG(st)),
                       WTERMSIG(st) == SIGALRM ? ": timeout" : "");
            else
                printf("FAIL  %-44s %6.2fs (exit %d) [%s]\n", t->name, dt, WEXITSTATUS(st), t->file);
            size_t l = strlen(failed_names);
            snprintf(failed_names + l, sizeof failed_names - l, " %s", t->name);
        }
        if (!getenv("RECD_KEEP_TMP")) {
            char cmd[8400];
            /* published snapshots are read-only folders: make them writable so rm can empty them */
            snprintf(cmd, sizeof cmd, "chmod -R u+w '%s' 2>/dev/null; rm -rf '%s'", tmpdir_path, tmpdir_path);
            if (system(cmd) != 0) fprintf(stderr, "testlib: could not remove %s\n", tmpdir_path);
        }
    }
    if (failed) printf("failed:%s\n", failed_names);
    printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
    return failed ? 1 : 0;
}
