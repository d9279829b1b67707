/* scheduler.h: deciding which cron slots are due.
 * Kubernetes CronJob semantics: after downtime only the most recent missed
 * slot runs, and only within starting_deadline_seconds. Pure logic: the
 * daemon supplies "now" and the last recorded slot. */
#ifndef NS_SCHEDULER_H
#define NS_SCHEDULER_H

#include <stdint.h>

#include "ns/config.h"

typedef struct ns_due {
    int64_t slot_s; /**< the slot to fire, or -1 for none */
    int64_t missed; /**< slots passed over (older, or past the deadline) */
    int64_t late_s; /**< how late slot_s fires */
} ns_due_t;

/** @brief The slot job should fire at now_s given the last recorded slot
 *  (last_s; for a job never run, the time the producer first saw it). */
ns_due_t ns_schedule_due(const ns_job_t *job, int64_t last_s, int64_t now_s);

#endif
