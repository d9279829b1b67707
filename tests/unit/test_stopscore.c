/* test_stopscore.c: stopword scores from the additive statistics: the
 * Poisson null model's E[n ln n], that words spread like chance score
 * high while topical words of the same frequency do not, and the ranked
 * lists: min_words honoured, the set their prefix, ties in one order
 * whatever the order of the documents, a small vocabulary. */
#include "ns/stopscore.h"

#include <math.h>
#include <stdio.h>

#include "nstest.h"

static ns_error_t err;

static void word(ns_termstats_t *s, const char *w, int times)
{
    for (int i = 0; i < times; i++)
        ASSERT_EQ(ns_termstats_word(s, w, strlen(w), &err), NS_OK);
}

/* 1,000 English documents: "the" three times in each, "and" once in half
 * of them, "quantum" 30 times in ten, "cat" once in every tenth, and a
 * word of its own in each. */
static ns_termstats_t *corpus(void)
{
    ns_termstats_t *s = ns_termstats_new();
    for (int d = 0; d < 1000; d++) {
        ASSERT_EQ(ns_termstats_doc_begin(s, "en", &err), NS_OK);
        word(s, "the", 3);
        if (d % 2 == 0)
            word(s, "and", 1);
        if (d < 10)
            word(s, "quantum", 30);
        if (d % 10 == 0)
            word(s, "cat", 1);
        char own[16];
        snprintf(own, sizeof(own), "w%d", d);
        word(s, own, 1);
        ASSERT_EQ(ns_termstats_doc_end(s, &err), NS_OK);
    }
    /* A language with too few documents for any verdict. */
    ASSERT_EQ(ns_termstats_doc_begin(s, "fr", &err), NS_OK);
    word(s, "le", 5);
    ASSERT_EQ(ns_termstats_doc_end(s, &err), NS_OK);
    return s;
}

typedef struct picked {
    char terms[8][32];
    double scores[8], info[8];
    int n;
    int quantum_rank; /* -1: not seen */
    double quantum_score, quantum_info;
    int seen;
} picked_t;

static void collect(const ns_stopword_t *w, void *arg)
{
    picked_t *p = arg;
    if (strcmp(w->term, "quantum") == 0) {
        p->quantum_rank = p->seen;
        p->quantum_score = w->score;
        p->quantum_info = w->info;
    }
    p->seen++;
    if (p->n < 8) {
        snprintf(p->terms[p->n], sizeof(p->terms[0]), "%s", w->term);
        p->scores[p->n] = w->score;
        p->info[p->n] = w->info;
        p->n++;
    }
}

TEST(poisson_n_log_n)
{
    /* Direct sums for small lambda. */
    double l = 0.5, direct = 0, p = exp(-l);
    for (int k = 1; k < 60; k++) {
        p *= l / k;
        direct += p * k * log(k);
    }
    ASSERT(fabs(ns_poisson_nlogn(0.5) - direct) < 1e-12);
    ASSERT(ns_poisson_nlogn(0) == 0);
    /* The asymptotic series takes over smoothly. */
    double below = ns_poisson_nlogn(199.999), above = ns_poisson_nlogn(200.001);
    ASSERT(fabs(above - below) / below < 1e-4);
    /* Jensen: E[n ln n] >= lambda ln lambda. */
    ASSERT(ns_poisson_nlogn(7) > 7 * log(7));
}

TEST(chance_spread_words_score_high_topical_ones_do_not)
{
    ns_termstats_t *s = corpus();
    ns_stop_params_t params = {.top_n = 10, .min_score = 0.05, .min_docs = 100};
    picked_t got = {0};
    ASSERT_EQ(ns_stopwords_select(s, "en", &params, collect, &got, &err), 3);
    ASSERT_STREQ(got.terms[0], "the");
    ASSERT_STREQ(got.terms[1], "and");
    ASSERT_STREQ(got.terms[2], "cat");
    ASSERT(got.scores[0] == 1.0); /* in every document, evenly */
    ASSERT(fabs(got.scores[1] - 0.5) < 1e-9);
    ASSERT(got.scores[2] > 0.09 && got.scores[2] <= 0.1);
    /* "quantum" is as frequent as "cat" in occurrences but gathered in a
     * few documents: far from chance, not a stopword. */
    params = (ns_stop_params_t){.top_n = 5000, .min_score = 0, .min_docs = 100};
    memset(&got, 0, sizeof(got));
    got.quantum_rank = -1;
    ns_stopwords_select(s, "en", &params, collect, &got, &err);
    ASSERT_EQ(got.seen, 1004);
    /* Below even the words seen once (which no spread can tell apart
     * from chance, and which the df / D factor keeps low): last. */
    ASSERT_EQ(got.quantum_rank, 1003);
    ASSERT(got.quantum_info > 2.0);
    ASSERT(got.quantum_score < 0.001);
    /* top_n and min_score cut; a small language gets nothing. */
    params = (ns_stop_params_t){.top_n = 1, .min_score = 0.05, .min_docs = 100};
    memset(&got, 0, sizeof(got));
    ASSERT_EQ(ns_stopwords_select(s, "en", &params, collect, &got, &err), 1);
    ASSERT_STREQ(got.terms[0], "the");
    ASSERT_EQ(ns_stopwords_select(s, "fr", &params, collect, &got, &err), 0);
    ASSERT_EQ(ns_stopwords_select(s, "xx", &params, collect, &got, &err), 0);
    ns_termstats_destroy(s);
}

/* ---- the ranked lists --------------------------------------------------- */

typedef struct ranked {
    char lang[8][8];
    char terms[8][1200][32];
    double scores[8][1200];
    size_t n_ranked[8], n_set[8];
    int n;
} ranked_t;

static void take_ranked(const char *lang, const ns_stopword_t *words,
                        size_t n_ranked, size_t n_set, void *arg)
{
    ranked_t *r = arg;
    ASSERT(r->n < 8);
    ASSERT(n_ranked <= 1200);
    int i = r->n++;
    snprintf(r->lang[i], sizeof(r->lang[i]), "%s", lang);
    r->n_ranked[i] = n_ranked;
    r->n_set[i] = n_set;
    for (size_t k = 0; k < n_ranked; k++) {
        snprintf(r->terms[i][k], sizeof(r->terms[i][k]), "%s", words[k].term);
        r->scores[i][k] = words[k].score;
    }
}

static ranked_t *rank(const ns_termstats_t *s, const ns_stop_params_t *p)
{
    ranked_t *r = calloc(1, sizeof(*r));
    ASSERT(r != NULL);
    ASSERT_EQ(ns_stopwords_rank_all(s, p, take_ranked, r, &err), r->n);
    return r;
}

static int lang_at(const ranked_t *r, const char *lang)
{
    for (int i = 0; i < r->n; i++)
        if (strcmp(r->lang[i], lang) == 0)
            return i;
    return -1;
}

TEST(ranked_list_has_min_words_and_the_set_as_its_prefix)
{
    ns_termstats_t *s = corpus();
    ns_stop_params_t p = {
        .top_n = 10, .min_score = 0.05, .min_docs = 100, .min_words = 50};
    picked_t set = {0};
    ASSERT_EQ(ns_stopwords_select(s, "en", &p, collect, &set, &err), 3);
    ranked_t *r = rank(s, &p);
    ASSERT_EQ(r->n, 1); /* "fr" has too few documents for any verdict */
    ASSERT_STREQ(r->lang[0], "en");
    ASSERT_EQ(r->n_set[0], 3);
    ASSERT_EQ(r->n_ranked[0], 50);
    for (int k = 0; k < 3; k++) {
        ASSERT_STREQ(r->terms[0][k], set.terms[k]);
        ASSERT(r->scores[0][k] == set.scores[k]);
    }
    /* Past the set: below the threshold, in score order. */
    for (int k = 3; k < 50; k++) {
        ASSERT(r->scores[0][k] < 0.05);
        ASSERT(r->scores[0][k] <= r->scores[0][k - 1]);
    }
    free(r);
    /* top_n cuts the set, not the list; min_words 0 is the set alone; a
     * list never shorter than its set. */
    p = (ns_stop_params_t){
        .top_n = 1, .min_score = 0.05, .min_docs = 100, .min_words = 20};
    r = rank(s, &p);
    ASSERT_EQ(r->n_set[0], 1);
    ASSERT_EQ(r->n_ranked[0], 20);
    ASSERT_STREQ(r->terms[0][0], "the");
    ASSERT_STREQ(r->terms[0][1], "and");
    free(r);
    p = (ns_stop_params_t){
        .top_n = 10, .min_score = 0.05, .min_docs = 100, .min_words = 0};
    r = rank(s, &p);
    ASSERT_EQ(r->n_ranked[0], 3);
    free(r);
    p = (ns_stop_params_t){
        .top_n = 10, .min_score = 0.05, .min_docs = 100, .min_words = 2};
    r = rank(s, &p);
    ASSERT_EQ(r->n_set[0], 3);
    ASSERT_EQ(r->n_ranked[0], 3);
    free(r);
    ns_termstats_destroy(s);
}

/* The corpus of corpus(), its documents in reverse order, in two halves
 * merged. */
static ns_termstats_t *corpus_reversed_in_halves(void)
{
    ns_termstats_t *halves[2] = {ns_termstats_new(), ns_termstats_new()};
    for (int d = 999; d >= 0; d--) {
        ns_termstats_t *s = halves[d % 2];
        ASSERT_EQ(ns_termstats_doc_begin(s, "en", &err), NS_OK);
        char own[16];
        snprintf(own, sizeof(own), "w%d", d);
        word(s, own, 1);
        if (d % 10 == 0)
            word(s, "cat", 1);
        if (d < 10)
            word(s, "quantum", 30);
        if (d % 2 == 0)
            word(s, "and", 1);
        word(s, "the", 3);
        ASSERT_EQ(ns_termstats_doc_end(s, &err), NS_OK);
    }
    ASSERT_EQ(ns_termstats_doc_begin(halves[1], "fr", &err), NS_OK);
    word(halves[1], "le", 5);
    ASSERT_EQ(ns_termstats_doc_end(halves[1], &err), NS_OK);
    ASSERT_EQ(ns_termstats_merge(halves[1], halves[0], 1, &err), NS_OK);
    ns_termstats_destroy(halves[0]);
    return halves[1];
}

TEST(ties_are_broken_in_one_order_whatever_the_order_of_the_documents)
{
    ns_termstats_t *a = corpus(), *b = corpus_reversed_in_halves();
    ASSERT(ns_termstats_equal(a, b));
    ns_stop_params_t p = {
        .top_n = 200, .min_score = 0.05, .min_docs = 100, .min_words = 1000};
    ranked_t *ra = rank(a, &p), *rb = rank(b, &p);
    ASSERT_EQ(ra->n_ranked[0], 1000);
    ASSERT_EQ(rb->n_ranked[0], 1000);
    /* "the", "and", "cat", then the words seen once: "w0" to "w99" of
     * one score, "w100" to "w999" of another (four letters: brevity),
     * each group by its bytes, descending (as ZREVRANGE orders equal
     * scores); the three cut are "w100", "w101", "w102". */
    ASSERT_STREQ(ra->terms[0][3], "w99");
    ASSERT_STREQ(ra->terms[0][4], "w98");
    ASSERT_STREQ(ra->terms[0][13], "w9");
    ASSERT_STREQ(ra->terms[0][103], "w999");
    ASSERT_STREQ(ra->terms[0][999], "w103");
    for (int k = 4; k < 1000; k++) {
        if (ra->scores[0][k] == ra->scores[0][k - 1])
            ASSERT(strcmp(ra->terms[0][k - 1], ra->terms[0][k]) > 0);
        else
            ASSERT(ra->scores[0][k] < ra->scores[0][k - 1]);
    }
    ASSERT(ra->scores[0][102] == ra->scores[0][3]);
    ASSERT(ra->scores[0][103] < ra->scores[0][102]);
    for (int k = 0; k < 1000; k++) {
        ASSERT_STREQ(ra->terms[0][k], rb->terms[0][k]);
        ASSERT(ra->scores[0][k] == rb->scores[0][k]);
    }
    free(ra);
    free(rb);
    ns_termstats_destroy(a);
    ns_termstats_destroy(b);
}

TEST(a_small_vocabulary_gives_a_shorter_list)
{
    /* 150 documents of five words: the whole vocabulary, fewer than
     * min_words. */
    static const char *const five[] = {"a", "b", "c", "d", "e"};
    ns_termstats_t *s = ns_termstats_new();
    for (int d = 0; d < 150; d++) {
        ASSERT_EQ(ns_termstats_doc_begin(s, "xx", &err), NS_OK);
        for (int k = 0; k <= d % 5; k++)
            word(s, five[k], 1);
        ASSERT_EQ(ns_termstats_doc_end(s, &err), NS_OK);
    }
    ns_stop_params_t p = {
        .top_n = 200, .min_score = 0.5, .min_docs = 100, .min_words = 200};
    ranked_t *r = rank(s, &p);
    ASSERT_EQ(r->n, 1);
    ASSERT_EQ(r->n_ranked[0], 5);
    /* df 150, 120, 90, 60, 30 of 150: the threshold 0.5 keeps three. */
    ASSERT_EQ(r->n_set[0], 3);
    for (int k = 0; k < 5; k++)
        ASSERT_STREQ(r->terms[0][k], five[k]);
    free(r);
    ns_termstats_destroy(s);
}

TEST(long_words_and_words_of_another_script_score_lower)
{
    /* Russian documents: every one has "и" and "программа" once (same df,
     * same spread) and "s" (a Latin letter, as in "%s") once. */
    ns_termstats_t *s = ns_termstats_new();
    for (int d = 0; d < 200; d++) {
        ASSERT_EQ(ns_termstats_doc_begin(s, "ru", &err), NS_OK);
        word(s, "и", 1);
        word(s, "программа", 1);
        word(s, "s", 1);
        word(s, "дом", 2);
        word(s, "кот", 2);
        ASSERT_EQ(ns_termstats_doc_end(s, &err), NS_OK);
    }
    ns_stop_params_t p = {
        .top_n = 10, .min_score = 0.05, .min_docs = 100, .min_words = 10};
    ranked_t *r = rank(s, &p);
    ASSERT_EQ(r->n_ranked[0], 5);
    int at_i = -1, at_long = -1, at_s = -1;
    for (size_t k = 0; k < r->n_ranked[0]; k++) {
        if (strcmp(r->terms[0][k], "и") == 0)
            at_i = (int)k;
        if (strcmp(r->terms[0][k], "программа") == 0)
            at_long = (int)k;
        if (strcmp(r->terms[0][k], "s") == 0)
            at_s = (int)k;
    }
    ASSERT(r->scores[0][at_i] == 1.0);
    /* Nine letters: (3 / 9)². */
    ASSERT(fabs(r->scores[0][at_long] - 1.0 / 9) < 1e-12);
    /* One occurrence in seven is Latin: (1/7) / 0.3 of a native word. */
    ASSERT(fabs(r->scores[0][at_s] - (1.0 / 7) / 0.3) < 1e-12);
    ASSERT(at_i < at_s && at_s < at_long);
    ASSERT_EQ(lang_at(r, "ru"), 0);
    free(r);
    ns_termstats_destroy(s);
}

NSTEST_MAIN
