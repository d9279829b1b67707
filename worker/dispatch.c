/* The consumer thread's bookkeeping: finished tasks advance offsets and
 * release their key; revoked partitions (and shutdown) are drained. */
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

/* ---- offsets ----------------------------------------------------------- */

void store_offsets(ns_worker_t *w, bool all)
{
    rd_kafka_topic_partition_list_t *list =
        rd_kafka_topic_partition_list_new(8);
    if (ns_tracker_committable(w->tracker, list, all) > 0) {
        rd_kafka_resp_err_t e = rd_kafka_offsets_store(w->rk, list);
        if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
            NS_WARN(NULL, "storing offsets: %s", rd_kafka_err2str(e));
    }
    rd_kafka_topic_partition_list_destroy(list);
}

void drop_task(ns_task_t *task)
{
    rd_kafka_message_destroy(task->rkm);
    free(task);
}

/* Consumer thread: takes finished tasks, advances offsets, starts the next
 * task of each released key. */
int collect_done(ns_worker_t *w)
{
    uint64_t n;
    ssize_t rd = read(w->done_fd, &n, sizeof(n));
    (void)rd;
    pthread_mutex_lock(&w->lock);
    ns_task_t *done = w->done_head;
    w->done_head = NULL;
    pthread_mutex_unlock(&w->lock);
    int count = 0;
    while (done != NULL) {
        ns_task_t *task = done;
        done = task->next;
        const rd_kafka_message_t *m = task->rkm;
        ns_part_t *part = ns_tracker_find(
            w->tracker, rd_kafka_topic_name(m->rkt), m->partition);
        if (part != NULL)
            part->started--;
        if (task->outcome == NS_ITEM_COMMITTED)
            ns_tracker_finished(w->tracker, rd_kafka_topic_name(m->rkt),
                                m->partition, m->offset);
        ns_task_t *next = ns_tracker_key_release(w->tracker, task);
        if (next != NULL)
            start_task(w, next);
        drop_task(task);
        w->outstanding--;
        count++;
    }
    if (count > 0)
        store_offsets(w, false);
    return count;
}

/* True when the task's partition is in the list (NULL: every partition). */
static bool task_in(const ns_task_t *task, void *arg)
{
    const rd_kafka_topic_partition_list_t *parts = arg;
    const rd_kafka_message_t *m = task->rkm;
    return parts == NULL ||
           rd_kafka_topic_partition_list_find(
               parts, rd_kafka_topic_name(m->rkt), m->partition) != NULL;
}

static int started_in(ns_worker_t *w,
                      const rd_kafka_topic_partition_list_t *parts)
{
    int n = 0;
    for (size_t i = 0; i < ns_tracker_n_parts(w->tracker); i++) {
        ns_part_t *p = ns_tracker_part(w->tracker, i);
        if (parts == NULL || rd_kafka_topic_partition_list_find(
                                 parts, p->topic, p->partition) != NULL)
            n += p->started;
    }
    return n;
}

/* For the partitions in parts (NULL: all): hands back the tasks not started
 * yet (their offsets are never passed, so they are redelivered) and waits
 * up to grace_ms for the running ones. Used on revoke and shutdown.
 * Returns 0 if running items were still unfinished at the deadline. */
int drain(ns_worker_t *w, const rd_kafka_topic_partition_list_t *parts,
          int64_t grace_ms)
{
    size_t dropped = 0;
    pthread_mutex_lock(&w->lock);
    ns_task_t *pulled = ns_readyq_pull_if(w->ready, task_in, (void *)parts);
    pthread_mutex_unlock(&w->lock);
    while (pulled != NULL) {
        ns_task_t *next = pulled->next;
        const rd_kafka_message_t *m = pulled->rkm;
        ns_part_t *part = ns_tracker_find(
            w->tracker, rd_kafka_topic_name(m->rkt), m->partition);
        if (part != NULL)
            part->started--;
        /* Waiting tasks of the same key must not start: drop them too. */
        ns_task_t *waiting = ns_tracker_key_release(w->tracker, pulled);
        while (waiting != NULL) {
            ns_task_t *after = ns_tracker_key_release(w->tracker, waiting);
            drop_task(waiting);
            dropped++;
            waiting = after;
        }
        drop_task(pulled);
        dropped++;
        pulled = next;
    }
    dropped += ns_tracker_drop_waiting_if(w->tracker, task_in, (void *)parts,
                                          drop_task);
    w->outstanding -= dropped;
    if (dropped > 0)
        NS_INFO(NULL, "handed back %zu items not yet started", dropped);
    int64_t deadline = ns_clock_mono_ms() + grace_ms;
    while (started_in(w, parts) > 0) {
        if (ns_clock_mono_ms() > deadline) {
            NS_WARN(NULL,
                    "%d item(s) still running after %lld ms; they "
                    "will be redelivered",
                    started_in(w, parts), (long long)grace_ms);
            return 0;
        }
        struct pollfd pfd = {.fd = w->done_fd, .events = POLLIN};
        poll(&pfd, 1, 200);
        collect_done(w);
    }
    return 1;
}

/* ---- rebalances -------------------------------------------------------- */

void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                  rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    ns_worker_t *w = opaque;
    bool cooperative =
        strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        NS_INFO(NULL, "assigned %d partition(s)%s", parts->cnt,
                cooperative ? " (incremental)" : "");
        if (cooperative) {
            rd_kafka_error_t *e = rd_kafka_incremental_assign(rk, parts);
            if (e != NULL) {
                NS_ERROR(NULL, "incremental assign: %s",
                         rd_kafka_error_string(e));
                rd_kafka_error_destroy(e);
            }
        } else {
            rd_kafka_assign(rk, parts);
        }
        w->assigned += parts->cnt;
        return;
    }
    /* Revoked (or lost): finish what runs in those partitions, hand back
     * what waits, commit, then let go. A lost assignment is not committed:
     * another member may own it already. */
    bool lost = rd_kafka_assignment_lost(rk);
    NS_INFO(NULL, "%s %d partition(s)", lost ? "lost" : "revoking",
            parts ? parts->cnt : 0);
    drain(w, parts, (int64_t)w->cfg->worker_shutdown_grace_s * 1000);
    if (!lost) {
        store_offsets(w, true);
        rd_kafka_resp_err_t ce = rd_kafka_commit(rk, NULL, 0);
        if (ce != RD_KAFKA_RESP_ERR_NO_ERROR &&
            ce != RD_KAFKA_RESP_ERR__NO_OFFSET)
            NS_WARN(NULL, "commit on revoke: %s", rd_kafka_err2str(ce));
    }
    for (int i = 0; parts != NULL && i < parts->cnt; i++)
        ns_tracker_remove_part(w->tracker, parts->elems[i].topic,
                               parts->elems[i].partition);
    if (cooperative) {
        rd_kafka_error_t *e = rd_kafka_incremental_unassign(rk, parts);
        if (e != NULL) {
            NS_ERROR(NULL, "incremental unassign: %s",
                     rd_kafka_error_string(e));
            rd_kafka_error_destroy(e);
        }
        w->assigned -= parts ? parts->cnt : 0;
    } else {
        ns_tracker_clear_parts(w->tracker);
        rd_kafka_assign(rk, NULL);
        w->assigned = 0;
    }
}
