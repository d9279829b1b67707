/* test_ratelimit_parse.c: rate limit specs from the config ("30/s",
 * "600/min burst 10"), Redis URLs refused up front, and the arguments
 * ns_ratelimit_take() refuses. No server is needed. */
#include "nstest.h"

#include <math.h>

#include "ns/ratelimit.h"

/* Rates are compared in millionths of a token per second. */
#define MICRO(x) llround((x)*1e6)

static void parse_ok(const char *spec, double want_rate, double want_burst)
{
    double rate = -1, burst = -1;
    ns_error_t err;
    ns_error_clear(&err);
    ns_err_t rc = ns_ratelimit_parse(spec, &rate, &burst, &err);
    if (rc != NS_OK)
        NSTEST_FAIL("\"%s\": %s", spec, err.msg);
    ASSERT_EQ(MICRO(rate), MICRO(want_rate));
    ASSERT_EQ(MICRO(burst), MICRO(want_burst));
}

static void parse_bad(const char *spec, const char *want_in_msg)
{
    double rate = -1, burst = -1;
    ns_error_t err;
    ns_error_clear(&err);
    ASSERT_EQ(ns_ratelimit_parse(spec, &rate, &burst, &err), NS_ERR_INVALID);
    ASSERT_EQ(err.code, NS_ERR_INVALID);
    if (strstr(err.msg, want_in_msg) == NULL)
        NSTEST_FAIL("\"%s\": message \"%s\" lacks \"%s\"", spec, err.msg,
                    want_in_msg);
    /* Outputs are left alone on failure. */
    ASSERT(rate == -1 && burst == -1);
}

TEST(per_second)
{
    parse_ok("30/s", 30, 30);
    parse_ok("1/s", 1, 1);
    parse_ok("2.5/s", 2.5, 2.5);
    parse_ok("30/sec", 30, 30);
    parse_ok("30/second", 30, 30);
}

TEST(longer_units_spread_the_count)
{
    parse_ok("600/min", 10, 600);
    parse_ok("600/minute", 10, 600);
    parse_ok("100/h", 100.0 / 3600, 100);
    parse_ok("100/hour", 100.0 / 3600, 100);
    parse_ok("86400/d", 1, 86400);
    parse_ok("2/day", 2.0 / 86400, 2);
}

TEST(burst_is_at_least_one)
{
    parse_ok("0.5/s", 0.5, 1);
    parse_ok(".5/s", 0.5, 1);
}

TEST(explicit_burst)
{
    parse_ok("30/s burst 60", 30, 60);
    parse_ok("600/min burst 10", 10, 10);
    parse_ok("1/s burst 1", 1, 1);
    parse_ok("100/h burst 2.5", 100.0 / 3600, 2.5);
}

TEST(spaces_and_case)
{
    parse_ok("  30 / s  ", 30, 30);
    parse_ok("30/S", 30, 30);
    parse_ok("600/MIN BURST 20", 10, 20);
    parse_ok("30/s\tburst\t60", 30, 60);
}

TEST(bad_specs_name_the_problem)
{
    const char *count = "expected <count>/<unit> with 0 < count <= 1e9";
    const char *unit = "unknown unit (use s, min, h or d)";
    const char *burst = "expected \"burst <n>\" after the unit, 1 <= n";
    parse_bad("", count);
    parse_bad("fast", count);
    parse_bad("/s", count);
    parse_bad("-1/s", count);
    parse_bad("0/s", count);
    parse_bad("0.0/min", count);
    parse_bad("2000000000/s", count);
    parse_bad("inf/s", count);
    parse_bad("nan/s", count);
    parse_bad("0x10/s", count);
    parse_bad("30", "expected \"/\" and a unit");
    parse_bad("30 s", "expected \"/\" and a unit");
    parse_bad("1.2.3/s", "expected \"/\" and a unit");
    parse_bad("30/", unit);
    parse_bad("30/x", unit);
    parse_bad("30/ms", unit);
    parse_bad("30/m", unit);
    parse_bad("30/sburst 5", unit);
    parse_bad("30/s,", burst);
    parse_bad("30/s burst", burst);
    parse_bad("30/s burst x", burst);
    parse_bad("30/s burst 5 6", burst);
    parse_bad("30/s burst 0", burst);
    parse_bad("30/s burst 0.5", burst);
    parse_bad("30/s burst 2e9", burst);
    parse_bad("30/s burst 2000000000", burst);
    parse_bad("30/s bursts 5", burst);
    parse_bad("30/s 60", burst);
    /* The message quotes the spec, so the user sees which one. */
    double rate = 0, b = 0;
    ns_error_t err;
    ns_error_clear(&err);
    ns_ratelimit_parse("30/x", &rate, &b, &err);
    ASSERT(strstr(err.msg, "\"30/x\"") != NULL);
}

TEST(null_spec)
{
    double rate = 0, burst = 0;
    ns_error_t err;
    ns_error_clear(&err);
    ASSERT_EQ(ns_ratelimit_parse(NULL, &rate, &burst, &err), NS_ERR_INVALID);
}

static void url_bad(const char *url)
{
    ns_error_t err;
    ns_error_clear(&err);
    ns_ratelimit_t *rl = ns_ratelimit_new(url, &err);
    if (rl != NULL)
        NSTEST_FAIL("URL \"%s\" was accepted", url ? url : "(null)");
    ASSERT_EQ(err.code, NS_ERR_INVALID);
    /* A password must never be echoed back. */
    ASSERT(strstr(err.msg, "hunter2") == NULL);
}

TEST(malformed_urls_are_refused)
{
    url_bad(NULL);
    url_bad("");
    url_bad("localhost:6379");
    url_bad("http://localhost:6379");
    url_bad("rediss://localhost:6379");
    url_bad("redis://");
    url_bad("redis://:6379");
    url_bad("redis://host:0");
    url_bad("redis://host:65536");
    url_bad("redis://host:63x9");
    url_bad("redis://host:6379/x");
    url_bad("redis://host:6379/0/1");
    url_bad("redis://host:6379?db=1");
    url_bad("redis://:hunter2%zz@host:6379");
    url_bad("redis://:hunter2%@host:6379");
    url_bad("redis://[::1:6379");
    url_bad("redis://[::1]x:6379");
    url_bad("unix://");
    url_bad("unix://relative/path");
    url_bad("unix:///tmp/redis.sock?db=x");
    url_bad("unix:///tmp/redis.sock?foo=1");
}

/* Well-formed URLs to nothing: the handle exists and every call is let
 * through (fail open). Port 1 refuses at once; the socket does not exist. */
TEST(unreachable_urls_fail_open)
{
    const char *urls[] = {
        "redis://127.0.0.1:1",
        "redis://:hunter2@127.0.0.1:1/3",
        "redis://user:hunter2@127.0.0.1:1/",
        "unix:///nonexistent/redis.sock",
        "unix://:hunter2@/nonexistent/redis.sock?db=2",
    };
    for (size_t i = 0; i < sizeof(urls) / sizeof(urls[0]); i++) {
        ns_error_t err;
        ns_error_clear(&err);
        ns_ratelimit_t *rl = ns_ratelimit_new(urls[i], &err);
        if (rl == NULL)
            NSTEST_FAIL("\"%s\": %s", urls[i], err.msg);
        for (int n = 0; n < 5; n++) {
            int64_t wait_ms = -1;
            ASSERT_EQ(ns_ratelimit_take(rl, "api", 1, 1, 1, &wait_ms, &err),
                      NS_OK);
            ASSERT_EQ(wait_ms, 0);
        }
        ns_ratelimit_destroy(rl);
    }
}

TEST(bad_take_arguments)
{
    ns_error_t err;
    int64_t wait_ms = -1;
    char long_name[300];
    memset(long_name, 'a', sizeof(long_name) - 1);
    long_name[sizeof(long_name) - 1] = '\0';
    struct {
        const char *bucket;
        double rate, burst, tokens;
    } bad[] = {
        {"", 1, 1, 1},      {NULL, 1, 1, 1},    {long_name, 1, 1, 1},
        {"a\nb", 1, 1, 1},  {"api", 0, 1, 1},   {"api", -1, 1, 1},
        {"api", NAN, 1, 1}, {"api", 1, 1, 2},   {"api", 1, 1, 0},
        {"api", 1, NAN, 1}, {"api", 2e9, 1, 1}, {"api", 1, 2e9, 1},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ns_error_clear(&err);
        ASSERT_EQ(ns_ratelimit_take(NULL, bad[i].bucket, bad[i].rate,
                                    bad[i].burst, bad[i].tokens, &wait_ms,
                                    &err),
                  NS_ERR_INVALID);
        ASSERT_EQ(wait_ms, 0);
    }
}

/* No limiter configured: everything is granted, nothing sleeps. */
TEST(null_limiter_grants)
{
    ns_error_t err;
    ns_error_clear(&err);
    int64_t wait_ms = -1;
    for (int i = 0; i < 100; i++) {
        ASSERT_EQ(ns_ratelimit_take(NULL, "api", 1, 1, 1, &wait_ms, &err),
                  NS_OK);
        ASSERT_EQ(wait_ms, 0);
    }
    ASSERT_EQ(ns_ratelimit_wait(NULL, "api", 1, 1, 0, NULL, &err), NS_OK);
    ns_ratelimit_destroy(NULL);
}

NSTEST_MAIN
