/* logs_read.h (handlers-private): one time range of a log topic, read
 * from Kafka by timestamp: offsets-for-times gives where the range starts
 * and ends in every partition, then an assign-only consumer (no group
 * membership, no commits) reads exactly those offsets. */
#ifndef NS_LOGS_READ_H
#define NS_LOGS_READ_H

#include <librdkafka/rdkafka.h>
#include <stdint.h>

#include "ns/config.h"
#include "ns/err.h"

/** Called for every message in the range, in offset order per partition;
 *  returns 0 to go on, -1 to stop (the read returns NS_ERR_NOMEM). */
typedef int (*ns_logs_msg_fn)(const rd_kafka_message_t *m, void *arg);

/** @brief Reads the messages of topic whose Kafka timestamp lies in
 *  [from_ms, until_ms] (the partitions' offsets for those times; messages
 *  appended after until_ms are not read), calling fn for each.
 *  @returns NS_OK with *messages read (a topic that does not exist yet
 *  has none); NS_ERR_TRANSIENT when Kafka does not answer within
 *  timeout_ms. */
ns_err_t ns_logs_read_range(const ns_config_t *cfg, const char *topic,
                            int64_t from_ms, int64_t until_ms, int timeout_ms,
                            ns_logs_msg_fn fn, void *arg, int64_t *messages,
                            ns_error_t *err);

#endif
