/* bench_logparse: the log template parser (text/logparse.c) on one core.
 * Generates realistic log lines (syslog, sshd, nginx, PostgreSQL, Kafka,
 * Redis and application lines from 40 templates with random variables,
 * a fixed seed) or reads them from a file, then times
 *   (a) training: ns_logparse_add() of every line into a fresh parser,
 *   (b) the regular path: ns_logparse_match() of every line against the
 *       trained tree,
 * and prints lines/s and MB/s per core (best of --repeat runs, by the
 * thread's CPU time, so that a busy machine does not halve it; the wall
 * clock figure follows). A
 * benchmark: it prints figures and never fails on them.
 *
 *   build/bench/bench_logparse [--lines 1000000] [--file FILE] [--repeat 3]
 *                              [--depth N] [--sim T]
 *   build/bench/bench_logparse --quick
 *   build/bench/bench_logparse --accuracy FILE.tsv [--depth N] [--sim T]
 *                              [--verbose]
 *
 * --quick is the regression check: a small built-in sample whose grouping
 * is known; exit 1 when the parser groups it differently. It never judges
 * a time.
 * --accuracy reads "label<TAB>line" lines (the files under tests/data/logs/),
 * adds the lines in order and prints the grouping accuracy (the share of lines
 * whose predicted group holds exactly the lines of their true group, as in the
 * Loghub benchmarks) and the pairwise precision, recall and F-measure.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ns/logparse.h"

typedef struct lines {
    char **line;
    size_t *len;
    char **label;
    size_t n, cap, bytes;
} lines_t;

/* Seconds of this thread's CPU time: "per core" even when the machine is
 * shared (wall time would count the time other processes ran). */
static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double wall_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n);
    if (q == NULL) {
        perror("realloc");
        exit(2);
    }
    return q;
}

static void push(lines_t *l, const char *s, size_t len, const char *label)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 4096;
        l->line = xrealloc(l->line, l->cap * sizeof(*l->line));
        l->len = xrealloc(l->len, l->cap * sizeof(*l->len));
        l->label = xrealloc(l->label, l->cap * sizeof(*l->label));
    }
    l->line[l->n] = xrealloc(NULL, len + 1);
    memcpy(l->line[l->n], s, len);
    l->line[l->n][len] = '\0';
    l->len[l->n] = len;
    l->label[l->n] = label ? strdup(label) : NULL;
    l->bytes += len;
    l->n++;
}

static void lines_free(lines_t *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->line[i]);
        free(l->label[i]);
    }
    free(l->line);
    free(l->len);
    free(l->label);
}

/* Lines of path; with tsv, "label<TAB>line" (lines without a tab are
 * skipped). */
static int read_lines(const char *path, int tsv, lines_t *l)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        perror(path);
        return -1;
    }
    char *buf = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&buf, &cap, f)) > 0) {
        if (buf[n - 1] == '\n')
            buf[--n] = '\0';
        if (!tsv) {
            push(l, buf, (size_t)n, NULL);
            continue;
        }
        char *tab = strchr(buf, '\t');
        if (tab == NULL)
            continue;
        *tab = '\0';
        push(l, tab + 1, (size_t)(n - (tab + 1 - buf)), buf);
    }
    free(buf);
    fclose(f);
    return 0;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint64_t rnd(void)
{
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return rng_state = x;
}

static unsigned pick(unsigned n)
{
    return (unsigned)(rnd() % n);
}

/* Line shapes; %X marks a variable of kind X (see put_var). */
static const char *const shapes[] = {
    "%S %H sshd[%P]: Accepted publickey for %U from %I port %N ssh2",
    "%S %H sshd[%P]: Failed password for invalid user %U from %I port %N "
    "ssh2",
    "%S %H sshd[%P]: pam_unix(sshd:session): session closed for user %U",
    "%S %H sshd[%P]: Connection closed by %I port %N [preauth]",
    "%S %H CRON[%P]: (%U) CMD (%F)",
    "%S %H systemd[1]: Started Session %N of User %U.",
    "%S %H systemd[1]: %W.service: Deactivated successfully.",
    "%S %H kernel: [%D] eth0: link up, %N Mbps, full duplex",
    "%S %H kernel: [%D] Out of memory: Killed process %P (%W) total-vm:%NkB",
    "%I - - [%A] \"GET %F HTTP/1.1\" %C %N \"-\" \"curl/%V\"",
    "%I - - [%A] \"POST /api/v1/orders/%N HTTP/1.1\" %C %N \"-\" \"Mozilla\"",
    "%T UTC [%P] LOG:  checkpoint starting: time",
    "%T UTC [%P] LOG:  checkpoint complete: wrote %N buffers (%D%%); %N WAL "
    "file(s) added, %N removed, %N recycled; write=%D s, sync=%D s",
    "%T UTC [%P] LOG:  duration: %D ms  statement: SELECT * FROM items "
    "WHERE id = %N",
    "%T UTC [%P] ERROR:  duplicate key value violates unique constraint "
    "\"items_pkey\"",
    "%T UTC [%P] FATAL:  password authentication failed for user \"%U\"",
    "[%T] INFO [Log partition=%W-%N, dir=%F] Rolled new log segment at "
    "offset %N in %M ms. (kafka.log.LocalLog)",
    "[%T] INFO [GroupCoordinator %N]: Preparing to rebalance group %W in "
    "state PreparingRebalance with old generation %N (kafka.coordinator)",
    "[%T] WARN [Producer clientId=%W-%N] Connection to node %N (%I) could "
    "not be established. Broker may not be available.",
    "%P:M %S.%N * Background saving started by pid %P",
    "%P:C %S.%N * DB saved on disk",
    "%P:M %S.%N * %N changes in %N seconds. Saving...",
    "%T level=info msg=\"request completed\" method=GET path=%F status=%C "
    "duration=%Mms request_id=%G",
    "%T level=error msg=\"upstream timeout\" upstream=%I timeout=%Ms "
    "trace=%X",
    "%T INFO  worker %N picked job %G from queue %W",
    "%T WARN  retrying job %G in %Ms (attempt %N of 5)",
    "%T ERROR job %G failed: connection refused to %I",
    "%T INFO  user %E logged in from %I",
    "%T DEBUG cache miss for key %W:%N after %Mus",
    "%T INFO  uploaded %F (%N bytes) to s3://bucket/%G",
    "%T INFO  http server listening on %I",
    "%T WARN  slow query took %Ms: UPDATE accounts SET balance = %N WHERE "
    "id = %N",
    "%T INFO  GC pause %Mms, heap %NMB -> %NMB",
    "%T ERROR Exception in thread \"main\" java.lang.NullPointerException at "
    "com.example.Service.handle(Service.java:%N)",
    "%T INFO  scheduled %N items for run %G",
    "%T INFO  committed offsets for partition %W-%N at %N",
    "%T WARN  disk usage on %F at %N%%",
    "%T INFO  session %X expired after %Mm",
    "%T INFO  TLS handshake with %I completed in %Mms",
    "%T ERROR failed to open %F: No such file or directory",
};
#define NSHAPES (sizeof(shapes) / sizeof(shapes[0]))

static const char *const words[] = {"alpha",    "billing", "orders", "nginx",
                                    "payments", "search",  "auth",   "redis"};
static const char *const users[] = {"root",     "alice",    "bob", "deploy",
                                    "postgres", "www-data", "git", "admin"};
static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

/* snprintf at o, clamped to end. */
static char *putf(char *o, char *end, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static char *putf(char *o, char *end, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(o, (size_t)(end - o), fmt, ap);
    va_end(ap);
    if (n < 0)
        return o;
    return (size_t)n < (size_t)(end - o) ? o + n : end - 1;
}

static char *put_var(char *o, char *end, char kind)
{
    switch (kind) {
    case 'S':
        return putf(o, end, "%s %2u %02u:%02u:%02u", months[pick(12)],
                    1 + pick(28), pick(24), pick(60), pick(60));
    case 'T':
        return putf(o, end, "2024-%02u-%02u %02u:%02u:%02u.%03u", 1 + pick(12),
                    1 + pick(28), pick(24), pick(60), pick(60), pick(1000));
    case 'A':
        return putf(o, end, "%02u/%s/2024:%02u:%02u:%02u +0000", 1 + pick(28),
                    months[pick(12)], pick(24), pick(60), pick(60));
    case 'H': return putf(o, end, "node-%u", pick(20));
    case 'P': return putf(o, end, "%u", 100 + pick(60000));
    case 'U': return putf(o, end, "%s", users[pick(8)]);
    case 'W': return putf(o, end, "%s", words[pick(8)]);
    case 'I':
        return putf(o, end, "%u.%u.%u.%u", 10 + pick(200), pick(256), pick(256),
                    1 + pick(254));
    case 'N': return putf(o, end, "%u", pick(100000));
    case 'M': return putf(o, end, "%u", 1 + pick(900));
    case 'C': return putf(o, end, "%u", pick(2) ? 200 : 404 + pick(100));
    case 'D': return putf(o, end, "%u.%03u", pick(5000), pick(1000));
    case 'V': return putf(o, end, "7.%u.%u", pick(90), pick(10));
    case 'F':
        return putf(o, end, "/var/lib/%s/%u/data.%u", words[pick(8)], pick(100),
                    pick(10));
    case 'E': return putf(o, end, "%s@example.com", users[pick(8)]);
    case 'X': return putf(o, end, "%016llx", (unsigned long long)rnd());
    case 'G': {
        uint64_t a = rnd(), b = rnd();
        return putf(o, end, "%08x-%04x-4%03x-a%03x-%012llx",
                    (unsigned)(a >> 32), (unsigned)(a >> 16) & 0xffff,
                    (unsigned)a & 0xfff, (unsigned)(b >> 52),
                    (unsigned long long)(b & 0xffffffffffffULL));
    }
    default: return putf(o, end, "%c", kind);
    }
}

static void generate(lines_t *l, size_t n)
{
    char line[1024];
    for (size_t i = 0; i < n; i++) {
        /* A skewed mix: a few templates dominate, as in real logs. */
        unsigned t = pick(4) == 0 ? pick(NSHAPES) : pick(8);
        char *o = line;
        char *end = line + sizeof(line);
        for (const char *s = shapes[t]; *s && o < end - 1; s++)
            o = *s == '%' ? put_var(o, end, *++s) : putf(o, end, "%c", *s);
        push(l, line, (size_t)(o - line), NULL);
    }
}

static ns_logparse_t *parser(const ns_logparse_opts_t *o)
{
    char err[256];
    ns_logparse_t *p = ns_logparse_new(o, err, sizeof(err));
    if (p == NULL) {
        fprintf(stderr, "bench_logparse: %s\n", err);
        exit(2);
    }
    return p;
}

static int bench(const lines_t *l, const ns_logparse_opts_t *o, int repeat)
{
    double best_add = 1e30, best_match = 1e30, wall_add = 0, wall_match = 0;
    size_t templates = 0, unmatched = 0, refused = 0;
    for (int r = 0; r < repeat; r++) {
        ns_logparse_t *p = parser(o);
        uint64_t id;
        ns_error_t err;
        refused = 0;
        double t0 = cpu_s(), w0 = wall_s();
        for (size_t i = 0; i < l->n; i++)
            refused +=
                ns_logparse_add(p, l->line[i], l->len[i], &id, &err) != NS_OK;
        double t1 = cpu_s(), w1 = wall_s();
        unmatched = 0;
        for (size_t i = 0; i < l->n; i++)
            unmatched +=
                ns_logparse_match(p, l->line[i], l->len[i], &id, &err) != NS_OK;
        double t2 = cpu_s(), w2 = wall_s();
        templates = ns_logparse_count(p);
        ns_logparse_destroy(p);
        if (t1 - t0 < best_add) {
            best_add = t1 - t0;
            wall_add = w1 - w0;
        }
        if (t2 - t1 < best_match) {
            best_match = t2 - t1;
            wall_match = w2 - w1;
        }
    }
    double mb = (double)l->bytes / 1e6;
    printf("lines %zu (%.1f MB, %.0f bytes/line), templates %zu, refused "
           "%zu, unmatched %zu\n",
           l->n, mb, (double)l->bytes / (double)l->n, templates, refused,
           unmatched);
    printf("add   (training):     %10.0f lines/s  %7.1f MB/s per core "
           "(CPU time; wall %.0f lines/s)\n",
           (double)l->n / best_add, mb / best_add, (double)l->n / wall_add);
    printf("match (regular path): %10.0f lines/s  %7.1f MB/s per core "
           "(CPU time; wall %.0f lines/s)\n",
           (double)l->n / best_match, mb / best_match,
           (double)l->n / wall_match);
    return 0;
}

/* Open-addressing map from a string or a 64-bit id to a dense index. */
typedef struct dense {
    uint64_t *keys;
    uint32_t *vals;
    size_t mask, n;
} dense_t;

static uint64_t str_hash(const char *s)
{
    return ns_logparse_text_id(s, strlen(s)) | 1;
}

static uint32_t dense_get(dense_t *d, uint64_t key)
{
    if ((d->n + 1) * 2 > d->mask + 1 || d->keys == NULL) {
        size_t cap = d->keys ? (d->mask + 1) * 2 : 1024;
        uint64_t *keys = calloc(cap, sizeof(*keys));
        uint32_t *vals = calloc(cap, sizeof(*vals));
        for (size_t i = 0; d->keys && i <= d->mask; i++) {
            if (d->keys[i] == 0)
                continue;
            size_t j = d->keys[i] & (cap - 1);
            while (keys[j] != 0)
                j = (j + 1) & (cap - 1);
            keys[j] = d->keys[i];
            vals[j] = d->vals[i];
        }
        free(d->keys);
        free(d->vals);
        d->keys = keys;
        d->vals = vals;
        d->mask = cap - 1;
    }
    size_t i = key & d->mask;
    while (d->keys[i] != 0 && d->keys[i] != key)
        i = (i + 1) & d->mask;
    if (d->keys[i] == 0) {
        d->keys[i] = key;
        d->vals[i] = (uint32_t)d->n++;
    }
    return d->vals[i];
}

static double pairs(double k)
{
    return k * (k - 1) / 2;
}

/* Grouping accuracy and pairwise F-measure of predicted groups pred[]
 * against true groups truth[], over n lines. */
static void score(const uint32_t *truth, size_t ntruth, const uint32_t *pred,
                  size_t npred, size_t n, double *accuracy, double *precision,
                  double *recall)
{
    size_t *tsize = calloc(ntruth, sizeof(*tsize));
    size_t *psize = calloc(npred, sizeof(*psize));
    dense_t joint = {0};
    size_t *jsize = calloc(n + 1, sizeof(*jsize));
    for (size_t i = 0; i < n; i++) {
        tsize[truth[i]]++;
        psize[pred[i]]++;
        jsize[dense_get(&joint, ((uint64_t)truth[i] << 32 | pred[i]) + 1)]++;
    }
    /* A line is right when its true and predicted groups are one set:
     * both as large as their intersection. */
    size_t right = 0;
    for (size_t i = 0; i < n; i++) {
        size_t j = dense_get(&joint, ((uint64_t)truth[i] << 32 | pred[i]) + 1);
        right += jsize[j] == tsize[truth[i]] && jsize[j] == psize[pred[i]];
    }
    double tp = 0, tpairs = 0, ppairs = 0;
    for (size_t j = 0; j < joint.n; j++)
        tp += pairs((double)jsize[j]);
    for (size_t t = 0; t < ntruth; t++)
        tpairs += pairs((double)tsize[t]);
    for (size_t p = 0; p < npred; p++)
        ppairs += pairs((double)psize[p]);
    *accuracy = n ? (double)right / (double)n : 0;
    *precision = ppairs > 0 ? tp / ppairs : 1;
    *recall = tpairs > 0 ? tp / tpairs : 1;
    free(tsize);
    free(psize);
    free(jsize);
    free(joint.keys);
    free(joint.vals);
}

static int accuracy(const char *path, const ns_logparse_opts_t *o, int verbose)
{
    lines_t l = {0};
    if (read_lines(path, 1, &l) != 0)
        return 2;
    ns_logparse_t *p = parser(o);
    uint32_t *truth = calloc(l.n + 1, sizeof(*truth));
    uint32_t *pred = calloc(l.n + 1, sizeof(*pred));
    uint64_t *ids = calloc(l.n + 1, sizeof(*ids));
    dense_t tmap = {0}, pmap = {0};
    size_t refused = 0;
    for (size_t i = 0; i < l.n; i++) {
        ns_error_t err;
        if (ns_logparse_add(p, l.line[i], l.len[i], &ids[i], &err) != NS_OK)
            refused++;
        truth[i] = dense_get(&tmap, str_hash(l.label[i]));
        pred[i] = dense_get(&pmap, ids[i] | 1);
    }
    double acc, prec, rec;
    score(truth, tmap.n, pred, pmap.n, l.n, &acc, &prec, &rec);
    double f = prec + rec > 0 ? 2 * prec * rec / (prec + rec) : 0;
    printf("lines=%zu true_templates=%zu predicted_templates=%zu refused=%zu "
           "accuracy=%.4f precision=%.4f recall=%.4f f_measure=%.4f\n",
           l.n, tmap.n, pmap.n, refused, acc, prec, rec, f);
    if (verbose) {
        /* For each true label: the templates its lines went to. */
        for (size_t i = 0; i < l.n; i++) {
            int first = 1;
            for (size_t k = 0; k < i && first; k++)
                first = !(truth[k] == truth[i] && pred[k] == pred[i]);
            if (first)
                printf("%s\t%016llx\t%s\n", l.label[i],
                       (unsigned long long)ids[i],
                       ns_logparse_template(p, ids[i]));
        }
    }
    ns_logparse_destroy(p);
    free(truth);
    free(pred);
    free(ids);
    free(tmap.keys);
    free(tmap.vals);
    free(pmap.keys);
    free(pmap.vals);
    lines_free(&l);
    return 0;
}

/* A sample with a known grouping: line, expected final template. */
static const char *const quick_sample[][2] = {
    {"Dec  3 10:50:33 h1 sshd[1234]: Accepted publickey for bob from "
     "10.0.0.1 port 50022 ssh2",
     "<TS> h1 sshd[<NUM>]: Accepted publickey for <*> from <IP> port <NUM> "
     "ssh2"},
    {"Dec 13 08:01:02 h1 sshd[99]: Accepted publickey for alice from "
     "192.168.7.9 port 22 ssh2",
     "<TS> h1 sshd[<NUM>]: Accepted publickey for <*> from <IP> port <NUM> "
     "ssh2"},
    {"2024-01-03 10:50:33 status installed libc6:amd64 2.36-9",
     "<TS> status installed <*> <*>"},
    {"2024-01-03 10:50:34 status installed bash:amd64 5.2.15-2",
     "<TS> status installed <*> <*>"},
    {"2024-01-03T10:50:33.123Z request 550e8400-e29b-41d4-a716-446655440000 "
     "took 12ms",
     "<TS> request <UUID> took <DUR>"},
    {"2024-01-03T10:51:00Z request 6ba7b810-9dad-11d1-80b4-00c04fd430c8 took "
     "1.5s",
     "<TS> request <UUID> took <DUR>"},
    {"open /var/log/syslog failed: permission denied",
     "open <PATH> failed: permission denied"},
    {"kernel: Out of memory: Killed process 4242 (java)",
     "kernel: Out of memory: Killed process <NUM> (java)"},
};

static int quick(void)
{
    ns_logparse_t *p = parser(NULL);
    size_t n = sizeof(quick_sample) / sizeof(quick_sample[0]);
    uint64_t ids[16];
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        ns_error_t err;
        const char *s = quick_sample[i][0];
        if (ns_logparse_add(p, s, strlen(s), &ids[i], &err) != NS_OK) {
            fprintf(stderr, "bench_logparse: line %zu: %s\n", i + 1, err.msg);
            bad = 1;
        }
    }
    for (size_t i = 0; i < n; i++) {
        const char *got = ns_logparse_template(p, ids[i]);
        uint64_t id = 0;
        ns_error_t err;
        const char *s = quick_sample[i][0];
        if (got == NULL || strcmp(got, quick_sample[i][1]) != 0) {
            fprintf(stderr,
                    "bench_logparse: line %zu: template \"%s\", "
                    "expected \"%s\"\n",
                    i + 1, got ? got : "(none)", quick_sample[i][1]);
            bad = 1;
        }
        if (ns_logparse_match(p, s, strlen(s), &id, &err) != NS_OK ||
            id != ids[i]) {
            fprintf(stderr, "bench_logparse: line %zu: match disagrees\n",
                    i + 1);
            bad = 1;
        }
    }
    if (ns_logparse_count(p) != 5) {
        fprintf(stderr, "bench_logparse: %zu templates, expected 5\n",
                ns_logparse_count(p));
        bad = 1;
    }
    ns_logparse_destroy(p);
    printf("bench_logparse --quick: %s\n", bad ? "FAILED" : "ok");
    return bad;
}

int main(int argc, char **argv)
{
    size_t nlines = 1000000;
    int repeat = 3, verbose = 0;
    const char *file = NULL, *tsv = NULL;
    ns_logparse_opts_t o = {0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--quick") == 0)
            return quick();
        if (strcmp(a, "--verbose") == 0) {
            verbose = 1;
            continue;
        }
        if (v == NULL) {
            fprintf(stderr, "bench_logparse: %s needs a value\n", a);
            return 2;
        }
        i++;
        if (strcmp(a, "--lines") == 0)
            nlines = strtoul(v, NULL, 10);
        else if (strcmp(a, "--repeat") == 0)
            repeat = atoi(v);
        else if (strcmp(a, "--file") == 0)
            file = v;
        else if (strcmp(a, "--accuracy") == 0)
            tsv = v;
        else if (strcmp(a, "--depth") == 0)
            o.depth = (unsigned)atoi(v);
        else if (strcmp(a, "--sim") == 0)
            o.sim_threshold = atof(v);
        else {
            fprintf(stderr, "bench_logparse: unknown option %s\n", a);
            return 2;
        }
    }
    if (tsv != NULL)
        return accuracy(tsv, &o, verbose);
    lines_t l = {0};
    if (file != NULL) {
        if (read_lines(file, 0, &l) != 0)
            return 2;
    } else {
        generate(&l, nlines);
    }
    if (l.n == 0) {
        fprintf(stderr, "bench_logparse: no lines\n");
        return 2;
    }
    int rc = bench(&l, &o, repeat < 1 ? 1 : repeat);
    lines_free(&l);
    return rc;
}
