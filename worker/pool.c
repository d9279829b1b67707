/* The worker's thread pool: threads take ready tasks (several at once for
 * fast handlers), process them, and hand them back to the consumer thread
 * through the done list and an eventfd. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "calls.h"
#include "handler.h"
#include "item.h"
#include "ns/clock.h"
#include "ns/kafka.h"
#include "ns/log.h"
#include "stream.h"
#include "worker_internal.h"

/* ---- the pool ---------------------------------------------------------- */

#define BATCH_MAX 256

/* The ready-queue lane of a job's topic: its index in the config (the last
 * lane for anything else). */
static size_t lane_of(const ns_config_t *cfg, const char *topic)
{
    size_t plen = strlen("ns.items.");
    if (strncmp(topic, "ns.items.", plen) == 0) {
        for (size_t i = 0; i < cfg->n_jobs; i++)
            if (strcmp(cfg->jobs[i].name, topic + plen) == 0)
                return i;
    } else {
        const ns_job_t *stream = ns_stream_job(cfg, topic);
        if (stream != NULL)
            return (size_t)(stream - cfg->jobs);
    }
    return cfg->n_jobs;
}

/* Threads for a lane of HTTP calls: they only begin and end batches of
 * calls (the waiting is on the HTTP loop), plus the one-item path of the
 * failures (retries go to the retry tiers, or wait here without them). */
#define HTTP_LANE_THREADS 16

bool pool_http_handler(const ns_handler_def_t *h)
{
    return h != NULL && h->http_request != NULL && h->http_response != NULL;
}

/* The job's items at once: its max_in_flight, else the worker's. */
static size_t job_in_flight(const ns_config_t *cfg, const ns_job_t *job)
{
    if (job->max_in_flight > 0)
        return (size_t)job->max_in_flight;
    return cfg->worker_max_in_flight > 0 ? (size_t)cfg->worker_max_in_flight
                                         : 8;
}

size_t pool_http_lane_limit(const ns_config_t *cfg, const ns_job_t *job)
{
    size_t n = job_in_flight(cfg, job);
    return n + (n < BATCH_MAX ? n : BATCH_MAX);
}

ns_readyq_t *pool_ready_new(const ns_config_t *cfg, size_t n_threads)
{
    ns_readyq_t *q = ns_readyq_new(cfg->n_jobs + 1);
    if (q == NULL)
        return NULL;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    for (size_t i = 0; i < cfg->n_jobs; i++) {
        const ns_job_t *job = &cfg->jobs[i];
        const ns_handler_def_t *h = ns_handler_find(job->handler, 0);
        size_t limit =
            job->max_in_flight > 0 ? (size_t)job->max_in_flight : n_threads;
        if (h != NULL && h->cpu_bound && cores > 0 && limit > (size_t)cores)
            limit = (size_t)cores;
        if (pool_http_handler(h)) {
            /* Items, not threads, count against the lane's limit: the
             * calls at the API (the HTTP loop keeps to max_in_flight) and
             * as many again begun, waiting behind them, so that the next
             * call goes out the moment one is answered. */
            ns_readyq_set_lane(q, i, pool_http_lane_limit(cfg, job), BATCH_MAX);
            ns_readyq_count_tasks(q, i);
            continue;
        }
        ns_readyq_set_lane(q, i, limit, h != NULL && h->batch ? BATCH_MAX : 1);
    }
    return q;
}

size_t pool_threads_needed(const ns_config_t *cfg)
{
    size_t n =
        cfg->worker_max_in_flight > 0 ? (size_t)cfg->worker_max_in_flight : 8;
    bool other = cfg->n_jobs == 0;
    for (size_t i = 0; i < cfg->n_jobs; i++) {
        const ns_job_t *job = &cfg->jobs[i];
        if (!pool_http_handler(ns_handler_find(job->handler, 0)))
            other = true;
        if ((size_t)job->max_in_flight > n)
            n = (size_t)job->max_in_flight;
    }
    /* Only HTTP lanes (the stream lane aside): their calls wait on the
     * loop, not on threads. */
    if (!other && n > HTTP_LANE_THREADS)
        n = HTTP_LANE_THREADS;
    return n;
}

size_t pool_in_flight_max(const ns_config_t *cfg)
{
    size_t n = pool_threads_needed(cfg);
    for (size_t i = 0; i < cfg->n_jobs; i++) {
        const ns_job_t *job = &cfg->jobs[i];
        size_t m = pool_http_handler(ns_handler_find(job->handler, 0))
                       ? pool_http_lane_limit(cfg, job)
                       : job_in_flight(cfg, job);
        if (m > n)
            n = m;
    }
    return n;
}

size_t pool_http_limits(const ns_config_t *cfg, size_t *limits, int *groups)
{
    size_t n = 0;
    for (size_t i = 0; i < cfg->n_jobs; i++) {
        groups[i] = 0;
        if (pool_http_handler(ns_handler_find(cfg->jobs[i].handler, 0)) &&
            n < NS_HTTP_GROUPS_MAX) {
            limits[n++] = job_in_flight(cfg, &cfg->jobs[i]);
            groups[i] = (int)n;
        }
    }
    return n;
}

bool pool_needs_http(const ns_config_t *cfg)
{
    for (size_t i = 0; i < cfg->n_jobs; i++)
        if (pool_http_handler(ns_handler_find(cfg->jobs[i].handler, 0)))
            return true;
    return false;
}

/* The HTTP loop's done callback: calls back for the pool to end. */
void pool_calls_back(void *arg, ns_http_xfer_t *list)
{
    ns_worker_t *w = arg;
    ns_http_xfer_t *last = list;
    size_t n = ns_http_xfers_count(list, &last);
    pthread_mutex_lock(&w->lock);
    last->next = w->calls_back;
    w->calls_back = list;
    w->n_calls_back += n;
    if (n > BATCH_MAX)
        pthread_cond_broadcast(&w->work_cond);
    else
        pthread_cond_signal(&w->work_cond);
    pthread_mutex_unlock(&w->lock);
}

static void message_of(const rd_kafka_message_t *m, ns_msg_t *msg, char *origin,
                       size_t origin_len, char *first, size_t first_len)
{
    *msg = (ns_msg_t){
        .topic = rd_kafka_topic_name(m->rkt),
        .partition = m->partition,
        .offset = m->offset,
        .key = m->key,
        .key_len = m->key_len,
        .value = m->payload ? m->payload : "",
        .len = m->len,
    };
    char enc[8];
    msg->compressed = ns_kafka_header_str(m, "ns-encoding", enc, sizeof(enc)) &&
                      strcmp(enc, "zstd") == 0;
    if (ns_kafka_header_str(m, "ns-origin-topic", origin, origin_len))
        msg->origin_topic = origin;
    if (ns_kafka_header_str(m, "ns-first-failure", first, first_len))
        msg->first_failure = first;
}

/* Hands a finished task to the consumer thread; caller holds the lock. */
static void finished(ns_worker_t *w, ns_task_t *task)
{
    task->next = w->done_head;
    w->done_head = task;
}

static void wake_consumer(ns_worker_t *w)
{
    uint64_t one = 1;
    ssize_t wr = write(w->done_fd, &one, sizeof(one));
    (void)wr;
}

/* Ends up to BATCH_MAX calls that are back (the lock held on entry and
 * on return). */
static void end_calls(pool_thread_t *pt)
{
    ns_worker_t *w = pt->w;
    ns_call_t *calls[BATCH_MAX];
    ns_item_outcome_t outcomes[BATCH_MAX];
    size_t n = 0;
    while (w->calls_back != NULL && n < BATCH_MAX) {
        calls[n++] = ns_call_of(w->calls_back);
        w->calls_back = w->calls_back->next;
    }
    w->n_calls_back -= n;
    pthread_mutex_unlock(&w->lock);
    ns_task_t *tasks[BATCH_MAX];
    bool kept[BATCH_MAX];
    for (size_t i = 0; i < n; i++) {
        tasks[i] = ns_call_tag(calls[i]);
        kept[i] = ns_call_xfer(calls[i])->slot_kept;
    }
    ns_calls_end(&pt->res, calls, n, outcomes);
    /* A failed call's slot at its API was kept through its failure path
     * (retries in place among it). */
    for (size_t i = 0; i < n; i++)
        if (kept[i])
            ns_http_async_release(w->http, w->http_groups[tasks[i]->lane]);
    pthread_mutex_lock(&w->lock);
    for (size_t i = 0; i < n; i++) {
        ns_readyq_release(w->ready, tasks[i]->lane);
        tasks[i]->outcome = outcomes[i];
        finished(w, tasks[i]);
    }
    pthread_mutex_unlock(&w->lock);
    wake_consumer(w);
    pthread_mutex_lock(&w->lock);
}

void *pool_main(void *arg)
{
    pool_thread_t *pt = arg;
    ns_worker_t *w = pt->w;
    ns_task_t *tasks[BATCH_MAX];
    ns_msg_t msgs[BATCH_MAX];
    ns_item_outcome_t outcomes[BATCH_MAX];
    ns_call_t *calls[BATCH_MAX];
    static _Thread_local char origins[BATCH_MAX][NS_TOPIC_MAX];
    static _Thread_local char firsts[BATCH_MAX][40];
    for (;;) {
        pthread_mutex_lock(&w->lock);
        while (!ns_readyq_runnable(w->ready) && w->calls_back == NULL &&
               !w->pool_stop)
            pthread_cond_wait(&w->work_cond, &w->lock);
        /* Calls that are back first: they free slots of their lanes. */
        if (w->calls_back != NULL) {
            end_calls(pt);
            pthread_mutex_unlock(&w->lock);
            continue;
        }
        size_t lane = 0;
        size_t n = ns_readyq_take(w->ready, tasks, BATCH_MAX, &lane);
        pthread_mutex_unlock(&w->lock);
        if (n == 0)
            break; /* stopping */

        for (size_t i = 0; i < n; i++)
            message_of(tasks[i]->rkm, &msgs[i], origins[i], sizeof(origins[i]),
                       firsts[i], sizeof(firsts[i]));
        bool http =
            w->http != NULL && lane < w->cfg->n_jobs &&
            pool_http_handler(ns_handler_find(w->cfg->jobs[lane].handler, 0));
        if (http)
            ns_calls_begin(&pt->res, w->http, w->http_groups[lane], msgs,
                           (void *const *)tasks, n, calls, outcomes);
        else if (n == 1)
            outcomes[0] = ns_item_process(&pt->res, &msgs[0]);
        else
            ns_item_process_batch(&pt->res, msgs, outcomes, n);

        pthread_mutex_lock(&w->lock);
        size_t ended = 0;
        for (size_t i = 0; i < n; i++) {
            if (http && calls[i] != NULL)
                continue; /* in flight: released when it is back */
            if (http)
                ns_readyq_release(w->ready, lane);
            tasks[i]->outcome = outcomes[i];
            finished(w, tasks[i]);
            ended++;
        }
        if (!http)
            ns_readyq_release(w->ready, lane);
        pthread_mutex_unlock(&w->lock);
        if (ended > 0)
            wake_consumer(w);
    }
    ns_item_pg_release(&pt->res);
    return NULL;
}

void start_task(ns_worker_t *w, ns_task_t *task)
{
    const rd_kafka_message_t *m = task->rkm;
    ns_part_t *part =
        ns_tracker_find(w->tracker, rd_kafka_topic_name(m->rkt), m->partition);
    if (part != NULL)
        part->started++;
    task->lane = lane_of(w->cfg, rd_kafka_topic_name(m->rkt));
    pthread_mutex_lock(&w->lock);
    ns_readyq_push(w->ready, task->lane, task);
    /* While the consumer loop takes a burst of messages, it wakes the pool
     * once at the end, so threads find many tasks (bigger batches). */
    if (w->hold_wakeups)
        w->held_wakeups++;
    else
        pthread_cond_signal(&w->work_cond);
    pthread_mutex_unlock(&w->lock);
}
