/* tracker.h (worker-private): per-partition offset tracking and per-key
 * queues. Only the consumer thread touches these.
 * - A partition's committable offset is its lowest unfinished offset.
 * - Items with the same key run one at a time, in offset order. */
#ifndef NS_TRACKER_H
#define NS_TRACKER_H

#include <librdkafka/rdkafka.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct ns_task ns_task_t;
typedef struct ns_keyq ns_keyq_t;

struct ns_task {
    rd_kafka_message_t *rkm; /* owned */
    ns_keyq_t *kq;           /* NULL: no key, no ordering needed */
    int outcome;             /* ns_item_outcome_t once finished */
    size_t lane;             /* its job's lane in the ready queue */
    ns_task_t *next;
};

typedef struct ns_part {
    char *topic;
    int32_t partition;
    int64_t *offsets; /* ring of outstanding offsets, ascending */
    bool *done;
    size_t head, count, cap;
    int64_t next_offset; /* last consumed + 1, -1 before the first */
    int started;         /* tasks handed to the pool, not yet collected */
    int64_t stored;      /* last offset handed to offsets_store */
} ns_part_t;

typedef struct ns_tracker ns_tracker_t;

ns_tracker_t *ns_tracker_new(void);
void ns_tracker_destroy(ns_tracker_t *t);

/** @brief Records a consumed offset as outstanding. */
ns_part_t *ns_tracker_consumed(ns_tracker_t *t, const char *topic,
                               int32_t partition, int64_t offset);
/** @brief Marks an offset finished (committable). */
void ns_tracker_finished(ns_tracker_t *t, const char *topic, int32_t partition,
                         int64_t offset);
/** @brief Adds to list every partition whose committable offset moved
 *  (or all when all is true). @returns how many were added. */
int ns_tracker_committable(ns_tracker_t *t,
                           rd_kafka_topic_partition_list_t *list, bool all);
/** @brief The partition's state, or NULL if untracked. */
ns_part_t *ns_tracker_find(ns_tracker_t *t, const char *topic,
                           int32_t partition);
/** @brief Forgets one partition (after it was revoked). */
void ns_tracker_remove_part(ns_tracker_t *t, const char *topic,
                            int32_t partition);
/** @brief Forgets every partition (after a revoke). */
void ns_tracker_clear_parts(ns_tracker_t *t);
size_t ns_tracker_n_parts(const ns_tracker_t *t);
ns_part_t *ns_tracker_part(ns_tracker_t *t, size_t i);

/** @brief Enqueues task under its key. @returns true when the task may
 *  start now (its key was idle), false when it waits behind another. */
bool ns_tracker_key_enqueue(ns_tracker_t *t, ns_task_t *task, const char *topic,
                            const void *key, size_t key_len);
/** @brief The task finished: returns the next task of its key to start,
 *  or NULL (the key is then forgotten). */
ns_task_t *ns_tracker_key_release(ns_tracker_t *t, ns_task_t *task);
/** @brief Removes every waiting (not started) task, calling drop on each.
 *  Keys with a running task stay. @returns how many were dropped. */
size_t ns_tracker_drop_waiting(ns_tracker_t *t, void (*drop)(ns_task_t *));
/** @brief Like ns_tracker_drop_waiting, only for tasks for which
 *  match(task, arg) is true (e.g. those of revoked partitions). */
size_t ns_tracker_drop_waiting_if(ns_tracker_t *t,
                                  bool (*match)(const ns_task_t *, void *),
                                  void *arg, void (*drop)(ns_task_t *));

#endif
