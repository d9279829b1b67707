/* Retry tiers: parsing "5s,30s,5m,1h" and choosing a tier for a delay. */
#include "ns/kafka.h"
#include "nstest.h"

TEST(parse_default_tiers)
{
    ns_retry_tier_t t[8];
    ns_error_t err;
    ASSERT_EQ(ns_retry_tiers_parse("5s,30s,5m,1h", t, 8, &err), 4);
    ASSERT_STREQ(t[0].label, "5s");
    ASSERT_EQ(t[0].delay_ms, 5000);
    ASSERT_STREQ(t[2].label, "5m");
    ASSERT_EQ(t[2].delay_ms, 300000);
    ASSERT_EQ(t[3].delay_ms, 3600000);
}

TEST(parse_spaces_days_and_empty)
{
    ns_retry_tier_t t[8];
    ns_error_t err;
    ASSERT_EQ(ns_retry_tiers_parse(" 10s, 2d ", t, 8, &err), 2);
    ASSERT_EQ(t[1].delay_ms, 2LL * 86400000);
    ASSERT_EQ(ns_retry_tiers_parse("", t, 8, &err), 0);
    ASSERT_EQ(ns_retry_tiers_parse(NULL, t, 8, &err), 0);
}

TEST(parse_rejects_bad_specs)
{
    ns_retry_tier_t t[2];
    ns_error_t err;
    const char *bad[] = {"5x",     "s",     "-5s",    "0s",
                         "5m,30s", "5s,5s", "5s;30s", "1s,2s,3s"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ns_error_clear(&err);
        if (ns_retry_tiers_parse(bad[i], t, 2, &err) != -1)
            NSTEST_FAIL("accepted \"%s\"", bad[i]);
        ASSERT(strstr(err.msg, "retry_tiers") != NULL);
    }
}

TEST(tier_for_delay)
{
    ns_retry_tier_t t[8];
    ASSERT_EQ(ns_retry_tiers_parse("5s,30s,5m", t, 8, NULL), 3);
    ASSERT_STREQ(ns_retry_tier_for(t, 3, 0)->label, "5s");
    ASSERT_STREQ(ns_retry_tier_for(t, 3, 5000)->label, "5s");
    ASSERT_STREQ(ns_retry_tier_for(t, 3, 5001)->label, "30s");
    ASSERT_STREQ(ns_retry_tier_for(t, 3, 299999)->label, "5m");
    /* Longer than every tier: the last one (the header holds the time). */
    ASSERT_STREQ(ns_retry_tier_for(t, 3, 86400000)->label, "5m");
    ASSERT(ns_retry_tier_for(t, 0, 10) == NULL);
}

NSTEST_MAIN
