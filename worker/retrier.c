#include "retrier.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ns/clock.h"
#include "ns/log.h"
#include "ns/metrics.h"

#define MAX_WAITING 256

typedef struct waiting {
    char topic[NS_TOPIC_MAX];
    int32_t partition;
    int64_t not_before_ms;
} waiting_t;

struct ns_retrier {
    const ns_config_t *cfg;
    pthread_t thread;
    rd_kafka_t *rk;
    rd_kafka_t *producer;
    volatile sig_atomic_t *running;
    waiting_t waiting[MAX_WAITING];
    int n_waiting;
};

const char *ns_worker_group(const ns_config_t *cfg)
{
    for (size_t i = 0; i < cfg->n_kafka; i++)
        if (strcmp(cfg->kafka[i].key, "group.id") == 0)
            return cfg->kafka[i].value;
    return "nightshift-workers";
}

/* Holds the partition at this message until not_before. */
static void hold(ns_retrier_t *r, rd_kafka_message_t *m, int64_t not_before)
{
    const char *topic = rd_kafka_topic_name(m->rkt);
    rd_kafka_topic_partition_list_t *parts =
        rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(parts, topic, m->partition);
    rd_kafka_pause_partitions(r->rk, parts);
    rd_kafka_topic_partition_list_destroy(parts);
    rd_kafka_resp_err_t e =
        rd_kafka_seek(m->rkt, m->partition, m->offset, 5000);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
        NS_WARN(NULL, "retrier: seek %s/%d: %s", topic, (int)m->partition,
                rd_kafka_err2str(e));
    for (int i = 0; i < r->n_waiting; i++) {
        if (r->waiting[i].partition == m->partition &&
            strcmp(r->waiting[i].topic, topic) == 0) {
            r->waiting[i].not_before_ms = not_before;
            return;
        }
    }
    if (r->n_waiting < MAX_WAITING) {
        waiting_t *w = &r->waiting[r->n_waiting++];
        snprintf(w->topic, sizeof(w->topic), "%s", topic);
        w->partition = m->partition;
        w->not_before_ms = not_before;
    }
}

static void release_due(ns_retrier_t *r, int64_t now)
{
    for (int i = 0; i < r->n_waiting;) {
        waiting_t *w = &r->waiting[i];
        if (w->not_before_ms > now) {
            i++;
            continue;
        }
        rd_kafka_topic_partition_list_t *parts =
            rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(parts, w->topic, w->partition);
        rd_kafka_resume_partitions(r->rk, parts);
        rd_kafka_topic_partition_list_destroy(parts);
        r->waiting[i] = r->waiting[--r->n_waiting];
    }
}

static void store(ns_retrier_t *r, const rd_kafka_message_t *m)
{
    rd_kafka_topic_partition_list_t *parts =
        rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(parts, rd_kafka_topic_name(m->rkt),
                                      m->partition)
        ->offset = m->offset + 1;
    rd_kafka_offsets_store(r->rk, parts);
    rd_kafka_topic_partition_list_destroy(parts);
}

/* A due message goes back to its job's topic with its headers, less the
 * not-before mark. */
static void forward(ns_retrier_t *r, rd_kafka_message_t *m, const char *origin)
{
    rd_kafka_headers_t *hdrs = NULL;
    rd_kafka_headers_t *copy = NULL;
    if (rd_kafka_message_headers(m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        copy = rd_kafka_headers_copy(hdrs);
        rd_kafka_header_remove(copy, "ns-not-before");
    }
    ns_error_t err;
    ns_error_clear(&err);
    if (ns_kafka_produce_sync(r->producer, origin, m->key, m->key_len,
                              m->payload, m->len, copy, 30000, &err) != NS_OK) {
        NS_WARN(NULL, "retrier: %s; trying again shortly", err.msg);
        hold(r, m, ns_clock_now_ms() + 1000);
        return;
    }
    store(r, m);
    char labels[NS_TOPIC_MAX + 16];
    snprintf(labels, sizeof(labels), "topic=\"%s\"", origin);
    ns_metrics_counter_add("nightshift_retries_forwarded_total",
                           "Items handed back to their topic after waiting "
                           "in a retry tier.",
                           labels, 1);
}

static void handle(ns_retrier_t *r, rd_kafka_message_t *m)
{
    if (m->err) {
        if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
            NS_WARN(NULL, "retrier: %s", rd_kafka_message_errstr(m));
        return;
    }
    char origin[NS_TOPIC_MAX], nb[32];
    if (!ns_kafka_header_str(m, "ns-origin-topic", origin, sizeof(origin))) {
        NS_ERROR(NULL,
                 "retrier: %s/%d@%lld has no ns-origin-topic header; "
                 "skipped",
                 rd_kafka_topic_name(m->rkt), (int)m->partition,
                 (long long)m->offset);
        store(r, m);
        return;
    }
    /* The tiers are shared by every deployment on the cluster; another's
     * items (or those of a job since removed) are not ours to hand back. A
     * new group reading the tiers from the start skips them quickly. */
    size_t plen = strlen("ns.items.");
    if (strncmp(origin, "ns.items.", plen) != 0 ||
        ns_config_job(r->cfg, origin + plen) == NULL) {
        NS_DEBUG(NULL,
                 "retrier: %s/%d@%lld is for %s, not a job of ours; "
                 "skipped",
                 rd_kafka_topic_name(m->rkt), (int)m->partition,
                 (long long)m->offset, origin);
        store(r, m);
        return;
    }
    int64_t not_before = 0;
    if (ns_kafka_header_str(m, "ns-not-before", nb, sizeof(nb)))
        not_before = strtoll(nb, NULL, 10);
    if (not_before > ns_clock_now_ms())
        hold(r, m, not_before);
    else
        forward(r, m, origin);
}

static void *retrier_main(void *arg)
{
    ns_retrier_t *r = arg;
    while (*r->running) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(r->rk, 100);
        if (m != NULL) {
            handle(r, m);
            rd_kafka_message_destroy(m);
        }
        release_due(r, ns_clock_now_ms());
    }
    rd_kafka_consumer_close(r->rk);
    return NULL;
}

ns_retrier_t *ns_retrier_start(const ns_config_t *cfg, rd_kafka_t *producer,
                               const ns_retry_tier_t *tiers, int n_tiers,
                               volatile sig_atomic_t *running, ns_error_t *err)
{
    ns_retrier_t *r = calloc(1, sizeof(*r));
    if (r == NULL) {
        ns_error_set(err, NS_ERR_NOMEM, "out of memory");
        return NULL;
    }
    r->cfg = cfg;
    r->producer = producer;
    r->running = running;
    rd_kafka_conf_t *conf = ns_kafka_conf(cfg, err);
    char group[300];
    snprintf(group, sizeof(group), "%s.retry", ns_worker_group(cfg));
    char errstr[512];
    if (conf == NULL || ns_kafka_set(conf, "group.id", group, err) != NS_OK ||
        ns_kafka_set(conf, "enable.auto.offset.store", "false", err) != NS_OK ||
        ns_kafka_set(conf, "auto.offset.reset", "earliest", err) != NS_OK ||
        ns_kafka_set(conf, "session.timeout.ms", "10000", err) != NS_OK)
        goto fail_conf;
    r->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    if (r->rk == NULL) {
        ns_error_set(err, NS_ERR_INVALID, "retrier consumer: %s", errstr);
        goto fail_conf;
    }
    conf = NULL;
    rd_kafka_poll_set_consumer(r->rk);
    rd_kafka_topic_partition_list_t *topics =
        rd_kafka_topic_partition_list_new(n_tiers);
    for (int i = 0; i < n_tiers; i++) {
        char topic[NS_TOPIC_MAX];
        snprintf(topic, sizeof(topic), "%s%s", NS_RETRY_TOPIC_PREFIX,
                 tiers[i].label);
        rd_kafka_topic_partition_list_add(topics, topic, RD_KAFKA_PARTITION_UA);
    }
    rd_kafka_resp_err_t e = rd_kafka_subscribe(r->rk, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
        ns_error_set(err, NS_ERR_TRANSIENT, "retrier subscribe: %s",
                     rd_kafka_err2str(e));
        goto fail;
    }
    if (pthread_create(&r->thread, NULL, retrier_main, r) != 0) {
        ns_error_set(err, NS_ERR_IO, "retrier: cannot start thread");
        goto fail;
    }
    return r;
fail_conf:
    if (conf != NULL)
        rd_kafka_conf_destroy(conf);
fail:
    if (r->rk != NULL)
        rd_kafka_destroy(r->rk);
    free(r);
    return NULL;
}

void ns_retrier_join(ns_retrier_t *r)
{
    if (r == NULL)
        return;
    pthread_join(r->thread, NULL);
    rd_kafka_destroy(r->rk);
    free(r);
}
