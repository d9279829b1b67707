#include "scheduler.h"

ns_due_t ns_schedule_due(const ns_job_t *job, int64_t last_s, int64_t now_s)
{
    ns_due_t due = {.slot_s = -1, .missed = 0, .late_s = 0};
    if (job->cron == NULL || job->suspend)
        return due;
    /* Slots older than the deadline can never fire, so there is no need
     * to walk them one by one after a long outage. */
    int64_t from = last_s;
    int64_t horizon = now_s - job->starting_deadline_s - 1;
    if (from < horizon) {
        int64_t first = ns_cron_next(job->cron, job->timezone, from);
        if (first >= 0 && first <= horizon)
            due.missed++;
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
