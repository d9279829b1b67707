/* test_telegram.c: HTML escaping and message splitting for the Bot API. */
#include "ns/telegram.h"

#include "ns/buf.h"
#include "ns/utf8.h"
#include "nstest.h"

/* Visible length as Telegram counts it, in UTF-16 code units: tags 0, an
 * entity 1 (2 for a numeric one above U+FFFF), a code point 1 (2 above
 * U+FFFF: 4 bytes of UTF-8). Written independently of telegram.c on
 * purpose. */
static int is_tag(const char *s)
{
    return s[0] == '<' && (s[1] == '/' || (s[1] >= 'a' && s[1] <= 'z'));
}

static size_t visible(const char *s)
{
    size_t n = 0;
    while (*s != '\0') {
        if (is_tag(s)) {
            const char *end = strchr(s, '>');
            ASSERT(end != NULL);
            s = end + 1;
            continue;
        }
        const char *semi = strchr(s, ';');
        if (*s == '&' && semi != NULL && semi - s <= 10) {
            long cp = 0;
            if (s[1] == '#')
                cp = s[2] == 'x' ? strtol(s + 3, NULL, 16)
                                 : strtol(s + 2, NULL, 10);
            n += cp > 0xffff ? 2 : 1;
            s = semi + 1;
        } else {
            n += ((unsigned char)*s & 0xf8) == 0xf0 ? 2 : 1;
            s++;
            while ((*s & 0xc0) == 0x80)
                s++;
        }
    }
    return n;
}

/* s without any tags, malloc'd. */
static char *strip_tags(const char *s)
{
    ns_buf_t b;
    ns_buf_init(&b, (size_t)1 << 24);
    while (*s != '\0') {
        if (is_tag(s)) {
            s = strchr(s, '>') + 1;
            continue;
        }
        ns_buf_add(&b, s, 1);
        s++;
    }
    return ns_buf_take(&b);
}

/* Asserts that every opening tag is closed in order within s. */
static void assert_balanced(const char *s)
{
    char names[32][16];
    int depth = 0;
    for (; (s = strchr(s, '<')) != NULL; s++) {
        if (!is_tag(s))
            continue;
        int closing = s[1] == '/';
        const char *name = s + 1 + closing;
        size_t len = strcspn(name, " >");
        ASSERT(len > 0 && len < 16);
        if (closing) {
            ASSERT(depth > 0);
            depth--;
            ASSERT_EQ(strlen(names[depth]), len);
            ASSERT(strncmp(names[depth], name, len) == 0);
        } else {
            ASSERT(depth < 32);
            memcpy(names[depth], name, len);
            names[depth][len] = '\0';
            depth++;
        }
        s = strchr(s, '>');
        ASSERT(s != NULL);
    }
    ASSERT_EQ(depth, 0);
}

/* Splits html, checks the invariants every split must keep and returns
 * the number of chunks. */
static size_t split_checked(const char *html, size_t limit, char ***chunks)
{
    size_t n = ns_tg_split_html(html, limit, chunks);
    ns_buf_t all;
    ns_buf_init(&all, (size_t)1 << 24);
    for (size_t i = 0; i < n; i++) {
        const char *c = (*chunks)[i];
        ASSERT(visible(c) <= limit);
        ASSERT(visible(c) > 0);
        ASSERT_EQ(ns_utf8_invalid_at(c, strlen(c)), -1);
        char *text = strip_tags(c);
        ns_buf_adds(&all, text);
        free(text);
    }
    char *want = strip_tags(html);
    char *got = ns_buf_take(&all);
    ASSERT_STREQ(got, want);
    free(want);
    free(got);
    return n;
}

static char *repeat(const char *unit, size_t times)
{
    ns_buf_t b;
    ns_buf_init(&b, (size_t)1 << 24);
    for (size_t i = 0; i < times; i++)
        ns_buf_adds(&b, unit);
    return ns_buf_take(&b);
}

TEST(escape_leaves_markdown_alone)
{
    char *s = ns_tg_escape_html("*_[evil](x)`");
    ASSERT_STREQ(s, "*_[evil](x)`");
    free(s);
}

TEST(escape_html_specials)
{
    char *s = ns_tg_escape_html("<b>&");
    ASSERT_STREQ(s, "&lt;b&gt;&amp;");
    free(s);
    s = ns_tg_escape_html("a &amp; \"q\" 'x'");
    ASSERT_STREQ(s, "a &amp;amp; \"q\" 'x'");
    free(s);
    s = ns_tg_escape_html(NULL);
    ASSERT_STREQ(s, "");
    free(s);
}

TEST(escape_invalid_utf8)
{
    char *s = ns_tg_escape_html("a\xff"
                                "b\xc3");
    ASSERT_STREQ(s, "a\xef\xbf\xbd"
                    "b\xef\xbf\xbd");
    free(s);
    s = ns_tg_escape_html("Привет 😀");
    ASSERT_STREQ(s, "Привет 😀");
    free(s);
}

TEST(escape_control_chars)
{
    char *s = ns_tg_escape_html("a\x01"
                                "b\r\nc\td\x7f"
                                "e\x1b[0m\xc2\x85!");
    ASSERT_STREQ(s, "ab\nc\tde[0m!");
    free(s);
}

TEST(split_short_message)
{
    char **chunks;
    size_t n = split_checked("<b>hello</b> world", NS_TG_MAX_TEXT, &chunks);
    ASSERT_EQ(n, 1);
    ASSERT_STREQ(chunks[0], "<b>hello</b> world");
    ns_tg_chunks_free(chunks, n);

    ASSERT_EQ(ns_tg_split_html("", NS_TG_MAX_TEXT, &chunks), 0);
    ASSERT(chunks == NULL);
    ns_tg_chunks_free(NULL, 0);
}

TEST(split_prefers_newline_then_space)
{
    char **chunks;
    size_t n = split_checked("aaa bbb\nccc ddd eee", 10, &chunks);
    ASSERT_EQ(n, 3);
    ASSERT_STREQ(chunks[0], "aaa bbb\n");
    ASSERT_STREQ(chunks[1], "ccc ddd ");
    ASSERT_STREQ(chunks[2], "eee");
    ns_tg_chunks_free(chunks, n);
}

TEST(split_long_text_at_newlines)
{
    ns_buf_t b;
    ns_buf_init(&b, (size_t)1 << 20);
    for (int i = 0; b.len < 10000; i++)
        ns_buf_addf(&b, "line %d: the quick brown fox jumps%.*s\n", i, i % 40,
                    "........................................");
    char *text = ns_buf_take(&b);
    ASSERT(strlen(text) >= 10000);
    char **chunks;
    size_t n = split_checked(text, NS_TG_MAX_TEXT, &chunks);
    ASSERT_EQ(n, 3);
    ns_buf_t joined;
    ns_buf_init(&joined, (size_t)1 << 20);
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(chunks[i]);
        ASSERT(visible(chunks[i]) <= NS_TG_MAX_TEXT);
        ASSERT(visible(chunks[i]) > NS_TG_MAX_TEXT - 100 || i == n - 1);
        ASSERT_EQ(chunks[i][len - 1], '\n');
        ns_buf_adds(&joined, chunks[i]);
    }
    ASSERT_STREQ(joined.data, text);
    ns_buf_free(&joined);
    ns_tg_chunks_free(chunks, n);
    free(text);
}

TEST(split_reopens_tags)
{
    char *words = repeat("bold words ", 600); /* 6600 visible */
    ns_buf_t b;
    ns_buf_init(&b, (size_t)1 << 20);
    ns_buf_addf(&b, "intro <b>%s</b> tail", words);
    char *html = ns_buf_take(&b);
    char **chunks;
    size_t n = split_checked(html, NS_TG_MAX_TEXT, &chunks);
    ASSERT_EQ(n, 2);
    for (size_t i = 0; i < n; i++)
        assert_balanced(chunks[i]);
    ASSERT(strncmp(chunks[0], "intro <b>bold", 13) == 0);
    ASSERT(strcmp(chunks[0] + strlen(chunks[0]) - 5, " </b>") == 0);
    ASSERT(strncmp(chunks[1], "<b>words bold", 13) == 0);
    ns_tg_chunks_free(chunks, n);
    free(html);
    free(words);
}

TEST(split_reopens_nested_tags_with_attributes)
{
    char *words = repeat("link text ", 500);
    ns_buf_t b;
    ns_buf_init(&b, (size_t)1 << 20);
    ns_buf_addf(&b,
                "<b>x <a href=\"https://e.com/?a=1&amp;b=2\"><i>%s</i></a>"
                "</b>",
                words);
    char *html = ns_buf_take(&b);
    char **chunks;
    size_t n = split_checked(html, NS_TG_MAX_TEXT, &chunks);
    ASSERT_EQ(n, 2);
    assert_balanced(chunks[0]);
    const char *reopen = "<b><a href=\"https://e.com/?a=1&amp;b=2\"><i>link";
    ASSERT(strncmp(chunks[1], reopen, strlen(reopen)) == 0);
    const char *close = "</i></a></b>";
    ASSERT(strcmp(chunks[0] + strlen(chunks[0]) - strlen(close), close) == 0);
    ns_tg_chunks_free(chunks, n);
    free(html);
    free(words);
}

TEST(split_never_inside_entity)
{
    for (size_t pad = 4090; pad <= 4096; pad++) {
        char *as = repeat("a", pad);
        ns_buf_t b;
        ns_buf_init(&b, (size_t)1 << 20);
        ns_buf_addf(&b, "%s&amp;&lt;&#128512;bbbb", as);
        char *html = ns_buf_take(&b);
        char **chunks;
        size_t n = split_checked(html, NS_TG_MAX_TEXT, &chunks);
        ASSERT_EQ(n, 2);
        for (size_t i = 0; i < n; i++) {
            const char *amp = strrchr(chunks[i], '&');
            ASSERT(amp == NULL || strchr(amp, ';') != NULL);
        }
        ns_tg_chunks_free(chunks, n);
        free(html);
        free(as);
    }
}

TEST(split_counts_code_points)
{
    /* Below U+10000 a code point is one UTF-16 unit, whatever its UTF-8
     * length; an emoji is a surrogate pair, so half as many fit. */
    const char *units[] = {"я", "😀", "é"};
    const size_t per_chunk[] = {4096, 2048, 4096};
    for (size_t u = 0; u < 3; u++) {
        char *text = repeat(units[u], 5000);
        char **chunks;
        size_t n = split_checked(text, NS_TG_MAX_TEXT, &chunks);
        ASSERT_EQ(n, (5000 + per_chunk[u] - 1) / per_chunk[u]);
        for (size_t i = 0; i + 1 < n; i++)
            ASSERT_EQ(strlen(chunks[i]), per_chunk[u] * strlen(units[u]));
        ASSERT_EQ(strlen(chunks[n - 1]), 904 * strlen(units[u]));
        ns_tg_chunks_free(chunks, n);
        free(text);
    }
}

TEST(split_counts_utf16_units)
{
    /* 3000 emoji are 3000 code points but 6000 UTF-16 units. */
    char *text = repeat("😀", 3000);
    char **chunks;
    size_t n = split_checked(text, NS_TG_MAX_TEXT, &chunks);
    ASSERT(n >= 2);
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        ASSERT(visible(chunks[i]) <= NS_TG_MAX_TEXT);
        ASSERT_EQ(ns_utf8_invalid_at(chunks[i], strlen(chunks[i])), -1);
        total += visible(chunks[i]);
    }
    ASSERT_EQ(total, 6000);
    ns_tg_chunks_free(chunks, n);
    free(text);

    /* An emoji that would end one unit past the limit moves on whole,
     * also when written as an entity. */
    const char *wide[] = {"😀", "&#128512;", "&#x1F600;"};
    for (size_t w = 0; w < 3; w++) {
        char *as = repeat("a", NS_TG_MAX_TEXT - 1);
        ns_buf_t b;
        ns_buf_init(&b, (size_t)1 << 20);
        ns_buf_addf(&b, "%s%sz", as, wide[w]);
        char *html = ns_buf_take(&b);
        n = split_checked(html, NS_TG_MAX_TEXT, &chunks);
        ASSERT_EQ(n, 2);
        ASSERT_STREQ(chunks[0], as);
        ASSERT(strncmp(chunks[1], wide[w], strlen(wide[w])) == 0);
        ns_tg_chunks_free(chunks, n);
        free(html);
        free(as);
    }

    /* A BMP entity and a 3-byte character still count 1. */
    char *bmp = repeat("&#8364;€", 2048);
    n = split_checked(bmp, NS_TG_MAX_TEXT, &chunks);
    ASSERT_EQ(n, 1);
    ns_tg_chunks_free(chunks, n);
    free(bmp);
}

TEST(split_wide_character_over_tiny_limit)
{
    /* A limit of 1 cannot hold an emoji: one per chunk, no endless loop. */
    char **chunks;
    size_t n = ns_tg_split_html("😀😀x😀", 1, &chunks);
    ASSERT_EQ(n, 4);
    ASSERT_STREQ(chunks[0], "😀");
    ASSERT_STREQ(chunks[1], "😀");
    ASSERT_STREQ(chunks[2], "x");
    ASSERT_STREQ(chunks[3], "😀");
    ns_tg_chunks_free(chunks, n);
    n = split_checked("😀😀😀", 2, &chunks);
    ASSERT_EQ(n, 3);
    ns_tg_chunks_free(chunks, n);
}

TEST(split_single_long_word)
{
    char *word = repeat("x", 5000);
    char **chunks;
    size_t n = split_checked(word, NS_TG_MAX_TEXT, &chunks);
    ASSERT_EQ(n, 2);
    ASSERT_EQ(strlen(chunks[0]), 4096);
    ASSERT_EQ(strlen(chunks[1]), 904);
    ns_tg_chunks_free(chunks, n);
    free(word);
}

TEST(split_hard_boundary_tags)
{
    char **chunks;
    /* A closing tag right after the limit stays with its text... */
    size_t n = split_checked("<b>xxxxxxxxxx</b>yyyyy", 10, &chunks);
    ASSERT_EQ(n, 2);
    ASSERT_STREQ(chunks[0], "<b>xxxxxxxxxx</b>");
    ASSERT_STREQ(chunks[1], "yyyyy");
    ns_tg_chunks_free(chunks, n);
    /* ...an opening tag goes to the next chunk, never an empty pair. */
    n = split_checked("xxxxxxxxxx<i>yy</i>", 10, &chunks);
    ASSERT_EQ(n, 2);
    ASSERT_STREQ(chunks[0], "xxxxxxxxxx");
    ASSERT_STREQ(chunks[1], "<i>yy</i>");
    ns_tg_chunks_free(chunks, n);
    /* A stray '<' is one visible character, not a tag. */
    n = split_checked("a < b and c > d", 6, &chunks);
    ASSERT_EQ(n, 3);
    ASSERT_STREQ(chunks[0], "a < b ");
    ns_tg_chunks_free(chunks, n);
}

TEST(split_pre_block_at_newlines)
{
    char *lines = repeat("0123456789\n", 10);
    ns_buf_t b;
    ns_buf_init(&b, 4096);
    ns_buf_addf(&b, "<pre><code class=\"language-c\">%s</code></pre>", lines);
    char *html = ns_buf_take(&b);
    char **chunks;
    size_t n = split_checked(html, 50, &chunks);
    ASSERT_EQ(n, 3);
    for (size_t i = 0; i < n; i++)
        assert_balanced(chunks[i]);
    ASSERT_STREQ(chunks[1], "<pre><code class=\"language-c\">0123456789\n"
                            "0123456789\n0123456789\n0123456789\n</code>"
                            "</pre>");
    ns_tg_chunks_free(chunks, n);
    free(html);
    free(lines);
}

TEST(html_width_counts_what_telegram_counts)
{
    ASSERT_EQ(ns_tg_html_width(""), 0);
    ASSERT_EQ(ns_tg_html_width("<b>bold</b> &amp; <i>x</i>"), 8);
    /* An emoji is 2 UTF-16 units, as raw UTF-8 or as an entity. */
    ASSERT_EQ(ns_tg_html_width("🚀"), 2);
    ASSERT_EQ(ns_tg_html_width("&#128640;"), 2);
    ASSERT_EQ(ns_tg_html_width("é\n"), 2);
    /* A stray '<' is text. */
    ASSERT_EQ(ns_tg_html_width("a < b"), 5);
}

TEST(digest_fit_packs_whole_reports_only)
{
    size_t w[] = {1000, 1000, 1000, 1000, 1000};
    /* 4 reports + 3 separators of 2 = 4006 <= 4096; a fifth is 5008. */
    ASSERT_EQ(ns_tg_digest_fit(w, 5, 4096), 4);
    size_t exact[] = {2047, 2047};
    ASSERT_EQ(ns_tg_digest_fit(exact, 2, 4096), 2); /* 2047+2+2047 */
    size_t over[] = {2048, 2047};
    ASSERT_EQ(ns_tg_digest_fit(over, 2, 4096), 1);
    /* A report wider than a message still goes (it was split when
     * queued), alone. */
    size_t wide[] = {5000, 10};
    ASSERT_EQ(ns_tg_digest_fit(wide, 2, 4096), 1);
    ASSERT_EQ(ns_tg_digest_fit(w, 0, 4096), 0);
    ASSERT_EQ(ns_tg_digest_fit(w, 1, 10), 1);
}

TEST(digest_join_keeps_each_report_whole)
{
    const char *parts[] = {"<b>a</b> &amp;", "<i>b</i>", "c"};
    char *joined = ns_tg_digest_join(parts, 3);
    ASSERT_STREQ(joined, "<b>a</b> &amp;\n\n<i>b</i>\n\nc");
    assert_balanced(joined);
    ASSERT_EQ(ns_tg_html_width(joined), 3 + 2 + 1 + 2 + 1);
    free(joined);
    char *one = ns_tg_digest_join(parts + 2, 1);
    ASSERT_STREQ(one, "c");
    free(one);
}

NSTEST_MAIN
