/* test_scheduler.c: which cron slot is due, with Kubernetes CronJob
 * semantics after downtime (only the most recent missed slot runs, and only
 * within the starting deadline). */
#include "scheduler.h"

#include <time.h>

#include "ns/clock.h"
#include "nstest.h"

/* Epoch seconds of a UTC date and time. */
static int64_t utc(int year, int month, int day, int hour, int minute,
                   int second)
{
    struct tm tm = {.tm_year = year - 1900,
                    .tm_mon = month - 1,
                    .tm_mday = day,
                    .tm_hour = hour,
                    .tm_min = minute,
                    .tm_sec = second};
    return (int64_t)timegm(&tm);
}

static ns_job_t make_job(const char *expr, const char *tz, int deadline_s)
{
    ns_job_t job;
    memset(&job, 0, sizeof(job));
    job.name = "batch-analyzer";
    job.schedule = (char *)expr;
    job.timezone = (char *)tz;
    job.starting_deadline_s = deadline_s;
    if (expr != NULL) {
        ns_error_t err;
        ns_error_clear(&err);
        job.cron = ns_cron_parse(expr, &err);
        if (job.cron == NULL)
            NSTEST_FAIL("cron \"%s\": %s", expr, err.msg);
    }
    return job;
}

#define ASSERT_DUE(due, slot, missed_, late)                                   \
    do {                                                                       \
        ns_due_t d_ = (due);                                                   \
        if (d_.slot_s != (slot) || d_.missed != (missed_) ||                   \
            d_.late_s != (late))                                               \
            NSTEST_FAIL("due {slot %lld, missed %lld, late %lld}, expected "   \
                        "{slot %lld, missed %lld, late %lld}",                 \
                        (long long)d_.slot_s, (long long)d_.missed,            \
                        (long long)d_.late_s, (long long)(slot),               \
                        (long long)(missed_), (long long)(late));              \
    } while (0)

TEST(nothing_due_before_first_slot)
{
    ns_job_t job = make_job("0 * * * *", "UTC", 300);
    int64_t seen = utc(2026, 3, 10, 10, 15, 0);
    ASSERT_DUE(ns_schedule_due(&job, seen, seen), -1, 0, 0);
    ASSERT_DUE(ns_schedule_due(&job, seen, utc(2026, 3, 10, 10, 59, 59)), -1, 0,
               0);
    /* A clock behind the last slot fires nothing either. */
    ASSERT_DUE(ns_schedule_due(&job, seen, seen - 7200), -1, 0, 0);
    ns_cron_destroy(job.cron);
}

TEST(due_at_slot_and_within_deadline)
{
    ns_job_t job = make_job("0 * * * *", "UTC", 300);
    int64_t seen = utc(2026, 3, 10, 10, 15, 0);
    int64_t slot = utc(2026, 3, 10, 11, 0, 0);
    ASSERT_DUE(ns_schedule_due(&job, seen, slot), slot, 0, 0);
    ASSERT_DUE(ns_schedule_due(&job, seen, slot + 1), slot, 0, 1);
    ASSERT_DUE(ns_schedule_due(&job, seen, slot + 300), slot, 0, 300);
    /* One second past the deadline: missed. */
    ASSERT_DUE(ns_schedule_due(&job, seen, slot + 301), -1, 1, 0);
    /* Once recorded, the slot does not fire again. */
    ASSERT_DUE(ns_schedule_due(&job, slot, slot + 60), -1, 0, 0);
    ASSERT_DUE(ns_schedule_due(&job, slot, slot + 3600), slot + 3600, 0, 0);
    ns_cron_destroy(job.cron);
}

TEST(zero_deadline_fires_only_on_time)
{
    ns_job_t job = make_job("*/15 * * * *", "UTC", 0);
    int64_t slot = utc(2026, 1, 1, 0, 15, 0);
    ASSERT_DUE(ns_schedule_due(&job, slot - 900, slot), slot, 0, 0);
    ASSERT_DUE(ns_schedule_due(&job, slot - 900, slot + 1), -1, 1, 0);
    ns_cron_destroy(job.cron);
}

TEST(downtime_fires_only_most_recent)
{
    /* Fired 10:00, down until 13:02: 11:00 and 12:00 are passed over,
     * 13:00 runs. */
    int64_t last = utc(2026, 3, 10, 10, 0, 0);
    int64_t now = utc(2026, 3, 10, 13, 2, 0);
    int64_t slot = utc(2026, 3, 10, 13, 0, 0);
    const int deadlines[] = {300, 3 * 3600, 86400};
    for (size_t i = 0; i < 3; i++) {
        ns_job_t job = make_job("0 * * * *", "UTC", deadlines[i]);
        ASSERT_DUE(ns_schedule_due(&job, last, now), slot, 2, 120);
        ns_cron_destroy(job.cron);
    }
}

TEST(most_recent_past_deadline_fires_none)
{
    ns_job_t job = make_job("0 * * * *", "UTC", 300);
    int64_t last = utc(2026, 3, 10, 10, 0, 0);
    /* 11:00, 12:00 and 13:00 all missed; 13:30 is past 13:00's deadline. */
    ASSERT_DUE(ns_schedule_due(&job, last, utc(2026, 3, 10, 13, 30, 0)), -1, 3,
               0);
    /* Just one slot, too late. */
    ASSERT_DUE(ns_schedule_due(&job, last, utc(2026, 3, 10, 11, 10, 0)), -1, 1,
               0);
    ns_cron_destroy(job.cron);
}

TEST(suspended_or_unscheduled_never_due)
{
    ns_job_t job = make_job("* * * * *", "UTC", 300);
    int64_t last = utc(2026, 3, 10, 10, 0, 0);
    job.suspend = true;
    ASSERT_DUE(ns_schedule_due(&job, last, last + 120), -1, 0, 0);
    ASSERT_DUE(ns_schedule_due(&job, last, last + 86400), -1, 0, 0);
    job.suspend = false;
    ASSERT_DUE(ns_schedule_due(&job, last, last + 120), last + 120, 1, 0);
    ns_cron_destroy(job.cron);

    ns_job_t manual = make_job(NULL, "UTC", 300);
    ASSERT_DUE(ns_schedule_due(&manual, last, last + 86400), -1, 0, 0);
}

TEST(time_zone_slots)
{
    /* 09:00 in Berlin is 08:00 UTC in winter, 07:00 UTC in summer. */
    ns_job_t job = make_job("0 9 * * *", "Europe/Berlin", 600);
    int64_t last = utc(2026, 1, 12, 8, 0, 0);
    int64_t slot = utc(2026, 1, 15, 8, 0, 0);
    ASSERT_DUE(ns_schedule_due(&job, last, slot + 60), slot, 2, 60);
    ASSERT_DUE(ns_schedule_due(&job, last, slot - 60), -1, 2, 0);
    int64_t summer = utc(2026, 7, 1, 7, 0, 0);
    ASSERT_DUE(ns_schedule_due(&job, summer - 86400, summer + 5), summer, 0, 5);
    ns_cron_destroy(job.cron);
}

TEST(huge_outage_is_bounded)
{
    /* A year of an every-minute job: 525,600 slots. */
    ns_job_t job = make_job("* * * * *", "UTC", 300);
    int64_t last = utc(2025, 3, 10, 10, 0, 0);
    int64_t now = last + 365 * 86400 + 30;
    int64_t t0 = ns_clock_mono_ms();
    ns_due_t due = ns_schedule_due(&job, last, now);
    int64_t took = ns_clock_mono_ms() - t0;
    ASSERT_DUE(due, now - 30, 365 * 1440 - 1, 30);
    ASSERT(took < 500);

    /* No slot within the deadline: none fires, every one is counted. */
    ns_job_t hourly = make_job("0 * * * *", "UTC", 300);
    t0 = ns_clock_mono_ms();
    due = ns_schedule_due(&hourly, last, now + 3600 - 30 - 299);
    took = ns_clock_mono_ms() - t0;
    ASSERT_EQ(due.slot_s, -1);
    ASSERT_EQ(due.missed, 365 * 24);
    ASSERT(took < 500);
    ns_cron_destroy(job.cron);
    ns_cron_destroy(hourly.cron);
}

/* Slots in (from, until], one by one. */
static int64_t count_slots(const ns_job_t *job, int64_t from, int64_t until)
{
    int64_t n = 0;
    for (int64_t at = ns_cron_next(job->cron, job->timezone, from);
         at >= 0 && at <= until;
         at = ns_cron_next(job->cron, job->timezone, at))
        n++;
    return n;
}

TEST(missed_count_matches_slots)
{
    /* Irregular schedules, outages of a day to a few months. */
    const char *exprs[] = {"*/7 * * * *",     "0 9 * * 1-5",
                           "30 */5 * * *",    "15 2 1,15 * *",
                           "*/10 8-17 * * *", "*/10 8-17 * * 1-5"};
    const char *zones[] = {"UTC",          "Europe/Berlin", "America/New_York",
                           "Asia/Kolkata", "Europe/Berlin", "Europe/Berlin"};
    const int64_t outages[] = {86400 + 77, 17 * 86400 + 3, 100 * 86400 + 999,
                               3 * 365 * 86400 + 4321};
    int64_t last = utc(2026, 2, 20, 3, 7, 0);
    for (size_t e = 0; e < 6; e++) {
        ns_job_t job = make_job(exprs[e], zones[e], 300);
        for (size_t o = 0; o < 4; o++) {
            int64_t now = last + outages[o];
            int64_t exact = count_slots(&job, last, now);
            ns_due_t due = ns_schedule_due(&job, last, now);
            int64_t fired = due.slot_s >= 0 ? 1 : 0;
            int64_t diff = due.missed + fired - exact;
            if (diff < 0)
                diff = -diff;
            /* Exact for short outages; an estimate (1%) for long ones. */
            if (exact <= 5000 ? diff != 0 : diff * 100 > exact)
                NSTEST_FAIL("\"%s\" %s over %lld s: missed %lld + fired "
                            "%lld, %lld slots",
                            exprs[e], zones[e], (long long)outages[o],
                            (long long)due.missed, (long long)fired,
                            (long long)exact);
            ASSERT(due.slot_s < 0 || now - due.slot_s <= 300);
        }
        ns_cron_destroy(job.cron);
    }
}

NSTEST_MAIN
