/* test_text.c: the tokenizer (text/tokenize.c): words by Unicode
 * category, NFKC + case folding, apostrophes and hyphens per language,
 * dictionary segmentation of scripts without spaces, invalid UTF-8. */
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

NSTEST_MAIN
