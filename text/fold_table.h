/* fold_table.h: what the tokenizer needs to know of each code point of the
 * Basic Multilingual Plane, looked up once instead of asked of utf8proc and
 * ICU character by character (private to text/).
 *
 * The table is computed once per process from utf8proc and ICU themselves
 * (fold_table.c), so it is the same Unicode data the reference path uses:
 * nothing in it is written by hand. */
#ifndef NS_FOLD_TABLE_H
#define NS_FOLD_TABLE_H

#include <stdbool.h>
#include <stdint.h>
#include <utf8proc.h>

/* Flags, in the low 8 bits of an entry. */
enum {
    NS_CP_WORD = 1 << 0,      /* general category L*, M* or N* */
    NS_CP_SPACELESS = 1 << 1, /* a script written without spaces */
    NS_CP_SHARED = 1 << 2,    /* script Common or Inherited */
    NS_CP_SIMPLE = 1 << 3,    /* its fold is context-free (below) */
    NS_CP_APOS = 1 << 4,      /* an apostrophe the tokenizer joins on */
    NS_CP_HYPHEN = 1 << 5,    /* a hyphen the tokenizer joins on */
    NS_CP_MARK = 1 << 6,      /* folds to itself after a lower class */
    NS_CP_SECOND = 1 << 7,    /* folds to itself after an inert starter */
};

/* An entry: flags (bits 0-7), the length of the fold in bytes (8-13), its
 * offset in ns_fold_pool (14-31).
 *
 * The fold is NFKC + case folding with the options of the reference path
 * (utf8proc). The fold of a word is the concatenation of the folds of its
 * code points when nothing is reordered or composed across the boundary
 * between two of them, which is so when each code point is
 *  - NS_CP_SIMPLE: its decomposition starts with a starter (combining
 *    class 0) that composes with nothing before it; or
 *  - NS_CP_MARK: it decomposes to one combining mark (class > 0) that is
 *    the second of no composition (a virama, a Hebrew point), and the
 *    class of the last code point decomposed before it is 0 or not above
 *    its own (then canonical ordering leaves the two in place); or
 *  - NS_CP_SECOND: it decomposes to one starter that is the second of a
 *    composition (Oriya, Bengali, Sinhala vowel signs), and the fold of
 *    the code point before it ends with a mark (which blocks composition)
 *    or with an inert starter (the first of no composition: not the
 *    starter "가" either, which absorbs a trailing jamo).
 * ns_fold_trail[] says of each code point the combining class of the last
 * code point of its decomposition (bits 0-7; canonical ordering works on
 * the decomposition) and, in NS_TRAIL_INERT, whether its fold ends so
 * that a second after it stays apart (composition works on the composed
 * starter). */
#define NS_FOLD_LEN(e) (((e) >> 8) & 0x3fu)
#define NS_FOLD_OFF(e) ((e) >> 14)
#define NS_TRAIL_INERT 0x100u
#define NS_TRAIL_CCC(t) ((t)&0xffu)

extern uint32_t ns_fold_info[0x10000];
extern uint16_t ns_fold_trail[0x10000];
extern char ns_fold_pool[];

/* The character classes of the tokenizer, one function each: the table is
 * built from them and the reference path calls them directly. */
bool ns_cp_is_word(utf8proc_int32_t cp);
/** Scripts written without spaces (Han, Kana, Thai, Lao, Khmer, Myanmar). */
bool ns_cp_spaceless(utf8proc_int32_t cp);
/** Script Common or Inherited: continues a run of a spaceless script. */
bool ns_cp_shared_script(utf8proc_int32_t cp);
bool ns_cp_is_apostrophe(utf8proc_int32_t cp);
bool ns_cp_is_hyphen(utf8proc_int32_t cp);

/** @brief Fills the table (once per process; thread-safe). */
void ns_fold_table_init(void);

#endif
