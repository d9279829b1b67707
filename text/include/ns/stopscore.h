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
 * words that gather in a few documents. The score, in [0, 1]:
 *   score = (df / D) · min(1, e^−I)² · brevity · native
 * frequent and spread like chance, and
 *   brevity = min(1, 3 / length)²   (length in code points, marks not
 *             counted): function words are short (Zipf's law of
 *             abbreviation), the frequent content words of a domain
 *             ("file", "option") are longer;
 *   native  = min(1, share / 0.3), share = the part of the language's
 *             occurrences written in the term's script: Latin format
 *             letters and digits in Russian text are not Russian words.
 * Each factor is a function of the totals alone (the script shares are
 * integer sums over the language's terms), so incremental and full runs
 * score alike. Measured against plain document frequency in
 * bench/STOPWORDS_QUALITY.md (bench/stopword_quality.py). IDF = ln(D / df)
 * is reported too.
 *
 * Per language the terms are ranked by score (ties: by the term's bytes,
 * descending, as Redis orders equal scores in ZREVRANGE). The set is the
 * ranked list's prefix chosen by the threshold (score >= min_score, at
 * most top_n); the ranked list goes on in the same order to min_words
 * terms, fewer only when the language has fewer. */
#ifndef NS_STOPSCORE_H
#define NS_STOPSCORE_H

#include <stddef.h>
#include <stdint.h>

#include "ns/termstats.h"

/** Terms up to this many code points long are not shortened in score. */
#define NS_STOP_SHORT 3
/** A script with this share of a language's occurrences is its own. */
#define NS_STOP_SCRIPT_SHARE 0.3

typedef struct ns_stopword {
    const char *term;
    double score; /**< in [0, 1] */
    double info;  /**< I = H̃ − H, nats */
    double idf;
    double brevity; /**< the length factor, (0, 1] */
    double native;  /**< the script factor, [0, 1] */
    int64_t df, count;
} ns_stopword_t;

typedef struct ns_stop_params {
    int top_n;        /**< at most this many per language (default 200) */
    double min_score; /**< and only above this score (default 0.02) */
    int64_t min_docs; /**< languages with fewer documents get none (100) */
    int min_words;    /**< the ranked list: at least this many (0: the set) */
} ns_stop_params_t;

/** Called once per language: words[0..n_ranked), best first, of which
 *  words[0..n_set) are the set (n_set may be 0). The words point into the
 *  statistics and live until the callback returns. */
typedef void (*ns_stop_rank_fn)(const char *lang, const ns_stopword_t *words,
                                size_t n_ranked, size_t n_set, void *arg);

/** @brief E[n·ln n] for n ~ Poisson(lambda) (exact sum; an asymptotic
 *  series for large lambda). */
double ns_poisson_nlogn(double lambda);

/** @brief Every language's ranked list in one pass over the terms: calls
 *  fn once per language with min_docs documents or more and a term (not
 *  the unknown language ""), in name order. @returns the number of
 *  languages, or -1 with err set when out of memory. */
int ns_stopwords_rank_all(const ns_termstats_t *s, const ns_stop_params_t *p,
                          ns_stop_rank_fn fn, void *arg, ns_error_t *err);

/** @brief The stopwords of lang, best first: calls fn for each word of its
 *  set (at most top_n with score >= min_score). @returns how many, or -1
 *  with err set when out of memory. */
int ns_stopwords_select(const ns_termstats_t *s, const char *lang,
                        const ns_stop_params_t *p,
                        void (*fn)(const ns_stopword_t *w, void *arg),
                        void *arg, ns_error_t *err);

/** @brief The sets of every language at once: calls fn once per language
 *  whose set is not empty, best first. @returns the number of languages,
 *  or -1 with err set when out of memory. */
int ns_stopwords_select_all(const ns_termstats_t *s, const ns_stop_params_t *p,
                            void (*fn)(const char *lang,
                                       const ns_stopword_t *words, size_t n,
                                       void *arg),
                            void *arg, ns_error_t *err);

#endif
