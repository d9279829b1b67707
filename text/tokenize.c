#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unicode/ubrk.h>
#include <unicode/ustring.h>
#include <utf8proc.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "fold_table.h"
#include "ns/text.h"

/* Raw bytes kept of a word before normalisation (which may grow it: "ß"
 * folds to "ss"); beyond this the word is too long anyway. */
#define RAW_MAX (4 * NS_WORD_MAX)

/* The run cache (runcache_*): runs of up to RC_RUN_MAX bytes, RC_SLOTS
 * records in RC_DATA bytes at most. */
#define RC_RUN_MAX 255
#define RC_SLOTS (1u << 15)
#define RC_DATA (1u << 20)

struct ns_tokenizer {
    char raw[RAW_MAX + 8]; /* the current word as written */
    size_t raw_len;
    bool raw_ascii;
    bool raw_long;
    /* the fast path: the word folded code point by code point (valid while
     * every code point of it is simple), its full length */
    char fold[NS_WORD_MAX + 8]; /* + 8: folds copied 8 bytes at a time */
    size_t fold_len;
    utf8proc_int32_t fold_last; /* its last code point; -1: none */
    bool fold_ok;
    bool reference; /* every word through utf8proc (the fast path off) */
    char *run;      /* the current run of a script without spaces (UTF-8) */
    size_t run_len, run_cap;
    UChar *u16;
    int32_t u16_cap;
    char out[RAW_MAX * 4 + 8]; /* one ICU segment as UTF-8 */
    /* normalisation, in place: code points, then their UTF-8 */
    utf8proc_int32_t norm[RAW_MAX * 4];
    UBreakIterator *brk; /* opened on the first such run */
    /* the run cache (runcache_*) and the record being built */
    struct rc_slot *rc_slots;
    unsigned char *rc_data;
    size_t rc_len, rc_used;
    bool rc_on;
    uint64_t rc_hash;
    size_t rc_slot, rc_words;
    unsigned char rc_seg[2 * RC_RUN_MAX];
};

typedef struct pass {
    ns_tokenizer_t *t;
    bool elision;
    ns_word_fn fn;
    void *arg;
    ns_text_stats_t *stats;
    ns_error_t *err;
    ns_err_t rc;
} pass_t;

ns_tokenizer_t *ns_tokenizer_new(ns_error_t *err)
{
    ns_tokenizer_t *t = calloc(1, sizeof(*t));
    if (t == NULL)
        ns_error_set(err, NS_ERR_NOMEM, "tokenizer: out of memory");
    else
        ns_fold_table_init();
    return t;
}

void ns_tokenizer_set_reference(ns_tokenizer_t *t, int reference)
{
    t->reference = reference != 0;
}

void ns_tokenizer_destroy(ns_tokenizer_t *t)
{
    if (t == NULL)
        return;
    if (t->brk != NULL)
        ubrk_close(t->brk);
    free(t->rc_slots);
    free(t->rc_data);
    free(t->run);
    free(t->u16);
    free(t);
}

/* ASCII letters and digits (the rest of the bytes: 0). */
static const unsigned char ascii_word[256] = {
    ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1,
    ['7'] = 1, ['8'] = 1, ['9'] = 1, ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1,
    ['E'] = 1, ['F'] = 1, ['G'] = 1, ['H'] = 1, ['I'] = 1, ['J'] = 1, ['K'] = 1,
    ['L'] = 1, ['M'] = 1, ['N'] = 1, ['O'] = 1, ['P'] = 1, ['Q'] = 1, ['R'] = 1,
    ['S'] = 1, ['T'] = 1, ['U'] = 1, ['V'] = 1, ['W'] = 1, ['X'] = 1, ['Y'] = 1,
    ['Z'] = 1, ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1,
    ['g'] = 1, ['h'] = 1, ['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1, ['m'] = 1,
    ['n'] = 1, ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1, ['s'] = 1, ['t'] = 1,
    ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1, ['y'] = 1, ['z'] = 1,
};

/* Languages that elide a vowel before an apostrophe ("l'homme"). */
static bool elides(const char *lang)
{
    static const char *const langs[] = {"fr", "it", "ca", "oc", NULL};
    for (int i = 0; lang != NULL && langs[i] != NULL; i++)
        if (strncmp(lang, langs[i], 2) == 0 &&
            (lang[2] == '\0' || lang[2] == '-' || lang[2] == '_'))
            return true;
    return false;
}

/* Normalises (NFKC + case folding) and hands over one word. */
static void emit(pass_t *p, const char *w, size_t len, bool ascii)
{
    if (len == 0)
        return;
    if (ascii) {
        if (len > NS_WORD_MAX) {
            p->stats->long_words++;
            return;
        }
        char low[NS_WORD_MAX];
        for (size_t i = 0; i < len; i++)
            low[i] = (char)(w[i] >= 'A' && w[i] <= 'Z' ? w[i] + 32 : w[i]);
        p->stats->words++;
        p->fn(low, len, p->arg);
        return;
    }
    /* utf8proc_map() without its allocation: decompose into the
     * tokenizer's buffer, compose, re-encode in place. */
    const utf8proc_option_t opt = UTF8PROC_STABLE | UTF8PROC_COMPAT |
                                  UTF8PROC_COMPOSE | UTF8PROC_CASEFOLD;
    utf8proc_int32_t *buf = p->t->norm;
    utf8proc_ssize_t cap =
        (utf8proc_ssize_t)(sizeof(p->t->norm) / sizeof(p->t->norm[0]));
    utf8proc_ssize_t n = utf8proc_decompose(
        (const utf8proc_uint8_t *)w, (utf8proc_ssize_t)len, buf, cap, opt);
    if (n > cap) {
        p->stats->long_words++;
        return;
    }
    if (n > 0)
        n = utf8proc_normalize_utf32(buf, n, opt);
    if (n > 0)
        n = utf8proc_reencode(buf, n, opt);
    if (n <= 0)
        return; /* nothing left (the input was checked to be valid) */
    if ((size_t)n > NS_WORD_MAX) {
        p->stats->long_words++;
        return;
    }
    p->stats->words++;
    p->fn((const char *)buf, (size_t)n, p->arg);
}

/* The word folded by the fast path, when every code point of it was
 * simple: the same bytes utf8proc would give (fold_table.h). */
static void emit_folded(pass_t *p)
{
    ns_tokenizer_t *t = p->t;
    if (t->fold_len > NS_WORD_MAX) {
        p->stats->long_words++;
        return;
    }
    p->stats->words++;
    p->fn(t->fold, t->fold_len, p->arg);
}

static void end_word(pass_t *p)
{
    ns_tokenizer_t *t = p->t;
    if (t->raw_long)
        p->stats->long_words++;
    else if (t->raw_len > 0 && t->fold_ok)
        emit_folded(p);
    else
        emit(p, t->raw, t->raw_len, t->raw_ascii);
    t->raw_len = 0;
    t->raw_ascii = true;
    t->raw_long = false;
    t->fold_len = 0;
    t->fold_last = -1;
    t->fold_ok = !t->reference;
}

static void add_to_word(ns_tokenizer_t *t, const char *bytes, size_t n,
                        bool ascii)
{
    if (t->raw_len + n > RAW_MAX) {
        t->raw_long = true;
        return;
    }
    memcpy(t->raw + t->raw_len, bytes, n);
    t->raw_len += n;
    t->raw_ascii = t->raw_ascii && ascii;
}

/* Whether a mark or a second (fold_table.h) folds to itself after the
 * code points of the word so far. */
static bool joins_in_place(const ns_tokenizer_t *t, utf8proc_int32_t cp,
                           uint32_t info)
{
    unsigned prev =
        t->fold_last < 0 ? NS_TRAIL_INERT : ns_fold_trail[t->fold_last];
    if (info & NS_CP_MARK)
        return NS_TRAIL_CCC(prev) <= NS_TRAIL_CCC(ns_fold_trail[cp]);
    return (info & NS_CP_SECOND) && (prev & NS_TRAIL_INERT);
}

/* Appends to the folded word what the table says (info) of one code point,
 * or gives the word up to utf8proc when the table's fold is not exact. */
static inline void fold_cp(ns_tokenizer_t *t, utf8proc_int32_t cp,
                           uint32_t info)
{
    if (!(info & NS_CP_SIMPLE) && !joins_in_place(t, cp, info)) {
        t->fold_ok = false;
        return;
    }
    t->fold_last = cp;
    size_t n = NS_FOLD_LEN(info);
    if (t->fold_len + n <= NS_WORD_MAX)
        memcpy(t->fold + t->fold_len, ns_fold_pool + NS_FOLD_OFF(info), n);
    t->fold_len += n;
}

static bool add_to_run(pass_t *p, const char *bytes, size_t n)
{
    ns_tokenizer_t *t = p->t;
    if (t->run_len + n > t->run_cap) {
        size_t cap = t->run_cap ? t->run_cap * 2 : 256;
        while (cap < t->run_len + n)
            cap *= 2;
        char *r = realloc(t->run, cap);
        if (r == NULL) {
            if (p->rc == NS_OK)
                p->rc = ns_error_set(p->err, NS_ERR_NOMEM,
                                     "tokenizer: out of memory");
            return false;
        }
        t->run = r;
        t->run_cap = cap;
    }
    memcpy(t->run + t->run_len, bytes, n);
    t->run_len += n;
    return true;
}

static utf8proc_ssize_t decode(const char *s, size_t n, utf8proc_int32_t *cp);
static void segment_run(pass_t *p);

/* Ends the current run of a spaceless script, if any (called between any
 * two words: inline, the run is most often empty). */
static inline void end_run(pass_t *p)
{
    if (p->t->run_len > 0)
        segment_run(p);
}

/* One word of a segmented run: folded by the table when it can be. */
static void emit_segment(pass_t *p, const char *w, size_t len)
{
    ns_tokenizer_t *t = p->t;
    if (t->reference) {
        emit(p, w, len, false);
        return;
    }
    t->fold_len = 0;
    t->fold_last = -1;
    t->fold_ok = true;
    for (size_t i = 0; i < len && t->fold_ok;) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t k = decode(w + i, len - i, &cp);
        if (k < 0 || cp >= 0x10000) {
            t->fold_ok = false;
            break;
        }
        fold_cp(t, cp, ns_fold_info[cp]);
        i += (size_t)k;
    }
    if (len > 0 && t->fold_ok)
        emit_folded(p);
    else
        emit(p, w, len, false);
    t->fold_len = 0;
    t->fold_last = -1;
    t->fold_ok = true;
}

/* The run cache: ICU's words of the runs met lately, so that a run met
 * again (text repeats its phrases: half the runs of the gettext corpus)
 * costs a lookup instead of ICU's dictionary. Each run is a text of its own
 * to the break iterator, so its boundaries depend on its bytes alone: a
 * cached run's words are the ones ICU gives it. A record is the run's
 * length, its number of words, its bytes, then each word's offset and
 * length (runs of up to RC_RUN_MAX bytes, so one byte each). Bounded: when
 * full, the cache starts again empty. */
typedef struct rc_slot {
    uint32_t tag; /* the hash's high half */
    uint32_t off; /* 1 + the record's offset in rc_data; 0: empty */
} rc_slot_t;

static uint64_t runcache_hash(const char *s, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull ^ n;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        h = (h ^ w) * 0x9fb21c651e98df25ull;
        h ^= h >> 29;
    }
    for (; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 0x100000001b3ull;
    h ^= h >> 32;
    return h * 0xff51afd7ed558ccdull;
}

/* Emits the words of a cached run: false when the run is not cached (then
 * where it would go is kept for runcache_end). */
static bool runcache_emit(pass_t *p, const char *run, size_t n)
{
    ns_tokenizer_t *t = p->t;
    t->rc_on = false;
    if (n > RC_RUN_MAX)
        return false;
    if (t->rc_slots == NULL) {
        t->rc_slots = calloc(RC_SLOTS, sizeof(*t->rc_slots));
        t->rc_data = malloc(RC_DATA);
        if (t->rc_slots == NULL || t->rc_data == NULL) {
            free(t->rc_slots);
            free(t->rc_data);
            t->rc_slots = NULL;
            t->rc_data = NULL;
            return false; /* no cache: slower, not wrong */
        }
    }
    uint64_t h = runcache_hash(run, n);
    uint32_t tag = (uint32_t)(h >> 32);
    size_t i = h & (RC_SLOTS - 1);
    for (; t->rc_slots[i].off != 0; i = (i + 1) & (RC_SLOTS - 1)) {
        const unsigned char *r = t->rc_data + t->rc_slots[i].off - 1;
        if (t->rc_slots[i].tag != tag || r[0] != n ||
            memcmp(r + 2, run, n) != 0)
            continue;
        const unsigned char *seg = r + 2 + n;
        for (size_t k = 0; k < r[1]; k++)
            emit_segment(p, run + seg[2 * k], seg[2 * k + 1]);
        return true;
    }
    t->rc_on = true;
    t->rc_hash = h;
    t->rc_slot = i;
    t->rc_words = 0;
    return false;
}

/* One word of the run being segmented, for its record. */
static inline void runcache_add(ns_tokenizer_t *t, size_t start, size_t n)
{
    if (!t->rc_on)
        return;
    t->rc_seg[2 * t->rc_words] = (unsigned char)start;
    t->rc_seg[2 * t->rc_words + 1] = (unsigned char)n;
    t->rc_words++;
}

/* Stores the record of the run just segmented. */
static void runcache_end(ns_tokenizer_t *t, const char *run, size_t n)
{
    if (!t->rc_on)
        return;
    t->rc_on = false;
    size_t size = 2 + n + 2 * t->rc_words;
    if (t->rc_len + size > RC_DATA || (t->rc_used + 1) * 4 > RC_SLOTS * 3) {
        memset(t->rc_slots, 0, RC_SLOTS * sizeof(*t->rc_slots));
        t->rc_len = 0;
        t->rc_used = 0;
        t->rc_slot = t->rc_hash & (RC_SLOTS - 1);
    }
    unsigned char *r = t->rc_data + t->rc_len;
    r[0] = (unsigned char)n;
    r[1] = (unsigned char)t->rc_words;
    memcpy(r + 2, run, n);
    memcpy(r + 2 + n, t->rc_seg, 2 * t->rc_words);
    t->rc_slots[t->rc_slot] =
        (rc_slot_t){(uint32_t)(t->rc_hash >> 32), (uint32_t)t->rc_len + 1};
    t->rc_len += size;
    t->rc_used++;
}

/* The break iterator, opened on the first run; false (and p->rc set)
 * when ICU cannot open it. */
static bool open_breaker(pass_t *p)
{
    ns_tokenizer_t *t = p->t;
    if (t->brk != NULL)
        return true;
    UErrorCode st = U_ZERO_ERROR;
    t->brk = ubrk_open(UBRK_WORD, "", NULL, 0, &st);
    if (U_FAILURE(st)) {
        t->brk = NULL;
        if (p->rc == NS_OK)
            p->rc = ns_error_set(p->err, NS_ERR_IO,
                                 "tokenizer: ICU word breaker: %s",
                                 u_errorName(st));
        return false;
    }
    return true;
}

/* The run in UTF-16 for ICU, in t->u16: its length in units, or -1. */
static int32_t run_to_utf16(pass_t *p, size_t run_len)
{
    ns_tokenizer_t *t = p->t;
    /* UTF-16 never has more units than UTF-8 has bytes. */
    if ((size_t)t->u16_cap < run_len) {
        UChar *u = realloc(t->u16, run_len * sizeof(UChar));
        if (u == NULL) {
            if (p->rc == NS_OK)
                p->rc = ns_error_set(p->err, NS_ERR_NOMEM,
                                     "tokenizer: out of memory");
            return -1;
        }
        t->u16 = u;
        t->u16_cap = (int32_t)run_len;
    }
    int32_t n16 = 0;
    UErrorCode st = U_ZERO_ERROR;
    u_strFromUTF8(t->u16, t->u16_cap, &n16, t->run, (int32_t)run_len, &st);
    if (U_FAILURE(st))
        return -1; /* the run was valid UTF-8; nothing else can go wrong */
    st = U_ZERO_ERROR;
    ubrk_setText(t->brk, t->u16, n16, &st);
    return U_FAILURE(st) ? -1 : n16;
}

/* The reference path's segmentation: each word converted back from
 * UTF-16. */
static void segment_run_reference(pass_t *p, size_t run_len)
{
    ns_tokenizer_t *t = p->t;
    if (run_to_utf16(p, run_len) < 0)
        return;
    for (int32_t start = ubrk_first(t->brk), end = ubrk_next(t->brk);
         end != UBRK_DONE; start = end, end = ubrk_next(t->brk)) {
        if (ubrk_getRuleStatus(t->brk) < UBRK_WORD_NONE_LIMIT)
            continue; /* not a word */
        int32_t n8 = 0;
        UErrorCode st = U_ZERO_ERROR;
        u_strToUTF8(t->out, (int32_t)sizeof(t->out), &n8, t->u16 + start,
                    end - start, &st);
        if (U_FAILURE(st) || st == U_STRING_NOT_TERMINATED_WARNING) {
            p->stats->long_words++;
            continue;
        }
        emit_segment(p, t->out, (size_t)n8);
    }
}

/* The fast path's segmentation: each word is a slice of the run (ICU's
 * UTF-16 boundaries followed along the UTF-8), kept in the run cache. A
 * word the reference path could not convert into t->out is dropped the
 * same. ICU is given UTF-16 and not the UTF-8 itself (utext_openUTF8):
 * its dictionary engines then break Khmer differently. */
static void segment_run_fast(pass_t *p, size_t run_len)
{
    ns_tokenizer_t *t = p->t;
    const char *run = t->run;
    if (runcache_emit(p, run, run_len))
        return;
    if (run_to_utf16(p, run_len) < 0)
        return;
    size_t at8 = 0; /* the byte of the run at UTF-16 unit at16 */
    int32_t at16 = 0;
    ubrk_first(t->brk);
    for (int32_t end = ubrk_next(t->brk); end != UBRK_DONE;
         end = ubrk_next(t->brk)) {
        size_t start8 = at8;
        while (at16 < end) {
            /* a lead byte of 4: a surrogate pair */
            unsigned char b = (unsigned char)run[at8];
            at8 += b < 0x80 ? 1 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4;
            at16 += b < 0xF0 ? 1 : 2;
        }
        if (ubrk_getRuleStatus(t->brk) < UBRK_WORD_NONE_LIMIT)
            continue; /* not a word */
        size_t n = at8 - start8;
        if (n >= sizeof(t->out)) {
            p->stats->long_words++;
            continue;
        }
        runcache_add(t, start8, n);
        emit_segment(p, run + start8, n);
    }
    runcache_end(t, run, run_len);
}

/* Segments the current run with ICU's dictionary-based word breaker. */
static void segment_run(pass_t *p)
{
    ns_tokenizer_t *t = p->t;
    size_t run_len = t->run_len;
    t->run_len = 0;
    p->stats->segmented++;
    if (!open_breaker(p))
        return;
    if (t->reference)
        segment_run_reference(p, run_len);
    else
        segment_run_fast(p, run_len);
}

/* Decodes the code point at s (n bytes left): its length, or -1 when the
 * bytes are not valid UTF-8 (then one byte is skipped). */
static utf8proc_ssize_t decode(const char *s, size_t n, utf8proc_int32_t *cp)
{
    if ((unsigned char)s[0] < 0x80) {
        *cp = (unsigned char)s[0];
        return 1;
    }
    utf8proc_ssize_t k = utf8proc_iterate(
        (const utf8proc_uint8_t *)s, (utf8proc_ssize_t)(n < 4 ? n : 4), cp);
    return k > 0 && *cp >= 0 ? k : -1;
}

/* The reference path: every code point classified by utf8proc and ICU,
 * every word normalised by utf8proc. */
static void tokenize_reference(pass_t *p, const char *text, size_t len)
{
    ns_tokenizer_t *t = p->t;
    size_t pos = 0;
    while (pos < len && p->rc == NS_OK) {
        /* A run of ASCII letters and digits at once. */
        size_t a = pos;
        while (a < len && ascii_word[(unsigned char)text[a]])
            a++;
        if (a > pos) {
            end_run(p);
            add_to_word(t, text + pos, a - pos, true);
            pos = a;
            continue;
        }
        utf8proc_int32_t cp;
        utf8proc_ssize_t k = decode(text + pos, len - pos, &cp);
        if (k < 0) {
            p->stats->invalid_bytes++;
            end_word(p);
            end_run(p);
            pos++;
            continue;
        }
        const char *bytes = text + pos;
        pos += (size_t)k;
        if (ns_cp_is_word(cp)) {
            if (cp >= 0x0E00 && (ns_cp_spaceless(cp) ||
                                 (t->run_len > 0 && ns_cp_shared_script(cp)))) {
                end_word(p);
                add_to_run(p, bytes, (size_t)k);
            } else {
                end_run(p);
                add_to_word(t, bytes, (size_t)k, k == 1);
            }
            continue;
        }
        /* An apostrophe or hyphen between two word characters joins them
         * (or, eliding, ends the first word after the apostrophe). */
        bool apos = ns_cp_is_apostrophe(cp),
             hyph = !apos && ns_cp_is_hyphen(cp);
        if ((apos || hyph) && t->raw_len > 0 && pos < len) {
            utf8proc_int32_t next;
            utf8proc_ssize_t kn = decode(text + pos, len - pos, &next);
            if (kn > 0 && ns_cp_is_word(next) &&
                !(next >= 0x0E00 && ns_cp_spaceless(next))) {
                add_to_word(t, apos ? "'" : "-", 1, true);
                if (apos && p->elision)
                    end_word(p);
                continue;
            }
        }
        end_word(p);
        end_run(p);
    }
}

/* Decodes like decode() (the same bytes are valid), two- and three-byte
 * sequences without a call. */
static inline utf8proc_ssize_t decode_fast(const char *s, size_t n,
                                           utf8proc_int32_t *cp)
{
    const unsigned char *u = (const unsigned char *)s;
    if (u[0] < 0x80) {
        *cp = u[0];
        return 1;
    }
    if (u[0] >= 0xC2 && u[0] < 0xE0) {
        if (n < 2 || (u[1] & 0xC0) != 0x80)
            return -1;
        *cp = (utf8proc_int32_t)((u[0] & 0x1Fu) << 6 | (u[1] & 0x3Fu));
        return 2;
    }
    if (u[0] >= 0xE0 && u[0] < 0xF0) {
        if (n < 3 || (u[1] & 0xC0) != 0x80 || (u[2] & 0xC0) != 0x80)
            return -1;
        utf8proc_int32_t c =
            (utf8proc_int32_t)((u[0] & 0x0Fu) << 12 | (u[1] & 0x3Fu) << 6 |
                               (u[2] & 0x3Fu));
        if (c < 0x800 || (c >= 0xD800 && c <= 0xDFFF))
            return -1;
        *cp = c;
        return 3;
    }
    return decode(s, n, cp);
}

/* The table's entry for any code point: beyond the BMP, the flags only
 * (never simple: such words go through utf8proc). */
static inline uint32_t info_of(utf8proc_int32_t cp)
{
    if (cp < 0x10000)
        return ns_fold_info[cp];
    uint32_t e = 0;
    if (ns_cp_is_word(cp)) {
        e |= NS_CP_WORD;
        if (ns_cp_spaceless(cp))
            e |= NS_CP_SPACELESS;
        if (ns_cp_shared_script(cp))
            e |= NS_CP_SHARED;
    }
    return e;
}

/* ASCII letters and digits folded (their lower case); 0: not one. */
static const unsigned char ascii_fold[256] = {
    ['0'] = '0', ['1'] = '1', ['2'] = '2', ['3'] = '3', ['4'] = '4',
    ['5'] = '5', ['6'] = '6', ['7'] = '7', ['8'] = '8', ['9'] = '9',
    ['A'] = 'a', ['B'] = 'b', ['C'] = 'c', ['D'] = 'd', ['E'] = 'e',
    ['F'] = 'f', ['G'] = 'g', ['H'] = 'h', ['I'] = 'i', ['J'] = 'j',
    ['K'] = 'k', ['L'] = 'l', ['M'] = 'm', ['N'] = 'n', ['O'] = 'o',
    ['P'] = 'p', ['Q'] = 'q', ['R'] = 'r', ['S'] = 's', ['T'] = 't',
    ['U'] = 'u', ['V'] = 'v', ['W'] = 'w', ['X'] = 'x', ['Y'] = 'y',
    ['Z'] = 'z', ['a'] = 'a', ['b'] = 'b', ['c'] = 'c', ['d'] = 'd',
    ['e'] = 'e', ['f'] = 'f', ['g'] = 'g', ['h'] = 'h', ['i'] = 'i',
    ['j'] = 'j', ['k'] = 'k', ['l'] = 'l', ['m'] = 'm', ['n'] = 'n',
    ['o'] = 'o', ['p'] = 'p', ['q'] = 'q', ['r'] = 'r', ['s'] = 's',
    ['t'] = 't', ['u'] = 'u', ['v'] = 'v', ['w'] = 'w', ['x'] = 'x',
    ['y'] = 'y', ['z'] = 'z',
};

/* The fast path's current word. Its bytes are a slice of the text (the
 * reference path's raw word is that slice with apostrophes and hyphens
 * made ASCII, rebuilt only when utf8proc needs it); its fold is built in
 * t->fold. A value kept in locals: the loop's stores into t->fold cannot
 * alias it. */
typedef struct word {
    size_t start, end;     /* its bytes in the text */
    size_t raw_len;        /* as the reference path counts it (capped) */
    size_t fold_len;       /* in full, even beyond NS_WORD_MAX */
    utf8proc_int32_t last; /* the last code point folded; -1: none */
    bool raw_long, fold_ok;
} word_t;

static const word_t no_word = {.last = -1, .fold_ok = true};

static inline bool word_empty(const word_t *w)
{
    return w->raw_len == 0 && !w->raw_long;
}

/* What the reference path's add_to_word() does to raw_len. */
static inline void word_grow(word_t *w, size_t n)
{
    if (w->raw_len + n > RAW_MAX)
        w->raw_long = true;
    else
        w->raw_len += n;
}

/* The reference path's raw word, rebuilt from the text: the word's code
 * points as written, joining apostrophes and hyphens as "'" and "-". */
static size_t raw_of(const char *s, size_t n, char *out, bool *ascii)
{
    size_t len = 0;
    *ascii = true;
    for (size_t i = 0; i < n;) {
        utf8proc_int32_t cp = 0;
        utf8proc_ssize_t k = decode_fast(s + i, n - i, &cp);
        if (k <= 0)
            break; /* never: the word was decoded once */
        if (info_of(cp) & NS_CP_WORD) {
            memcpy(out + len, s + i, (size_t)k);
            len += (size_t)k;
            *ascii = *ascii && k == 1;
        } else {
            out[len++] = (info_of(cp) & NS_CP_APOS) ? '\'' : '-';
        }
        i += (size_t)k;
    }
    return len;
}

/* Hands over the fast path's word (w not empty). */
static void end_fast_word(pass_t *p, const char *text, word_t w)
{
    ns_tokenizer_t *t = p->t;
    if (w.raw_long) {
        p->stats->long_words++;
    } else if (w.fold_ok) {
        if (w.fold_len > NS_WORD_MAX) {
            p->stats->long_words++;
            return;
        }
        p->stats->words++;
        p->fn(t->fold, w.fold_len, p->arg);
    } else {
        bool ascii;
        size_t n = raw_of(text + w.start, w.end - w.start, t->raw, &ascii);
        emit(p, t->raw, n, ascii);
    }
}

/* Appends the fold of one code point (info: its entry) to the word, or
 * gives the word up to utf8proc when the table's fold is not exact. The
 * folds of up to 8 bytes are copied as 8 (the pool and t->fold have the
 * room). */
static inline void fold_fast(ns_tokenizer_t *t, word_t *w, utf8proc_int32_t cp,
                             uint32_t info)
{
    if (!w->fold_ok)
        return;
    if (!(info & NS_CP_SIMPLE)) {
        unsigned prev = w->last < 0 ? NS_TRAIL_INERT : ns_fold_trail[w->last];
        bool joins = (info & NS_CP_MARK)
                         ? NS_TRAIL_CCC(prev) <= NS_TRAIL_CCC(ns_fold_trail[cp])
                         : (info & NS_CP_SECOND) && (prev & NS_TRAIL_INERT);
        if (!joins) {
            w->fold_ok = false;
            return;
        }
    }
    w->last = cp;
    size_t n = NS_FOLD_LEN(info);
    const char *f = ns_fold_pool + NS_FOLD_OFF(info);
    if (w->fold_len + n <= NS_WORD_MAX) {
        if (n <= 8)
            memcpy(t->fold + w->fold_len, f, 8);
        else
            memcpy(t->fold + w->fold_len, f, n);
    }
    w->fold_len += n;
}

#if defined(__SSE2__)
/* Of 16 bytes: a bit for each ASCII letter or digit, and their folds in
 * *low (the bytes after the first other byte are not used). Bytes from
 * 0x80 are negative to the signed compares: neither. */
static inline unsigned ascii_word16(const unsigned char *s, __m128i *low)
{
    __m128i b = _mm_loadu_si128((const __m128i *)(const void *)s);
    __m128i l = _mm_or_si128(b, _mm_set1_epi8(0x20));
    __m128i digit = _mm_and_si128(_mm_cmpgt_epi8(b, _mm_set1_epi8('0' - 1)),
                                  _mm_cmplt_epi8(b, _mm_set1_epi8('9' + 1)));
    __m128i letter = _mm_and_si128(_mm_cmpgt_epi8(l, _mm_set1_epi8('a' - 1)),
                                   _mm_cmplt_epi8(l, _mm_set1_epi8('z' + 1)));
    *low = _mm_or_si128(_mm_and_si128(letter, l), _mm_and_si128(digit, b));
    return (unsigned)_mm_movemask_epi8(_mm_or_si128(digit, letter));
}
#endif

/* A run of ASCII letters and digits from pos: appended to the word, folded;
 * returns where it ends. Sixteen bytes at a time where there are sixteen
 * to read and room for them in t->fold: one branch per word, not one per
 * byte. */
static inline size_t ascii_span(ns_tokenizer_t *t, word_t *w,
                                const unsigned char *u, size_t pos, size_t len)
{
    size_t a = pos, f = w->fold_len;
#if defined(__SSE2__)
    while (a + 16 <= len && f + 16 <= NS_WORD_MAX) {
        __m128i low;
        unsigned n = (unsigned)__builtin_ctz(~ascii_word16(u + a, &low));
        _mm_storeu_si128((__m128i *)(void *)(t->fold + f), low);
        a += n;
        f += n;
        if (n < 16)
            break; /* u[a] ends the run: the loop below stops at once */
    }
#endif
    for (unsigned char c; a < len && (c = ascii_fold[u[a]]) != 0; a++, f++)
        if (f < NS_WORD_MAX)
            t->fold[f] = (char)c;
    w->fold_len = f;
    w->last = u[a - 1];
    word_grow(w, a - pos);
    w->end = a;
    return a;
}

/* Whether the apostrophe or hyphen that ends at pos joins the word: a word
 * character of a script with spaces follows. */
static inline bool joins_next(const char *text, size_t pos, size_t len)
{
    if (pos >= len)
        return false;
    utf8proc_int32_t next;
    utf8proc_ssize_t kn = decode_fast(text + pos, len - pos, &next);
    uint32_t next_info = kn > 0 ? info_of(next) : 0;
    return (next_info & NS_CP_WORD) && !(next_info & NS_CP_SPACELESS);
}

/* The fast path: the reference path's decisions, each code point's taken
 * from the table, and words folded by the table unless one of their code
 * points needs utf8proc. */
static void tokenize_fast(pass_t *p, const char *text, size_t len)
{
    ns_tokenizer_t *t = p->t;
    const unsigned char *u = (const unsigned char *)text;
    word_t w = no_word;
    size_t pos = 0;
    while (pos < len && p->rc == NS_OK) {
        if (ascii_fold[u[pos]] != 0) {
            end_run(p);
            if (word_empty(&w))
                w.start = pos;
            pos = ascii_span(t, &w, u, pos, len);
            continue;
        }
        utf8proc_int32_t cp;
        utf8proc_ssize_t k = decode_fast(text + pos, len - pos, &cp);
        if (k < 0) {
            p->stats->invalid_bytes++;
            if (!word_empty(&w))
                end_fast_word(p, text, w);
            w = no_word;
            end_run(p);
            pos++;
            continue;
        }
        size_t at = pos;
        pos += (size_t)k;
        uint32_t info = info_of(cp);
        if (info & NS_CP_WORD) {
            if ((info & NS_CP_SPACELESS) ||
                (t->run_len > 0 && (info & NS_CP_SHARED))) {
                if (!word_empty(&w))
                    end_fast_word(p, text, w);
                w = no_word;
                /* the run's next code points at once: spaceless or
                 * shared (the run is not empty now) */
                while (pos < len && u[pos] >= 0x80) {
                    utf8proc_int32_t next;
                    utf8proc_ssize_t kn =
                        decode_fast(text + pos, len - pos, &next);
                    uint32_t ni = kn > 0 ? info_of(next) : 0;
                    if (!(ni & NS_CP_WORD) ||
                        !(ni & (NS_CP_SPACELESS | NS_CP_SHARED)))
                        break;
                    pos += (size_t)kn;
                }
                add_to_run(p, text + at, pos - at);
                continue;
            }
            end_run(p);
            if (word_empty(&w))
                w.start = at;
            /* The word's next non-ASCII code points here, without the
             * loop's other cases (the run is empty: a shared code point
             * joins the word); the one that ends it is decoded again. */
            for (;;) {
                word_grow(&w, (size_t)k);
                fold_fast(t, &w, cp, info);
                w.end = pos;
                if (pos >= len || u[pos] < 0x80)
                    break;
                k = decode_fast(text + pos, len - pos, &cp);
                info = k > 0 ? info_of(cp) : 0;
                if (!(info & NS_CP_WORD) || (info & NS_CP_SPACELESS))
                    break;
                pos += (size_t)k;
            }
            continue;
        }
        bool apos = info & NS_CP_APOS, hyph = !apos && (info & NS_CP_HYPHEN);
        if ((apos || hyph) && w.raw_len > 0 && joins_next(text, pos, len)) {
            char c = apos ? '\'' : '-';
            word_grow(&w, 1);
            if (w.fold_len < NS_WORD_MAX)
                t->fold[w.fold_len] = c;
            w.fold_len++;
            w.last = c;
            w.end = pos;
            if (apos && p->elision) {
                end_fast_word(p, text, w);
                w = no_word;
            }
            continue;
        }
        if (!word_empty(&w))
            end_fast_word(p, text, w);
        w = no_word;
        end_run(p);
    }
    if (!word_empty(&w))
        end_fast_word(p, text, w);
}

ns_err_t ns_tokenize(ns_tokenizer_t *t, const char *lang, const char *text,
                     size_t len, ns_word_fn fn, void *arg,
                     ns_text_stats_t *stats, ns_error_t *err)
{
    pass_t p = {.t = t,
                .elision = elides(lang),
                .fn = fn,
                .arg = arg,
                .stats = stats,
                .err = err,
                .rc = NS_OK};
    t->raw_len = 0;
    t->raw_ascii = true;
    t->raw_long = false;
    t->fold_len = 0;
    t->fold_last = -1;
    t->fold_ok = !t->reference;
    t->run_len = 0;
    if (t->reference)
        tokenize_reference(&p, text, len);
    else
        tokenize_fast(&p, text, len);
    end_word(&p);
    end_run(&p);
    return p.rc;
}
