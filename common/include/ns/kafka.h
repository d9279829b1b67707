/* kafka.h: librdkafka set-up shared by producer, worker and the CLI.
 * Connection from the config (NS_KAFKA_BROKERS), every key under kafka:
 * passed through, topic names, idempotent producer, topic creation. */
#ifndef NS_KAFKA_H
#define NS_KAFKA_H

#include <librdkafka/rdkafka.h>
#include <stdint.h>

#include "ns/config.h"
#include "ns/err.h"

#define NS_TOPIC_MAX 256

/** @brief "ns.items.<job>". */
void ns_topic_items(const char *job, char out[NS_TOPIC_MAX]);
/** @brief The topic a job's items arrive on: its stream source's topic,
 *  else ns.items.<job>. */
void ns_job_topic(const ns_job_t *job, char out[NS_TOPIC_MAX]);

/** @brief A configuration with bootstrap.servers and the kafka: keys.
 *  @returns NULL with err naming the bad property. Caller owns it (it is
 *  owned by rd_kafka_new on success). */
rd_kafka_conf_t *ns_kafka_conf(const ns_config_t *cfg, ns_error_t *err);

/** @brief Sets one property; err names it on failure. */
ns_err_t ns_kafka_set(rd_kafka_conf_t *conf, const char *key, const char *value,
                      ns_error_t *err);

/** A delivery report callback (rd_kafka_conf_set_dr_msg_cb). */
typedef void (*ns_kafka_dr_fn)(rd_kafka_t *rk, const rd_kafka_message_t *m,
                               void *opaque);

/** @brief An idempotent producer (enable.idempotence, acks=all, linger 5
 *  ms); on_delivery (may be NULL) sees every delivery report. */
rd_kafka_t *ns_kafka_producer_new(const ns_config_t *cfg,
                                  ns_kafka_dr_fn on_delivery, ns_error_t *err);

/** @brief Creates the topic with that many partitions unless it exists.
 *  Waits for the answer (timeout_ms). */
ns_err_t ns_kafka_ensure_topic(rd_kafka_t *rk, const char *topic,
                               int partitions, int timeout_ms, ns_error_t *err);

/** @brief Creates ns.items.<job> for every job of cfg. */
ns_err_t ns_kafka_ensure_job_topics(rd_kafka_t *rk, const ns_config_t *cfg,
                                    ns_error_t *err);

#define NS_TOPIC_DLQ "ns.dlq"
#define NS_RETRY_TOPIC_PREFIX "ns.retry."

/** @brief The delivery callback to install on a producer used with
 *  ns_kafka_produce_sync (pass it to ns_kafka_producer_new). */
void ns_kafka_sync_dr(rd_kafka_t *rk, const rd_kafka_message_t *m,
                      void *opaque);

/** @brief Produces one message and waits (polling the handle) until it is
 *  acknowledged or timeout_ms passes. headers (may be NULL) are owned by
 *  the call. Safe from several threads at once.
 *  @returns NS_OK once acknowledged (acks=all); NS_ERR_TRANSIENT else. */
ns_err_t ns_kafka_produce_sync(rd_kafka_t *rk, const char *topic,
                               const void *key, size_t key_len,
                               const void *value, size_t len,
                               rd_kafka_headers_t *headers, int timeout_ms,
                               ns_error_t *err);

/** A retry tier: topic ns.retry.<label> for delays up to delay_ms. */
typedef struct ns_retry_tier {
    char label[16];
    int64_t delay_ms;
} ns_retry_tier_t;

/** @brief Parses "5s,30s,5m,1h" (s, m, h, d units; ascending). An empty
 *  spec gives 0 tiers. @returns the number of tiers, or -1 with err. */
int ns_retry_tiers_parse(const char *spec, ns_retry_tier_t *tiers, int max,
                         ns_error_t *err);

/** @brief The tier for a delay: the first whose delay covers it, else the
 *  last. */
const ns_retry_tier_t *ns_retry_tier_for(const ns_retry_tier_t *tiers, int n,
                                         int64_t delay_ms);

/** @brief Copies the last header `name` of m into out (NUL-terminated).
 *  @returns 0 when m has no such header or it does not fit. */
int ns_kafka_header_str(const rd_kafka_message_t *m, const char *name,
                        char *out, size_t outlen);

#endif
