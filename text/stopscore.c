#include "ns/stopscore.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unicode/uchar.h>
#include <unicode/uscript.h>
#include <unicode/utf8.h>

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

/* The rank order: score, then the term's bytes, both descending; the
 * order in which Redis's ZREVRANGE returns a sorted set of these scores,
 * so the published ranked list reads back exactly. A total order: the
 * best k of a language do not depend on the order the terms come in. */
static int rank_cmp(const ns_stopword_t *x, const ns_stopword_t *y)
{
    if (x->score != y->score)
        return x->score > y->score ? -1 : 1;
    int c = strcmp(x->term, y->term);
    return c > 0 ? -1 : c < 0 ? 1 : 0;
}

static int by_rank(const void *a, const void *b)
{
    return rank_cmp(a, b);
}

/* ---- the best `keep` terms of a language: a bounded heap ---------------- */

typedef struct lang_rank {
    const char *name;
    int64_t docs;        /* 0: no verdict for this language */
    ns_stopword_t *heap; /* root: the worst kept */
    size_t n;
    /* Occurrences per script (integers: the same whatever the order the
     * terms come in), and of all terms. */
    int64_t *by_script, occurrences;
} lang_rank_t;

typedef struct ranking {
    lang_rank_t *langs;
    size_t n_langs, keep, last; /* last: the language of the term before */
    bool failed;
} ranking_t;

static void sift_down(ns_stopword_t *h, size_t n, size_t i)
{
    for (;;) {
        size_t worst = i, l = 2 * i + 1, r = l + 1;
        if (l < n && rank_cmp(&h[l], &h[worst]) > 0)
            worst = l;
        if (r < n && rank_cmp(&h[r], &h[worst]) > 0)
            worst = r;
        if (worst == i)
            return;
        ns_stopword_t t = h[i];
        h[i] = h[worst];
        h[worst] = t;
        i = worst;
    }
}

static void sift_up(ns_stopword_t *h, size_t i)
{
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (rank_cmp(&h[i], &h[parent]) <= 0)
            return;
        ns_stopword_t t = h[i];
        h[i] = h[parent];
        h[parent] = t;
        i = parent;
    }
}

static lang_rank_t *rank_lang(ranking_t *r, const char *lang)
{
    if (r->last < r->n_langs && (r->langs[r->last].name == lang ||
                                 strcmp(r->langs[r->last].name, lang) == 0))
        return &r->langs[r->last];
    for (size_t i = 0; i < r->n_langs; i++)
        if (r->langs[i].name == lang || strcmp(r->langs[i].name, lang) == 0) {
            r->last = i;
            return &r->langs[i];
        }
    return NULL;
}

/* ---- the score ---------------------------------------------------------- */

/* The script of a term: that of its first letter (digits, punctuation and
 * marks have none of their own); Japanese kana count as Han, the three
 * being written together. USCRIPT_COMMON when there is no letter. Also
 * the term's length in code points that are not combining marks. */
static UScriptCode term_script(const char *term, int *length)
{
    UScriptCode script = USCRIPT_COMMON;
    int32_t i = 0, len = (int32_t)strlen(term);
    *length = 0;
    while (i < len) {
        UChar32 c;
        U8_NEXT(term, i, len, c);
        if (c < 0)
            continue;
        int8_t type = u_charType(c);
        if (type != U_NON_SPACING_MARK && type != U_ENCLOSING_MARK &&
            type != U_COMBINING_SPACING_MARK)
            (*length)++;
        if (script != USCRIPT_COMMON)
            continue;
        UErrorCode st = U_ZERO_ERROR;
        UScriptCode sc = uscript_getScript(c, &st);
        if (U_FAILURE(st) || sc == USCRIPT_INHERITED)
            continue;
        if (sc == USCRIPT_HIRAGANA || sc == USCRIPT_KATAKANA)
            sc = USCRIPT_HAN;
        script = sc;
    }
    return script;
}

static ns_stopword_t term_score(const ns_term_t *t, const lang_rank_t *l)
{
    double n = (double)t->count, d = (double)l->docs;
    double frac = (double)t->df / d;
    double h = log(n) - (double)t->nlogn / NS_NLOGN_SCALE / n;
    double h_null = log(n) - d / n * ns_poisson_nlogn(n / d);
    double info = h_null - h;
    double spread = fmin(1.0, exp(-info));
    int length = 0;
    UScriptCode script = term_script(t->term, &length);
    double brevity =
        length <= NS_STOP_SHORT
            ? 1.0
            : (double)NS_STOP_SHORT / length * ((double)NS_STOP_SHORT / length);
    double share = 1.0;
    if (l->occurrences > 0 && l->by_script != NULL)
        share = script >= 0 && script < USCRIPT_CODE_LIMIT
                    ? (double)l->by_script[script] / (double)l->occurrences
                    : 0.0;
    double native = fmin(1.0, share / NS_STOP_SCRIPT_SHARE);
    return (ns_stopword_t){.term = t->term,
                           .score = frac * spread * spread * brevity * native,
                           .info = info,
                           .idf = log(d / (double)t->df),
                           .brevity = brevity,
                           .native = native,
                           .df = t->df,
                           .count = t->count};
}

/* Pass one: each language's occurrences per script. */
static void count_scripts(const ns_term_t *t, void *arg)
{
    ranking_t *r = arg;
    if (r->failed || t->count <= 0 || t->lang[0] == '\0')
        return;
    lang_rank_t *l = rank_lang(r, t->lang);
    if (l == NULL || l->docs <= 0)
        return;
    if (l->by_script == NULL) {
        l->by_script = calloc(USCRIPT_CODE_LIMIT, sizeof(*l->by_script));
        if (l->by_script == NULL) {
            r->failed = true;
            return;
        }
    }
    int length;
    UScriptCode sc = term_script(t->term, &length);
    if (sc >= 0 && sc < USCRIPT_CODE_LIMIT)
        l->by_script[sc] += t->count;
    l->occurrences += t->count;
}

static void consider(const ns_term_t *t, void *arg)
{
    ranking_t *r = arg;
    if (r->failed || t->count <= 0 || t->df <= 0 || t->lang[0] == '\0')
        return;
    lang_rank_t *l = rank_lang(r, t->lang);
    if (l == NULL || l->docs <= 0)
        return;
    if (l->heap == NULL) {
        l->heap = malloc(r->keep * sizeof(*l->heap));
        if (l->heap == NULL) {
            r->failed = true;
            return;
        }
    }
    /* The score is at most df / D: most terms lose to the worst kept
     * without the entropy's cost. */
    if (l->n == r->keep && (double)t->df / (double)l->docs < l->heap[0].score)
        return;
    ns_stopword_t w = term_score(t, l);
    if (l->n < r->keep) {
        l->heap[l->n++] = w;
        sift_up(l->heap, l->n - 1);
    } else if (rank_cmp(&w, &l->heap[0]) < 0) {
        l->heap[0] = w;
        sift_down(l->heap, l->n, 0);
    }
}

static ns_stop_params_t params_or_default(const ns_stop_params_t *p)
{
    ns_stop_params_t d = {
        .top_n = 200, .min_score = 0.02, .min_docs = 100, .min_words = 0};
    if (p != NULL)
        d = *p;
    if (d.top_n < 0)
        d.top_n = 0;
    if (d.min_words < 0)
        d.min_words = 0;
    return d;
}

int ns_stopwords_rank_all(const ns_termstats_t *s, const ns_stop_params_t *pp,
                          ns_stop_rank_fn fn, void *arg, ns_error_t *err)
{
    ns_stop_params_t p = params_or_default(pp);
    size_t n = ns_termstats_lang_names(s, NULL, 0);
    const char **names = calloc(n ? n : 1, sizeof(*names));
    ranking_t r = {.langs = calloc(n ? n : 1, sizeof(lang_rank_t)),
                   .n_langs = n,
                   .keep =
                       (size_t)(p.top_n > p.min_words ? p.top_n : p.min_words)};
    if (names == NULL || r.langs == NULL) {
        r.failed = true;
        goto out;
    }
    ns_termstats_lang_names(s, names, n);
    for (size_t i = 0; i < n; i++) {
        ns_lang_stats_t ls;
        r.langs[i].name = names[i];
        if (names[i][0] != '\0' && ns_termstats_lang(s, names[i], &ls) &&
            ls.docs > 0 && ls.docs >= p.min_docs)
            r.langs[i].docs = ls.docs;
    }
    if (r.keep == 0)
        goto out;
    ns_termstats_each(s, count_scripts, &r);
    if (!r.failed)
        ns_termstats_each(s, consider, &r);
out:;
    int langs = 0;
    for (size_t i = 0; i < n && r.langs != NULL; i++) {
        lang_rank_t *l = &r.langs[i];
        if (!r.failed && l->n > 0) {
            qsort(l->heap, l->n, sizeof(l->heap[0]), by_rank);
            /* The set: the prefix above the threshold, at most top_n. */
            size_t n_set = 0;
            while (n_set < l->n && n_set < (size_t)p.top_n &&
                   l->heap[n_set].score >= p.min_score)
                n_set++;
            size_t n_ranked =
                l->n < (size_t)p.min_words ? l->n : (size_t)p.min_words;
            if (n_ranked < n_set)
                n_ranked = n_set;
            fn(l->name, l->heap, n_ranked, n_set, arg);
            langs++;
        }
        free(l->heap);
        free(l->by_script);
    }
    free(r.langs);
    free(names);
    if (r.failed) {
        if (err->code == NS_OK)
            ns_error_set(err, NS_ERR_NOMEM, "stopwords: out of memory");
        return -1;
    }
    return langs;
}

/* ---- the set alone ------------------------------------------------------ */

typedef struct set_only {
    const char *lang; /* NULL: every language */
    void (*one)(const ns_stopword_t *w, void *arg);
    void (*all)(const char *lang, const ns_stopword_t *words, size_t n,
                void *arg);
    void *arg;
    int words;
} set_only_t;

static void take_set(const char *lang, const ns_stopword_t *words,
                     size_t n_ranked, size_t n_set, void *arg)
{
    (void)n_ranked;
    set_only_t *so = arg;
    if (so->lang == NULL) {
        if (n_set > 0) {
            so->all(lang, words, n_set, so->arg);
            so->words++;
        }
        return;
    }
    if (strcmp(lang, so->lang) != 0)
        return;
    for (size_t i = 0; i < n_set; i++)
        so->one(&words[i], so->arg);
    so->words = (int)n_set;
}

int ns_stopwords_select(const ns_termstats_t *s, const char *lang,
                        const ns_stop_params_t *params,
                        void (*fn)(const ns_stopword_t *w, void *arg),
                        void *arg, ns_error_t *err)
{
    ns_stop_params_t p = params_or_default(params);
    p.min_words = 0;
    set_only_t so = {.lang = lang, .one = fn, .arg = arg};
    if (ns_stopwords_rank_all(s, &p, take_set, &so, err) < 0)
        return -1;
    return so.words;
}

int ns_stopwords_select_all(const ns_termstats_t *s,
                            const ns_stop_params_t *params,
                            void (*fn)(const char *lang,
                                       const ns_stopword_t *words, size_t n,
                                       void *arg),
                            void *arg, ns_error_t *err)
{
    ns_stop_params_t p = params_or_default(params);
    p.min_words = 0;
    set_only_t so = {.all = fn, .arg = arg};
    if (ns_stopwords_rank_all(s, &p, take_set, &so, err) < 0)
        return -1;
    return so.words;
}
