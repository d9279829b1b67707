/* nstest.h: a minimal test harness in the libuv style.
 * Each TEST(name) is registered in a list; every test runs in its own forked
 * process so one crash does not hide the others. ASSERT_* print both values. */
#ifndef NSTEST_H
#define NSTEST_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

typedef void (*nstest_fn)(void);
struct nstest_case {
    const char *name;
    nstest_fn fn;
};

#define NSTEST_MAX 256
static struct nstest_case nstest_cases[NSTEST_MAX];
static int nstest_count;

#define TEST(name)                                                             \
    static void test_##name(void);                                             \
    __attribute__((constructor)) static void nstest_reg_##name(void)           \
    {                                                                          \
        if (nstest_count < NSTEST_MAX)                                         \
            nstest_cases[nstest_count++] =                                     \
                (struct nstest_case){#name, test_##name};                      \
    }                                                                          \
    static void test_##name(void)

#define NSTEST_FAIL(...)                                                       \
    do {                                                                       \
        fprintf(stderr, "%s:%d: ", __FILE__, __LINE__);                        \
        fprintf(stderr, __VA_ARGS__);                                          \
        fputc('\n', stderr);                                                   \
        exit(1);                                                               \
    } while (0)

#define ASSERT(cond)                                                           \
    do {                                                                       \
        if (!(cond))                                                           \
            NSTEST_FAIL("assertion failed: %s", #cond);                        \
    } while (0)

#define ASSERT_EQ(a, b)                                                        \
    do {                                                                       \
        long long nstest_a = (long long)(a), nstest_b = (long long)(b);        \
        if (nstest_a != nstest_b)                                              \
            NSTEST_FAIL("%s == %s: %lld != %lld", #a, #b, nstest_a, nstest_b); \
    } while (0)

#define ASSERT_STREQ(a, b)                                                     \
    do {                                                                       \
        const char *nstest_a = (a), *nstest_b = (b);                           \
        if (nstest_a == NULL || nstest_b == NULL ||                            \
            strcmp(nstest_a, nstest_b) != 0)                                   \
            NSTEST_FAIL("%s == %s:\n  got:      \"%s\"\n  expected: \"%s\"",   \
                        #a, #b, nstest_a ? nstest_a : "(null)",                \
                        nstest_b ? nstest_b : "(null)");                       \
    } while (0)

/* Runs every registered test (or only those named on the command line) in
 * a child process and prints "N passed, N failed". */
static int nstest_main(int argc, char **argv)
{
    int passed = 0, failed = 0;
    for (int i = 0; i < nstest_count; i++) {
        if (argc > 1) {
            int wanted = 0;
            for (int a = 1; a < argc; a++)
                wanted |= strcmp(argv[a], nstest_cases[i].name) == 0;
            if (!wanted)
                continue;
        }
        fflush(NULL);
        pid_t pid = fork();
        if (pid == 0) {
            nstest_cases[i].fn();
            fflush(NULL);
            _exit(0);
        }
        int status = 0;
        waitpid(pid, &status, 0);
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
            printf("ok   %s\n", nstest_cases[i].name);
            passed++;
        } else {
            printf("FAIL %s (%s %d)\n", nstest_cases[i].name,
                   WIFSIGNALED(status) ? "signal" : "exit",
                   WIFSIGNALED(status) ? WTERMSIG(status)
                                       : WEXITSTATUS(status));
            failed++;
        }
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}

#define NSTEST_MAIN                                                            \
    int main(int argc, char **argv)                                            \
    {                                                                          \
        return nstest_main(argc, argv);                                        \
    }

#endif
