/* producer.h: the scheduler daemon (`nightshift producer`).
 * Every tick: fire due cron slots (once per slot across all producers),
 * resume runs a dead process left half-emitted, publish metrics. */
#ifndef NS_PRODUCER_H
#define NS_PRODUCER_H

#include <signal.h>

#include "ns/config.h"
#include "ns/err.h"

typedef struct ns_producer ns_producer_t;

ns_producer_t *ns_producer_new(const ns_config_t *cfg, ns_error_t *err);

/** @brief Runs until *running becomes 0. @returns 0 on a clean stop. */
int ns_producer_run(ns_producer_t *p, volatile sig_atomic_t *running);

/** @brief One scheduling pass at the current (possibly test) clock. */
void ns_producer_tick(ns_producer_t *p);

void ns_producer_destroy(ns_producer_t *p);

#endif
