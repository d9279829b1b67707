/* test_stopscore.c: stopword scores from the additive statistics: the
 * Poisson null model's E[n ln n], and that words spread like chance score
 * high while topical words of the same frequency do not. */
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

NSTEST_MAIN
