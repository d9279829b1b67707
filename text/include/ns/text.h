/* text.h: splitting text into normalised words, for counting them.
 *
 * Words are runs of letters, marks and digits (Unicode general categories
 * L*, M*, N*), normalised to NFKC and case-folded (utf8proc), so "Straße",
 * "STRASSE" and "ｓｔｒａｓｓｅ" are one word. Inside a word an apostrophe
 * or a hyphen between two word characters is kept ("don't", "e-mail"),
 * except that in languages with elision (French, Italian, Catalan, ...) the
 * part up to an apostrophe is a word of its own ("l'homme" is "l'" and
 * "homme"). Scripts written without spaces (Han, Hiragana, Katakana, Thai,
 * Lao, Khmer, Myanmar) are segmented with ICU's dictionary-based word break
 * iterator, applied only to runs of those scripts: Latin, Cyrillic and the
 * rest stay on a fast path without ICU. Invalid UTF-8 separates words and
 * is counted; it never stops the text. */
#ifndef NS_TEXT_H
#define NS_TEXT_H

#include <stddef.h>
#include <stdint.h>

#include "ns/err.h"

/** Longest word kept, in bytes after normalisation; longer ones are
 *  dropped and counted (they are not words: hashes, base64, URLs). */
#define NS_WORD_MAX 64

typedef struct ns_tokenizer ns_tokenizer_t;

typedef struct ns_text_stats {
    uint64_t words;         /**< words passed to the callback */
    uint64_t invalid_bytes; /**< bytes that were not valid UTF-8 */
    uint64_t long_words;    /**< dropped: longer than NS_WORD_MAX */
    uint64_t segmented;     /**< runs of a script without spaces segmented
                                 (by ICU, or from the tokenizer's cache of
                                 the words ICU gave a run met before) */
} ns_text_stats_t;

/** Called for every word: UTF-8, normalised, not NUL-terminated. */
typedef void (*ns_word_fn)(const char *word, size_t len, void *arg);

/** @brief A tokenizer (one per thread: it keeps buffers, an ICU break
 *  iterator and, on the fast path, a cache of ICU's words for the runs it
 *  met, at most about 1.3 MB). @returns NULL with err set. */
ns_tokenizer_t *ns_tokenizer_new(ns_error_t *err);
/** @brief NULL: no-op. */
void ns_tokenizer_destroy(ns_tokenizer_t *t);

/** @brief Turns the fast path off (reference non-zero) or on (the
 *  default). Off, every code point is classified and every word normalised
 *  by utf8proc and ICU themselves: the reference the fast path (a table of
 *  the Basic Multilingual Plane built from utf8proc and ICU, and words
 *  folded code point by code point when that is exact) is tested against.
 *  Both give the same words. */
void ns_tokenizer_set_reference(ns_tokenizer_t *t, int reference);

/** @brief Splits text (len bytes, any content) into words of language lang
 *  (ISO 639-1 such as "fr"; NULL or "" when unknown) and calls fn for each;
 *  adds to *stats. @returns NS_OK, or an error only when out of memory or
 *  ICU fails to start (then err is set). */
ns_err_t ns_tokenize(ns_tokenizer_t *t, const char *lang, const char *text,
                     size_t len, ns_word_fn fn, void *arg,
                     ns_text_stats_t *stats, ns_error_t *err);

#endif
