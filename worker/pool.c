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
        ns_readyq_set_lane(q, i, limit, h != NULL && h->batch ? BATCH_MAX : 1);
    }
    return q;
}

size_t pool_threads_needed(const ns_config_t *cfg)
{
    size_t n =
        cfg->worker_max_in_flight > 0 ? (size_t)cfg->worker_max_in_flight : 8;
    for (size_t i = 0; i < cfg->n_jobs; i++)
        if ((size_t)cfg->jobs[i].max_in_flight > n)
            n = (size_t)cfg->jobs[i].max_in_flight;
    return n;
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

void *pool_main(void *arg)
{
    pool_thread_t *pt = arg;
    ns_worker_t *w = pt->w;
    ns_task_t *tasks[BATCH_MAX];
    ns_msg_t msgs[BATCH_MAX];
    ns_item_outcome_t outcomes[BATCH_MAX];
    static _Thread_local char origins[BATCH_MAX][NS_TOPIC_MAX];
    static _Thread_local char firsts[BATCH_MAX][40];
    for (;;) {
        pthread_mutex_lock(&w->lock);
        while (!ns_readyq_runnable(w->ready) && !w->pool_stop)
            pthread_cond_wait(&w->work_cond, &w->lock);
        size_t lane = 0;
        size_t n = ns_readyq_take(w->ready, tasks, BATCH_MAX, &lane);
        pthread_mutex_unlock(&w->lock);
        if (n == 0)
            break; /* stopping */

        for (size_t i = 0; i < n; i++)
            message_of(tasks[i]->rkm, &msgs[i], origins[i], sizeof(origins[i]),
                       firsts[i], sizeof(firsts[i]));
        if (n == 1)
            outcomes[0] = ns_item_process(&pt->res, &msgs[0]);
        else
            ns_item_process_batch(&pt->res, msgs, outcomes, n);

        pthread_mutex_lock(&w->lock);
        ns_readyq_release(w->ready, lane);
        for (size_t i = 0; i < n; i++) {
            tasks[i]->outcome = outcomes[i];
            tasks[i]->next = w->done_head;
            w->done_head = tasks[i];
        }
        pthread_mutex_unlock(&w->lock);
        uint64_t one = 1;
        ssize_t wr = write(w->done_fd, &one, sizeof(one));
        (void)wr;
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
