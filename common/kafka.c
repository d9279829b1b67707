#include "ns/kafka.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ns/clock.h"
#include "ns/log.h"

void ns_topic_items(const char *job, char out[NS_TOPIC_MAX])
{
    snprintf(out, NS_TOPIC_MAX, "ns.items.%s", job);
}

void ns_job_topic(const ns_job_t *job, char out[NS_TOPIC_MAX])
{
    if (job->source.kind == NS_SOURCE_STREAM && job->source.topic != NULL)
        snprintf(out, NS_TOPIC_MAX, "%s", job->source.topic);
    else
        ns_topic_items(job->name, out);
}

ns_err_t ns_kafka_set(rd_kafka_conf_t *conf, const char *key, const char *value,
                      ns_error_t *err)
{
    char errstr[512];
    if (rd_kafka_conf_set(conf, key, value, errstr, sizeof(errstr)) !=
        RD_KAFKA_CONF_OK)
        return ns_error_set(err, NS_ERR_INVALID, "kafka property %s: %s", key,
                            errstr);
    return NS_OK;
}

static void log_cb(const rd_kafka_t *rk, int level, const char *fac,
                   const char *buf)
{
    ns_log_level_t lvl = level <= 3   ? NS_LOG_ERROR
                         : level <= 4 ? NS_LOG_WARN
                         : level <= 6 ? NS_LOG_INFO
                                      : NS_LOG_DEBUG;
    NS_LOG_AT(lvl, NULL, "librdkafka %s: %s", fac, buf);
}

rd_kafka_conf_t *ns_kafka_conf(const ns_config_t *cfg, ns_error_t *err)
{
    if (cfg->kafka_brokers == NULL || cfg->kafka_brokers[0] == '\0') {
        ns_error_set(err, NS_ERR_INVALID,
                     "kafka: no brokers (set NS_KAFKA_BROKERS)");
        return NULL;
    }
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set_log_cb(conf, log_cb);
    if (ns_kafka_set(conf, "bootstrap.servers", cfg->kafka_brokers, err) !=
        NS_OK)
        goto fail;
    /* Large payloads (corpus shards, 10 MB poison tests) must pass through;
     * the worker enforces its own max_payload_bytes. */
    if (ns_kafka_set(conf, "message.max.bytes", "16777216", err) != NS_OK)
        goto fail;
    for (size_t i = 0; i < cfg->n_kafka; i++)
        if (ns_kafka_set(conf, cfg->kafka[i].key, cfg->kafka[i].value, err) !=
            NS_OK)
            goto fail;
    return conf;
fail:
    rd_kafka_conf_destroy(conf);
    return NULL;
}

rd_kafka_t *ns_kafka_producer_new(const ns_config_t *cfg,
                                  ns_kafka_dr_fn on_delivery, ns_error_t *err)
{
    rd_kafka_conf_t *conf = ns_kafka_conf(cfg, err);
    if (conf == NULL)
        return NULL;
    if (on_delivery != NULL)
        rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    if (ns_kafka_set(conf, "enable.idempotence", "true", err) != NS_OK ||
        ns_kafka_set(conf, "acks", "all", err) != NS_OK ||
        ns_kafka_set(conf, "linger.ms", "5", err) != NS_OK) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    char errstr[512];
    rd_kafka_t *rk =
        rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (rk == NULL) {
        rd_kafka_conf_destroy(conf);
        ns_error_set(err, NS_ERR_INVALID, "kafka producer: %s", errstr);
    }
    return rk;
}

/* 1 when the cluster already has the topic (metadata answer). */
static int topic_exists(rd_kafka_t *rk, const char *topic, int timeout_ms)
{
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    if (rkt == NULL)
        return 0;
    const struct rd_kafka_metadata *md = NULL;
    int exists = 0;
    if (rd_kafka_metadata(rk, 0, rkt, &md, timeout_ms) ==
            RD_KAFKA_RESP_ERR_NO_ERROR &&
        md->topic_cnt == 1)
        exists = md->topics[0].err == RD_KAFKA_RESP_ERR_NO_ERROR &&
                 md->topics[0].partition_cnt > 0;
    if (md != NULL)
        rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
    return exists;
}

ns_err_t ns_kafka_ensure_topic(rd_kafka_t *rk, const char *topic,
                               int partitions, int timeout_ms, ns_error_t *err)
{
    if (topic_exists(rk, topic, timeout_ms))
        return NS_OK;
    char errstr[512];
    rd_kafka_NewTopic_t *nt =
        rd_kafka_NewTopic_new(topic, partitions, -1, errstr, sizeof(errstr));
    if (nt == NULL)
        return ns_error_set(err, NS_ERR_INVALID, "topic %s: %s", topic, errstr);
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_AdminOptions_t *opts =
        rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
    rd_kafka_AdminOptions_set_operation_timeout(opts, timeout_ms, errstr,
                                                sizeof(errstr));
    rd_kafka_AdminOptions_set_request_timeout(opts, timeout_ms, errstr,
                                              sizeof(errstr));
    rd_kafka_CreateTopics(rk, &nt, 1, opts, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, timeout_ms + 2000);
    ns_err_t rc = NS_OK;
    if (ev == NULL) {
        rc = ns_error_set(err, NS_ERR_TRANSIENT,
                          "topic %s: no answer from the broker", topic);
    } else if (rd_kafka_event_error(ev)) {
        rc = ns_error_set(err, NS_ERR_TRANSIENT, "topic %s: %s", topic,
                          rd_kafka_event_error_string(ev));
    } else {
        const rd_kafka_CreateTopics_result_t *res =
            rd_kafka_event_CreateTopics_result(ev);
        size_t n = 0;
        const rd_kafka_topic_result_t **tr =
            rd_kafka_CreateTopics_result_topics(res, &n);
        for (size_t i = 0; i < n; i++) {
            rd_kafka_resp_err_t e = rd_kafka_topic_result_error(tr[i]);
            if (e != RD_KAFKA_RESP_ERR_NO_ERROR &&
                e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
                rc = ns_error_set(err, NS_ERR_TRANSIENT, "topic %s: %s", topic,
                                  rd_kafka_topic_result_error_string(tr[i]));
        }
    }
    rd_kafka_event_destroy(ev);
    rd_kafka_AdminOptions_destroy(opts);
    rd_kafka_queue_destroy(q);
    rd_kafka_NewTopic_destroy(nt);
    /* Created is not yet visible: wait until the metadata (this handle's
     * cache too) shows it, so a subscription made next gets its
     * partitions now rather than at the next metadata refresh. */
    int64_t deadline = ns_clock_mono_ms() + timeout_ms;
    while (rc == NS_OK && !topic_exists(rk, topic, 1000)) {
        if (ns_clock_mono_ms() > deadline)
            return ns_error_set(err, NS_ERR_TRANSIENT,
                                "topic %s: created but not visible after "
                                "%d ms",
                                topic, timeout_ms);
        struct timespec ts = {0, 100 * 1000000L};
        nanosleep(&ts, NULL);
    }
    return rc;
}

ns_err_t ns_kafka_ensure_job_topics(rd_kafka_t *rk, const ns_config_t *cfg,
                                    ns_error_t *err)
{
    for (size_t i = 0; i < cfg->n_jobs; i++) {
        char topic[NS_TOPIC_MAX];
        ns_job_topic(&cfg->jobs[i], topic);
        ns_err_t rc = ns_kafka_ensure_topic(
            rk, topic, cfg->jobs[i].max_parallelism, 10000, err);
        if (rc != NS_OK)
            return rc;
    }
    return NS_OK;
}

/* One synchronous delivery: the callback (served by whichever thread
 * polls the handle) marks it done. */
typedef struct sync_delivery {
    atomic_int done;
    rd_kafka_resp_err_t err;
} sync_delivery_t;

void ns_kafka_sync_dr(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    (void)opaque;
    sync_delivery_t *d = m->_private;
    if (d == NULL)
        return;
    d->err = m->err;
    atomic_store(&d->done, 1);
}

ns_err_t ns_kafka_produce_sync(rd_kafka_t *rk, const char *topic,
                               const void *key, size_t key_len,
                               const void *value, size_t len,
                               rd_kafka_headers_t *headers, int timeout_ms,
                               ns_error_t *err)
{
    sync_delivery_t d = {.err = RD_KAFKA_RESP_ERR_NO_ERROR};
    atomic_init(&d.done, 0);
    rd_kafka_resp_err_t e;
    int64_t deadline = ns_clock_mono_ms() + timeout_ms;
    for (;;) {
        e = rd_kafka_producev(
            rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, key_len),
            RD_KAFKA_V_VALUE((void *)value, len),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_HEADERS(headers), RD_KAFKA_V_OPAQUE(&d), RD_KAFKA_V_END);
        if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL || ns_clock_mono_ms() > deadline)
            break;
        rd_kafka_poll(rk, 50);
    }
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
        rd_kafka_headers_destroy(headers);
        return ns_error_set(err, NS_ERR_TRANSIENT, "produce to %s: %s", topic,
                            rd_kafka_err2str(e));
    }
    /* The message is queued: it now refers to d until the callback ran, so
     * wait for the callback even past the deadline (librdkafka's own
     * message.timeout.ms bounds it). */
    while (!atomic_load(&d.done))
        rd_kafka_poll(rk, 20);
    if (d.err != RD_KAFKA_RESP_ERR_NO_ERROR)
        return ns_error_set(err, NS_ERR_TRANSIENT, "deliver to %s: %s", topic,
                            rd_kafka_err2str(d.err));
    return NS_OK;
}

int ns_retry_tiers_parse(const char *spec, ns_retry_tier_t *tiers, int max,
                         ns_error_t *err)
{
    int n = 0;
    const char *p = spec ? spec : "";
    while (*p != '\0') {
        while (*p == ' ' || *p == ',')
            p++;
        if (*p == '\0')
            break;
        char *end;
        long v = strtol(p, &end, 10);
        int64_t unit = *end == 's'   ? 1000
                       : *end == 'm' ? 60000
                       : *end == 'h' ? 3600000
                       : *end == 'd' ? 86400000
                                     : 0;
        if (end == p || v <= 0 || v > 100000 || unit == 0 || n >= max ||
            (end[1] != '\0' && end[1] != ',' && end[1] != ' '))
            return ns_error_set(err, NS_ERR_INVALID,
                                "retry_tiers \"%s\": expected a list like "
                                "\"5s,30s,5m,1h\"",
                                spec),
                   -1;
        snprintf(tiers[n].label, sizeof(tiers[n].label), "%d%c",
                 (int)(v % 100000000), *end);
        tiers[n].delay_ms = v * unit;
        if (n > 0 && tiers[n].delay_ms <= tiers[n - 1].delay_ms)
            return ns_error_set(err, NS_ERR_INVALID,
                                "retry_tiers \"%s\": tiers must ascend", spec),
                   -1;
        n++;
        p = end + 1;
    }
    return n;
}

const ns_retry_tier_t *ns_retry_tier_for(const ns_retry_tier_t *tiers, int n,
                                         int64_t delay_ms)
{
    for (int i = 0; i < n; i++)
        if (tiers[i].delay_ms >= delay_ms)
            return &tiers[i];
    return n > 0 ? &tiers[n - 1] : NULL;
}

int ns_kafka_header_str(const rd_kafka_message_t *m, const char *name,
                        char *out, size_t outlen)
{
    rd_kafka_headers_t *hdrs = NULL;
    const void *v = NULL;
    size_t len = 0;
    if (rd_kafka_message_headers(m, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR ||
        rd_kafka_header_get_last(hdrs, name, &v, &len) !=
            RD_KAFKA_RESP_ERR_NO_ERROR ||
        v == NULL || len >= outlen)
        return 0;
    memcpy(out, v, len);
    out[len] = '\0';
    return 1;
}
