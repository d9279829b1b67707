#include "ns/kafka.h"

#include <stdio.h>
#include <string.h>

#include "ns/log.h"

void ns_topic_items(const char *job, char out[NS_TOPIC_MAX])
{
    snprintf(out, NS_TOPIC_MAX, "ns.items.%s", job);
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
    return rc;
}

ns_err_t ns_kafka_ensure_job_topics(rd_kafka_t *rk, const ns_config_t *cfg,
                                    ns_error_t *err)
{
    for (size_t i = 0; i < cfg->n_jobs; i++) {
        char topic[NS_TOPIC_MAX];
        ns_topic_items(cfg->jobs[i].name, topic);
        ns_err_t rc = ns_kafka_ensure_topic(
            rk, topic, cfg->jobs[i].max_parallelism, 10000, err);
        if (rc != NS_OK)
            return rc;
    }
    return NS_OK;
}
