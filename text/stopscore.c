#include "ns/stopscore.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

double ns_poisson_nlogn(double lambda)
{
    if (lambda <= 0)
        return 0;
    if (lambda > 200) {
        /* f(n) = n ln n around lambda: E f = f(λ) + f''(λ)·Var/2 +
         * f'''(λ)·E[(n−λ)³]/6 + ..., with Var = E[(n−λ)³] = λ. */
        return lambda * log(lambda) + 0.5 - 1.0 / (6.0 * lambda);
    }
    /* Σ P(k)·k ln k over the mass of the distribution, P(k) in log space;
     * 12 standard deviations either side leave nothing that matters. */
    double sd = sqrt(lambda);
    int lo = (int)fmax(2.0, floor(lambda - 12 * sd));
    int hi = (int)ceil(lambda + 12 * sd + 20);
    double sum = 0;
    for (int k = lo; k <= hi; k++) {
        double logp = -lambda + k * log(lambda) - lgamma(k + 1.0);
        sum += exp(logp) * k * log((double)k);
    }
    return sum;
}

typedef struct pick {
    const char *lang;
    int64_t docs;
    double min_score;
    ns_stopword_t *words;
    size_t n, cap;
    bool failed;
} pick_t;

static void consider(const ns_term_t *t, void *arg)
{
    pick_t *p = arg;
    if (p->failed || strcmp(t->lang, p->lang) != 0 || t->count <= 0)
        return;
    double frac = (double)t->df / (double)p->docs;
    if (frac < p->min_score)
        return; /* the score is at most df / D */
    double n = (double)t->count, d = (double)p->docs;
    double h = log(n) - (double)t->nlogn / NS_NLOGN_SCALE / n;
    double h_null = log(n) - d / n * ns_poisson_nlogn(n / d);
    double info = h_null - h;
    double score = frac * fmin(1.0, exp(-info));
    if (score < p->min_score)
        return;
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 256;
        ns_stopword_t *w = realloc(p->words, cap * sizeof(*w));
        if (w == NULL) {
            p->failed = true;
            return;
        }
        p->words = w;
        p->cap = cap;
    }
    p->words[p->n++] = (ns_stopword_t){.term = t->term,
                                       .score = score,
                                       .info = info,
                                       .idf = log(d / (double)t->df),
                                       .df = t->df,
                                       .count = t->count};
}

static int by_score(const void *a, const void *b)
{
    const ns_stopword_t *x = a, *y = b;
    if (x->score != y->score)
        return x->score > y->score ? -1 : 1;
    if (x->df != y->df)
        return x->df > y->df ? -1 : 1;
    return strcmp(x->term, y->term); /* a stable, total order */
}

int ns_stopwords_select(const ns_termstats_t *s, const char *lang,
                        const ns_stop_params_t *params,
                        void (*fn)(const ns_stopword_t *w, void *arg),
                        void *arg, ns_error_t *err)
{
    ns_stop_params_t p = params ? *params : (ns_stop_params_t){200, 0.05, 100};
    ns_lang_stats_t ls;
    if (!ns_termstats_lang(s, lang, &ls) || ls.docs <= 0 ||
        ls.docs < p.min_docs)
        return 0;
    pick_t pick = {.lang = ls.lang, .docs = ls.docs, .min_score = p.min_score};
    ns_termstats_each(s, consider, &pick);
    if (pick.failed) {
        free(pick.words);
        ns_error_set(err, NS_ERR_NOMEM, "stopwords: out of memory");
        return -1;
    }
    qsort(pick.words, pick.n, sizeof(pick.words[0]), by_score);
    size_t n = pick.n < (size_t)p.top_n ? pick.n : (size_t)p.top_n;
    for (size_t i = 0; i < n; i++)
        fn(&pick.words[i], arg);
    free(pick.words);
    return (int)n;
}

/* ---- every language in one pass -------------------------------------- */

typedef struct lang_pick {
    const char *name;
    int64_t docs;
    ns_stopword_t *words;
    size_t n, cap;
} lang_pick_t;

typedef struct all_pick {
    lang_pick_t *langs;
    size_t n_langs;
    double min_score;
    bool failed;
} all_pick_t;

static void consider_all(const ns_term_t *t, void *arg)
{
    all_pick_t *a = arg;
    if (a->failed || t->count <= 0 || t->lang[0] == '\0')
        return;
    lang_pick_t *l = NULL;
    for (size_t i = 0; i < a->n_langs && l == NULL; i++)
        if (a->langs[i].name == t->lang ||
            strcmp(a->langs[i].name, t->lang) == 0)
            l = &a->langs[i];
    if (l == NULL || l->docs <= 0)
        return;
    pick_t p = {.lang = t->lang,
                .docs = l->docs,
                .min_score = a->min_score,
                .words = l->words,
                .n = l->n,
                .cap = l->cap};
    consider(t, &p);
    l->words = p.words;
    l->n = p.n;
    l->cap = p.cap;
    a->failed = p.failed;
}

int ns_stopwords_select_all(const ns_termstats_t *s,
                            const ns_stop_params_t *params,
                            void (*fn)(const char *lang,
                                       const ns_stopword_t *words, size_t n,
                                       void *arg),
                            void *arg, ns_error_t *err)
{
    ns_stop_params_t p = params ? *params : (ns_stop_params_t){200, 0.05, 100};
    const char *names[256];
    size_t n = ns_termstats_lang_names(s, names, 256);
    if (n > 256)
        n = 256;
    all_pick_t a = {.langs = calloc(n ? n : 1, sizeof(lang_pick_t)),
                    .n_langs = n,
                    .min_score = p.min_score};
    if (a.langs == NULL) {
        ns_error_set(err, NS_ERR_NOMEM, "stopwords: out of memory");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        ns_lang_stats_t ls;
        a.langs[i].name = names[i];
        if (ns_termstats_lang(s, names[i], &ls) && ls.docs >= p.min_docs)
            a.langs[i].docs = ls.docs;
    }
    ns_termstats_each(s, consider_all, &a);
    int out = 0;
    for (size_t i = 0; i < n; i++) {
        lang_pick_t *l = &a.langs[i];
        if (!a.failed && l->n > 0) {
            qsort(l->words, l->n, sizeof(l->words[0]), by_score);
            fn(l->name, l->words,
               l->n < (size_t)p.top_n ? l->n
                                      : (size_t)(p.top_n > 0 ? p.top_n : 0),
               arg);
            out++;
        }
        free(l->words);
    }
    free(a.langs);
    if (a.failed) {
        ns_error_set(err, NS_ERR_NOMEM, "stopwords: out of memory");
        return -1;
    }
    return out;
}
