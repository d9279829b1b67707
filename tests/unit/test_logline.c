/* test_logline.c: log lines as they arrive on logs.raw (text/logline.c):
 * Fluent Bit's and Vector's JSON, RFC 3164 and RFC 5424 syslog, and the
 * bad lines that must be refused with a reason. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ns/logline.h"
#include "nstest.h"

/* 2026-12-03T10:50:33Z */
#define NOW_MS 1796295033000LL

static ns_logline_t parse_ok(const char *line)
{
    ns_logline_t l;
    ns_error_t err;
    ns_error_clear(&err);
    if (ns_logline_parse(line, strlen(line), 1 << 20, NOW_MS, &l, &err) !=
        NS_OK)
        NSTEST_FAIL("refused: %s\n  line: %s", err.msg, line);
    return l;
}

static void assert_refused(const char *line, size_t len, const char *why)
{
    ns_logline_t l;
    ns_error_t err;
    ns_error_clear(&err);
    ASSERT_EQ(ns_logline_parse(line, len, 1024, NOW_MS, &l, &err),
              NS_ERR_PERMANENT);
    if (strstr(err.msg, why) == NULL)
        NSTEST_FAIL("reason \"%s\" lacks \"%s\"", err.msg, why);
    ASSERT(l.message == NULL);
}

TEST(time_formats)
{
    int64_t ms;
    ASSERT_EQ(ns_logline_parse_time("2026-12-03T10:50:33Z", 20, &ms), 0);
    ASSERT_EQ(ms, NOW_MS);
    ASSERT_EQ(ns_logline_parse_time("2026-12-03 13:50:33.250+03:00", 29, &ms),
              0);
    ASSERT_EQ(ms, NOW_MS + 250);
    ASSERT_EQ(ns_logline_parse_time("2026-12-03T10:50:33.123456789Z", 30, &ms),
              0);
    ASSERT_EQ(ms, NOW_MS + 123);
    ASSERT_EQ(ns_logline_parse_time("2026-12-03", 10, &ms), 0);
    ASSERT_EQ(ms, NOW_MS - (10 * 3600 + 50 * 60 + 33) * 1000LL);
    ASSERT_EQ(ns_logline_parse_time("2026-13-03T00:00:00Z", 20, &ms), -1);
    ASSERT_EQ(ns_logline_parse_time("yesterday", 9, &ms), -1);
    ASSERT_EQ(ns_logline_parse_time("2026-12-03T10:50:33Zjunk", 24, &ms), -1);
}

TEST(fluent_bit_json)
{
    /* Fluent Bit's kafka output: the record plus @timestamp as a double
     * (epoch seconds), Kubernetes metadata from its filter. */
    ns_logline_t l = parse_ok(
        "{\"@timestamp\":1796295033.5,\"log\":\"ERROR db timeout after 30s\","
        "\"stream\":\"stderr\",\"kubernetes\":{\"host\":\"node-1\","
        "\"container_name\":\"api\",\"labels\":{\"app\":\"billing\"}}}");
    ASSERT_EQ(l.ts_ms, NOW_MS + 500);
    ASSERT_STREQ(l.message, "ERROR db timeout after 30s");
    ASSERT_STREQ(l.service, "billing");
    ASSERT_STREQ(l.host, "node-1");
    ASSERT_EQ(l.level, NS_LOGLEVEL_ERROR); /* sniffed from the message */
    ASSERT_EQ(l.format, NS_LOGFORMAT_JSON);
    ns_logline_free(&l);
}

TEST(vector_json)
{
    /* Vector's kafka sink with the json codec. */
    ns_logline_t l = parse_ok(
        "{\"timestamp\":\"2026-12-03T10:50:33.000Z\",\"message\":\"user "
        "login ok\",\"host\":\"web-2\",\"service\":\"auth\",\"level\":"
        "\"WARN\",\"source_type\":\"file\"}");
    ASSERT_EQ(l.ts_ms, NOW_MS);
    ASSERT_STREQ(l.message, "user login ok");
    ASSERT_STREQ(l.service, "auth");
    ASSERT_STREQ(l.host, "web-2");
    ASSERT_EQ(l.level, NS_LOGLEVEL_WARNING);
    ns_logline_free(&l);
    /* Elastic Common Schema names, epoch milliseconds, numeric level. */
    l = parse_ok("{\"ts\":1796295033000,\"msg\":\"x\",\"log.level\":3,"
                 "\"service\":{\"name\":\"pay\"},\"host\":{\"name\":\"h\"}}");
    ASSERT_EQ(l.ts_ms, NOW_MS);
    ASSERT_STREQ(l.service, "pay");
    ASSERT_STREQ(l.host, "h");
    ASSERT_EQ(l.level, NS_LOGLEVEL_ERROR); /* syslog 3 */
    ns_logline_free(&l);
}

TEST(syslog_3164)
{
    ns_logline_t l =
        parse_ok("<34>Dec  3 10:50:33 mymachine su[230]: 'su root' failed");
    ASSERT_EQ(l.ts_ms, NOW_MS);
    ASSERT_STREQ(l.host, "mymachine");
    ASSERT_STREQ(l.service, "su");
    ASSERT_STREQ(l.message, "'su root' failed");
    ASSERT_EQ(l.level, NS_LOGLEVEL_CRITICAL); /* 34 = auth.crit */
    ASSERT_EQ(l.format, NS_LOGFORMAT_SYSLOG3164);
    ns_logline_free(&l);
    /* Without PRI (a file tailed as is); a December line read on the next
     * January 1st belongs to the year before. */
    ns_logline_t jan;
    ns_error_t err;
    const char *dec = "Dec 31 23:59:59 h cron: error: job failed";
    int64_t jan1 = NOW_MS + 29LL * 86400000; /* 2027-01-01 */
    ASSERT_EQ(ns_logline_parse(dec, strlen(dec), 1024, jan1, &jan, &err),
              NS_OK);
    ASSERT(jan.ts_ms < jan1);
    ASSERT_STREQ(jan.service, "cron");
    ASSERT_EQ(jan.level, NS_LOGLEVEL_ERROR); /* "error:" starts the text */
    ns_logline_free(&jan);
}

TEST(syslog_5424)
{
    ns_logline_t l = parse_ok(
        "<165>1 2026-12-03T10:50:33.003Z mymachine.example.com evntslog - "
        "ID47 [exampleSDID@32473 iut=\"3\" eventSource=\"App\\]lication\"] "
        "\xef\xbb\xbf"
        "An application event log entry...");
    ASSERT_EQ(l.ts_ms, NOW_MS + 3);
    ASSERT_STREQ(l.host, "mymachine.example.com");
    ASSERT_STREQ(l.service, "evntslog");
    ASSERT_STREQ(l.message, "An application event log entry...");
    ASSERT_EQ(l.level, NS_LOGLEVEL_NOTICE); /* 165 = local4.notice */
    ASSERT_EQ(l.format, NS_LOGFORMAT_SYSLOG5424);
    ns_logline_free(&l);
    l = parse_ok("<11>1 2026-12-03T10:50:33Z - - - - - disk full\n");
    ASSERT_STREQ(l.host, "");
    ASSERT_STREQ(l.service, "");
    ASSERT_STREQ(l.message, "disk full");
    ASSERT_EQ(l.level, NS_LOGLEVEL_ERROR);
    ns_logline_free(&l);
}

TEST(bad_lines_are_refused_with_a_reason)
{
    assert_refused("just some text", 14, "not JSON and not syslog");
    assert_refused("{\"message\":\"x\"}", 15, "no timestamp");
    assert_refused("{\"time\":\"noon\",\"message\":\"x\"}", 29,
                   "unreadable timestamp");
    assert_refused("{\"time\":\"2026-12-03\"}", 21, "no message");
    assert_refused("[1,2,3]", 7, "not JSON and not syslog");
    assert_refused("{\"time\":", 8, "not a JSON object");
    assert_refused("<11>1 - host app - - - msg", 26, "no timestamp");
    assert_refused("<999>Dec  3 10:50:33 h x: y", 27,
                   "not JSON and not syslog");
    assert_refused("Dec  3 10:50:33 h x: \xff\xfe", 23, "invalid UTF-8");
    char *big = malloc(2000);
    memset(big, 'a', 2000);
    assert_refused(big, 2000, "over the limit");
    free(big);
    ns_logline_free(NULL);
}

TEST(level_names)
{
    ASSERT_EQ(ns_loglevel_parse("ERR", 3), NS_LOGLEVEL_ERROR);
    ASSERT_EQ(ns_loglevel_parse("Warning", 7), NS_LOGLEVEL_WARNING);
    ASSERT_EQ(ns_loglevel_parse("fatal", 5), NS_LOGLEVEL_CRITICAL);
    ASSERT_EQ(ns_loglevel_parse("0", 1), NS_LOGLEVEL_EMERGENCY);
    ASSERT_EQ(ns_loglevel_parse("verbose", 7), NS_LOGLEVEL_UNKNOWN);
    ASSERT_STREQ(ns_loglevel_name(NS_LOGLEVEL_CRITICAL), "critical");
}

/* The records the example shipper configs produce (config/shippers/,
 * samples in tests/data/shippers/) decode as intended. */
static char *read_sample(const char *name)
{
    const char *src = getenv("NS_SRC") ? getenv("NS_SRC") : "../..";
    char path[1024];
    snprintf(path, sizeof(path), "%s/tests/data/shippers/%s", src, name);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        NSTEST_FAIL("%s: not found (set NS_SRC to the repo root)", path);
    static char line[4096];
    if (fgets(line, sizeof(line), f) == NULL)
        line[0] = '\0';
    fclose(f);
    line[strcspn(line, "\n")] = '\0';
    return line;
}

TEST(shipper_samples)
{
    const char *names[] = {"fluent-bit.json", "vector.json"};
    for (int i = 0; i < 2; i++) {
        ns_logline_t l = parse_ok(read_sample(names[i]));
        ASSERT_EQ(l.ts_ms, NOW_MS + 123);
        ASSERT_STREQ(l.service, "billing");
        ASSERT_STREQ(l.message, "ERROR payment gateway timeout after 30s");
        ASSERT_EQ(l.level, NS_LOGLEVEL_ERROR);
        ns_logline_free(&l);
    }
}

NSTEST_MAIN
