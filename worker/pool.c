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
#include "worker_internal.h"

/* ---- the pool ---------------------------------------------------------- */

static int header_copy(rd_kafka_headers_t *hdrs, const char *name, char *out,
                       size_t outlen)
{
    const void *v = NULL;
    size_t len = 0;
    if (rd_kafka_header_get_last(hdrs, name, &v, &len) !=
            RD_KAFKA_RESP_ERR_NO_ERROR ||
        v == NULL || len >= outlen)
        return 0;
    memcpy(out, v, len);
    out[len] = '\0';
    return 1;
}

#define BATCH_MAX 64

/* Whether items of this topic may be taken in batches (fast handlers). */
static bool batchable(const ns_config_t *cfg, const char *topic)
{
    size_t plen = strlen("ns.items.");
    if (strncmp(topic, "ns.items.", plen) != 0)
        return false;
    const ns_job_t *job = ns_config_job(cfg, topic + plen);
    const ns_handler_def_t *h = job ? ns_handler_find(job->handler, 0) : NULL;
    return h != NULL && h->batch;
}

/* Caller holds w->lock: takes the first ready task and, for a batchable
 * topic, more of the same topic. */
static size_t take_tasks(ns_worker_t *w, ns_task_t **out)
{
    ns_task_t *first = w->ready_head;
    w->ready_head = first->next;
    if (w->ready_head == NULL)
        w->ready_tail = NULL;
    out[0] = first;
    size_t n = 1;
    const char *topic = rd_kafka_topic_name(first->rkm->rkt);
    if (!batchable(w->cfg, topic))
        return 1;
    ns_task_t **pp = &w->ready_head;
    ns_task_t *prev = NULL;
    int scanned = 0;
    while (*pp != NULL && n < BATCH_MAX && scanned++ < 4 * BATCH_MAX) {
        ns_task_t *t = *pp;
        if (strcmp(rd_kafka_topic_name(t->rkm->rkt), topic) == 0) {
            *pp = t->next;
            out[n++] = t;
        } else {
            prev = t;
            pp = &t->next;
        }
    }
    if (w->ready_head == NULL)
        w->ready_tail = NULL;
    else if (*pp == NULL)
        w->ready_tail = prev;
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
    rd_kafka_headers_t *hdrs = NULL;
    const void *enc = NULL;
    size_t enc_len = 0;
    if (rd_kafka_message_headers(m, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return;
    if (rd_kafka_header_get_last(hdrs, "ns-encoding", &enc, &enc_len) ==
        RD_KAFKA_RESP_ERR_NO_ERROR)
        msg->compressed = enc_len == 4 && memcmp(enc, "zstd", 4) == 0;
    if (header_copy(hdrs, "ns-origin-topic", origin, origin_len))
        msg->origin_topic = origin;
    if (header_copy(hdrs, "ns-first-failure", first, first_len))
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
        while (w->ready_head == NULL && !w->pool_stop)
            pthread_cond_wait(&w->work_cond, &w->lock);
        if (w->ready_head == NULL) {
            pthread_mutex_unlock(&w->lock);
            break;
        }
        size_t n = take_tasks(w, tasks);
        pthread_mutex_unlock(&w->lock);

        for (size_t i = 0; i < n; i++)
            message_of(tasks[i]->rkm, &msgs[i], origins[i], sizeof(origins[i]),
                       firsts[i], sizeof(firsts[i]));
        if (n == 1)
            outcomes[0] = ns_item_process(&pt->res, &msgs[0]);
        else
            ns_item_process_batch(&pt->res, msgs, outcomes, n);

        pthread_mutex_lock(&w->lock);
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
    task->next = NULL;
    pthread_mutex_lock(&w->lock);
    if (w->ready_tail)
        w->ready_tail->next = task;
    else
        w->ready_head = task;
    w->ready_tail = task;
    /* While the consumer loop takes a burst of messages, it wakes the pool
     * once at the end, so threads find many tasks (bigger batches). */
    if (w->hold_wakeups)
        w->held_wakeups++;
    else
        pthread_cond_signal(&w->work_cond);
    pthread_mutex_unlock(&w->lock);
}
