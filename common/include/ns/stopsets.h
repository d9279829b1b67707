/* stopsets.h: the stopword sets in Redis, switched atomically.
 *
 * Per language a hash PREFIX:{lang} (word → score: the set) and beside it
 * a sorted set PREFIX:{lang}:ranked (word → score: the ranked list, whose
 * best words are the set; ZREVRANGE 0 N-1 gives the first N in rank
 * order). A new version is written beside them as PREFIX:{lang}:next and
 * PREFIX:{lang}:ranked:next, then one Lua script (atomic in Redis) makes
 * every language's :next current and keeps the current pair as
 * PREFIX:{lang}:prev and PREFIX:{lang}:ranked:prev; languages that no
 * longer have a set move to :prev too. PREFIX:langs lists the current
 * languages (those with a set or a ranked list). A reader sees the old
 * version or the new one, never a mix; a failure before the script leaves
 * the current sets as they were. Rollback swaps a language's current and
 * previous pair. */
#ifndef NS_STOPSETS_H
#define NS_STOPSETS_H

#include <hiredis/hiredis.h>
#include <stddef.h>

#include "ns/err.h"

typedef struct ns_stopset {
    const char *lang;
    size_t n;        /**< the set: words[0..n) */
    size_t n_ranked; /**< the ranked list: words[0..n_ranked) (n if less) */
    const char *const *words;
    const double *scores;
} ns_stopset_t;

/** @brief Writes sets[0..n) as the new version and switches to it. */
ns_err_t ns_stopsets_publish(redisContext *rc, const char *prefix,
                             const ns_stopset_t *sets, size_t n,
                             ns_error_t *err);

/** @brief Swaps current and previous of lang, the set and the ranked
 *  list together (NULL: of every language that has a previous one);
 *  *swapped counts the languages. */
ns_err_t ns_stopsets_rollback(redisContext *rc, const char *prefix,
                              const char *lang, int *swapped, ns_error_t *err);

/** @brief The words of the current set of lang (caller frees each and the
 *  array); *n 0 when there is none. */
ns_err_t ns_stopsets_current(redisContext *rc, const char *prefix,
                             const char *lang, char ***words, size_t *n,
                             ns_error_t *err);

#endif
