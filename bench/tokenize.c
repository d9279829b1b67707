/* bench_tokenize: the stopword job's kernel alone: tokenize (text/
 * tokenize.c) and count per-language term statistics (termstats.c) on one
 * core, over real multilingual text: the translated messages of the gettext
 * catalogues Debian installs (/usr/share/locale/<lang>/LC_MESSAGES/ NAME.mo,
 * dozens of languages and scripts), cut into documents of about 400 bytes.
 * Prints MB/s and documents/s per core. A benchmark: it prints figures and
 * never fails on them.
 *
 *   build/bench/bench_tokenize [--locales DIR] [--doc-bytes 400]
 *                              [--max-mb 64] [--repeat 3]
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

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
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

int main(int argc, char **argv)
{
    const char *dir = "/usr/share/locale";
    size_t doc_bytes = 400, max_mb = 64;
    int repeat = 3;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--locales") == 0)
            dir = argv[i + 1];
        else if (strcmp(argv[i], "--doc-bytes") == 0)
            doc_bytes = (size_t)atol(argv[i + 1]);
        else if (strcmp(argv[i], "--max-mb") == 0)
            max_mb = (size_t)atol(argv[i + 1]);
        else if (strcmp(argv[i], "--repeat") == 0)
            repeat = atoi(argv[i + 1]);
    }
    if (doc_bytes < 16 || doc_bytes > 4000 || repeat < 1) {
        fprintf(stderr, "bad arguments\n");
        return 2;
    }
    static corpus_t c;
    c.doc_bytes = doc_bytes;
    c.max_bytes = max_mb << 20;
    load(&c, dir);
    if (c.n == 0) {
        fprintf(stderr, "no documents under %s\n", dir);
        return 1;
    }
    ns_error_t err;
    ns_tokenizer_t *tok = ns_tokenizer_new(&err);
    double best = 1e30;
    ns_termstats_t *s = NULL;
    ns_text_stats_t ts = {0};
    for (int r = 0; r < repeat; r++) {
        ns_termstats_destroy(s);
        s = ns_termstats_new();
        memset(&ts, 0, sizeof(ts));
        double t0 = now_s();
        for (size_t i = 0; i < c.n; i++) {
            ns_termstats_doc_begin(s, c.docs[i].lang, &err);
            ns_tokenize(tok, c.docs[i].lang, c.docs[i].text, c.docs[i].len,
                        on_word, s, &ts, &err);
            ns_termstats_doc_end(s, &err);
        }
        double t = now_s() - t0;
        if (t < best)
            best = t;
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
    for (size_t i = 0; i < c.n; i++)
        free(c.docs[i].text);
    free(c.docs);
    return 0;
}
