/* backfill.h: `nightshift backfill JOB --from T --to T`: one run of kind
 * backfill per cron slot of the job in the range, a few at a time, each
 * slot skipped when a run of it already succeeded. */
#ifndef NS_BACKFILL_H
#define NS_BACKFILL_H

#include <signal.h>
#include <stdbool.h>
#include <stdio.h>

#include "ns/config.h"

typedef struct ns_backfill_opts {
    const char *job;
    /** The range, inclusive: a date (midnight in the job's zone, --to: to
     *  the end of that day) or a time (2026-11-30T06:00Z). For a windows
     *  source with align: day they name the days analysed: each day's
     *  run is the slot that follows it. */
    const char *from, *to;
    bool dry_run;
    int max_concurrent; /**< runs of the backfill active at once; 1 */
    int timeout_s;      /**< per run; 0: no limit */
} ns_backfill_opts_t;

/** @brief Plans and follows the backfill, printing each run's outcome.
 *  @returns 0 when every slot succeeded (now or before), 1 when one
 *  failed, 2 for a usage error (unknown job, no schedule, bad range). */
int ns_ops_backfill(const ns_config_t *cfg, const ns_backfill_opts_t *opts,
                    FILE *out, volatile sig_atomic_t *running);

#endif
