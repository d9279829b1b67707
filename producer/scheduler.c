#include "scheduler.h"

/* Counting the slots older than the deadline one by one costs one
 * ns_cron_next each; past this many, the rest are estimated from their mean
 * spacing (as the Kubernetes CronJob controller does), so a long outage of
 * a frequent job stays cheap (ns_cron_next takes well under 1 us). */
#define EXACT_COUNT_MAX 10000

/* How many slots lie in (from, until]: exact up to EXACT_COUNT_MAX. */
static int64_t count_slots(const ns_job_t *job, int64_t from, int64_t until)
{
    int64_t n = 0, first = -1, at = from;
    while (n < EXACT_COUNT_MAX) {
        int64_t next = ns_cron_next(job->cron, job->timezone, at);
        if (next < 0 || next > until)
            return n;
        if (first < 0)
            first = next;
        n++;
        at = next;
    }
    double spacing = (double)(at - first) / (double)(n - 1);
    return n + (int64_t)((double)(until - at) / spacing);
}

ns_due_t ns_schedule_due(const ns_job_t *job, int64_t last_s, int64_t now_s)
{
    ns_due_t due = {.slot_s = -1, .missed = 0, .late_s = 0};
    if (job->cron == NULL || job->suspend)
        return due;
    /* Slots older than the deadline can never fire: they are only
     * counted, and the walk below starts at the deadline. */
    int64_t from = last_s;
    int64_t horizon = now_s - job->starting_deadline_s - 1;
    if (from < horizon) {
        due.missed += count_slots(job, from, horizon);
        from = horizon;
    }
    int64_t slot = -1;
    for (;;) {
        int64_t next = ns_cron_next(job->cron, job->timezone, from);
        if (next < 0 || next > now_s)
            break;
        if (slot >= 0)
            due.missed++;
        slot = next;
        from = next;
    }
    if (slot < 0)
        return due;
    if (now_s - slot > job->starting_deadline_s) {
        due.missed++;
        return due;
    }
    due.slot_s = slot;
    due.late_s = now_s - slot;
    return due;
}
