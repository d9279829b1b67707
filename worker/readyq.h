/* readyq.h: the tasks waiting for a pool thread, one FIFO lane per job.
 *
 * Each lane has a limit on how many threads work on it at once (the job's
 * max_in_flight; one per core for CPU-bound handlers) and how many tasks a
 * thread takes at once (several for fast handlers, whose bookkeeping is
 * batched). Threads take from the lanes in turn, so one job's burst does not
 * starve another's items. Not thread-safe: the worker holds its lock. */
#ifndef NS_READYQ_H
#define NS_READYQ_H

#include <stdbool.h>
#include <stddef.h>

#include "tracker.h"

typedef struct ns_readyq ns_readyq_t;

/** @brief n_lanes lanes, each unlimited (SIZE_MAX threads) taking one task
 *  at a time until set. @returns NULL when out of memory. */
ns_readyq_t *ns_readyq_new(size_t n_lanes);
/** @brief Frees the queue, not the tasks still in it. NULL: no-op. */
void ns_readyq_destroy(ns_readyq_t *q);

/** @brief limit: threads at once (>= 1); batch: tasks per take (>= 1). */
void ns_readyq_set_lane(ns_readyq_t *q, size_t lane, size_t limit,
                        size_t batch);

/** @brief The lane's limit counts tasks, not threads: for tasks that wait
 *  outside a thread (HTTP calls on the worker's loop), each released on
 *  its own when it ends. */
void ns_readyq_count_tasks(ns_readyq_t *q, size_t lane);

void ns_readyq_push(ns_readyq_t *q, size_t lane, ns_task_t *task);

/** @brief Takes up to the lane's batch of tasks from the next lane (in
 *  turn) that has tasks and a free slot, and counts a thread on it.
 *  @returns how many (0: nothing may start now); *lane is theirs. */
size_t ns_readyq_take(ns_readyq_t *q, ns_task_t **out, size_t max,
                      size_t *lane);

/** @brief A thread finished what it took from lane (a per-task lane: one
 *  task ended). */
void ns_readyq_release(ns_readyq_t *q, size_t lane);

/** @brief Whether ns_readyq_take would return something. */
bool ns_readyq_runnable(const ns_readyq_t *q);

/** @brief Removes the tasks for which pred is true, in order; returns them
 *  linked through ->next. */
ns_task_t *ns_readyq_pull_if(ns_readyq_t *q,
                             bool (*pred)(const ns_task_t *, void *),
                             void *arg);

/** @brief Tasks waiting in all lanes. */
size_t ns_readyq_len(const ns_readyq_t *q);
/** @brief Threads working on lane now. */
size_t ns_readyq_running(const ns_readyq_t *q, size_t lane);

#endif
