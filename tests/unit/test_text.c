/* test_text.c: the tokenizer (text/tokenize.c): words by Unicode
 * category, NFKC + case folding, apostrophes and hyphens per language,
 * dictionary segmentation of scripts without spaces, invalid UTF-8; and
 * the fast path (text/fold_table.c) against the reference path, which
 * asks utf8proc and ICU about every code point and word. */
#include "ns/text.h"

#include "nstest.h"

#include <utf8proc.h>

typedef struct acc {
    char *buf;
    size_t len;
} acc_t;

static void collect(const char *w, size_t n, void *arg)
{
    acc_t *acc = arg;
    if (acc->len > 0)
        acc->buf[acc->len++] = '|';
    memcpy(acc->buf + acc->len, w, n);
    acc->len += n;
    acc->buf[acc->len] = '\0';
}

/* The words of text joined by "|". */
static char *words(const char *lang, const char *text, size_t len,
                   ns_text_stats_t *st)
{
    static char out[4096];
    out[0] = '\0';
    ns_error_t err;
    ns_error_clear(&err);
    ns_tokenizer_t *t = ns_tokenizer_new(&err);
    ASSERT(t != NULL);
    ns_text_stats_t local = {0};
    acc_t acc = {out, 0};
    if (ns_tokenize(t, lang, text, len, collect, &acc, st ? st : &local,
                    &err) != NS_OK)
        NSTEST_FAIL("ns_tokenize: %s", err.msg);
    ns_tokenizer_destroy(t);
    return out;
}

#define W(lang, s) words(lang, s, strlen(s), NULL)

TEST(latin_words_numbers_and_punctuation)
{
    ASSERT_STREQ(W("en", "The quick, brown fox (42 times)!"),
                 "the|quick|brown|fox|42|times");
    ASSERT_STREQ(W(NULL, ""), "");
    ASSERT_STREQ(W(NULL, "  ...  "), "");
    ASSERT_STREQ(W("de", "Über die Straße"), "über|die|strasse");
}

TEST(nfkc_and_case_folding)
{
    /* Ligature, full-width letters, Greek final sigma, Kelvin sign. */
    ASSERT_STREQ(W(NULL, "ﬁne ＡＢＣ ΟΔΟΣ οδος \xe2\x84\xaa"),
                 "fine|abc|οδοσ|οδοσ|k");
    /* Composed and decomposed é are one word. */
    ASSERT_STREQ(W("fr", "caf\xc3\xa9 cafe\xcc\x81"), "café|café");
    ASSERT_STREQ(W("ru", "Москва МОСКВА"), "москва|москва");
}

TEST(apostrophes_and_hyphens_per_language)
{
    ASSERT_STREQ(W("en", "don't e-mail well-known 'quoted' -dash- a - b"),
                 "don't|e-mail|well-known|quoted|dash|a|b");
    /* Typographic apostrophe is the same word. */
    ASSERT_STREQ(W("en", "don\xe2\x80\x99t"), "don't");
    ASSERT_STREQ(W("fr", "l'homme d\xe2\x80\x99"
                         "abord aujourd'hui"),
                 "l'|homme|d'|abord|aujourd'|hui");
    ASSERT_STREQ(W("it", "dell'anno"), "dell'|anno");
    ASSERT_STREQ(W("fr-CA", "l'eau"), "l'|eau");
    ASSERT_STREQ(W("de", "l'eau"), "l'eau");
}

TEST(scripts_without_spaces_are_segmented)
{
    ns_text_stats_t st = {0};
    const char *zh = "我们是学生";
    ASSERT_STREQ(words("zh", zh, strlen(zh), &st), "我们|是|学生");
    ASSERT_EQ(st.segmented, 1);
    ASSERT_STREQ(W("th", "ภาษาไทยง่ายนิดเดียว"), "ภาษา|ไทย|ง่าย|นิด|เดียว");
    /* Japanese with the prolonged sound mark (script Common) and a Latin
     * word in the middle, which stays on the fast path. */
    const char *ja = "私はコーヒーが好きです。OK東京";
    char *got = words("ja", ja, strlen(ja), NULL);
    ASSERT(strstr(got, "コーヒー") != NULL);
    ASSERT(strstr(got, "|ok|") != NULL);
    ASSERT(strstr(got, "東京") != NULL);
    /* Latin text never reaches ICU. */
    memset(&st, 0, sizeof(st));
    const char *en = "plain latin text";
    words("en", en, strlen(en), &st);
    ASSERT_EQ(st.segmented, 0);
    ASSERT_EQ(st.words, 3);
}

TEST(invalid_utf8_separates_words_and_is_counted)
{
    ns_text_stats_t st = {0};
    const char bad[] = "abc\xff"
                       "def \xc3 ghi \xe2\x82 jkl \xed\xa0\x80 mno";
    ASSERT_STREQ(words("en", bad, sizeof(bad) - 1, &st), "abc|def|ghi|jkl|mno");
    ASSERT_EQ(st.invalid_bytes, 7);
    ASSERT_EQ(st.words, 5);
    /* Truncated sequence at the very end. */
    memset(&st, 0, sizeof(st));
    const char tail[] = "end\xe6\x88";
    ASSERT_STREQ(words("en", tail, sizeof(tail) - 1, &st), "end");
    ASSERT_EQ(st.invalid_bytes, 2);
    /* NUL bytes inside the text are separators. */
    const char nul[] = "a\0b";
    ASSERT_STREQ(words("en", nul, 3, NULL), "a|b");
}

TEST(long_words_are_dropped_and_counted)
{
    char text[400];
    memset(text, 'x', 300);
    strcpy(text + 300, " short");
    ns_text_stats_t st = {0};
    ASSERT_STREQ(words("en", text, strlen(text), &st), "short");
    ASSERT_EQ(st.long_words, 1);
    char exact[NS_WORD_MAX + 1];
    memset(exact, 'y', NS_WORD_MAX);
    exact[NS_WORD_MAX] = '\0';
    memset(&st, 0, sizeof(st));
    words("en", exact, NS_WORD_MAX, &st);
    ASSERT_EQ(st.words, 1);
}

/* Every word handed over is valid UTF-8 of at most NS_WORD_MAX bytes. */
static void check_word(const char *w, size_t n, void *arg)
{
    size_t *count = arg;
    ASSERT(n > 0 && n <= NS_WORD_MAX);
    utf8proc_int32_t cp;
    for (size_t i = 0; i < n;) {
        utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)w + i,
                                              (utf8proc_ssize_t)(n - i), &cp);
        ASSERT(k > 0);
        i += (size_t)k;
    }
    (*count)++;
}

TEST(random_bytes_never_break_it)
{
    /* Deterministic garbage mixed with pieces of every script above. */
    static const char *const pieces[] = {
        "word ", "\xff", "Straße",       "我们是", "ภาษา", "コーヒー",
        "l'",    "-",    "\xe2\x80\x99", "\xc3",   "ＡＢ", "\xf0\x9f\x98\x80",
        "\x00",  "ǅ",
    };
    ns_error_t err;
    ns_error_clear(&err);
    ns_tokenizer_t *t = ns_tokenizer_new(&err);
    unsigned seed = 12345;
    char buf[4096];
    size_t total = 0;
    for (int round = 0; round < 300; round++) {
        size_t len = 0;
        while (len < sizeof(buf) - 16) {
            seed = seed * 1103515245u + 12345u;
            if ((seed >> 16) % 3 == 0) {
                buf[len++] = (char)(seed >> 8);
            } else {
                const char *p =
                    pieces[(seed >> 16) % (sizeof(pieces) / sizeof(pieces[0]))];
                size_t n = strlen(p) ? strlen(p) : 1;
                memcpy(buf + len, p, n);
                len += n;
            }
        }
        ns_text_stats_t st = {0};
        size_t count = 0;
        ASSERT_EQ(ns_tokenize(t, round % 2 ? "fr" : "ja", buf, len, check_word,
                              &count, &st, &err),
                  NS_OK);
        ASSERT_EQ(count, st.words);
        total += count;
    }
    ASSERT(total > 1000);
    ns_tokenizer_destroy(t);
}

/* ---- the fast path against the reference path ------------------------ */

typedef struct run_out {
    char *buf;
    size_t len, cap;
    ns_text_stats_t st;
} run_out_t;

static void collect_any(const char *w, size_t n, void *arg)
{
    run_out_t *o = arg;
    if (o->len + n + 1 > o->cap) {
        o->cap = (o->len + n + 1) * 2;
        o->buf = realloc(o->buf, o->cap);
        ASSERT(o->buf != NULL);
    }
    memcpy(o->buf + o->len, w, n);
    o->len += n;
    o->buf[o->len++] = '\n';
}

static void hex_dump(const char *what, const char *s, size_t n)
{
    fprintf(stderr, "%s:", what);
    for (size_t i = 0; i < n; i++)
        fprintf(stderr, " %02x", (unsigned char)s[i]);
    fputc('\n', stderr);
}

/* Tokenizes text both ways; fails, showing the text, unless the words and
 * the counters are the same. */
static void same_both_ways(ns_tokenizer_t *fast, ns_tokenizer_t *ref,
                           const char *lang, const char *text, size_t len)
{
    static run_out_t a, b;
    a.len = b.len = 0;
    memset(&a.st, 0, sizeof(a.st));
    memset(&b.st, 0, sizeof(b.st));
    ns_error_t err;
    ASSERT_EQ(ns_tokenize(fast, lang, text, len, collect_any, &a, &a.st, &err),
              NS_OK);
    ASSERT_EQ(ns_tokenize(ref, lang, text, len, collect_any, &b, &b.st, &err),
              NS_OK);
    if (a.len != b.len || (a.len > 0 && memcmp(a.buf, b.buf, a.len) != 0) ||
        memcmp(&a.st, &b.st, sizeof(a.st)) != 0) {
        hex_dump("text", text, len);
        hex_dump("fast", a.buf, a.len);
        hex_dump("reference", b.buf, b.len);
        NSTEST_FAIL("fast path and reference differ (lang %s)",
                    lang ? lang : "-");
    }
}

static void both_ways(ns_tokenizer_t **fast, ns_tokenizer_t **ref)
{
    ns_error_t err;
    *fast = ns_tokenizer_new(&err);
    *ref = ns_tokenizer_new(&err);
    ASSERT(*fast != NULL && *ref != NULL);
    ns_tokenizer_set_reference(*ref, 1);
}

/* Everything the fast path treats specially, and its neighbours, as
 * pieces separated by '|' (and a NUL byte, added by the test). */
static const char tricky[] =
    "word|Word|WORD|42|x| |  |.|,|(|\t|\n|'|-|’|ʼ|‐|‑|—|"
    /* Latin-1 and Latin Extended, composed and not, ligatures, widths */
    "é|e\xcc\x81|\xcc\x81|\xcc\x88|\xcc\xa3|\xcd\x85|\xcc\x95|ß|ẞ|Straße|Ü|"
    "ǅ|Ł|ő|ﬁ|ﬀ|ĳ|ＡＢ|ｓ|µ|ſ|½|²|㈱|ﷺ|Å|ệ|\xe2\x84\xaa|\xe2\x84\xab|"
    /* Turkish i, Greek sigma and polytonic, Cyrillic with breve */
    "İ|ı|I|i|ΟΔΟΣ|ς|σ|ΐ|ᾢ|Ω|ё|Й|й|и|̆|"
    /* Indic: viramas, nuktas, two-part vowel signs (composition seconds) */
    "क्ष|ि|्|ऩ|\xe0\xa4\xbc|न|ଓ|େ|ା|ୋ|ো|ে|া|ෙ|ා|්|ො|ொ|ெ|ா|ೊ|ೆ|ೂ|ೕ|ൊ|"
    "െ|ാ|ਨ਼|਼|ཱ|ི|ᬆ|ᬅ|ᬵ|"
    /* Hangul syllables and jamo, Hebrew points, Arabic digits */
    "한|ᄒ|ᅡ|ᆫ|가|ᆨ|\xe1\x86\xa7|כּ|ּ|ַ|\xd6\xb7|١٢|"
    /* spaceless scripts, kana voicing marks, ideographic marks */
    "ไทย|我们|コーヒー|か|゙|ｶ|ﾞ|〪|"
    /* beyond the BMP: emoji, Han extension B, mathematical letters */
    "\xf0\x9f\x98\x80|\xf0\xa0\x80\x80|\xf0\x9d\x90\x80|"
    /* invalid or unusual UTF-8, a soft hyphen, a noncharacter */
    "\xff|\xc3|\xc0\xaf|\xe0\x80\xaf|\xed\xa0\x80|\xe2\x82|\xf4\x90\x80\x80|"
    "\xef\xbf\xbe|\xc2\xad";

typedef struct piece {
    const char *s;
    size_t len;
} piece_t;

static size_t split_pieces(piece_t *out, size_t max)
{
    size_t n = 0;
    for (const char *p = tricky; *p && n < max;) {
        size_t len = strcspn(p, "|");
        out[n++] = (piece_t){p, len};
        p += len + (p[len] == '|');
    }
    return n;
}

TEST(fast_path_equals_reference_on_random_text)
{
    ns_tokenizer_t *fast, *ref;
    both_ways(&fast, &ref);
    static const char *const langs[] = {"en", "fr", "ja", "tr", NULL};
    static piece_t pieces[256];
    size_t n_pieces = split_pieces(pieces, 256);
    ASSERT(n_pieces > 100);
    unsigned seed = 2024;
    char buf[512];
    for (int round = 0; round < 50000; round++) {
        size_t len = 0;
        int count = 1 + round % 12;
        for (int k = 0; k < count && len + 64 < sizeof(buf); k++) {
            seed = seed * 1103515245u + 12345u;
            unsigned pick = (seed >> 16) % (unsigned)(n_pieces + 1);
            if (pick == n_pieces) {
                buf[len++] = '\0';
                continue;
            }
            memcpy(buf + len, pieces[pick].s, pieces[pick].len);
            len += pieces[pick].len;
        }
        same_both_ways(fast, ref, langs[round % 5], buf, len);
    }
    ns_tokenizer_destroy(fast);
    ns_tokenizer_destroy(ref);
}

TEST(fast_path_equals_reference_for_every_bmp_code_point)
{
    /* Each code point alone, and after and before each neighbour that
     * matters to composition and canonical ordering. */
    static const char *const around[] = {
        "a",  "e",        "é", "\xcc\x81", "\xcc\xa3",     "\xcd\x85",
        "्",   "େ",        "ା", "ে",        "ᄒ",           "가",
        "ᆨ", "'",        "Σ", "ệ",        "\xe0\xa4\xbc", "ெ",
        "ᬅ",  "\xd6\xb7",
    };
    ns_tokenizer_t *fast, *ref;
    both_ways(&fast, &ref);
    for (utf8proc_int32_t cp = 1; cp < 0x10000; cp++) {
        if (cp >= 0xD800 && cp <= 0xDFFF)
            continue;
        utf8proc_uint8_t u[4];
        size_t n = (size_t)utf8proc_encode_char(cp, u);
        char buf[64];
        memcpy(buf, u, n);
        same_both_ways(fast, ref, "en", buf, n);
        for (size_t i = 0; i < sizeof(around) / sizeof(around[0]); i++) {
            size_t m = strlen(around[i]);
            memcpy(buf, around[i], m);
            memcpy(buf + m, u, n);
            memcpy(buf + m + n, around[i], m);
            memcpy(buf + 2 * m + n, u, n);
            same_both_ways(fast, ref, "fr", buf, 2 * (m + n));
        }
    }
    ns_tokenizer_destroy(fast);
    ns_tokenizer_destroy(ref);
}

TEST(fast_path_decodes_utf8_like_utf8proc)
{
    /* Every lead byte with every second byte and a sample of third and
     * fourth bytes, between two words. */
    static const unsigned char thirds[] = {0x00, 0x41, 0x7f, 0x80, 0x8f,
                                           0x90, 0x9f, 0xa0, 0xbf, 0xc0};
    ns_tokenizer_t *fast, *ref;
    both_ways(&fast, &ref);
    for (unsigned b0 = 0x80; b0 <= 0xff; b0++)
        for (unsigned b1 = 0; b1 <= 0xff; b1++)
            for (size_t k = 0; k < sizeof(thirds); k++) {
                char buf[8] = {'a',        (char)b0, (char)b1, (char)thirds[k],
                               (char)0x80, 'b'};
                same_both_ways(fast, ref, "en", buf, 6);
                same_both_ways(fast, ref, "en", buf, 3); /* truncated */
            }
    ns_tokenizer_destroy(fast);
    ns_tokenizer_destroy(ref);
}

TEST(runs_from_the_cache_equal_the_reference)
{
    /* Runs of the gettext corpus (Khmer, Myanmar, Han, Katakana, Thai,
     * Lao), each met again and again, so that most of them come from the
     * tokenizer's cache of ICU's words; then more distinct runs than the
     * cache keeps, so that it starts again empty. */
    static const char *const runs[] = {
        "ប័ណ្ណសារ",
        "កំពុងស្ថាបនា",
        "មែកធាងភាពអាស្រ័យ",
        "ទទួលយក",
        "លយក",
        "អាឡឺម៉ង់",
        "အာဖဂန်နစ္စတန်နိုင်ငံ",
        "အယ်လ်ဘေးနီးယားနိုင်ငံ",
        "亞美尼亞家族語系",
        "中美洲原住民語系",
        "我们是学生",
        "アバディーンシア",
        "アグアスカリエンテス",
        "การตั้งค่าระบบ",
        "ພາສາລາວ",
        "我",
    };
    const size_t n = sizeof(runs) / sizeof(runs[0]);
    ns_tokenizer_t *fast, *ref;
    both_ways(&fast, &ref);
    char buf[512];
    for (size_t round = 0; round < 200; round++)
        for (size_t i = 0; i < n; i++) {
            int m =
                snprintf(buf, sizeof(buf), round % 2 ? "%s%s" : "x %s, %s 42",
                         runs[i], runs[(i + round) % n]);
            same_both_ways(fast, ref, "km", buf, (size_t)m);
        }
    for (unsigned k = 0; k < 40000; k++) {
        utf8proc_int32_t cps[3] = {0x4E00 + (utf8proc_int32_t)(k % 1000),
                                   0x4E00 + (utf8proc_int32_t)(k / 1000),
                                   0x3042 + (utf8proc_int32_t)(k % 7)};
        size_t len = 0;
        for (int c = 0; c < 3; c++)
            len += (size_t)utf8proc_encode_char(cps[c],
                                                (utf8proc_uint8_t *)buf + len);
        same_both_ways(fast, ref, "ja", buf, len);
    }
    ns_tokenizer_destroy(fast);
    ns_tokenizer_destroy(ref);
}

TEST(fast_path_long_words_like_reference)
{
    /* Around NS_WORD_MAX after folding: "ß" doubles, "ﷺ" grows 11
     * times, a virama keeps a word on the table. */
    static const char *const units[] = {"a", "ß", "é", "ﷺ", "क्", "ΐ"};
    ns_tokenizer_t *fast, *ref;
    both_ways(&fast, &ref);
    char buf[1024];
    for (size_t u = 0; u < sizeof(units) / sizeof(units[0]); u++)
        for (size_t reps = 1; reps < 140; reps++) {
            size_t len = 0, m = strlen(units[u]);
            for (size_t r = 0; r < reps && len + m < sizeof(buf); r++) {
                memcpy(buf + len, units[u], m);
                len += m;
            }
            same_both_ways(fast, ref, "en", buf, len);
        }
    ns_tokenizer_destroy(fast);
    ns_tokenizer_destroy(ref);
}

NSTEST_MAIN
