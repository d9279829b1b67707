/* worker.h: the consumer-group member (`nightshift worker`).
 * Consumes every job topic, runs up to max_in_flight items at once on a
 * thread pool, never two items of one key at once, and commits each
 * partition's offset only up to its lowest unfinished item. */
#ifndef NS_WORKER_H
#define NS_WORKER_H

#include <signal.h>

#include "ns/config.h"
#include "ns/err.h"

typedef struct ns_worker ns_worker_t;

/** @brief Creates the consumer, the thread pool, the outbox dispatcher
 *  and the finalizer sweeper; serves /metrics, /healthz and /readyz.
 *  cfg must outlive the worker. */
ns_worker_t *ns_worker_new(const ns_config_t *cfg, ns_error_t *err);

/** @brief Consumes until *running drops to 0, then finishes in-flight
 *  items, commits and leaves the group. @returns 0 on a clean stop. */
int ns_worker_run(ns_worker_t *w, volatile sig_atomic_t *running);

void ns_worker_destroy(ns_worker_t *w);

#endif
