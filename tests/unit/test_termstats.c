/* test_termstats.c: per-language term statistics (text/termstats.c):
 * counting, the exact binary form, and the property the stopword job
 * rests on: totals − a shard's old partial + its new partial equal a full
 * recount, on random edits, inserts and deletions. */
#include "ns/termstats.h"

#include <math.h>
#include <stdbool.h>

#include "ns/text.h"
#include "nstest.h"

static ns_error_t err;

static void add_doc(ns_termstats_t *s, const char *lang, const char *text)
{
    ASSERT_EQ(ns_termstats_doc_begin(s, lang, &err), NS_OK);
    const char *p = text;
    while (*p) {
        while (*p == ' ')
            p++;
        const char *w = p;
        while (*p && *p != ' ')
            p++;
        if (p > w)
            ASSERT_EQ(ns_termstats_word(s, w, (size_t)(p - w), &err), NS_OK);
    }
    ASSERT_EQ(ns_termstats_doc_end(s, &err), NS_OK);
}

TEST(counts_documents_words_and_n_log_n)
{
    ns_termstats_t *s = ns_termstats_new();
    add_doc(s, "en", "the cat the");
    add_doc(s, "en", "the dog");
    add_doc(s, "fr", "le chat");
    add_doc(s, NULL, "");
    ns_term_t t;
    ASSERT(ns_termstats_get(s, "en", "the", &t));
    ASSERT_EQ(t.df, 2);
    ASSERT_EQ(t.count, 3);
    ASSERT_EQ(t.nlogn, llround(2 * log(2) * NS_NLOGN_SCALE));
    ASSERT(ns_termstats_get(s, "en", "cat", &t));
    ASSERT_EQ(t.df, 1);
    ASSERT_EQ(t.nlogn, 0);
    ASSERT(!ns_termstats_get(s, "fr", "the", &t));
    ns_lang_stats_t l;
    ASSERT(ns_termstats_lang(s, "en", &l));
    ASSERT_EQ(l.docs, 2);
    ASSERT_EQ(l.words, 5);
    ASSERT(ns_termstats_lang(s, "", &l));
    ASSERT_EQ(l.docs, 1);
    ASSERT_EQ(l.words, 0);
    ASSERT_EQ(ns_termstats_terms(s), 5);
    ASSERT_EQ(ns_termstats_langs(s), 3);
    /* A word outside a document is an error, not a crash. */
    ASSERT_EQ(ns_termstats_word(s, "x", 1, &err), NS_ERR_INVALID);
    ns_termstats_destroy(s);
}

TEST(encoding_is_exact_and_canonical)
{
    ns_termstats_t *a = ns_termstats_new(), *b = ns_termstats_new();
    add_doc(a, "en", "alpha beta beta");
    add_doc(a, "de", "straße über");
    add_doc(b, "de", "straße über");
    add_doc(b, "en", "alpha beta beta");
    char *ea, *eb;
    size_t la, lb;
    ASSERT_EQ(ns_termstats_encode(a, &ea, &la, &err), NS_OK);
    ASSERT_EQ(ns_termstats_encode(b, &eb, &lb, &err), NS_OK);
    ASSERT_EQ(la, lb);
    ASSERT(memcmp(ea, eb, la) == 0);
    ns_termstats_t *c = ns_termstats_decode(ea, la, &err);
    ASSERT(c != NULL);
    ASSERT(ns_termstats_equal(a, c));
    /* Corrupt input is refused, whatever byte is wrong (the frame has a
     * checksum). */
    for (size_t i = 0; i < la; i++) {
        char *bad = malloc(la);
        memcpy(bad, ea, la);
        bad[i] ^= 0x5a;
        ns_termstats_t *d = ns_termstats_decode(bad, la, &err);
        if (d != NULL)
            NSTEST_FAIL("byte %zu flipped and still decoded", i);
        free(bad);
    }
    for (size_t n = 0; n < la; n++) {
        ns_termstats_t *d = ns_termstats_decode(ea, n, &err);
        ASSERT(d == NULL);
    }
    ASSERT(ns_termstats_decode("NSTS\x01garbage", 12, &err) == NULL);
    free(ea);
    free(eb);
    ns_termstats_destroy(a);
    ns_termstats_destroy(b);
    ns_termstats_destroy(c);
}

typedef struct walk {
    char prev[64];
    int n;
    bool in_order;
} walk_t;

static void walk_term(const ns_term_t *t, void *arg)
{
    walk_t *w = arg;
    char key[64];
    /* "lang\x01term": bytewise order of (lang, term), as COLLATE "C". */
    snprintf(key, sizeof(key), "%s\x01%s", t->lang, t->term);
    if (w->n > 0 && strcmp(w->prev, key) >= 0)
        w->in_order = false;
    snprintf(w->prev, sizeof(w->prev), "%s", key);
    w->n++;
}

TEST(the_ordered_walk_visits_every_term_by_language_then_bytes)
{
    ns_termstats_t *s = ns_termstats_new();
    add_doc(s, "fr", "zèbre abeille été a");
    add_doc(s, "en", "b a ab aa ba");
    add_doc(s, "de", "über Zug zug");
    add_doc(s, "", "x");
    walk_t w = {.in_order = true};
    ASSERT_EQ(ns_termstats_each_sorted(s, walk_term, &w, &err), NS_OK);
    ASSERT_EQ(w.n, (int)ns_termstats_terms(s));
    ASSERT(w.in_order);
    ASSERT_STREQ(w.prev, "fr\x01été");
    ns_termstats_destroy(s);
}

TEST(the_ordered_walk_sorts_terms_alike_in_their_first_16_bytes)
{
    /* The sort compares the entries' 16-byte heads first: terms of 1 to
     * 40 bytes over a two-letter alphabet share long prefixes, are
     * prefixes of one another and differ after byte 16, and must come out
     * in bytewise order all the same (and the view's walk and encoding
     * agree with the one-shot ones). */
    ns_termstats_t *s = ns_termstats_new();
    uint32_t seed = 7;
    char w[41];
    ASSERT_EQ(ns_termstats_doc_begin(s, "en", &err), NS_OK);
    for (int i = 0; i < 3000; i++) {
        seed = seed * 1103515245u + 12345u;
        size_t len = 1 + (seed >> 16) % 40;
        for (size_t k = 0; k < len; k++) {
            seed = seed * 1103515245u + 12345u;
            /* mostly 'a', so that heads are often equal */
            w[k] = (seed >> 16) % 5 == 0 ? 'b' : 'a';
        }
        ASSERT_EQ(ns_termstats_word(s, w, len, &err), NS_OK);
    }
    ASSERT_EQ(ns_termstats_doc_end(s, &err), NS_OK);
    walk_t w1 = {.in_order = true};
    ASSERT_EQ(ns_termstats_each_sorted(s, walk_term, &w1, &err), NS_OK);
    ASSERT_EQ(w1.n, (int)ns_termstats_terms(s));
    ASSERT(w1.n > 1000);
    ASSERT(w1.in_order);
    ns_termstats_view_t *v = ns_termstats_view_new(s, &err);
    ASSERT(v != NULL);
    ASSERT_EQ(ns_termstats_view_terms(v), ns_termstats_terms(s));
    walk_t w2 = {.in_order = true};
    ns_termstats_view_each(v, walk_term, &w2);
    ASSERT(w2.in_order && w2.n == w1.n);
    char *e1, *e2;
    size_t l1, l2;
    ASSERT_EQ(ns_termstats_view_encode(v, &e1, &l1, &err), NS_OK);
    ASSERT_EQ(ns_termstats_encode(s, &e2, &l2, &err), NS_OK);
    ASSERT(l1 == l2 && memcmp(e1, e2, l1) == 0);
    free(e1);
    free(e2);
    ns_termstats_view_destroy(v);
    ns_termstats_destroy(s);
}

TEST(partials_merge_straight_from_their_binary_form)
{
    ns_termstats_t *a = ns_termstats_new(), *b = ns_termstats_new();
    add_doc(a, "en", "one two two");
    add_doc(a, "fr", "un deux");
    add_doc(b, "en", "two three");
    add_doc(b, "de", "zwei");
    char *ea, *eb;
    size_t la, lb;
    ASSERT_EQ(ns_termstats_encode(a, &ea, &la, &err), NS_OK);
    ASSERT_EQ(ns_termstats_encode(b, &eb, &lb, &err), NS_OK);
    /* the same as decoding and merging the tables */
    ns_termstats_t *sum = ns_termstats_new(), *ref = ns_termstats_new();
    ASSERT_EQ(ns_termstats_merge_encoded(sum, ea, la, 1, &err), NS_OK);
    ASSERT_EQ(ns_termstats_merge_encoded(sum, eb, lb, 1, &err), NS_OK);
    ASSERT_EQ(ns_termstats_merge(ref, a, 1, &err), NS_OK);
    ASSERT_EQ(ns_termstats_merge(ref, b, 1, &err), NS_OK);
    ASSERT(ns_termstats_equal(sum, ref));
    ASSERT_EQ(ns_termstats_langs(sum), 3);
    /* minus b's partial: a again, byte for byte */
    ASSERT_EQ(ns_termstats_merge_encoded(sum, eb, lb, -1, &err), NS_OK);
    ASSERT(ns_termstats_equal(sum, a));
    char *e;
    size_t l;
    ASSERT_EQ(ns_termstats_encode(sum, &e, &l, &err), NS_OK);
    ASSERT(l == la && memcmp(e, ea, l) == 0);
    free(e);
    /* a corrupt or truncated partial is refused */
    ASSERT_EQ(ns_termstats_merge_encoded(sum, ea, la - 3, 1, &err),
              NS_ERR_INVALID);
    ASSERT_EQ(ns_termstats_merge_encoded(sum, "NSTS\x01garbage", 12, 1, &err),
              NS_ERR_INVALID);
    ASSERT_EQ(ns_termstats_merge_encoded(sum, "nope", 4, 1, &err),
              NS_ERR_INVALID);
    free(ea);
    free(eb);
    ns_termstats_destroy(a);
    ns_termstats_destroy(b);
    ns_termstats_destroy(sum);
    ns_termstats_destroy(ref);
}

TEST(subtracting_a_partial_removes_its_terms)
{
    ns_termstats_t *a = ns_termstats_new(), *b = ns_termstats_new();
    add_doc(a, "en", "one two");
    add_doc(b, "en", "two three");
    ns_termstats_t *sum = ns_termstats_new();
    ASSERT_EQ(ns_termstats_merge(sum, a, 1, &err), NS_OK);
    ASSERT_EQ(ns_termstats_merge(sum, b, 1, &err), NS_OK);
    ASSERT_EQ(ns_termstats_terms(sum), 3);
    ASSERT_EQ(ns_termstats_merge(sum, b, -1, &err), NS_OK);
    ASSERT_EQ(ns_termstats_terms(sum), 2);
    ASSERT(ns_termstats_equal(sum, a));
    char *e1, *e2;
    size_t l1, l2;
    ASSERT_EQ(ns_termstats_encode(sum, &e1, &l1, &err), NS_OK);
    ASSERT_EQ(ns_termstats_encode(a, &e2, &l2, &err), NS_OK);
    ASSERT(l1 == l2 && memcmp(e1, e2, l1) == 0);
    free(e1);
    free(e2);
    ns_termstats_destroy(a);
    ns_termstats_destroy(b);
    ns_termstats_destroy(sum);
}

/* ---- incremental = full, on random edits ---------------------------- */

enum { DOCS = 400, SHARDS = 8, ROUNDS = 12 };

typedef struct corpus {
    bool present[DOCS];
    int lang[DOCS];
    char text[DOCS][200];
} corpus_t;

static const char *const langs[] = {"en", "fr", "de", "ru", "zh", ""};
static const char *const vocab[] = {
    "the",  "of",    "and",     "a",    "to",     "le",      "la",
    "de",   "der",   "die",     "und",  "и",      "в",       "не",
    "的",   "是",    "了",      "cat",  "straße", "город",   "données",
    "学生", "zebra", "quantum", "ОДОС", "Ａ",     "l'homme", "don't",
};

static unsigned rnd(unsigned *seed)
{
    *seed = *seed * 1103515245u + 12345u;
    return (*seed >> 16) & 0x7fff;
}

static void random_doc(corpus_t *c, int d, unsigned *seed)
{
    c->present[d] = true;
    c->lang[d] = (int)(rnd(seed) % 6);
    size_t n = rnd(seed) % 12, len = 0;
    c->text[d][0] = '\0';
    for (size_t i = 0; i < n; i++) {
        /* Zipf-like: small indexes far more often. */
        unsigned r = rnd(seed) % 1000;
        size_t w =
            (size_t)(r * r) / 1000 * (sizeof(vocab) / sizeof(vocab[0])) / 1000;
        len += (size_t)snprintf(c->text[d] + len, sizeof(c->text[d]) - len,
                                "%s%s", i ? " " : "", vocab[w]);
    }
}

static void word_cb(const char *w, size_t n, void *arg)
{
    ns_termstats_word(arg, w, n, &err);
}

/* Counts shard k (documents d with d % SHARDS == k) through the tokenizer. */
static ns_termstats_t *count_shard(const corpus_t *c, int k,
                                   ns_tokenizer_t *tok)
{
    ns_termstats_t *s = ns_termstats_new();
    for (int d = k; d < DOCS; d += SHARDS) {
        if (!c->present[d])
            continue;
        ns_text_stats_t ts = {0};
        ASSERT_EQ(ns_termstats_doc_begin(s, langs[c->lang[d]], &err), NS_OK);
        ASSERT_EQ(ns_tokenize(tok, langs[c->lang[d]], c->text[d],
                              strlen(c->text[d]), word_cb, s, &ts, &err),
                  NS_OK);
        ASSERT_EQ(ns_termstats_doc_end(s, &err), NS_OK);
    }
    return s;
}

TEST(incremental_equals_full_on_random_edits)
{
    static corpus_t c;
    unsigned seed = 20261130;
    ns_tokenizer_t *tok = ns_tokenizer_new(&err);
    for (int d = 0; d < DOCS; d++)
        if (rnd(&seed) % 4 != 0)
            random_doc(&c, d, &seed);
    ns_termstats_t *part[SHARDS], *totals = ns_termstats_new();
    for (int k = 0; k < SHARDS; k++) {
        part[k] = count_shard(&c, k, tok);
        ASSERT_EQ(ns_termstats_merge(totals, part[k], 1, &err), NS_OK);
    }
    for (int round = 0; round < ROUNDS; round++) {
        /* Random edits, inserts and deletions; remember the shards hit. */
        bool dirty[SHARDS] = {false};
        int edits = 1 + (int)(rnd(&seed) % 30);
        for (int e = 0; e < edits; e++) {
            int d = (int)(rnd(&seed) % DOCS);
            if (c.present[d] && rnd(&seed) % 3 == 0)
                c.present[d] = false; /* deleted */
            else
                random_doc(&c, d, &seed); /* edited or inserted */
            dirty[d % SHARDS] = true;
        }
        /* Incremental: only the dirty shards are counted again. */
        for (int k = 0; k < SHARDS; k++) {
            if (!dirty[k])
                continue;
            ns_termstats_t *fresh = count_shard(&c, k, tok);
            ASSERT_EQ(ns_termstats_merge(totals, part[k], -1, &err), NS_OK);
            ASSERT_EQ(ns_termstats_merge(totals, fresh, 1, &err), NS_OK);
            ns_termstats_destroy(part[k]);
            part[k] = fresh;
        }
        /* Full: everything counted from scratch. */
        ns_termstats_t *full = ns_termstats_new();
        for (int k = 0; k < SHARDS; k++) {
            ns_termstats_t *p = count_shard(&c, k, tok);
            ASSERT_EQ(ns_termstats_merge(full, p, 1, &err), NS_OK);
            ns_termstats_destroy(p);
        }
        ASSERT(ns_termstats_equal(totals, full));
        char *a, *b;
        size_t la, lb;
        ASSERT_EQ(ns_termstats_encode(totals, &a, &la, &err), NS_OK);
        ASSERT_EQ(ns_termstats_encode(full, &b, &lb, &err), NS_OK);
        ASSERT(la == lb && memcmp(a, b, la) == 0);
        /* And through the binary form, as the partials are stored. */
        ns_termstats_t *back = ns_termstats_decode(a, la, &err);
        ASSERT(back != NULL && ns_termstats_equal(back, full));
        ns_termstats_destroy(back);
        free(a);
        free(b);
        ns_termstats_destroy(full);
    }
    ASSERT(ns_termstats_terms(totals) > 10);
    for (int k = 0; k < SHARDS; k++)
        ns_termstats_destroy(part[k]);
    ns_termstats_destroy(totals);
    ns_tokenizer_destroy(tok);
}

TEST(a_document_grows_the_table_and_an_abandoned_one_leaves_nothing)
{
    /* One document with more distinct words than the table first holds
     * (it grows while the document is open), some repeated, one longer
     * than the words the counter buffers; then an abandoned document. */
    ns_termstats_t *s = ns_termstats_new();
    ASSERT_EQ(ns_termstats_doc_begin(s, "en", &err), NS_OK);
    char w[160];
    for (int i = 0; i < 5000; i++) {
        int n = snprintf(w, sizeof(w), "w%d", i);
        ASSERT_EQ(ns_termstats_word(s, w, (size_t)n, &err), NS_OK);
        if (i % 7 == 0)
            ASSERT_EQ(ns_termstats_word(s, w, (size_t)n, &err), NS_OK);
    }
    memset(w, 'L', 150);
    for (int i = 0; i < 3; i++)
        ASSERT_EQ(ns_termstats_word(s, w, 150, &err), NS_OK);
    ASSERT_EQ(ns_termstats_doc_end(s, &err), NS_OK);
    ASSERT_EQ(ns_termstats_terms(s), 5001);
    ns_term_t t;
    ASSERT(ns_termstats_get(s, "en", "w0", &t));
    ASSERT_EQ(t.df, 1);
    ASSERT_EQ(t.count, 2);
    ASSERT_EQ(t.nlogn, llround(2 * log(2) * NS_NLOGN_SCALE));
    ASSERT(ns_termstats_get(s, "en", "w4999", &t));
    ASSERT_EQ(t.count, 1);
    w[150] = '\0';
    ASSERT(ns_termstats_get(s, "en", w, &t));
    ASSERT_EQ(t.count, 3);
    ASSERT_EQ(t.nlogn, llround(3 * log(3) * NS_NLOGN_SCALE));
    /* begun, given words, never ended: replaced by the next document */
    ASSERT_EQ(ns_termstats_doc_begin(s, "en", &err), NS_OK);
    for (int i = 0; i < 3000; i++) {
        int n = snprintf(w, sizeof(w), "gone%d", i);
        ASSERT_EQ(ns_termstats_word(s, w, (size_t)n, &err), NS_OK);
    }
    add_doc(s, "en", "w1 w1 w1");
    ASSERT_EQ(ns_termstats_terms(s), 5001);
    ASSERT(!ns_termstats_get(s, "en", "gone1", &t));
    ASSERT(ns_termstats_get(s, "en", "w1", &t));
    ASSERT_EQ(t.df, 2);
    ASSERT_EQ(t.count, 4);
    ns_lang_stats_t l;
    ASSERT(ns_termstats_lang(s, "en", &l));
    ASSERT_EQ(l.docs, 2);
    ASSERT_EQ(l.words, 5000 + 715 + 3 + 3);
    /* and the same counts encoded and decoded */
    char *e;
    size_t el;
    ASSERT_EQ(ns_termstats_encode(s, &e, &el, &err), NS_OK);
    ns_termstats_t *d = ns_termstats_decode(e, el, &err);
    ASSERT(d != NULL && ns_termstats_equal(s, d));
    free(e);
    ns_termstats_destroy(d);
    ns_termstats_destroy(s);
}

TEST(terms_alike_in_their_first_bytes_stay_apart)
{
    /* An entry keeps a term's first 16 bytes and compares the rest in the
     * arena: terms of 15 to 70 bytes that differ only in their last byte,
     * or only in their length, or only after a NUL byte, are distinct
     * (56 lengths, 3 last bytes each). */
    ns_termstats_t *s = ns_termstats_new();
    char w[80];
    memset(w, 'a', sizeof(w));
    ASSERT_EQ(ns_termstats_doc_begin(s, "en", &err), NS_OK);
    for (size_t len = 15; len <= 70; len++)
        for (char last = 'a'; last <= 'c'; last++) {
            w[len - 1] = last;
            for (int rep = 0; rep <= last - 'a'; rep++)
                ASSERT_EQ(ns_termstats_word(s, w, len, &err), NS_OK);
            w[len - 1] = 'a';
        }
    ASSERT_EQ(ns_termstats_doc_end(s, &err), NS_OK);
    ASSERT_EQ(ns_termstats_terms(s), 56 * 3);
    for (size_t len = 15; len <= 70; len++) {
        w[len] = '\0';
        w[len - 1] = 'c';
        ns_term_t t;
        ASSERT(ns_termstats_get(s, "en", w, &t));
        ASSERT_EQ(t.count, 3);
        ASSERT_EQ(strlen(t.term), len);
        w[len - 1] = 'a';
        w[len] = 'a';
    }
    /* and the same through the binary form */
    char *enc = NULL;
    size_t enc_len = 0;
    ASSERT_EQ(ns_termstats_encode(s, &enc, &enc_len, &err), NS_OK);
    ns_termstats_t *d = ns_termstats_decode(enc, enc_len, &err);
    ASSERT(d != NULL);
    ASSERT(ns_termstats_equal(s, d));
    free(enc);
    ns_termstats_destroy(d);
    ns_termstats_destroy(s);
    /* (ns_termstats_get and _equal take NUL-terminated terms: these two
     * are counted apart, and only counted) */
    s = ns_termstats_new();
    char nul[20] = "abcdefghijklmnopqrs";
    ASSERT_EQ(ns_termstats_doc_begin(s, "en", &err), NS_OK);
    nul[17] = '\0';
    ASSERT_EQ(ns_termstats_word(s, nul, 19, &err), NS_OK);
    nul[17] = 'r';
    ASSERT_EQ(ns_termstats_word(s, nul, 19, &err), NS_OK);
    ASSERT_EQ(ns_termstats_doc_end(s, &err), NS_OK);
    ASSERT_EQ(ns_termstats_terms(s), 2);
    ns_termstats_destroy(s);
}

TEST(interleaved_languages_count_apart)
{
    ns_termstats_t *s = ns_termstats_new();
    for (int i = 0; i < 300; i++)
        add_doc(s,
                i % 3 == 0   ? "fr"
                : i % 3 == 1 ? "de"
                             : NULL,
                "die le the die");
    ns_term_t t;
    ASSERT(ns_termstats_get(s, "de", "die", &t));
    ASSERT_EQ(t.df, 100);
    ASSERT_EQ(t.count, 200);
    ASSERT(ns_termstats_get(s, "", "le", &t));
    ASSERT_EQ(t.df, 100);
    ASSERT_EQ(ns_termstats_terms(s), 9);
    ASSERT_EQ(ns_termstats_langs(s), 3);
    ns_termstats_destroy(s);
}

NSTEST_MAIN
