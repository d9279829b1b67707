/* planner.h: turning a job firing into a run with items on Kafka.
 * A run is recorded, its source enumerated into item rows (the count is
 * known before anything is produced), then every item is produced with the
 * idempotent producer. Any producer can finish what a dead one started. */
#ifndef NS_PLANNER_H
#define NS_PLANNER_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>

#include "ns/config.h"
#include "ns/err.h"

typedef struct ns_planner ns_planner_t;

typedef enum ns_run_kind {
    NS_RUN_SCHEDULED = 0,
    NS_RUN_MANUAL,
    NS_RUN_BACKFILL,
    NS_RUN_TRIGGERED,
} ns_run_kind_t;

/** @brief Connects to Postgres and Kafka and makes sure the job topics
 *  exist. cfg must outlive the planner. */
ns_planner_t *ns_planner_new(const ns_config_t *cfg, ns_error_t *err);
void ns_planner_destroy(ns_planner_t *p);

/** @brief The planner's connection, reconnected if needed (NULL if down). */
PGconn *ns_planner_pg(ns_planner_t *p);

/** @brief Records a run and applies the job's concurrency policy
 *  (scheduled runs only: Forbid marks it skipped while another run is
 *  active; Replace cancels the active ones).
 *  @returns NS_OK with *run_id = 0 when the slot was already recorded by
 *  someone else (two producers), *run_id > 0 otherwise; *skipped tells
 *  whether Forbid skipped it. args_json (may be NULL): the run's
 *  arguments (runs.args), e.g. {"reprocess": true, "since": ...}. */
ns_err_t ns_planner_create_run(ns_planner_t *p, const ns_job_t *job,
                               ns_run_kind_t kind, int64_t scheduled_for_ms,
                               bool dry_run, const char *args_json,
                               int64_t *run_id, bool *skipped, ns_error_t *err);

/** @brief Enumerates a pending run's items and produces them; re-produces
 *  the pending items of a run whose emission never completed. Does nothing
 *  when another process holds the run. */
ns_err_t ns_planner_emit(ns_planner_t *p, int64_t run_id, ns_error_t *err);

/** @brief Finishes runs that a crashed producer left pending or half
 *  emitted (older than grace_s). @returns how many were resumed. */
int ns_planner_recover(ns_planner_t *p, int grace_s, ns_error_t *err);

#endif
