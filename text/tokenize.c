#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unicode/ubrk.h>
#include <unicode/ustring.h>
#include <utf8proc.h>

#include "fold_table.h"
#include "ns/text.h"

/* Raw bytes kept of a word before normalisation (which may grow it: "ß"
 * folds to "ss"); beyond this the word is too long anyway. */
#define RAW_MAX (4 * NS_WORD_MAX)

struct ns_tokenizer {
    char raw[RAW_MAX + 8]; /* the current word as written */
    size_t raw_len;
    bool raw_ascii;
    bool raw_long;
    /* the fast path: the word folded code point by code point (valid while
     * every code point of it is simple), its full length */
    char fold[NS_WORD_MAX];
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

/* ASCII letters and digits, folded: their lower case. */
static inline void fold_ascii(ns_tokenizer_t *t, const char *s, size_t n)
{
    size_t room = t->fold_len < NS_WORD_MAX ? NS_WORD_MAX - t->fold_len : 0;
    char *out = t->fold + t->fold_len;
    for (size_t i = 0; i < n && i < room; i++)
        out[i] = (char)(s[i] >= 'A' && s[i] <= 'Z' ? s[i] + 32 : s[i]);
    t->fold_len += n;
    t->fold_last = (unsigned char)s[n - 1];
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

/* Segments the current run with ICU's dictionary-based word breaker. */
static void segment_run(pass_t *p)
{
    ns_tokenizer_t *t = p->t;
    size_t run_len = t->run_len;
    t->run_len = 0;
    p->stats->segmented++;
    UErrorCode st = U_ZERO_ERROR;
    if (t->brk == NULL) {
        t->brk = ubrk_open(UBRK_WORD, "", NULL, 0, &st);
        if (U_FAILURE(st)) {
            t->brk = NULL;
            if (p->rc == NS_OK)
                p->rc = ns_error_set(p->err, NS_ERR_IO,
                                     "tokenizer: ICU word breaker: %s",
                                     u_errorName(st));
            return;
        }
    }
    /* UTF-16 never has more units than UTF-8 has bytes. */
    if ((size_t)t->u16_cap < run_len) {
        UChar *u = realloc(t->u16, run_len * sizeof(UChar));
        if (u == NULL) {
            if (p->rc == NS_OK)
                p->rc = ns_error_set(p->err, NS_ERR_NOMEM,
                                     "tokenizer: out of memory");
            return;
        }
        t->u16 = u;
        t->u16_cap = (int32_t)run_len;
    }
    int32_t n16 = 0;
    st = U_ZERO_ERROR;
    u_strFromUTF8(t->u16, t->u16_cap, &n16, t->run, (int32_t)run_len, &st);
    if (U_FAILURE(st))
        return; /* the run was valid UTF-8; nothing else can go wrong */
    st = U_ZERO_ERROR;
    ubrk_setText(t->brk, t->u16, n16, &st);
    if (U_FAILURE(st))
        return;
    for (int32_t start = ubrk_first(t->brk), end = ubrk_next(t->brk);
         end != UBRK_DONE; start = end, end = ubrk_next(t->brk)) {
        if (ubrk_getRuleStatus(t->brk) < UBRK_WORD_NONE_LIMIT)
            continue; /* not a word */
        int32_t n8 = 0;
        st = U_ZERO_ERROR;
        u_strToUTF8(t->out, (int32_t)sizeof(t->out), &n8, t->u16 + start,
                    end - start, &st);
        if (U_FAILURE(st) || st == U_STRING_NOT_TERMINATED_WARNING) {
            p->stats->long_words++;
            continue;
        }
        emit_segment(p, t->out, (size_t)n8);
    }
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

/* The fast path: the reference path's decisions, each code point's taken
 * from the table, and words folded by the table unless one of their code
 * points needs utf8proc. */
static void tokenize_fast(pass_t *p, const char *text, size_t len)
{
    ns_tokenizer_t *t = p->t;
    size_t pos = 0;
    while (pos < len && p->rc == NS_OK) {
        size_t a = pos;
        while (a < len && ascii_word[(unsigned char)text[a]])
            a++;
        if (a > pos) {
            end_run(p);
            add_to_word(t, text + pos, a - pos, true);
            fold_ascii(t, text + pos, a - pos);
            pos = a;
            continue;
        }
        utf8proc_int32_t cp;
        utf8proc_ssize_t k = decode_fast(text + pos, len - pos, &cp);
        if (k < 0) {
            p->stats->invalid_bytes++;
            end_word(p);
            end_run(p);
            pos++;
            continue;
        }
        const char *bytes = text + pos;
        pos += (size_t)k;
        uint32_t info = info_of(cp);
        if (info & NS_CP_WORD) {
            if ((info & NS_CP_SPACELESS) ||
                (t->run_len > 0 && (info & NS_CP_SHARED))) {
                end_word(p);
                add_to_run(p, bytes, (size_t)k);
            } else {
                end_run(p);
                add_to_word(t, bytes, (size_t)k, k == 1);
                fold_cp(t, cp, info);
            }
            continue;
        }
        bool apos = info & NS_CP_APOS, hyph = !apos && (info & NS_CP_HYPHEN);
        if ((apos || hyph) && t->raw_len > 0 && pos < len) {
            utf8proc_int32_t next;
            utf8proc_ssize_t kn = decode_fast(text + pos, len - pos, &next);
            uint32_t next_info = kn > 0 ? info_of(next) : 0;
            if ((next_info & NS_CP_WORD) && !(next_info & NS_CP_SPACELESS)) {
                add_to_word(t, apos ? "'" : "-", 1, true);
                fold_ascii(t, apos ? "'" : "-", 1);
                if (apos && p->elision)
                    end_word(p);
                continue;
            }
        }
        end_word(p);
        end_run(p);
    }
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
