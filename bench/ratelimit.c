/* ratelimit.c: how closely replicas sharing one Redis token bucket hold
 * its rate. Two worker processes (fork) of 4 threads each call
 * ns_ratelimit_wait() on one bucket for D seconds; prints the configured
 * and achieved rates, overall and per process, and the wait per grant.
 *
 *   NS_REDIS_URL=redis://... bench_ratelimit [rate/s=500] [seconds=5]
 *                                            [burst=max(1, rate/50)]
 *
 * Prints figures; exits non-zero only when it cannot measure. */
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ns/ratelimit.h"

#define N_PROCS 2
#define N_THREADS 4

/* One thread's results, in memory shared with the parent. */
struct slot {
    long granted;
    long samples_len;
    int failed;
};

struct bench {
    const char *url;
    char bucket[96];
    double rate, burst;
    int64_t start_us, end_us;
    long cap; /* samples per thread */
    struct slot *slots;
    int64_t *samples; /* wait per grant, µs: slot i owns [i*cap, i*cap+cap) */
};

struct worker_arg {
    struct bench *b;
    ns_ratelimit_t *rl;
    int index;
};

static int64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void sleep_until_us(int64_t when)
{
    int64_t left = when - mono_us();
    if (left <= 0)
        return;
    struct timespec ts = {(time_t)(left / 1000000),
                          (long)(left % 1000000) * 1000L};
    nanosleep(&ts, NULL);
}

static void *worker_thread(void *arg)
{
    struct worker_arg *w = arg;
    struct bench *b = w->b;
    struct slot *slot = &b->slots[w->index];
    int64_t *samples = b->samples + (int64_t)w->index * b->cap;
    ns_error_t err;
    sleep_until_us(b->start_us);
    for (;;) {
        int64_t t0 = mono_us();
        if (t0 >= b->end_us)
            break;
        ns_error_clear(&err);
        ns_err_t rc = ns_ratelimit_wait(w->rl, b->bucket, b->rate, b->burst,
                                        (b->end_us - t0) / 1000, NULL, &err);
        int64_t t1 = mono_us();
        if (rc == NS_ERR_TRANSIENT)
            break; /* the next token comes after the end */
        if (rc != NS_OK) {
            fprintf(stderr, "wait: %s\n", err.msg);
            slot->failed = 1;
            break;
        }
        if (t1 > b->end_us)
            break;
        slot->granted++;
        if (slot->samples_len < b->cap)
            samples[slot->samples_len++] = t1 - t0;
    }
    return NULL;
}

static int run_process(struct bench *b, int proc)
{
    ns_error_t err;
    ns_error_clear(&err);
    ns_ratelimit_t *rl = ns_ratelimit_new(b->url, &err);
    if (rl == NULL) {
        fprintf(stderr, "process %d: %s\n", proc + 1, err.msg);
        return 1;
    }
    pthread_t tid[N_THREADS];
    struct worker_arg args[N_THREADS];
    for (int t = 0; t < N_THREADS; t++) {
        args[t] = (struct worker_arg){b, rl, proc * N_THREADS + t};
        if (pthread_create(&tid[t], NULL, worker_thread, &args[t]) != 0) {
            fprintf(stderr, "process %d: pthread_create failed\n", proc + 1);
            return 1;
        }
    }
    for (int t = 0; t < N_THREADS; t++)
        pthread_join(tid[t], NULL);
    ns_ratelimit_destroy(rl);
    return 0;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static double pct_ms(const int64_t *sorted, long n, double p)
{
    if (n == 0)
        return 0;
    long i = (long)ceil(p * (double)n) - 1;
    if (i < 0)
        i = 0;
    return (double)sorted[i] / 1000.0;
}

/* Uncontended round trip of one take, and a check that Redis is really
 * there: the limiter fails open, which would make every figure a lie. */
static int measure_take(struct bench *b, double *p50_ms, double *p99_ms)
{
    ns_error_t err;
    ns_error_clear(&err);
    ns_ratelimit_t *rl = ns_ratelimit_new(b->url, &err);
    if (rl == NULL) {
        fprintf(stderr, "bench_ratelimit: %s\n", err.msg);
        return 0;
    }
    char probe[128];
    snprintf(probe, sizeof(probe), "%s-probe", b->bucket);
    int64_t wait_ms = 0, second_wait = 0;
    ns_ratelimit_take(rl, probe, 1, 1, 1, &wait_ms, &err);
    ns_ratelimit_take(rl, probe, 1, 1, 1, &second_wait, &err);
    if (second_wait == 0) {
        fprintf(stderr, "bench_ratelimit: Redis unreachable (the limiter "
                        "fails open); nothing to measure\n");
        ns_ratelimit_destroy(rl);
        return 0;
    }
    enum { N = 2000 };
    static int64_t rtt[N];
    snprintf(probe, sizeof(probe), "%s-rtt", b->bucket);
    for (int i = 0; i < N; i++) {
        int64_t t0 = mono_us();
        ns_ratelimit_take(rl, probe, 1e9, 1e9, 1, &wait_ms, &err);
        rtt[i] = mono_us() - t0;
    }
    qsort(rtt, N, sizeof(rtt[0]), cmp_i64);
    *p50_ms = pct_ms(rtt, N, 0.50);
    *p99_ms = pct_ms(rtt, N, 0.99);
    ns_ratelimit_destroy(rl);
    return 1;
}

static int parse_args(int argc, char **argv, struct bench *b, double *secs)
{
    b->rate = argc > 1 ? atof(argv[1]) : 500;
    *secs = argc > 2 ? atof(argv[2]) : 5;
    b->burst = argc > 3 ? atof(argv[3]) : fmax(1, b->rate / 50);
    if (!(b->rate > 0 && b->rate <= 1e6) || !(*secs > 0 && *secs <= 600) ||
        !(b->burst >= 1 && b->burst <= 1e6)) {
        fprintf(stderr, "usage: bench_ratelimit [rate/s (0..1e6], default "
                        "500] [seconds (0..600], default 5] [burst >= 1]\n");
        return 0;
    }
    return 1;
}

static void report(const struct bench *b, double secs, double rtt50,
                   double rtt99)
{
    long total = 0, per_proc[N_PROCS] = {0}, n = 0;
    for (int i = 0; i < N_PROCS * N_THREADS; i++) {
        total += b->slots[i].granted;
        per_proc[i / N_THREADS] += b->slots[i].granted;
    }
    /* Compact every slot's samples to the front, then sort them all. */
    for (int i = 0; i < N_PROCS * N_THREADS; i++) {
        memmove(b->samples + n, b->samples + (int64_t)i * b->cap,
                (size_t)b->slots[i].samples_len * sizeof(int64_t));
        n += b->slots[i].samples_len;
    }
    qsort(b->samples, (size_t)n, sizeof(int64_t), cmp_i64);
    double achieved = (double)total / secs;
    double net = ((double)total - b->burst) / secs;
    printf("ratelimit: one Redis bucket shared by %d processes x %d "
           "threads\n",
           N_PROCS, N_THREADS);
    printf("configured       %.1f/s, burst %.0f, for %.1f s\n", b->rate,
           b->burst, secs);
    printf("take round trip  p50 %.3f ms, p99 %.3f ms (1 thread, "
           "uncontended)\n",
           rtt50, rtt99);
    printf("granted          %ld (at most %.0f: rate x time + burst)\n", total,
           b->rate * secs + b->burst);
    printf("achieved         %.1f/s overall", achieved);
    for (int p = 0; p < N_PROCS; p++)
        printf(", process %d %.1f/s", p + 1, (double)per_proc[p] / secs);
    printf("\n");
    printf("achieved/config  %.3f (%.3f without the initial burst)\n",
           achieved / b->rate, net / b->rate);
    printf("wait per grant   p50 %.1f ms, p99 %.1f ms, max %.1f ms\n",
           pct_ms(b->samples, n, 0.50), pct_ms(b->samples, n, 0.99),
           pct_ms(b->samples, n, 1.0));
}

int main(int argc, char **argv)
{
    struct bench b;
    double secs = 0;
    memset(&b, 0, sizeof(b));
    b.url = getenv("NS_REDIS_URL");
    if (b.url == NULL || b.url[0] == '\0') {
        fprintf(stderr, "bench_ratelimit: set NS_REDIS_URL (e.g. eval "
                        "\"$(tests/stack.sh env)\")\n");
        return 1;
    }
    if (!parse_args(argc, argv, &b, &secs))
        return 2;
    snprintf(b.bucket, sizeof(b.bucket), "bench-%ld-%lld", (long)getpid(),
             (long long)time(NULL));
    double rtt50 = 0, rtt99 = 0;
    if (!measure_take(&b, &rtt50, &rtt99))
        return 1;

    b.cap = (long)(b.rate * secs + b.burst) + 1000;
    size_t n_slots = N_PROCS * N_THREADS;
    size_t bytes = n_slots * sizeof(struct slot) +
                   n_slots * (size_t)b.cap * sizeof(int64_t);
    void *shared = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
                        MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (shared == MAP_FAILED) {
        perror("bench_ratelimit: mmap");
        return 1;
    }
    b.slots = shared;
    b.samples = (int64_t *)(b.slots + n_slots);
    /* Both processes start on the same instant: they fork, connect, then
     * sleep until start_us (CLOCK_MONOTONIC is system-wide). */
    b.start_us = mono_us() + 500000;
    b.end_us = b.start_us + (int64_t)(secs * 1e6);

    fflush(NULL);
    pid_t pids[N_PROCS];
    for (int p = 0; p < N_PROCS; p++) {
        pids[p] = fork();
        if (pids[p] == 0)
            _exit(run_process(&b, p));
        if (pids[p] < 0) {
            perror("bench_ratelimit: fork");
            return 1;
        }
    }
    int failed = 0;
    for (int p = 0; p < N_PROCS; p++) {
        int status = 0;
        waitpid(pids[p], &status, 0);
        failed |= !WIFEXITED(status) || WEXITSTATUS(status) != 0;
    }
    for (size_t i = 0; i < n_slots; i++)
        failed |= b.slots[i].failed;
    if (failed) {
        fprintf(stderr, "bench_ratelimit: a worker process failed\n");
        return 1;
    }
    report(&b, secs, rtt50, rtt99);
    munmap(shared, bytes);
    return 0;
}
