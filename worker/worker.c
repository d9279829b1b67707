#include "worker.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "finalize.h"
#include "handler.h"
#include "item.h"
#include "ns/clock.h"
#include "ns/httpd.h"
#include "ns/kafka.h"
#include "ns/log.h"
#include "ns/metrics.h"
#include "outbox.h"
#include "retrier.h"
#include "tracker.h"
#include "worker_internal.h"

#define SWEEP_EVERY_MS 2000
#define LAG_EVERY_MS 5000

/* ---- the consumer loop ------------------------------------------------- */

static void accept_message(ns_worker_t *w, rd_kafka_message_t *m)
{
    if (m->err) {
        if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
            NS_WARN(NULL, "consumer: %s", rd_kafka_message_errstr(m));
        rd_kafka_message_destroy(m);
        return;
    }
    const char *topic = rd_kafka_topic_name(m->rkt);
    if (ns_tracker_consumed(w->tracker, topic, m->partition, m->offset) ==
        NULL) {
        /* Out of memory: leave the offset uncommitted; it comes back. */
        rd_kafka_message_destroy(m);
        return;
    }
    ns_task_t *task = calloc(1, sizeof(*task));
    if (task == NULL) {
        rd_kafka_message_destroy(m);
        return;
    }
    task->rkm = m;
    w->outstanding++;
    if (ns_tracker_key_enqueue(w->tracker, task, topic, m->key, m->key_len))
        start_task(w, task);
}

static void publish_lag(ns_worker_t *w)
{
    for (size_t i = 0; i < ns_tracker_n_parts(w->tracker); i++) {
        ns_part_t *p = ns_tracker_part(w->tracker, i);
        int64_t lo = 0, hi = 0;
        if (p->next_offset < 0 ||
            rd_kafka_get_watermark_offsets(w->rk, p->topic, p->partition, &lo,
                                           &hi) != RD_KAFKA_RESP_ERR_NO_ERROR)
            continue;
        char labels[NS_TOPIC_MAX + 64];
        snprintf(labels, sizeof(labels), "topic=\"%s\",partition=\"%d\"",
                 p->topic, (int)p->partition);
        ns_metrics_gauge_set(
            "nightshift_consumer_lag", "Messages behind the partition's end.",
            labels, (double)(hi > p->next_offset ? hi - p->next_offset : 0));
    }
    ns_metrics_gauge_set("nightshift_worker_items_outstanding",
                         "Items consumed and not yet finished.", NULL,
                         (double)w->outstanding);
    if (w->bk != NULL) {
        /* Requests per batch tell how well the bookkeeping is batched. */
        ns_bk_stats_t s = ns_bookkeeper_stats(w->bk);
        ns_metrics_counter_add("nightshift_bookkeeper_requests_total",
                               "Item bookkeeping requests answered.", NULL,
                               (double)(s.served - w->bk_seen.served));
        ns_metrics_counter_add("nightshift_bookkeeper_batches_total",
                               "Batches of bookkeeping requests.", NULL,
                               (double)(s.batches - w->bk_seen.batches));
        ns_metrics_counter_add("nightshift_bookkeeper_statements_total",
                               "Statements the bookkeeper ran.", NULL,
                               (double)(s.statements - w->bk_seen.statements));
        w->bk_seen = s;
    }
}

static void *sweeper_main(void *arg)
{
    ns_worker_t *w = arg;
    ns_item_res_t res = {.cfg = w->cfg, .running = w->running, .seed = 7};
    while (*w->running) {
        ns_finalize_sweep(&res);
        ns_item_sleep(&res, SWEEP_EVERY_MS);
    }
    PQfinish(res.pg);
    return NULL;
}

int ns_worker_run(ns_worker_t *w, volatile sig_atomic_t *running)
{
    w->running = running;
    ns_error_t err;
    ns_error_clear(&err);
    /* Hundreds of I/O-bound threads: keep their stacks modest. */
    /* While one batch is in the database the next gathers; with hundreds
     * of items in flight, a second connection keeps their wait short. */
    int bk_conns = pool_in_flight_max(w->cfg) >= 128 ? 2 : 1;
    w->bk = ns_bookkeeper_new(w->cfg->pg_dsn, bk_conns, running, &err);
    if (w->bk == NULL) {
        NS_ERROR(NULL, "%s", err.msg);
        return 1;
    }
    if (pool_needs_http(w->cfg)) {
        /* One group per HTTP-call job: its max_in_flight at the API. */
        size_t limits[NS_HTTP_GROUPS_MAX];
        size_t n = pool_http_limits(w->cfg, limits, w->http_groups);
        w->http = ns_http_async_new(limits, (int)n, pool_calls_back, w, &err);
        if (w->http == NULL) {
            NS_ERROR(NULL, "%s", err.msg);
            return 1;
        }
    }
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 1 << 20);
    for (size_t i = 0; i < w->n_threads; i++) {
        pool_thread_t *pt = &w->threads[i];
        pt->w = w;
        pt->res.cfg = w->cfg;
        pt->res.pool = w->pool;
        pt->res.producer = w->producer;
        pt->res.tiers = w->tiers;
        pt->res.n_tiers = w->n_tiers;
        pt->res.rl = w->rl;
        pt->res.bk = w->bk;
        pt->res.running = running;
        pt->res.seed = (unsigned)(i + 1) * 2654435761u ^ (unsigned)getpid();
        if (pthread_create(&pt->thread, &attr, pool_main, pt) != 0) {
            NS_ERROR(NULL, "worker: cannot start threads");
            return 1;
        }
        w->n_started++;
    }
    pthread_attr_destroy(&attr);
    if (w->cfg->worker_outbox)
        w->outbox = ns_outbox_start(w->cfg, w->rl, running, &err);
    else
        NS_INFO(NULL, "outbox delivery off on this worker (worker.outbox)");
    if (w->cfg->worker_outbox && w->outbox == NULL) {
        NS_ERROR(NULL, "%s", err.msg);
        return 1;
    }
    w->sweeper_started =
        pthread_create(&w->sweeper, NULL, sweeper_main, w) == 0;
    if (w->n_tiers > 0) {
        w->retrier = ns_retrier_start(w->cfg, w->producer, w->tiers, w->n_tiers,
                                      running, &err);
        if (w->retrier == NULL)
            NS_WARN(NULL, "retry tiers disabled: %s", err.msg);
    }
    NS_INFO(NULL, "worker started: %zu threads, up to %zu items buffered",
            w->n_threads, w->max_outstanding);
    int64_t last_lag = 0, last_poll = 0;
    while (*running) {
        struct pollfd fds[2] = {
            {.fd = w->kafka_pipe[0], .events = POLLIN},
            {.fd = w->done_fd, .events = POLLIN},
        };
        poll(fds, 2, 5);
        if (fds[0].revents & POLLIN) {
            char sink[256];
            ssize_t rd = read(w->kafka_pipe[0], sink, sizeof(sink));
            (void)rd;
        }
        if (fds[1].revents & POLLIN)
            collect_done(w);
        /* Backpressure without pausing (a paused partition loses its
         * prefetched messages and takes a second to fetch again): when
         * full, leave messages in librdkafka's bounded queue, but still
         * poll once a second so rebalances are served and the group does
         * not think we are stuck. */
        rd_kafka_message_t *m;
        int64_t now_ms = ns_clock_mono_ms();
        bool full = w->outstanding >= w->max_outstanding;
        if (!full || now_ms - last_poll >= 1000) {
            last_poll = now_ms;
            int budget = full ? 1 : (int)(w->max_outstanding - w->outstanding);
            pthread_mutex_lock(&w->lock);
            w->hold_wakeups = 1;
            pthread_mutex_unlock(&w->lock);
            while (*running && budget-- > 0 &&
                   (m = rd_kafka_consumer_poll(w->rk, 0)) != NULL)
                accept_message(w, m);
            pthread_mutex_lock(&w->lock);
            w->hold_wakeups = 0;
            if (w->held_wakeups > 0)
                pthread_cond_broadcast(&w->work_cond);
            w->held_wakeups = 0;
            pthread_mutex_unlock(&w->lock);
        }
        int64_t now = ns_clock_mono_ms();
        if (now - last_lag >= LAG_EVERY_MS) {
            last_lag = now;
            publish_lag(w);
        }
    }
    NS_INFO(NULL, "stopping: finishing %zu outstanding item(s)",
            w->outstanding);
    int finished =
        drain(w, NULL, (int64_t)w->cfg->worker_shutdown_grace_s * 1000);
    store_offsets(w, true);
    if (!finished) {
        /* Threads still run unfinished items: leave without waiting for
         * them; their transactions roll back when the process exits. */
        w->abandoned = 1;
        rd_kafka_commit(w->rk, NULL, 0);
        NS_WARN(NULL, "shutdown grace period exceeded");
        return 1;
    }
    rd_kafka_consumer_close(w->rk);
    NS_INFO(NULL, "left the consumer group");
    return 0;
}

/* ---- set-up ------------------------------------------------------------ */

static int ready(void *arg)
{
    ns_worker_t *w = arg;
    return w->rk != NULL && w->running != NULL && *w->running;
}

static rd_kafka_t *new_consumer(ns_worker_t *w, ns_error_t *err)
{
    /* Our defaults apply unless the kafka: section sets the key. */
    static const char *defaults[][2] = {
        {"group.id", "nightshift-workers"},
        {"partition.assignment.strategy", "cooperative-sticky"},
        {"enable.auto.commit", "true"},
        {"enable.auto.offset.store", "false"},
        {"auto.commit.interval.ms", "1000"},
        {"auto.offset.reset", "earliest"},
        {"session.timeout.ms", "10000"},
        {"heartbeat.interval.ms", "1000"},
        {"fetch.max.bytes", "33554432"},
        {"max.partition.fetch.bytes", "16777216"},
        {"receive.message.max.bytes", "67108864"},
        /* A subscribed topic that another process creates later (a stream
         * topic, a job added to the config) is seen within 10 s, not 5 min. */
        {"topic.metadata.refresh.interval.ms", "10000"},
    };
    rd_kafka_conf_t *conf = ns_kafka_conf(w->cfg, err);
    if (conf == NULL)
        return NULL;
    for (size_t i = 0; i < sizeof(defaults) / sizeof(defaults[0]); i++) {
        bool overridden = false;
        for (size_t k = 0; k < w->cfg->n_kafka; k++)
            overridden |= strcmp(w->cfg->kafka[k].key, defaults[i][0]) == 0;
        if (!overridden &&
            ns_kafka_set(conf, defaults[i][0], defaults[i][1], err) != NS_OK)
            goto fail;
    }
    rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
    rd_kafka_conf_set_opaque(conf, w);
    char errstr[512];
    rd_kafka_t *rk =
        rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    if (rk == NULL) {
        ns_error_set(err, NS_ERR_INVALID, "kafka consumer: %s", errstr);
        goto fail;
    }
    rd_kafka_poll_set_consumer(rk);
    return rk;
fail:
    rd_kafka_conf_destroy(conf);
    return NULL;
}

static ns_err_t subscribe(ns_worker_t *w, ns_error_t *err)
{
    if (ns_kafka_ensure_job_topics(w->rk, w->cfg, err) != NS_OK)
        return err->code;
    rd_kafka_topic_partition_list_t *topics =
        rd_kafka_topic_partition_list_new((int)w->cfg->n_jobs);
    for (size_t i = 0; i < w->cfg->n_jobs; i++) {
        char topic[NS_TOPIC_MAX];
        ns_job_topic(&w->cfg->jobs[i], topic);
        rd_kafka_topic_partition_list_add(topics, topic, RD_KAFKA_PARTITION_UA);
    }
    rd_kafka_resp_err_t e = rd_kafka_subscribe(w->rk, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
        return ns_error_set(err, NS_ERR_TRANSIENT, "subscribe: %s",
                            rd_kafka_err2str(e));
    return NS_OK;
}

/* ns.dlq and the retry tiers exist before anything needs them. */
static ns_err_t ensure_side_topics(ns_worker_t *w, ns_error_t *err)
{
    if (ns_kafka_ensure_topic(w->producer, NS_TOPIC_DLQ, 4, 10000, err) !=
        NS_OK)
        return err->code;
    for (int i = 0; i < w->n_tiers; i++) {
        char topic[NS_TOPIC_MAX];
        snprintf(topic, sizeof(topic), "%s%s", NS_RETRY_TOPIC_PREFIX,
                 w->tiers[i].label);
        if (ns_kafka_ensure_topic(w->producer, topic, 4, 10000, err) != NS_OK)
            return err->code;
    }
    return NS_OK;
}

ns_worker_t *ns_worker_new(const ns_config_t *cfg, ns_error_t *err)
{
    ns_worker_t *w = calloc(1, sizeof(*w));
    if (w == NULL) {
        ns_error_set(err, NS_ERR_NOMEM, "out of memory");
        return NULL;
    }
    w->cfg = cfg;
    w->kafka_pipe[0] = w->kafka_pipe[1] = -1;
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->work_cond, NULL);
    w->done_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    w->tracker = ns_tracker_new();
    w->n_threads = pool_threads_needed(cfg);
    w->ready = pool_ready_new(cfg, w->n_threads);
    /* Room for every item in flight and as many again waiting. */
    size_t in_flight = pool_in_flight_max(cfg);
    w->max_outstanding = w->n_threads * 8;
    if (w->max_outstanding < 2 * in_flight)
        w->max_outstanding = 2 * in_flight;
    if (w->max_outstanding < 1024)
        w->max_outstanding = 1024;
    if (w->done_fd < 0 || w->tracker == NULL || w->ready == NULL ||
        pipe(w->kafka_pipe) != 0 ||
        fcntl(w->kafka_pipe[0], F_SETFL, O_NONBLOCK) != 0 ||
        fcntl(w->kafka_pipe[1], F_SETFL, O_NONBLOCK) != 0) {
        ns_error_set(err, NS_ERR_IO, "worker: %s", strerror(errno));
        goto fail;
    }
    w->n_tiers = ns_retry_tiers_parse(cfg->retry_tiers, w->tiers, 8, err);
    if (w->n_tiers < 0)
        goto fail;
    if (cfg->n_rate_limits > 0) {
        if (cfg->redis_url == NULL || cfg->redis_url[0] == '\0') {
            ns_error_set(err, NS_ERR_INVALID,
                         "rate_limits need Redis: set NS_REDIS_URL");
            goto fail;
        }
        w->rl = ns_ratelimit_new(cfg->redis_url, err);
        if (w->rl == NULL)
            goto fail;
    }
    w->producer = ns_kafka_producer_new(cfg, ns_kafka_sync_dr, err);
    if (w->producer == NULL)
        goto fail;
    w->rk = new_consumer(w, err);
    if (w->rk == NULL || ensure_side_topics(w, err) != NS_OK ||
        subscribe(w, err) != NS_OK)
        goto fail;
    w->queue = rd_kafka_queue_get_consumer(w->rk);
    rd_kafka_queue_io_event_enable(w->queue, w->kafka_pipe[1], "1", 1);
    if (cfg->worker_metrics_port >= 0) {
        w->httpd =
            ns_httpd_new("0.0.0.0", cfg->worker_metrics_port, ready, w, err);
        if (w->httpd == NULL)
            goto fail;
        NS_INFO(NULL, "metrics on port %d", ns_httpd_port(w->httpd));
    }
    /* Items hold a connection only around their database work. */
    int pool_size = w->n_threads < (size_t)cfg->worker_pg_pool_size
                        ? (int)w->n_threads
                        : cfg->worker_pg_pool_size;
    w->pool = ns_pgpool_new(cfg->pg_dsn, pool_size, err);
    w->threads = calloc(w->n_threads, sizeof(*w->threads));
    w->http_groups = calloc(cfg->n_jobs + 1, sizeof(*w->http_groups));
    if (w->threads == NULL || w->pool == NULL || w->http_groups == NULL)
        goto fail;
    return w;
fail:
    ns_worker_destroy(w);
    return NULL;
}

void ns_worker_destroy(ns_worker_t *w)
{
    if (w == NULL)
        return;
    if (w->abandoned) {
        /* Pool threads are still inside handlers; the process is about to
         * exit and takes them along. Freeing what they use would crash. */
        return;
    }
    pthread_mutex_lock(&w->lock);
    w->pool_stop = 1;
    pthread_cond_broadcast(&w->work_cond);
    pthread_mutex_unlock(&w->lock);
    for (size_t i = 0; i < w->n_started; i++)
        pthread_join(w->threads[i].thread, NULL);
    free(w->threads);
    /* Drained: no call is in flight any more. */
    ns_http_async_destroy(w->http);
    free(w->http_groups);
    if (w->bk != NULL) {
        ns_bk_stats_t s = ns_bookkeeper_stats(w->bk);
        NS_INFO(NULL,
                "bookkeeping: %llu requests in %llu batches, %llu "
                "statements",
                (unsigned long long)s.served, (unsigned long long)s.batches,
                (unsigned long long)s.statements);
    }
    ns_bookkeeper_destroy(w->bk);
    if (w->sweeper_started)
        pthread_join(w->sweeper, NULL);
    ns_retrier_join(w->retrier);
    ns_outbox_join(w->outbox);
    ns_httpd_destroy(w->httpd);
    if (w->queue != NULL)
        rd_kafka_queue_destroy(w->queue);
    if (w->rk != NULL)
        rd_kafka_destroy(w->rk);
    if (w->producer != NULL) {
        rd_kafka_flush(w->producer, 10000);
        rd_kafka_destroy(w->producer);
    }
    ns_tracker_destroy(w->tracker);
    ns_readyq_destroy(w->ready);
    ns_pgpool_destroy(w->pool);
    ns_ratelimit_destroy(w->rl);
    if (w->done_fd >= 0)
        close(w->done_fd);
    if (w->kafka_pipe[0] >= 0) {
        close(w->kafka_pipe[0]);
        close(w->kafka_pipe[1]);
    }
    pthread_cond_destroy(&w->work_cond);
    pthread_mutex_destroy(&w->lock);
    free(w);
}
