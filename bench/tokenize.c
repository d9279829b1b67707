/* bench_tokenize: the stopword job's kernel alone: tokenize (text/
 * tokenize.c) and count per-language term statistics (termstats.c) on one
 * core, over real multilingual text: the translated messages of the gettext
 * catalogues Debian installs (/usr/share/locale/<lang>/LC_MESSAGES/ NAME.mo,
 * dozens of languages and scripts), cut into documents of about 400 bytes.
 * Prints MB/s and documents/s per core: the best pass by wall time, and
 * the median pass by CPU time of the thread (the figure to quote on a
 * shared machine). Each pass is one shard of the job: a new tokenizer and
 * new statistics. A benchmark: it prints figures and never fails on them.
 *
 *   build/bench/bench_tokenize [--locales DIR] [--doc-bytes 400]
 *                              [--max-mb 64] [--repeat 3] [--dump FILE]
 *                              [--reference]
 *   build/bench/bench_tokenize --quick [--locales DIR]
 *
 * --reference runs the tokenizer's reference path
 * (ns_tokenizer_set_reference) instead of the fast path.
 * --dump FILE writes every word handed to the counter, one a line, an
 * empty line after each document, then the tokenizer's counters and the
 * encoded statistics, so that two builds of the kernel can be compared with
 * cmp(1).
 * --quick is the regression check the suite runs: 2 MB of the corpus, and
 * it fails (exit 1) when the result is not what a working kernel gives:
 * no words, a pass that differs from the next one or from the reference
 * path (ns_tokenizer_set_reference), or a known sentence tokenized
 * wrongly. It never judges a time.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "ns/termstats.h"
#include "ns/text.h"

typedef struct doc {
    char lang[16];
    char *text;
    size_t len;
} doc_t;

typedef struct corpus {
    doc_t *docs;
    size_t n, cap;
    size_t bytes;
    size_t max_bytes, doc_bytes;
    char lang[16]; /* of the catalogue being read */
    char buf[4096];
    size_t buf_len;
} corpus_t;

static double clock_s(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double now_s(void)
{
    return clock_s(CLOCK_MONOTONIC);
}

/* CPU time of this thread: what the pass cost one core, whatever else the
 * machine was doing (wall time on a shared machine is not). */
static double cpu_s(void)
{
    return clock_s(CLOCK_THREAD_CPUTIME_ID);
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void flush_doc(corpus_t *c)
{
    if (c->buf_len == 0)
        return;
    if (c->bytes >= c->max_bytes) {
        c->buf_len = 0; /* enough text: the rest is dropped */
        return;
    }
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 4096;
        c->docs = realloc(c->docs, c->cap * sizeof(*c->docs));
        if (c->docs == NULL) {
            perror("realloc");
            exit(1);
        }
    }
    doc_t *d = &c->docs[c->n++];
    snprintf(d->lang, sizeof(d->lang), "%s", c->lang);
    d->text = malloc(c->buf_len);
    memcpy(d->text, c->buf, c->buf_len);
    d->len = c->buf_len;
    c->bytes += c->buf_len;
    c->buf_len = 0;
}

/* Appends one translated message; cuts a document at doc_bytes. */
static void add_text(corpus_t *c, const char *s, size_t len)
{
    while (len > 0) {
        size_t room = c->doc_bytes - c->buf_len;
        size_t n = len < room ? len : room;
        memcpy(c->buf + c->buf_len, s, n);
        c->buf_len += n;
        s += n;
        len -= n;
        if (c->buf_len >= c->doc_bytes)
            flush_doc(c);
        else if (c->buf_len < c->doc_bytes)
            c->buf[c->buf_len++] = ' ';
    }
}

static uint32_t rd32(const unsigned char *p, int swap)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return swap ? __builtin_bswap32(v) : v;
}

/* A gettext .mo file: the translations of its messages. */
static void read_mo(corpus_t *c, const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *m = size > 28 ? malloc((size_t)size) : NULL;
    if (m == NULL || fread(m, 1, (size_t)size, f) != (size_t)size) {
        free(m);
        fclose(f);
        return;
    }
    fclose(f);
    uint32_t magic = rd32(m, 0);
    int swap = magic == 0xde120495u;
    if (magic != 0x950412deu && !swap) {
        free(m);
        return;
    }
    uint32_t n = rd32(m + 8, swap), trans = rd32(m + 16, swap);
    for (uint32_t i = 1; i < n; i++) { /* entry 0: the header */
        size_t at = (size_t)trans + 8 * (size_t)i;
        if (at + 8 > (size_t)size)
            break;
        uint32_t len = rd32(m + at, swap), off = rd32(m + at + 4, swap);
        if ((size_t)off + len > (size_t)size)
            break;
        add_text(c, (const char *)m + off, len);
    }
    free(m);
}

static void load(corpus_t *c, const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL) {
        perror(dir);
        exit(1);
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL && c->bytes < c->max_bytes) {
        if (e->d_name[0] == '.' || strlen(e->d_name) > 12)
            continue;
        /* "pt_BR", "sr@latin" -> the language code before _ or @. */
        snprintf(c->lang, sizeof(c->lang), "%.*s",
                 (int)strcspn(e->d_name, "_@."), e->d_name);
        char sub[1024];
        snprintf(sub, sizeof(sub), "%s/%s/LC_MESSAGES", dir, e->d_name);
        DIR *m = opendir(sub);
        if (m == NULL)
            continue;
        struct dirent *f;
        while ((f = readdir(m)) != NULL && c->bytes < c->max_bytes) {
            size_t l = strlen(f->d_name);
            if (l < 4 || strcmp(f->d_name + l - 3, ".mo") != 0)
                continue;
            char path[2048];
            snprintf(path, sizeof(path), "%s/%s", sub, f->d_name);
            read_mo(c, path);
        }
        flush_doc(c);
        closedir(m);
    }
    closedir(d);
}

static void on_word(const char *w, size_t n, void *arg)
{
    ns_error_t err;
    ns_termstats_word(arg, w, n, &err);
}

typedef struct dump {
    FILE *f;
    ns_termstats_t *s;
} dump_t;

static void on_word_dump(const char *w, size_t n, void *arg)
{
    dump_t *d = arg;
    fwrite(w, 1, n, d->f);
    putc('\n', d->f);
    on_word(w, n, d->s);
}

/* One pass over the corpus (the words in dump when not NULL): its wall
 * time, its CPU time in *cpu when not NULL. */
static double run_once(const corpus_t *c, ns_tokenizer_t *tok,
                       ns_termstats_t *s, ns_text_stats_t *ts, FILE *dump,
                       double *cpu)
{
    ns_error_t err;
    dump_t d = {dump, s};
    double t0 = now_s(), c0 = cpu_s();
    for (size_t i = 0; i < c->n; i++) {
        ns_termstats_doc_begin(s, c->docs[i].lang, &err);
        if (dump != NULL) {
            ns_tokenize(tok, c->docs[i].lang, c->docs[i].text, c->docs[i].len,
                        on_word_dump, &d, ts, &err);
            putc('\n', dump);
        } else {
            ns_tokenize(tok, c->docs[i].lang, c->docs[i].text, c->docs[i].len,
                        on_word, s, ts, &err);
        }
        ns_termstats_doc_end(s, &err);
    }
    if (cpu != NULL)
        *cpu = cpu_s() - c0;
    return now_s() - t0;
}

static void dump_counters(FILE *f, const ns_text_stats_t *ts)
{
    fprintf(
        f, "# words %llu invalid %llu long %llu segmented %llu\n",
        (unsigned long long)ts->words, (unsigned long long)ts->invalid_bytes,
        (unsigned long long)ts->long_words, (unsigned long long)ts->segmented);
}

typedef struct joined {
    char buf[1024];
    size_t len;
} joined_t;

static void on_word_join(const char *w, size_t n, void *arg)
{
    joined_t *j = arg;
    if (j->len + n + 2 > sizeof(j->buf))
        return;
    if (j->len > 0)
        j->buf[j->len++] = '|';
    memcpy(j->buf + j->len, w, n);
    j->len += n;
    j->buf[j->len] = '\0';
}

/* Known sentences and their words, one of each path of the tokenizer. */
static const struct {
    const char *lang, *text, *words;
} known[] = {
    {"de", "Über die Straße, STRASSE!", "über|die|strasse|strasse"},
    {"fr",
     "l'homme d\xe2\x80\x99"
     "abord e-mail",
     "l'|homme|d'|abord|e-mail"},
    {"en",
     "\xef\xac\x81ne \xef\xbc\xa1\xef\xbc\xa2 \xce\x9f\xce\x94\xce\x9f"
     "\xce\xa3 42",
     "fine|ab|οδοσ|42"},
    {"zh", "我们是学生", "我们|是|学生"},
    {"en",
     "abc\xff"
     "def",
     "abc|def"},
};

static int quick_known(ns_tokenizer_t *tok)
{
    int bad = 0;
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
        joined_t j = {.len = 0};
        j.buf[0] = '\0';
        ns_text_stats_t ts = {0};
        ns_error_t err;
        ns_tokenize(tok, known[i].lang, known[i].text, strlen(known[i].text),
                    on_word_join, &j, &ts, &err);
        if (strcmp(j.buf, known[i].words) != 0) {
            fprintf(stderr, "quick: \"%s\" gave \"%s\", not \"%s\"\n",
                    known[i].text, j.buf, known[i].words);
            bad = 1;
        }
    }
    return bad;
}

/* Two passes over the corpus must give the same statistics, with words. */
static int quick_check(const corpus_t *c)
{
    ns_error_t err;
    ns_tokenizer_t *tok = ns_tokenizer_new(&err);
    if (tok == NULL) {
        fprintf(stderr, "quick: %s\n", err.msg);
        return 1;
    }
    int bad = quick_known(tok);
    /* twice the fast path, then the reference path (utf8proc and ICU
     * asked of every code point and word): three equal results */
    char *enc[3] = {NULL, NULL, NULL};
    size_t len[3] = {0, 0, 0};
    ns_text_stats_t ts[3] = {{0}, {0}, {0}};
    for (int r = 0; r < 3; r++) {
        ns_tokenizer_set_reference(tok, r == 2);
        ns_termstats_t *s = ns_termstats_new();
        run_once(c, tok, s, &ts[r], NULL, NULL);
        if (ns_termstats_encode(s, &enc[r], &len[r], &err) != NS_OK) {
            fprintf(stderr, "quick: encode: %s\n", err.msg);
            bad = 1;
        }
        ns_termstats_destroy(s);
    }
    for (int r = 1; r < 3; r++)
        if (ts[0].words == 0 || memcmp(&ts[0], &ts[r], sizeof(ts[0])) != 0 ||
            len[0] != len[r] ||
            (len[0] && memcmp(enc[0], enc[r], len[0]) != 0)) {
            fprintf(stderr, "quick: no words, or pass %d differs (%s)\n", r + 1,
                    r == 2 ? "the reference path" : "the fast path");
            bad = 1;
        }
    printf("quick: %zu documents, %llu words: %s\n", c->n,
           (unsigned long long)ts[0].words, bad ? "FAILED" : "ok");
    for (int r = 0; r < 3; r++)
        free(enc[r]);
    ns_tokenizer_destroy(tok);
    return bad;
}

static int usage(void)
{
    fprintf(stderr, "usage: bench_tokenize [--locales DIR] [--doc-bytes N] "
                    "[--max-mb N] [--repeat N] [--dump FILE] [--reference] "
                    "[--quick]\n");
    return 2;
}

static void free_corpus(corpus_t *c)
{
    for (size_t i = 0; i < c->n; i++)
        free(c->docs[i].text);
    free(c->docs);
}

int main(int argc, char **argv)
{
    const char *dir = "/usr/share/locale", *dump_path = NULL;
    size_t doc_bytes = 400, max_mb = 64;
    int repeat = 3, quick = 0, reference = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            quick = 1;
            continue;
        }
        if (strcmp(argv[i], "--reference") == 0) {
            reference = 1;
            continue;
        }
        if (i + 1 == argc)
            return usage();
        const char *v = argv[++i];
        if (strcmp(argv[i - 1], "--locales") == 0)
            dir = v;
        else if (strcmp(argv[i - 1], "--doc-bytes") == 0)
            doc_bytes = (size_t)atol(v);
        else if (strcmp(argv[i - 1], "--max-mb") == 0)
            max_mb = (size_t)atol(v);
        else if (strcmp(argv[i - 1], "--repeat") == 0)
            repeat = atoi(v);
        else if (strcmp(argv[i - 1], "--dump") == 0)
            dump_path = v;
        else
            return usage();
    }
    if (doc_bytes < 16 || doc_bytes > 4000 || repeat < 1)
        return usage();
    static corpus_t c;
    c.doc_bytes = doc_bytes;
    c.max_bytes = (quick ? 2 : max_mb) << 20;
    load(&c, dir);
    if (c.n == 0) {
        fprintf(stderr, "no documents under %s\n", dir);
        return 1;
    }
    if (quick) {
        int rc = quick_check(&c);
        free_corpus(&c);
        return rc;
    }
    ns_error_t err;
    ns_tokenizer_t *tok = NULL;
    double best = 1e30;
    double *cpu = calloc((size_t)repeat, sizeof(*cpu));
    ns_termstats_t *s = NULL;
    ns_text_stats_t ts = {0};
    for (int r = 0; r < repeat; r++) {
        /* A pass is a shard of the job: its own tokenizer and statistics,
         * nothing kept from the pass before. */
        ns_tokenizer_destroy(tok);
        tok = ns_tokenizer_new(&err);
        if (tok == NULL) {
            fprintf(stderr, "%s\n", err.msg);
            return 1;
        }
        ns_tokenizer_set_reference(tok, reference);
        ns_termstats_destroy(s);
        s = ns_termstats_new();
        memset(&ts, 0, sizeof(ts));
        double t = run_once(&c, tok, s, &ts, NULL, &cpu[r]);
        if (t < best)
            best = t;
    }
    qsort(cpu, (size_t)repeat, sizeof(*cpu), by_value);
    double cpu_median = repeat % 2
                            ? cpu[repeat / 2]
                            : (cpu[repeat / 2 - 1] + cpu[repeat / 2]) / 2;
    free(cpu);
    if (dump_path != NULL) {
        FILE *f = fopen(dump_path, "w");
        if (f == NULL) {
            perror(dump_path);
            return 1;
        }
        ns_termstats_t *ds = ns_termstats_new();
        ns_text_stats_t dts = {0};
        run_once(&c, tok, ds, &dts, f, NULL);
        dump_counters(f, &dts);
        /* and the statistics, in their canonical encoding */
        char *denc;
        size_t denc_len;
        if (ns_termstats_encode(ds, &denc, &denc_len, &err) == NS_OK) {
            fprintf(f, "# statistics %zu bytes\n", denc_len);
            fwrite(denc, 1, denc_len, f);
            free(denc);
        }
        ns_termstats_destroy(ds);
        if (fclose(f) != 0) {
            perror(dump_path);
            return 1;
        }
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("corpus: %zu documents of ~%zu bytes, %.1f MB, %zu languages "
           "(gettext catalogues under %s)\n",
           c.n, doc_bytes, (double)c.bytes / 1e6, ns_termstats_langs(s), dir);
    printf("tokenize + count, 1 core, best of %d: %.3f s, %.1f MB/s, %.0f "
           "documents/s, %.1f M words/s\n",
           repeat, best, (double)c.bytes / 1e6 / best, (double)c.n / best,
           (double)ts.words / 1e6 / best);
    printf("tokenize + count, CPU time per pass, median of %d: %.3f s, "
           "%.1f MB/s per core, %.0f documents/s per core\n",
           repeat, cpu_median, (double)c.bytes / 1e6 / cpu_median,
           (double)c.n / cpu_median);
    printf("words %llu, distinct (language, term) %zu, runs segmented by ICU "
           "%llu, invalid UTF-8 bytes %llu, long words dropped %llu\n",
           (unsigned long long)ts.words, ns_termstats_terms(s),
           (unsigned long long)ts.segmented,
           (unsigned long long)ts.invalid_bytes,
           (unsigned long long)ts.long_words);
    char *enc;
    size_t enc_len;
    if (ns_termstats_encode(s, &enc, &enc_len, &err) == NS_OK) {
        printf("encoded statistics (zstd): %.1f MB\n", (double)enc_len / 1e6);
        free(enc);
    }
    printf("peak RSS %.0f MB (the corpus itself is in memory)\n",
           (double)ru.ru_maxrss / 1024.0);
    ns_termstats_destroy(s);
    ns_tokenizer_destroy(tok);
    free_corpus(&c);
    return 0;
}
