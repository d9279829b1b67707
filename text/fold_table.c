/* fold_table.c: the per-code-point table of the tokenizer's fast path,
 * computed once per process by asking utf8proc and ICU about every code
 * point of the BMP, with the same predicates and the same normalisation
 * options the reference path uses (so the two cannot disagree on data). */
#include "fold_table.h"

#include <pthread.h>
#include <stdbool.h>
#include <string.h>
#include <unicode/uchar.h>
#include <unicode/unorm2.h>
#include <unicode/uscript.h>
#include <utf8proc.h>

/* The folds of all BMP word characters take about 150 KB; the offset
 * field allows 256 KB. A code point whose fold does not fit stays off the
 * fast path (correct, only slower). */
#define POOL_MAX (1u << 18)
#define FOLD_MAX 63u

uint32_t ns_fold_info[0x10000];
uint16_t ns_fold_trail[0x10000];
char ns_fold_pool[POOL_MAX + 8]; /* + 8: read 8 bytes at a time */
static size_t pool_used;
static pthread_once_t once = PTHREAD_ONCE_INIT;

/* Letters, marks and numbers (general categories L*, M*, N*). */
bool ns_cp_is_word(utf8proc_int32_t cp)
{
    if (cp < 0x80)
        return (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') ||
               (cp >= '0' && cp <= '9');
    utf8proc_category_t c = utf8proc_category(cp);
    return c >= UTF8PROC_CATEGORY_LU && c <= UTF8PROC_CATEGORY_NO;
}

bool ns_cp_spaceless(utf8proc_int32_t cp)
{
    if (cp < 0x0E00)
        return false; /* below Thai: nothing of these scripts */
    UErrorCode st = U_ZERO_ERROR;
    UScriptCode s = uscript_getScript(cp, &st);
    return U_SUCCESS(st) &&
           (s == USCRIPT_HAN || s == USCRIPT_HIRAGANA ||
            s == USCRIPT_KATAKANA || s == USCRIPT_THAI || s == USCRIPT_LAO ||
            s == USCRIPT_KHMER || s == USCRIPT_MYANMAR);
}

bool ns_cp_shared_script(utf8proc_int32_t cp)
{
    UErrorCode st = U_ZERO_ERROR;
    UScriptCode s = uscript_getScript(cp, &st);
    return U_SUCCESS(st) && (s == USCRIPT_COMMON || s == USCRIPT_INHERITED);
}

bool ns_cp_is_apostrophe(utf8proc_int32_t cp)
{
    return cp == '\'' || cp == 0x2019 || cp == 0x02BC;
}

bool ns_cp_is_hyphen(utf8proc_int32_t cp)
{
    return cp == '-' || cp == 0x2010 || cp == 0x2011;
}

/* Whether utf8proc composes c onto a starter before it: the second of a
 * canonical composition (its table), or a Hangul vowel or trailing
 * consonant jamo (composed algorithmically). ICU's quick check is asked
 * too: a code point either says may combine backwards stays off the fast
 * path. */
static bool is_second(utf8proc_int32_t c)
{
    const utf8proc_property_t *p = utf8proc_get_property(c);
    if (p->comb_index != UINT16_MAX && p->comb_index >= 0x8000)
        return true;
    if ((c >= 0x1161 && c <= 0x1175) || (c >= 0x11A7 && c <= 0x11C2))
        return true;
    return u_getIntPropertyValue(c, UCHAR_NFC_QUICK_CHECK) == UNORM_MAYBE ||
           u_getIntPropertyValue(c, UCHAR_NFKC_QUICK_CHECK) == UNORM_MAYBE;
}

/* Whether utf8proc composes nothing onto c: not the first of a pair in
 * its table, not a Hangul leading consonant nor LV syllable. */
static bool is_inert(utf8proc_int32_t c)
{
    const utf8proc_property_t *p = utf8proc_get_property(c);
    if (p->comb_index < 0x8000)
        return false;
    if (c >= 0x1100 && c <= 0x1112)
        return false;
    return !(c >= 0xAC00 && c <= 0xD7A3 && (c - 0xAC00) % 28 == 0);
}

static int ccc_of(utf8proc_int32_t c)
{
    return utf8proc_get_property(c)->combining_class;
}

/* The fold of cp, when it is one of the three kinds of fold_table.h,
 * appended to the pool: its entry bits other than the WORD and script
 * flags, or 0. */
static uint32_t fold_of(utf8proc_int32_t cp)
{
    const utf8proc_option_t opt = UTF8PROC_STABLE | UTF8PROC_COMPAT |
                                  UTF8PROC_COMPOSE | UTF8PROC_CASEFOLD;
    utf8proc_uint8_t in[4];
    utf8proc_ssize_t in_len = utf8proc_encode_char(cp, in);
    utf8proc_int32_t buf[FOLD_MAX + 1];
    utf8proc_ssize_t n =
        utf8proc_decompose(in, in_len, buf, (utf8proc_ssize_t)FOLD_MAX, opt);
    if (n <= 0 || n > (utf8proc_ssize_t)FOLD_MAX)
        return 0;
    uint32_t kind = 0;
    if (ccc_of(buf[0]) == 0 && !is_second(buf[0]))
        kind = NS_CP_SIMPLE;
    else if (n == 1 && ccc_of(buf[0]) > 0 && !is_second(buf[0]))
        kind = NS_CP_MARK;
    else if (n == 1 && ccc_of(buf[0]) == 0)
        kind = NS_CP_SECOND;
    else
        return 0;
    int last_ccc = ccc_of(buf[n - 1]);
    utf8proc_ssize_t decomposed = n;
    n = utf8proc_normalize_utf32(buf, n, opt);
    if (n <= 0)
        return 0;
    /* After the composed fold, a second is blocked by a mark left over or
     * composes with the starter it ends with (fold_table.h). */
    utf8proc_int32_t end = buf[n - 1];
    bool end_safe = ccc_of(end) > 0 || is_inert(end);
    n = utf8proc_reencode(buf, n, opt);
    if (n <= 0 || (size_t)n > FOLD_MAX || pool_used + (size_t)n > POOL_MAX)
        return 0;
    /* The reference path drops a word whose decomposition overflows its
     * buffer; with no more code points than bytes per fold, such a word's
     * fold is longer than NS_WORD_MAX, so the fast path drops it too. */
    if (decomposed > n)
        return 0;
    memcpy(ns_fold_pool + pool_used, buf, (size_t)n);
    ns_fold_trail[cp] = (uint16_t)(last_ccc | (end_safe ? NS_TRAIL_INERT : 0));
    uint32_t e = kind | (uint32_t)n << 8 | (uint32_t)pool_used << 14;
    pool_used += (size_t)n;
    return e;
}

static void build(void)
{
    for (utf8proc_int32_t cp = 0; cp < 0x10000; cp++) {
        if (cp >= 0xD800 && cp <= 0xDFFF)
            continue; /* never decoded */
        uint32_t e = 0;
        /* what the tokenizer puts in a word for an apostrophe, a hyphen */
        if (cp == '\'' || cp == '-')
            ns_fold_trail[cp] = (uint16_t)(is_inert(cp) ? NS_TRAIL_INERT : 0);
        if (ns_cp_is_apostrophe(cp))
            e |= NS_CP_APOS;
        if (ns_cp_is_hyphen(cp))
            e |= NS_CP_HYPHEN;
        if (ns_cp_is_word(cp)) {
            e |= NS_CP_WORD;
            if (ns_cp_spaceless(cp))
                e |= NS_CP_SPACELESS;
            if (cp >= 0x0E00 && ns_cp_shared_script(cp))
                e |= NS_CP_SHARED;
            e |= fold_of(cp);
        }
        ns_fold_info[cp] = e;
    }
}

void ns_fold_table_init(void)
{
    pthread_once(&once, build);
}
