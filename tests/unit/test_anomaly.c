/* test_anomaly.c: spikes against a robust baseline, EWMA while history is
 * short, bursts of new or rare templates, severity from level and
 * magnitude (text/anomaly.c). */
#include <string.h>

#include "ns/anomaly.h"
#include "nstest.h"

TEST(median)
{
    double a[] = {5, 1, 3};
    ASSERT(ns_anomaly_median(a, 3) == 3);
    double b[] = {4, 1, 3, 2};
    ASSERT(ns_anomaly_median(b, 4) == 2.5);
    ASSERT(ns_anomaly_median(b, 0) == 0);
}

TEST(spike_against_median_and_mad)
{
    int64_t days[] = {40, 38, 45, 41, 39, 44, 42};
    ns_anomaly_t a =
        ns_anomaly_judge(400, days, 7, NULL, 0, 10000, NS_LOGLEVEL_ERROR, NULL);
    ASSERT_EQ(a.kind, NS_ANOMALY_SPIKE);
    ASSERT_STREQ(a.method, "median/MAD");
    ASSERT(a.baseline == 41);
    ASSERT(a.score > 12);
    /* error level, ten times the baseline: one step up, critical */
    ASSERT_EQ(a.severity, NS_SEVERITY_CRITICAL);
    /* Within the usual spread: nothing. */
    a = ns_anomaly_judge(47, days, 7, NULL, 0, 10000, NS_LOGLEVEL_ERROR, NULL);
    ASSERT_EQ(a.kind, NS_ANOMALY_NONE);
}

TEST(one_past_incident_does_not_hide_the_next)
{
    /* A mean/sd baseline would be dragged up by the 900; the median is
     * not. */
    int64_t days[] = {20, 22, 900, 19, 21, 20, 23};
    ns_anomaly_t a =
        ns_anomaly_judge(300, days, 7, NULL, 0, 10000, NS_LOGLEVEL_INFO, NULL);
    ASSERT_EQ(a.kind, NS_ANOMALY_SPIKE);
    ASSERT(a.baseline == 21);
    /* info level, large: warning */
    ASSERT_EQ(a.severity, NS_SEVERITY_WARNING);
}

TEST(small_counts_and_flat_histories)
{
    int64_t flat[] = {2, 2, 2, 2, 2, 2};
    /* Below min_count: never a spike. */
    ns_anomaly_t a =
        ns_anomaly_judge(9, flat, 6, NULL, 0, 100, NS_LOGLEVEL_CRITICAL, NULL);
    ASSERT_EQ(a.kind, NS_ANOMALY_NONE);
    /* A flat history has MAD 0: the Poisson floor keeps 12 vs 2 sane but
     * still a spike (score 10/1.41 > 6, ratio 6). */
    a = ns_anomaly_judge(12, flat, 6, NULL, 0, 100, NS_LOGLEVEL_INFO, NULL);
    ASSERT_EQ(a.kind, NS_ANOMALY_SPIKE);
    ASSERT(a.spread >= 1.41 && a.spread <= 1.42);
}

TEST(ewma_while_history_is_short)
{
    int64_t recent[] = {12, 10, 11, 9}; /* newest first */
    ns_anomaly_t a = ns_anomaly_judge(150, NULL, 0, recent, 4, 42,
                                      NS_LOGLEVEL_WARNING, NULL);
    ASSERT_EQ(a.kind, NS_ANOMALY_SPIKE);
    ASSERT_STREQ(a.method, "EWMA");
    ASSERT(a.baseline > 9 && a.baseline < 12);
    ASSERT_EQ(a.severity, NS_SEVERITY_WARNING); /* warning level: info +1 */
    a = ns_anomaly_judge(14, NULL, 0, recent, 4, 42, NS_LOGLEVEL_WARNING, NULL);
    ASSERT_EQ(a.kind, NS_ANOMALY_NONE);
    /* No history at all and not new: nothing to say. */
    a = ns_anomaly_judge(500, NULL, 0, NULL, 0, 42, NS_LOGLEVEL_ERROR, NULL);
    ASSERT_EQ(a.kind, NS_ANOMALY_NONE);
}

TEST(bursts_of_new_and_rare_templates)
{
    ns_anomaly_t a =
        ns_anomaly_judge(25, NULL, 0, NULL, 0, 0, NS_LOGLEVEL_ERROR, NULL);
    ASSERT_EQ(a.kind, NS_ANOMALY_BURST);
    ASSERT_STREQ(a.method, "new");
    ASSERT_EQ(a.severity, NS_SEVERITY_WARNING);
    a = ns_anomaly_judge(150, NULL, 0, NULL, 0, 3, NS_LOGLEVEL_ERROR, NULL);
    ASSERT_STREQ(a.method, "rare");
    ASSERT_EQ(a.severity, NS_SEVERITY_CRITICAL); /* 5x the burst count */
    a = ns_anomaly_judge(19, NULL, 0, NULL, 0, 0, NS_LOGLEVEL_CRITICAL, NULL);
    ASSERT_EQ(a.kind, NS_ANOMALY_NONE); /* below the burst count */
    a = ns_anomaly_judge(30, NULL, 0, NULL, 0, 0, NS_LOGLEVEL_CRITICAL, NULL);
    ASSERT_EQ(a.severity, NS_SEVERITY_CRITICAL);
    /* Options: a lower burst count. */
    ns_anomaly_opts_t o = {.burst_count = 5};
    a = ns_anomaly_judge(6, NULL, 0, NULL, 0, 0, NS_LOGLEVEL_INFO, &o);
    ASSERT_EQ(a.kind, NS_ANOMALY_BURST);
    ASSERT_EQ(a.severity, NS_SEVERITY_INFO);
    ASSERT_STREQ(ns_severity_name(NS_SEVERITY_CRITICAL), "critical");
}

NSTEST_MAIN
