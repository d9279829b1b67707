/* test_cron.c: cron parsing, matching, and DST handling, with the TZif
 * reader cross-checked against glibc (only here may TZ be switched). */
#include "nstest.h"

#include <pthread.h>
#include <sys/stat.h>
#include <time.h>

#include "ns/cron.h"
#include "ns/tz.h"

/* Epoch seconds of a UTC date and time. */
static int64_t utc(int year, int month, int day, int hour, int minute)
{
    struct tm tm = {.tm_year = year - 1900,
                    .tm_mon = month - 1,
                    .tm_mday = day,
                    .tm_hour = hour,
                    .tm_min = minute};
    return (int64_t)timegm(&tm);
}

static ns_cron_t *parse_ok(const char *expr)
{
    ns_error_t err;
    ns_error_clear(&err);
    ns_cron_t *cron = ns_cron_parse(expr, &err);
    if (cron == NULL)
        NSTEST_FAIL("parse \"%s\": %s", expr, err.msg);
    return cron;
}

static int64_t next(const char *expr, const char *tz, int64_t after_s)
{
    ns_cron_t *cron = parse_ok(expr);
    int64_t at = ns_cron_next(cron, tz, after_s);
    ns_cron_destroy(cron);
    return at;
}

/* Checks that expr fires at want[0..n) in order after after_s. */
static void expect_sequence(const char *expr, const char *tz, int64_t after_s,
                            const int64_t *want, int n)
{
    ns_cron_t *cron = parse_ok(expr);
    for (int i = 0; i < n; i++) {
        after_s = ns_cron_next(cron, tz, after_s);
        if (after_s != want[i])
            NSTEST_FAIL("%s in %s, firing %d: got %lld, want %lld", expr, tz, i,
                        (long long)after_s, (long long)want[i]);
    }
    ns_cron_destroy(cron);
}

static void expect_error(const char *expr, const char *want)
{
    ns_error_t err;
    ns_error_clear(&err);
    ASSERT(ns_cron_parse(expr, &err) == NULL);
    ASSERT_EQ(err.code, NS_ERR_INVALID);
    ASSERT_STREQ(err.msg, want);
}

/* ---- parsing ---- */

TEST(parse_errors_name_the_field)
{
    expect_error("61 * * * *",
                 "cron \"61 * * * *\": minute: 61 is out of range 0-59");
    expect_error("* 24 * * *",
                 "cron \"* 24 * * *\": hour: 24 is out of range 0-23");
    expect_error("* * 0 * *",
                 "cron \"* * 0 * *\": day-of-month: 0 is out of range 1-31");
    expect_error("* * * 13 *",
                 "cron \"* * * 13 *\": month: 13 is out of range 1-12");
    expect_error("* * * * 8",
                 "cron \"* * * * 8\": day-of-week: 8 is out of range 0-7");
    expect_error("99999999999 * * * *", "cron \"99999999999 * * * *\": "
                                        "minute: 99999999999 is out of "
                                        "range 0-59");
    expect_error("* * * *", "cron \"* * * *\": expected 5 fields (minute "
                            "hour day-of-month month day-of-week), got 4");
    expect_error("* * * * * *", "cron \"* * * * * *\": expected 5 fields "
                                "(minute hour day-of-month month "
                                "day-of-week), got 6");
    expect_error("", "cron \"\": empty expression");
    expect_error("   ", "cron \"   \": empty expression");
    expect_error("1,,2 * * * *",
                 "cron \"1,,2 * * * *\": minute: empty list element");
    expect_error("* 1, * * *", "cron \"* 1, * * *\": hour: empty list element");
    expect_error("x * * * *", "cron \"x * * * *\": minute: unexpected \"x\"");
    expect_error("-1 * * * *",
                 "cron \"-1 * * * *\": minute: unexpected \"-1\"");
    expect_error("1- * * * *",
                 "cron \"1- * * * *\": minute: unexpected end of field");
    expect_error("*5 * * * *", "cron \"*5 * * * *\": minute: unexpected \"5\"");
    expect_error("MON * * * *",
                 "cron \"MON * * * *\": minute: unexpected \"MON\"");
    expect_error("*/0 * * * *",
                 "cron \"*/0 * * * *\": minute: step 0 is out of range 1-59");
    expect_error("*/ * * * *",
                 "cron \"*/ * * * *\": minute: missing step after \"/\"");
    expect_error("5-1 * * * *",
                 "cron \"5-1 * * * *\": minute: range 5-1 is backwards");
    expect_error("* * * FOO *",
                 "cron \"* * * FOO *\": month: unknown name \"FOO\"");
    expect_error("* * * * MONDAY",
                 "cron \"* * * * MONDAY\": day-of-week: unknown name "
                 "\"MONDAY\"");
    expect_error("@reboot", "cron \"@reboot\": unknown macro \"@reboot\" "
                            "(expected @yearly @annually @monthly @weekly "
                            "@daily @midnight @hourly)");
    expect_error("@daily 5", "cron \"@daily 5\": unexpected \"5\" after "
                             "@daily");
    ASSERT(ns_cron_parse(NULL, NULL) == NULL);
    ASSERT(ns_cron_parse("bad", NULL) == NULL); /* err is optional */
}

TEST(destroy_null_and_bad_arguments)
{
    ns_cron_destroy(NULL);
    ns_cron_t *cron = parse_ok("* * * * *");
    ASSERT_EQ(ns_cron_next(NULL, "UTC", 0), -1);
    ASSERT_EQ(ns_cron_next(cron, "No/Such_Zone", 0), -1);
    ASSERT_EQ(ns_cron_next(cron, "../UTC", 0), -1);
    ASSERT_EQ(ns_cron_next(cron, NULL, 0), 60); /* NULL zone is UTC */
    ASSERT_EQ(ns_cron_next(cron, "UTC", INT64_MAX), -1);
    ns_cron_destroy(cron);
}

TEST(tz_valid)
{
    ASSERT_EQ(ns_tz_valid("UTC"), 1);
    ASSERT_EQ(ns_tz_valid("America/New_York"), 1);
    ASSERT_EQ(ns_tz_valid("Europe/Berlin"), 1);
    ASSERT_EQ(ns_tz_valid("Etc/GMT+5"), 1);
    ASSERT_EQ(ns_tz_valid(NULL), 0);
    ASSERT_EQ(ns_tz_valid(""), 0);
    ASSERT_EQ(ns_tz_valid("Nowhere/Zone"), 0);
    ASSERT_EQ(ns_tz_valid("/usr/share/zoneinfo/UTC"), 0);
    ASSERT_EQ(ns_tz_valid("../zoneinfo/UTC"), 0);
    ASSERT_EQ(ns_tz_valid("America/../UTC"), 0);
    ASSERT_EQ(ns_tz_valid("America"), 0);  /* a directory */
    ASSERT_EQ(ns_tz_valid("zone.tab"), 0); /* not TZif */
    ASSERT_EQ(ns_tz_valid("Europe/Berlin "), 0);
    if (access("/usr/share/zoneinfo/right/UTC", R_OK) == 0)
        ASSERT_EQ(ns_tz_valid("right/UTC"), 0); /* leap seconds */
}

/* ---- matching, in UTC ---- */

TEST(utc_basic_and_steps)
{
    int64_t t0 = utc(2026, 1, 1, 0, 0);
    ASSERT_EQ(next("0 2 * * *", "UTC", t0), utc(2026, 1, 1, 2, 0));
    ASSERT_EQ(next("0 2 * * *", "UTC", utc(2026, 1, 1, 2, 0)),
              utc(2026, 1, 2, 2, 0));
    ASSERT_EQ(next("* * * * *", "UTC", t0 + 59), t0 + 60);
    ASSERT_EQ(next("*/15 * * * *", "UTC", t0 + 7 * 60), t0 + 15 * 60);
    int64_t steps[] = {t0 + 60,      t0 + 6 * 60,  t0 + 11 * 60, t0 + 16 * 60,
                       t0 + 21 * 60, t0 + 26 * 60, t0 + 61 * 60, t0 + 66 * 60};
    expect_sequence("1-30/5 * * * *", "UTC", t0, steps, 8);
    int64_t from5[] = {t0 + 5 * 60, t0 + 25 * 60, t0 + 45 * 60, t0 + 65 * 60};
    expect_sequence("5/20 * * * *", "UTC", t0, from5, 4);
    int64_t lists[] = {utc(2026, 1, 1, 6, 10),  utc(2026, 1, 1, 6, 50),
                       utc(2026, 1, 1, 12, 10), utc(2026, 1, 1, 12, 50),
                       utc(2026, 1, 1, 18, 10), utc(2026, 1, 1, 18, 50),
                       utc(2026, 1, 1, 23, 10), utc(2026, 1, 1, 23, 50),
                       utc(2026, 1, 2, 6, 10)};
    expect_sequence("10,50 6-18/6,23 * * *", "UTC", t0, lists, 9);
    ASSERT_EQ(next("0 0 1 1 *", "UTC", t0), utc(2027, 1, 1, 0, 0));
}

TEST(macros)
{
    int64_t t0 = utc(2026, 1, 1, 0, 30); /* a Thursday */
    ASSERT_EQ(next("@hourly", "UTC", t0), utc(2026, 1, 1, 1, 0));
    ASSERT_EQ(next("@daily", "UTC", t0), utc(2026, 1, 2, 0, 0));
    ASSERT_EQ(next(" @midnight ", "UTC", t0), utc(2026, 1, 2, 0, 0));
    ASSERT_EQ(next("@weekly", "UTC", t0), utc(2026, 1, 4, 0, 0));
    ASSERT_EQ(next("@monthly", "UTC", t0), utc(2026, 2, 1, 0, 0));
    ASSERT_EQ(next("@yearly", "UTC", t0), utc(2027, 1, 1, 0, 0));
    ASSERT_EQ(next("@Annually", "UTC", t0), utc(2027, 1, 1, 0, 0));
}

TEST(names_and_sunday_seven)
{
    int64_t t0 = utc(2026, 1, 1, 0, 0); /* Sunday is 2026-01-04 */
    ASSERT_EQ(next("0 0 * * sun", "UTC", t0), utc(2026, 1, 4, 0, 0));
    ASSERT_EQ(next("0 0 * * 7", "UTC", t0), utc(2026, 1, 4, 0, 0));
    ASSERT_EQ(next("0 0 * * 0", "UTC", t0), utc(2026, 1, 4, 0, 0));
    ASSERT_EQ(next("0 0 * * 5-7", "UTC", utc(2026, 1, 3, 1, 0)),
              utc(2026, 1, 4, 0, 0));
    ASSERT_EQ(next("0 0 1 feb *", "UTC", t0), utc(2026, 2, 1, 0, 0));
    ASSERT_EQ(next("0 12 * JAN-MAR MON-FRI", "UTC", utc(2026, 3, 27, 13, 0)),
              utc(2026, 3, 30, 12, 0));
    ASSERT_EQ(next("0 12 * Jan-Mar Mon-Fri", "UTC", utc(2026, 3, 31, 13, 0)),
              utc(2027, 1, 1, 12, 0));
    ASSERT_EQ(next("0 9 * * SAT,sun", "UTC", utc(2026, 1, 5, 0, 0)),
              utc(2026, 1, 10, 9, 0));
}

TEST(day_of_month_or_day_of_week)
{
    int64_t t0 = utc(2026, 1, 1, 0, 0);
    /* Both restricted: Fridays or the 13th (Jan 13 2026 is a Tuesday). */
    int64_t either[] = {utc(2026, 1, 2, 0, 0),  utc(2026, 1, 9, 0, 0),
                        utc(2026, 1, 13, 0, 0), utc(2026, 1, 16, 0, 0),
                        utc(2026, 1, 23, 0, 0), utc(2026, 1, 30, 0, 0),
                        utc(2026, 2, 6, 0, 0),  utc(2026, 2, 13, 0, 0)};
    expect_sequence("0 0 13 * 5", "UTC", t0, either, 8);
    /* "*" first in day-of-month: both must match (odd days and Friday). */
    int64_t both[] = {utc(2026, 1, 9, 0, 0), utc(2026, 1, 23, 0, 0),
                      utc(2026, 2, 13, 0, 0), utc(2026, 2, 27, 0, 0)};
    expect_sequence("0 0 */2 * FRI", "UTC", t0, both, 4);
    ASSERT_EQ(next("0 0 13 * *", "UTC", t0), utc(2026, 1, 13, 0, 0));
    ASSERT_EQ(next("0 0 * * 2", "UTC", t0), utc(2026, 1, 6, 0, 0));
}

TEST(leap_day_and_impossible_dates)
{
    int64_t t0 = utc(2026, 1, 1, 0, 0);
    ASSERT_EQ(next("0 0 29 2 *", "UTC", t0), utc(2028, 2, 29, 0, 0));
    ASSERT_EQ(next("0 0 29 2 *", "Europe/Berlin", t0), utc(2028, 2, 28, 23, 0));
    ASSERT_EQ(next("0 0 30 2 *", "UTC", t0), -1);
    ASSERT_EQ(next("0 0 31 4,6,9,11 *", "America/New_York", t0), -1);
    /* 2100 is not a leap year: 2096 -> 2104 is past the 5-year horizon. */
    ASSERT_EQ(next("0 0 29 2 *", "UTC", utc(2096, 3, 1, 0, 0)), -1);
}

/* ---- time zones and DST ---- */

TEST(new_york_spring_forward)
{
    const char *ny = "America/New_York"; /* 2026-03-08 07:00 UTC: 2 -> 3 */
    int64_t daily[] = {utc(2026, 3, 7, 7, 30), utc(2026, 3, 8, 7, 0),
                       utc(2026, 3, 9, 6, 30)};
    expect_sequence("30 2 * * *", ny, utc(2026, 3, 7, 0, 0), daily, 3);
    int64_t hourly[] = {utc(2026, 3, 8, 6, 0), utc(2026, 3, 8, 7, 0),
                        utc(2026, 3, 8, 8, 0), utc(2026, 3, 8, 9, 0)};
    expect_sequence("0 * * * *", ny, utc(2026, 3, 8, 5, 0), hourly, 4);
    expect_sequence("@hourly", ny, utc(2026, 3, 8, 5, 0), hourly, 4);
    ASSERT_EQ(next("0 3 * * *", ny, utc(2026, 3, 8, 5, 0)),
              utc(2026, 3, 8, 7, 0));
}

TEST(new_york_fall_back)
{
    const char *ny = "America/New_York"; /* 2026-11-01 06:00 UTC: 2 -> 1 */
    int64_t daily[] = {utc(2026, 11, 1, 5, 30), utc(2026, 11, 2, 6, 30)};
    expect_sequence("30 1 * * *", ny, utc(2026, 10, 31, 12, 0), daily, 2);
    /* During the second 01:xx the 01:30 slot has already fired. */
    ASSERT_EQ(next("30 1 * * *", ny, utc(2026, 11, 1, 6, 10)),
              utc(2026, 11, 2, 6, 30));

    ns_cron_t *cron = parse_ok("*/15 * * * *");
    int64_t at = utc(2026, 11, 1, 4, 0), prev = at;
    int fired = 0;
    while ((at = ns_cron_next(cron, ny, at)) < utc(2026, 11, 1, 9, 0)) {
        ASSERT(at > prev);
        ASSERT(at < utc(2026, 11, 1, 6, 0) || at >= utc(2026, 11, 1, 7, 0));
        prev = at;
        fired++;
    }
    ns_cron_destroy(cron);
    ASSERT_EQ(fired, 7 + 8); /* 04:15..05:45 and 07:00..08:45 UTC */
    ASSERT_EQ(next("*/15 * * * *", ny, utc(2026, 11, 1, 5, 45)),
              utc(2026, 11, 1, 7, 0));
}

TEST(berlin_lord_howe_kolkata)
{
    const char *be = "Europe/Berlin";
    ASSERT_EQ(next("30 2 * * *", be, utc(2026, 3, 28, 12, 0)),
              utc(2026, 3, 29, 1, 0));
    int64_t fall[] = {utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)};
    expect_sequence("30 2 * * *", be, utc(2026, 10, 24, 12, 0), fall, 2);
    ASSERT_EQ(next("0 9 * * *", be, utc(2026, 7, 1, 0, 0)),
              utc(2026, 7, 1, 7, 0));

    /* Lord Howe moves by 30 minutes: +10:30 <-> +11. */
    const char *lh = "Australia/Lord_Howe";
    int64_t gap[] = {utc(2026, 10, 3, 15, 30), utc(2026, 10, 4, 15, 15)};
    expect_sequence("15 2 * * *", lh, utc(2026, 10, 3, 0, 0), gap, 2);
    int64_t repeat[] = {utc(2026, 4, 4, 14, 45), utc(2026, 4, 5, 15, 15)};
    expect_sequence("45 1 * * *", lh, utc(2026, 4, 4, 0, 0), repeat, 2);

    ASSERT_EQ(next("0 9 * * *", "Asia/Kolkata", utc(2026, 6, 1, 0, 0)),
              utc(2026, 6, 1, 3, 30));
    ASSERT_EQ(next("0 9 * * *", "Asia/Kolkata", utc(2026, 12, 1, 4, 0)),
              utc(2026, 12, 2, 3, 30));
    /* Santiago springs forward at midnight: 00:00 does not exist. */
    ASSERT_EQ(next("0 0 * * *", "America/Santiago", utc(2026, 9, 5, 12, 0)),
              utc(2026, 9, 6, 4, 0));
}

TEST(next_is_fast)
{
    ns_cron_t *cron = parse_ok("0 2 * * *");
    struct timespec t0, t1;
    int64_t at = utc(2026, 1, 1, 0, 0);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < 20000; i++)
        at = ns_cron_next(cron, "America/New_York", at);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    ns_cron_destroy(cron);
    double us = ((double)(t1.tv_sec - t0.tv_sec) * 1e9 +
                 (double)(t1.tv_nsec - t0.tv_nsec)) /
                1e3 / 20000;
    printf("ns_cron_next(\"0 2 * * *\"): %.2f us per call\n", us);
    ASSERT(at > utc(2080, 1, 1, 0, 0));
    ASSERT(us < 50.0);
}

/* ---- the TZif reader against glibc ---- */

static void use_glibc_zone(const char *name)
{
    setenv("TZ", name, 1);
    tzset();
}

static int32_t glibc_offset(int64_t t)
{
    time_t tt = (time_t)t;
    struct tm tm;
    localtime_r(&tt, &tm);
    return (int32_t)tm.tm_gmtoff;
}

/* The first instant after lo whose glibc offset differs from lo's. */
static int64_t glibc_change_after(int64_t lo, int64_t hi)
{
    int32_t before = glibc_offset(lo);
    while (hi - lo > 1) {
        int64_t mid = lo + (hi - lo) / 2;
        if (glibc_offset(mid) == before)
            lo = mid;
        else
            hi = mid;
    }
    return hi;
}

/* Compares offsets every 6 hours of [from, to) and on both sides of every
 * change glibc reports; returns the number of changes. */
static int compare_with_glibc(const char *name, int64_t from, int64_t to)
{
    const ns_tz_t *tz = ns_tz_get(name);
    if (tz == NULL)
        NSTEST_FAIL("zone %s did not load", name);
    use_glibc_zone(name);
    int changes = 0;
    for (int64_t t = from; t < to; t += 6 * 3600) {
        int64_t probe[3] = {t, 0, 0};
        int nprobe = 1;
        if (t > from && glibc_offset(t) != glibc_offset(t - 6 * 3600)) {
            probe[2] = glibc_change_after(t - 6 * 3600, t);
            probe[1] = probe[2] - 1;
            nprobe = 3;
            changes++;
        }
        for (int i = 0; i < nprobe; i++) {
            if (ns_tz_utc_offset(tz, probe[i]) != glibc_offset(probe[i]))
                NSTEST_FAIL("%s at %lld: offset %d, glibc says %d", name,
                            (long long)probe[i],
                            (int)ns_tz_utc_offset(tz, probe[i]),
                            (int)glibc_offset(probe[i]));
        }
    }
    return changes;
}

TEST(offsets_agree_with_glibc)
{
    static const char *const zones[] = {
        "America/New_York", "Europe/Berlin",       "Australia/Lord_Howe",
        "Asia/Kolkata",     "America/Santiago",    "America/Nuuk",
        "Europe/Dublin",    "Pacific/Chatham",     "Africa/Casablanca",
        "Asia/Tehran",      "America/St_Johns",    "Australia/Sydney",
        "Asia/Gaza",        "America/Los_Angeles", "UTC"};
    int changes = 0;
    /* Past 2037 Debian's files hand over to their POSIX TZ footers. */
    for (size_t i = 0; i < sizeof(zones) / sizeof(zones[0]); i++)
        changes += compare_with_glibc(zones[i], utc(2020, 1, 1, 0, 0),
                                      utc(2046, 1, 1, 0, 0));
    ASSERT(changes > 300);
}

static void put_be(FILE *f, uint64_t v, int bytes)
{
    for (int i = bytes - 1; i >= 0; i--)
        fputc(i < 8 ? (int)(v >> (8 * i)) & 0xff : 0, f);
}

/* A v2 TZif file with one transition (2000-01-01, to a type of offset
 * utoff) and then only the footer, like zic's "slim" output. */
static void write_slim(const char *path, int32_t utoff, const char *footer)
{
    FILE *f = fopen(path, "wb");
    ASSERT(f != NULL);
    for (int block = 0; block < 2; block++) {
        fwrite("TZif2", 1, 5, f);
        put_be(f, 0, 15);
        put_be(f, 0, 12); /* isutcnt, isstdcnt, leapcnt */
        put_be(f, (uint64_t)block, 4);
        put_be(f, 1, 4); /* typecnt */
        put_be(f, 4, 4); /* charcnt */
        if (block == 1) {
            put_be(f, (uint64_t)utc(2000, 1, 1, 0, 0), 8);
            put_be(f, 0, 1);
        }
        put_be(f, (uint32_t)utoff, 4);
        put_be(f, 0, 2);
        fwrite("XXX", 1, 4, f);
    }
    fprintf(f, "\n%s\n", footer);
    ASSERT_EQ(fclose(f), 0);
}

static void write_text(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    ASSERT(f != NULL);
    ASSERT_EQ(fwrite(data, 1, len, f), len);
    ASSERT_EQ(fclose(f), 0);
}

TEST(posix_footer_rules_agree_with_glibc)
{
    static const struct {
        const char *footer;
        int32_t utoff;
    } rules[] = {
        {"EST5EDT,M3.2.0,M11.1.0", -5 * 3600},
        {"<+1030>-10:30<+11>-11,M10.1.0,M4.1.0", 37800},
        {"IST-1GMT0,M10.5.0,M3.5.0/1", 3600}, /* negative DST */
        {"<-02>2<-01>,M3.5.0/-1,M10.5.0/0", -7200},
        {"<-04>4<-03>,M9.1.6/24,M4.1.6/24", -4 * 3600},
        {"AAA3BBB,J60/2,J300/2", -3 * 3600},
        {"CCC-2DDD,59/2,300/2", 7200},
        {"<+0530>-5:30", 19800},
        {"EEE5FFF", -5 * 3600}, /* DST without rules: US rules */
        {"GGG-10HHH-10:30:15,M10.1.0/167,M4.1.0/-20:30", 36000},
        {"<+13>-13", 13 * 3600},
    };
    char dir[] = "/tmp/ns_cron_tzXXXXXX", path[128], name[32];
    ASSERT(mkdtemp(dir) != NULL);
    setenv("TZDIR", dir, 1);
    for (size_t i = 0; i < sizeof(rules) / sizeof(rules[0]); i++) {
        snprintf(name, sizeof(name), "Slim%zu", i);
        snprintf(path, sizeof(path), "%s/%s", dir, name);
        write_slim(path, rules[i].utoff, rules[i].footer);
        ASSERT_EQ(ns_tz_valid(name), 1);
        compare_with_glibc(name, utc(2020, 1, 1, 0, 0), utc(2036, 1, 1, 0, 0));
    }
    /* Removed only now: glibc would take a reused inode for the old zone. */
    for (size_t i = 0; i < sizeof(rules) / sizeof(rules[0]); i++) {
        snprintf(path, sizeof(path), "%s/Slim%zu", dir, i);
        ASSERT_EQ(unlink(path), 0);
    }

    /* DST all year: the end (Dec 31 25:00) meets the next start. */
    snprintf(path, sizeof(path), "%s/AllYear", dir);
    write_slim(path, -5 * 3600, "EST5EDT4,0/0,J365/25");
    const ns_tz_t *tz = ns_tz_get("AllYear");
    ASSERT(tz != NULL);
    for (int64_t t = utc(2020, 1, 1, 0, 0); t < utc(2030, 1, 1, 0, 0);
         t += 3600)
        ASSERT_EQ(ns_tz_utc_offset(tz, t), -4 * 3600);
    ASSERT_EQ(unlink(path), 0);

    /* Broken files are not zones. */
    snprintf(path, sizeof(path), "%s/Bad", dir);
    write_slim(path, 0, "EST5EDT,M13.1.0,M11.1.0");
    ASSERT_EQ(ns_tz_valid("Bad"), 0);
    write_text(path, "TZif2\0\0\0", 8);
    ASSERT_EQ(ns_tz_valid("Bad"), 0);
    write_text(path, "# not a zone\n", 13);
    ASSERT_EQ(ns_tz_valid("Bad"), 0);
    ASSERT_EQ(unlink(path), 0);
    ASSERT_EQ(rmdir(dir), 0);
}

TEST(version1_file_matches_version2)
{
    FILE *f = fopen("/usr/share/zoneinfo/America/New_York", "rb");
    ASSERT(f != NULL);
    static unsigned char buf[1 << 16];
    size_t len = fread(buf, 1, sizeof(buf), f);
    fclose(f);
    ASSERT(len > 44);
    uint32_t count[6];
    for (int i = 0; i < 6; i++)
        count[i] = (uint32_t)buf[20 + 4 * i] << 24 |
                   (uint32_t)buf[21 + 4 * i] << 16 |
                   (uint32_t)buf[22 + 4 * i] << 8 | buf[23 + 4 * i];
    /* isutcnt isstdcnt leapcnt timecnt typecnt charcnt */
    size_t v1_len = 44 + count[3] * 5 + count[4] * 6 + count[5] + count[2] * 8 +
                    count[1] + count[0];
    ASSERT(v1_len < len);
    buf[4] = '\0';

    char dir[] = "/tmp/ns_cron_v1XXXXXX", path[128];
    ASSERT(mkdtemp(dir) != NULL);
    snprintf(path, sizeof(path), "%s/OldNY", dir);
    write_text(path, buf, v1_len);
    setenv("TZDIR", dir, 1);
    const ns_tz_t *v1 = ns_tz_get("OldNY");
    setenv("TZDIR", "/usr/share/zoneinfo", 1);
    const ns_tz_t *v2 = ns_tz_get("America/New_York");
    ASSERT(v1 != NULL && v2 != NULL);
    for (int64_t t = utc(1970, 1, 1, 0, 0); t < utc(2037, 1, 1, 0, 0);
         t += 3 * 3600)
        ASSERT_EQ(ns_tz_utc_offset(v1, t), ns_tz_utc_offset(v2, t));
    ASSERT_EQ(unlink(path), 0);
    ASSERT_EQ(rmdir(dir), 0);
}

/* ---- ns_cron_next against a brute-force definition ---- */

enum { BRUTE_MINUTES = 5 * 1440 };

/* Minute by minute around a DST change: UTC minute t fires iff a matching
 * wall minute L has M < L <= local(t), M being the latest wall time seen
 * before t; so a repeated wall time fires on its first pass only and a
 * skipped one at the end of the gap. ns_cron_next must agree. */
static void check_brute_force(const char *zone, int64_t change,
                              const int64_t *local_before, const int64_t *local,
                              const char *expr)
{
    static int64_t fires[BRUTE_MINUTES];
    int nfires = 0;
    int64_t start = change / 60 * 60 - 2 * 86400;
    int64_t seen = local_before[0];
    ns_cron_t *cron = parse_ok(expr);
    for (int i = 0; i < BRUTE_MINUTES; i++) {
        if (local_before[i] > seen)
            seen = local_before[i];
        int64_t wall = ns_cron_next(cron, "UTC", seen);
        if (wall >= 0 && wall <= local[i])
            fires[nfires++] = start + 60 * i;
    }
    for (int64_t after = change - 86400; after < change + 86400;
         after += 7 * 60 + 13) {
        int k = 0;
        while (k < nfires && fires[k] <= after)
            k++;
        ASSERT(k < nfires);
        int64_t got = ns_cron_next(cron, zone, after);
        if (got != fires[k])
            NSTEST_FAIL("%s in %s after %lld: got %lld, want %lld", expr, zone,
                        (long long)after, (long long)got, (long long)fires[k]);
    }
    ns_cron_destroy(cron);
}

TEST(next_agrees_with_brute_force_around_dst)
{
    static const char *const zones[] = {
        "America/New_York", "Europe/Berlin", "Australia/Lord_Howe",
        "America/Santiago", "America/Nuuk",  "Pacific/Chatham",
        "Europe/Dublin"};
    static const char *const exprs[] = {
        "*/15 * * * *",    "30 1 * * *", "30 2 * * *",          "0 * * * *",
        "15,45 0-3 * * *", "0 0 * * *",  "*/7 22-23,0-3 * * *", "45 2 * * *"};
    static int64_t local_before[BRUTE_MINUTES], local[BRUTE_MINUTES];
    int windows = 0;
    for (size_t z = 0; z < sizeof(zones) / sizeof(zones[0]); z++) {
        use_glibc_zone(zones[z]);
        int64_t t = utc(2026, 1, 1, 0, 0);
        while (t < utc(2027, 1, 1, 0, 0)) {
            if (glibc_offset(t) == glibc_offset(t + 86400)) {
                t += 86400;
                continue;
            }
            int64_t change = glibc_change_after(t, t + 86400);
            int64_t start = change / 60 * 60 - 2 * 86400;
            for (int i = 0; i < BRUTE_MINUTES; i++) {
                int64_t m = start + 60 * i;
                local_before[i] = m - 1 + glibc_offset(m - 1);
                local[i] = m + glibc_offset(m);
            }
            for (size_t e = 0; e < sizeof(exprs) / sizeof(exprs[0]); e++)
                check_brute_force(zones[z], change, local_before, local,
                                  exprs[e]);
            windows++;
            t += 86400;
        }
    }
    ASSERT_EQ(windows, 14);
}

/* ---- threads share the zone cache ---- */

struct thread_job {
    const char *zone;
    int64_t fired[200];
};

static void *thread_run(void *arg)
{
    struct thread_job *job = arg;
    ns_cron_t *cron = parse_ok("*/10 1-3 * * *");
    int64_t at = utc(2026, 3, 1, 0, 0);
    for (int i = 0; i < 200; i++)
        job->fired[i] = at = ns_cron_next(cron, job->zone, at);
    ns_cron_destroy(cron);
    return NULL;
}

TEST(threads_share_zone_cache)
{
    static const char *const zones[] = {
        "America/New_York", "Europe/London", "Asia/Tokyo",  "Europe/Paris",
        "America/Chicago",  "Asia/Kolkata",  "Europe/Rome", "Africa/Cairo"};
    enum { N = sizeof(zones) / sizeof(zones[0]) };
    static struct thread_job jobs[N], again;
    pthread_t threads[N];
    for (int i = 0; i < N; i++) {
        jobs[i].zone = zones[i];
        ASSERT_EQ(pthread_create(&threads[i], NULL, thread_run, &jobs[i]), 0);
    }
    for (int i = 0; i < N; i++)
        ASSERT_EQ(pthread_join(threads[i], NULL), 0);
    for (int i = 0; i < N; i++) {
        again.zone = zones[i];
        thread_run(&again);
        for (int k = 0; k < 200; k++)
            ASSERT_EQ(jobs[i].fired[k], again.fired[k]);
        ASSERT(jobs[i].fired[199] > 0);
    }
}

NSTEST_MAIN
