/* retrier.h: the retry-tier consumer. Items that failed transiently wait
 * in ns.retry.<tier> until the not-before time in their header, without
 * blocking other partitions (pause + seek, not sleep), then go back to
 * their job's topic. */
#ifndef NS_RETRIER_H
#define NS_RETRIER_H

#include <librdkafka/rdkafka.h>
#include <signal.h>

#include "ns/config.h"
#include "ns/kafka.h"

typedef struct ns_retrier ns_retrier_t;

/** @brief Starts the retrier thread: its own consumer (group
 *  "<group.id>.retry") on every tier topic; forwards due messages with
 *  producer (an ns_kafka_producer_new handle using ns_kafka_sync_dr).
 *  Everything passed must outlive the retrier. */
ns_retrier_t *ns_retrier_start(const ns_config_t *cfg, rd_kafka_t *producer,
                               const ns_retry_tier_t *tiers, int n_tiers,
                               volatile sig_atomic_t *running, ns_error_t *err);

/** @brief Waits for the thread (after *running dropped) and frees it. */
void ns_retrier_join(ns_retrier_t *r);

/** @brief The consumer group of the workers (group.id under kafka:, or
 *  the default "nightshift-workers"). */
const char *ns_worker_group(const ns_config_t *cfg);

#endif
