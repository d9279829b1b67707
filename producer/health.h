/* health.h: alerts on a job itself (jobs.yaml `alerts:`): no successful
 * run for too long, or too many failed runs in a row. Any producer replica
 * may check; the outbox's idempotency keys send each alert once. */
#ifndef NS_HEALTH_H
#define NS_HEALTH_H

#include <libpq-fe.h>
#include <stdint.h>

#include "ns/config.h"

/** @brief Checks every job with alerts at now_ms, queues what is due
 *  and publishes nightshift_job_failed_runs_in_a_row{job}. */
void ns_health_check(PGconn *pg, const ns_config_t *cfg, int64_t now_ms);

#endif
