/* bench_stopword_rank: the stopword job's scoring (text/stopscore.c) on
 * documents read from stdin, for bench/stopword_quality.py. Each input
 * line is one document, "LANG\tTEXT" (LANG an ISO 639-1 code); the
 * documents go through the job's own tokenizer and statistics, then
 * ns_stopwords_rank_all ranks each language's terms.
 *
 *   bench_stopword_rank [--top-n 200] [--min-score 0.02] [--min-docs 100]
 *                       [--min-words 200] [--baseline] [--dump] < DOCS
 *
 * Prints, tab-separated, one line per ranked word, best first:
 *   R LANG RANK TERM SCORE DF IN_SET
 * (IN_SET 1 for the threshold-chosen set, which is the list's prefix);
 * with --baseline also plain document frequency, the same number of words:
 *   B LANG RANK TERM DF
 * and with --dump, instead of both, the statistics themselves:
 *   D LANG DOCS            then   T LANG TERM DF COUNT NLOGN
 * for every term in two documents or more. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ns/stopscore.h"
#include "ns/termstats.h"
#include "ns/text.h"

typedef struct counter {
    ns_termstats_t *stats;
    ns_error_t err;
    int failed;
} counter_t;

static void on_word(const char *w, size_t n, void *arg)
{
    counter_t *c = arg;
    if (!c->failed && ns_termstats_word(c->stats, w, n, &c->err) != NS_OK)
        c->failed = 1;
}

/* One input line: "lang\ttext". */
static int count_line(ns_tokenizer_t *tok, counter_t *c, char *line, size_t len,
                      ns_text_stats_t *ts)
{
    char *tab = memchr(line, '\t', len);
    if (tab == NULL)
        return 0;
    *tab = '\0';
    char *text = tab + 1;
    size_t text_len = len - (size_t)(text - line);
    if (ns_termstats_doc_begin(c->stats, line, &c->err) != NS_OK ||
        ns_tokenize(tok, line, text, text_len, on_word, c, ts, &c->err) !=
            NS_OK ||
        c->failed || ns_termstats_doc_end(c->stats, &c->err) != NS_OK)
        return -1;
    return 1;
}

static void print_ranked(const char *lang, const ns_stopword_t *words, size_t n,
                         size_t n_set, void *arg)
{
    (void)arg;
    for (size_t i = 0; i < n; i++)
        printf("R\t%s\t%zu\t%s\t%.9g\t%lld\t%d\n", lang, i + 1, words[i].term,
               words[i].score, (long long)words[i].df, i < n_set);
}

/* ---- the baseline: plain document frequency ----------------------------- */

typedef struct df_list {
    const char *lang;
    ns_term_t *terms;
    size_t n, cap;
} df_list_t;

typedef struct df_all {
    df_list_t *langs;
    size_t n_langs;
    int failed;
} df_all_t;

static void df_take(const ns_term_t *t, void *arg)
{
    df_all_t *a = arg;
    for (size_t i = 0; i < a->n_langs; i++) {
        df_list_t *l = &a->langs[i];
        if (strcmp(l->lang, t->lang) != 0)
            continue;
        if (l->n == l->cap) {
            size_t cap = l->cap ? l->cap * 2 : 1024;
            ns_term_t *g = realloc(l->terms, cap * sizeof(*g));
            if (g == NULL) {
                a->failed = 1;
                return;
            }
            l->terms = g;
            l->cap = cap;
        }
        l->terms[l->n++] = *t;
        return;
    }
}

static int by_df(const void *a, const void *b)
{
    const ns_term_t *x = a, *y = b;
    if (x->df != y->df)
        return x->df > y->df ? -1 : 1;
    if (x->count != y->count)
        return x->count > y->count ? -1 : 1;
    return strcmp(x->term, y->term);
}

/* The min_words terms of highest df of each language that has min_docs
 * documents. */
static int print_baseline(const ns_termstats_t *s, int64_t min_docs,
                          size_t min_words)
{
    const char *names[256];
    size_t n = ns_termstats_lang_names(s, names, 256);
    df_all_t a = {.langs = calloc(n ? n : 1, sizeof(df_list_t)),
                  .n_langs = n < 256 ? n : 256};
    if (a.langs == NULL)
        return -1;
    for (size_t i = 0; i < a.n_langs; i++)
        a.langs[i].lang = names[i];
    ns_termstats_each(s, df_take, &a);
    for (size_t i = 0; i < a.n_langs; i++) {
        df_list_t *l = &a.langs[i];
        ns_lang_stats_t ls;
        if (!a.failed && l->lang[0] != '\0' &&
            ns_termstats_lang(s, l->lang, &ls) && ls.docs >= min_docs) {
            qsort(l->terms, l->n, sizeof(l->terms[0]), by_df);
            for (size_t k = 0; k < l->n && k < min_words; k++)
                printf("B\t%s\t%zu\t%s\t%lld\n", l->lang, k + 1,
                       l->terms[k].term, (long long)l->terms[k].df);
        }
        free(l->terms);
    }
    free(a.langs);
    return a.failed ? -1 : 0;
}

static void dump_term(const ns_term_t *t, void *arg)
{
    (void)arg;
    if (t->df >= 2 && t->lang[0] != '\0')
        printf("T\t%s\t%s\t%lld\t%lld\t%lld\n", t->lang, t->term,
               (long long)t->df, (long long)t->count, (long long)t->nlogn);
}

static void dump(const ns_termstats_t *s)
{
    const char *names[256];
    size_t n = ns_termstats_lang_names(s, names, 256);
    for (size_t i = 0; i < n && i < 256; i++) {
        ns_lang_stats_t ls;
        if (names[i][0] != '\0' && ns_termstats_lang(s, names[i], &ls))
            printf("D\t%s\t%lld\n", names[i], (long long)ls.docs);
    }
    ns_termstats_each(s, dump_term, NULL);
}

static int usage(void)
{
    fprintf(stderr,
            "usage: bench_stopword_rank [--top-n N] [--min-score S] "
            "[--min-docs D] [--min-words W] [--baseline] [--dump] < DOCS\n");
    return 2;
}

int main(int argc, char **argv)
{
    ns_stop_params_t p = {
        .top_n = 200, .min_score = 0.02, .min_docs = 100, .min_words = 200};
    int baseline = 0, dump_only = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--baseline") == 0) {
            baseline = 1;
        } else if (strcmp(a, "--dump") == 0) {
            dump_only = 1;
        } else if (v == NULL) {
            return usage();
        } else if (strcmp(a, "--top-n") == 0) {
            p.top_n = atoi(v), i++;
        } else if (strcmp(a, "--min-score") == 0) {
            p.min_score = atof(v), i++;
        } else if (strcmp(a, "--min-docs") == 0) {
            p.min_docs = atoll(v), i++;
        } else if (strcmp(a, "--min-words") == 0) {
            p.min_words = atoi(v), i++;
        } else {
            return usage();
        }
    }
    ns_error_t err;
    counter_t c = {.stats = ns_termstats_new()};
    ns_tokenizer_t *tok = ns_tokenizer_new(&err);
    if (c.stats == NULL || tok == NULL) {
        fprintf(stderr, "bench_stopword_rank: %s\n",
                tok ? "out of memory" : err.msg);
        return 1;
    }
    ns_text_stats_t ts = {0};
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    long docs = 0;
    while ((len = getline(&line, &cap, stdin)) > 0) {
        if (line[len - 1] == '\n')
            len--;
        int r = count_line(tok, &c, line, (size_t)len, &ts);
        if (r < 0) {
            fprintf(stderr, "bench_stopword_rank: document %ld: %s\n", docs + 1,
                    c.err.msg);
            return 1;
        }
        docs += r;
    }
    free(line);
    ns_tokenizer_destroy(tok);
    fprintf(stderr, "# %ld documents, %llu words, %zu languages, %zu terms\n",
            docs, (unsigned long long)ts.words, ns_termstats_langs(c.stats),
            ns_termstats_terms(c.stats));
    int rc = 0;
    if (dump_only) {
        dump(c.stats);
    } else {
        if (ns_stopwords_rank_all(c.stats, &p, print_ranked, NULL, &err) < 0)
            rc = 1;
        if (rc == 0 && baseline &&
            print_baseline(c.stats, p.min_docs, (size_t)p.min_words) != 0)
            rc = 1;
        if (rc != 0)
            fprintf(stderr, "bench_stopword_rank: %s\n", err.msg);
    }
    ns_termstats_destroy(c.stats);
    return rc;
}
