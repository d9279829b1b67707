/* stopscore.h: which terms of a language are stopwords, from the additive
 * statistics of termstats.h, after Gerlach, Shen & Amaral (2019), "A
 * universal information theoretic approach to the identification of
 * stopwords".
 *
 * A term with N occurrences has an entropy over the documents
 *   H = ln N − Σ n·ln n / N        (n: its occurrences in a document).
 * Were its occurrences spread at random over the language's D documents
 * (each landing in a document uniformly; n ~ Poisson(N/D), i.e. documents
 * of equal length), the expected entropy would be
 *   H̃ = ln N − (D / N)·E[n·ln n].
 * The information content I = H̃ − H is about 0 for a word that carries no
 * topic (it is everywhere, as chance would put it) and large for topical
 * words that gather in a few documents. The score combines both:
 *   score = (df / D)·min(1, e^−I),
 * frequent and spread like chance. IDF = ln(D / df) is reported too. */
#ifndef NS_STOPSCORE_H
#define NS_STOPSCORE_H

#include <stdint.h>

#include "ns/termstats.h"

typedef struct ns_stopword {
    const char *term;
    double score; /**< in [0, 1] */
    double info;  /**< I = H̃ − H, nats */
    double idf;
    int64_t df, count;
} ns_stopword_t;

typedef struct ns_stop_params {
    int top_n;        /**< at most this many per language (default 200) */
    double min_score; /**< and only above this score (default 0.05) */
    int64_t min_docs; /**< languages with fewer documents get none (100) */
} ns_stop_params_t;

/** @brief E[n·ln n] for n ~ Poisson(lambda) (exact sum; an asymptotic
 *  series for large lambda). */
double ns_poisson_nlogn(double lambda);

/** @brief The stopwords of lang, best first: calls fn for each (at most
 *  top_n with score >= min_score). @returns how many, or -1 with err set
 *  when out of memory. */
int ns_stopwords_select(const ns_termstats_t *s, const char *lang,
                        const ns_stop_params_t *p,
                        void (*fn)(const ns_stopword_t *w, void *arg),
                        void *arg, ns_error_t *err);

/** @brief ns_stopwords_select for every language at once (one pass over
 *  the terms): calls fn once per language that has stopwords (not the
 *  unknown language ""), best first. @returns the number of languages, or
 *  -1 with err set when out of memory. */
int ns_stopwords_select_all(const ns_termstats_t *s, const ns_stop_params_t *p,
                            void (*fn)(const char *lang,
                                       const ns_stopword_t *words, size_t n,
                                       void *arg),
                            void *arg, ns_error_t *err);

#endif
