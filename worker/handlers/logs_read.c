/* logs_read.c: reading a time range of a log topic (see logs_read.h). */
#include "logs_read.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ns/clock.h"
#include "ns/kafka.h"

typedef struct part_range {
    int64_t lo, hi; /* [lo, hi) */
    int done;
} part_range_t;

static rd_kafka_t *reader_new(const ns_config_t *cfg, ns_error_t *err)
{
    rd_kafka_conf_t *conf = ns_kafka_conf(cfg, err);
    if (conf == NULL)
        return NULL;
    /* librdkafka's consumer wants a group.id; an assign-only consumer that
     * never subscribes or commits does not use it with the broker. */
    if (ns_kafka_set(conf, "group.id", "nightshift-logs-reader", err) ||
        ns_kafka_set(conf, "enable.auto.commit", "false", err) ||
        ns_kafka_set(conf, "enable.auto.offset.store", "false", err) ||
        ns_kafka_set(conf, "enable.partition.eof", "true", err)) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    char errstr[512];
    rd_kafka_t *rk =
        rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    if (rk == NULL) {
        rd_kafka_conf_destroy(conf);
        ns_error_set(err, NS_ERR_INVALID, "kafka consumer: %s", errstr);
        return NULL;
    }
    rd_kafka_poll_set_consumer(rk);
    return rk;
}

/* Partitions of topic: >= 0, or -1 with err (0: no such topic yet). */
static int partition_count(rd_kafka_t *rk, const char *topic, int timeout_ms,
                           ns_error_t *err)
{
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, rkt, &md, timeout_ms);
    int n = -1;
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
        ns_error_set(err, NS_ERR_TRANSIENT, "kafka metadata of %s: %s", topic,
                     rd_kafka_err2str(e));
    } else if (md->topic_cnt != 1 ||
               md->topics[0].err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) {
        n = 0;
    } else if (md->topics[0].err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        ns_error_set(err, NS_ERR_TRANSIENT, "kafka metadata of %s: %s", topic,
                     rd_kafka_err2str(md->topics[0].err));
    } else {
        n = md->topics[0].partition_cnt;
    }
    if (md != NULL)
        rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
    return n;
}

/* Per partition, the first offset at or after time ms; a partition with
 * no such message gives its high watermark (the end). */
static ns_err_t offsets_at(rd_kafka_t *rk, const char *topic, int n, int64_t ms,
                           int timeout_ms, int64_t *out, ns_error_t *err)
{
    rd_kafka_topic_partition_list_t *tpl = rd_kafka_topic_partition_list_new(n);
    for (int p = 0; p < n; p++)
        rd_kafka_topic_partition_list_add(tpl, topic, p)->offset = ms;
    rd_kafka_resp_err_t e = rd_kafka_offsets_for_times(rk, tpl, timeout_ms);
    ns_err_t rc = NS_OK;
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
        rc = ns_error_set(err, NS_ERR_TRANSIENT, "kafka offsets of %s: %s",
                          topic, rd_kafka_err2str(e));
    for (int i = 0; rc == NS_OK && i < tpl->cnt; i++) {
        rd_kafka_topic_partition_t *tp = &tpl->elems[i];
        int64_t low, high;
        if (tp->err == RD_KAFKA_RESP_ERR_NO_ERROR && tp->offset >= 0) {
            out[tp->partition] = tp->offset;
            continue;
        }
        e = rd_kafka_query_watermark_offsets(rk, topic, tp->partition, &low,
                                             &high, timeout_ms);
        if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
            rc = ns_error_set(err, NS_ERR_TRANSIENT,
                              "kafka watermarks of %s/%d: %s", topic,
                              (int)tp->partition, rd_kafka_err2str(e));
        else
            out[tp->partition] = high;
    }
    rd_kafka_topic_partition_list_destroy(tpl);
    return rc;
}

static ns_err_t read_assigned(rd_kafka_t *rk, const char *topic,
                              part_range_t *parts, int n, int timeout_ms,
                              ns_logs_msg_fn fn, void *arg, int64_t *messages,
                              ns_error_t *err)
{
    rd_kafka_topic_partition_list_t *tpl = rd_kafka_topic_partition_list_new(n);
    int left = 0;
    for (int p = 0; p < n; p++) {
        if (parts[p].lo >= parts[p].hi) {
            parts[p].done = 1;
            continue;
        }
        rd_kafka_topic_partition_list_add(tpl, topic, p)->offset = parts[p].lo;
        left++;
    }
    ns_err_t rc = NS_OK;
    if (left > 0 && rd_kafka_assign(rk, tpl) != RD_KAFKA_RESP_ERR_NO_ERROR)
        rc = ns_error_set(err, NS_ERR_TRANSIENT, "kafka assign of %s failed",
                          topic);
    rd_kafka_topic_partition_list_destroy(tpl);
    int64_t deadline = ns_clock_mono_ms() + timeout_ms;
    unsigned polls = 0;
    while (rc == NS_OK && left > 0) {
        /* The clock every 1,024 messages: per message it was 5 % of a
         * window's time (perf). */
        if ((polls++ & 1023) == 0 && ns_clock_mono_ms() > deadline) {
            rc = ns_error_set(err, NS_ERR_TRANSIENT,
                              "kafka: reading %s took longer than %d ms", topic,
                              timeout_ms);
            break;
        }
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
        if (m == NULL)
            continue;
        int p = m->partition;
        if (p < 0 || p >= n || parts[p].done) {
            rd_kafka_message_destroy(m);
            continue;
        }
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            parts[p].done = 1;
            left--;
        } else if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
            rc = ns_error_set(err, NS_ERR_TRANSIENT, "kafka: reading %s: %s",
                              topic, rd_kafka_message_errstr(m));
        } else if (m->offset >= parts[p].hi) {
            parts[p].done = 1;
            left--;
        } else {
            (*messages)++;
            if (fn(m, arg) != 0)
                rc = ns_error_set(err, NS_ERR_NOMEM, "out of memory");
            if (m->offset + 1 >= parts[p].hi) {
                parts[p].done = 1;
                left--;
            }
        }
        rd_kafka_message_destroy(m);
    }
    return rc;
}

ns_err_t ns_logs_read_range(const ns_config_t *cfg, const char *topic,
                            int64_t from_ms, int64_t until_ms, int timeout_ms,
                            ns_logs_msg_fn fn, void *arg, int64_t *messages,
                            ns_error_t *err)
{
    *messages = 0;
    rd_kafka_t *rk = reader_new(cfg, err);
    if (rk == NULL)
        return err->code;
    int n = partition_count(rk, topic, timeout_ms, err);
    ns_err_t rc = n < 0 ? err->code : NS_OK;
    part_range_t *parts = n > 0 ? calloc((size_t)n, sizeof(*parts)) : NULL;
    int64_t *lo = n > 0 ? calloc((size_t)n, sizeof(*lo)) : NULL;
    int64_t *hi = n > 0 ? calloc((size_t)n, sizeof(*hi)) : NULL;
    if (n > 0 && (parts == NULL || lo == NULL || hi == NULL))
        rc = ns_error_set(err, NS_ERR_NOMEM, "out of memory");
    if (rc == NS_OK && n > 0)
        rc = offsets_at(rk, topic, n, from_ms, timeout_ms, lo, err);
    if (rc == NS_OK && n > 0)
        rc = offsets_at(rk, topic, n, until_ms + 1, timeout_ms, hi, err);
    for (int p = 0; rc == NS_OK && p < n; p++)
        parts[p] = (part_range_t){lo[p], hi[p], 0};
    if (rc == NS_OK && n > 0)
        rc = read_assigned(rk, topic, parts, n, timeout_ms, fn, arg, messages,
                           err);
    free(parts);
    free(lo);
    free(hi);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return rc;
}
