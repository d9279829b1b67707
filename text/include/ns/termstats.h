/* termstats.h: per-language term statistics of a set of documents, built
 * to be added and subtracted exactly.
 *
 * Per language: the number of documents and of words. Per (language, term):
 *   df      documents containing the term,
 *   count   occurrences (N),
 *   nlogn   Σ over documents of n·ln n (n = occurrences in the document),
 *           in fixed point (NS_NLOGN_SCALE units), each document's term
 *           rounded once, so that sums are integers.
 * Every field is a sum over documents, so the statistics of shards add up
 * to those of the corpus, and replacing a shard is "minus its old partial,
 * plus its new one", exactly (integers, no floating-point drift). N and
 * Σ n·ln n give a term's entropy over documents, H = ln N − Σ n·ln n / N,
 * which the stopword score compares with a null model.
 *
 * Memory grows with the vocabulary (distinct language + term pairs), not
 * with the number of documents. */
#ifndef NS_TERMSTATS_H
#define NS_TERMSTATS_H

#include <stddef.h>
#include <stdint.h>

#include "ns/err.h"

#define NS_NLOGN_SCALE 65536

typedef struct ns_termstats ns_termstats_t;

typedef struct ns_term {
    const char *lang; /**< language code ("" unknown) */
    const char *term; /**< NUL-terminated UTF-8 */
    int64_t df, count, nlogn;
} ns_term_t;

typedef struct ns_lang_stats {
    const char *lang;
    int64_t docs, words;
} ns_lang_stats_t;

ns_termstats_t *ns_termstats_new(void);
void ns_termstats_destroy(ns_termstats_t *s);

/** @brief Starts a document of language lang (NULL or "": unknown). */
ns_err_t ns_termstats_doc_begin(ns_termstats_t *s, const char *lang,
                                ns_error_t *err);
/** @brief One word of the current document (len bytes). */
ns_err_t ns_termstats_word(ns_termstats_t *s, const char *word, size_t len,
                           ns_error_t *err);
/** @brief Ends the current document: adds it to the statistics. */
ns_err_t ns_termstats_doc_end(ns_termstats_t *s, ns_error_t *err);

/** @brief s += sign * other (sign 1 or -1); terms whose fields all reach 0
 *  disappear. */
ns_err_t ns_termstats_merge(ns_termstats_t *s, const ns_termstats_t *other,
                            int sign, ns_error_t *err);

/** @brief Distinct (language, term) pairs and languages. */
size_t ns_termstats_terms(const ns_termstats_t *s);
size_t ns_termstats_langs(const ns_termstats_t *s);
/** @brief The statistics of one term; 0 when absent. */
int ns_termstats_get(const ns_termstats_t *s, const char *lang,
                     const char *term, ns_term_t *out);
/** @brief One language's totals; 0 when absent. */
int ns_termstats_lang(const ns_termstats_t *s, const char *lang,
                      ns_lang_stats_t *out);
/** @brief The languages with documents or words, in name order: up to max
 *  names (valid while s lives) in out. @returns how many there are. */
size_t ns_termstats_lang_names(const ns_termstats_t *s, const char **out,
                               size_t max);
/** @brief Calls fn for every term (in no particular order). */
void ns_termstats_each(const ns_termstats_t *s,
                       void (*fn)(const ns_term_t *t, void *arg), void *arg);

/** @brief Calls fn for every term in order: languages by name, then terms
 *  by their bytes (the order of COLLATE "C"). Needs a pointer per term. */
ns_err_t ns_termstats_each_sorted(const ns_termstats_t *s,
                                  void (*fn)(const ns_term_t *t, void *arg),
                                  void *arg, ns_error_t *err);

/** @brief A compact, zstd-compressed binary form (the shard partials in
 *  Postgres). *out is malloc'd. Equal statistics give equal bytes. */
ns_err_t ns_termstats_encode(const ns_termstats_t *s, char **out, size_t *len,
                             ns_error_t *err);
/** @brief The reverse; rejects corrupt or truncated input. */
ns_termstats_t *ns_termstats_decode(const char *data, size_t len,
                                    ns_error_t *err);
/** @brief s += sign * the decoded statistics, read straight into s (no
 *  tables of their own): what a merge of partials wants. On an error s is
 *  left part-way and should be thrown away. */
ns_err_t ns_termstats_merge_encoded(ns_termstats_t *s, const char *data,
                                    size_t len, int sign, ns_error_t *err);

/** A sorted view of statistics (the order of ns_termstats_each_sorted),
 *  built once for several walks and an encoding; valid while its
 *  statistics live unchanged. It holds a pointer per term. */
typedef struct ns_termstats_view ns_termstats_view_t;
ns_termstats_view_t *ns_termstats_view_new(const ns_termstats_t *s,
                                           ns_error_t *err);
void ns_termstats_view_destroy(ns_termstats_view_t *v);
size_t ns_termstats_view_terms(const ns_termstats_view_t *v);
void ns_termstats_view_each(const ns_termstats_view_t *v,
                            void (*fn)(const ns_term_t *t, void *arg),
                            void *arg);
/** @brief ns_termstats_encode of the view's statistics. */
ns_err_t ns_termstats_view_encode(const ns_termstats_view_t *v, char **out,
                                  size_t *len, ns_error_t *err);

/** @brief Whether two statistics are equal, field by field. */
int ns_termstats_equal(const ns_termstats_t *a, const ns_termstats_t *b);

#endif
