#include "readyq.h"

#include <stdint.h>
#include <stdlib.h>

typedef struct lane {
    ns_task_t *head, *tail;
    size_t len;
    size_t running; /* threads working on it (tasks, if per_task) */
    size_t limit, batch;
    bool per_task;
} lane_t;

struct ns_readyq {
    lane_t *lanes;
    size_t n_lanes;
    size_t next; /* where the next take starts looking */
    size_t len;
};

ns_readyq_t *ns_readyq_new(size_t n_lanes)
{
    ns_readyq_t *q = calloc(1, sizeof(*q));
    if (q == NULL)
        return NULL;
    q->n_lanes = n_lanes > 0 ? n_lanes : 1;
    q->lanes = calloc(q->n_lanes, sizeof(*q->lanes));
    if (q->lanes == NULL) {
        free(q);
        return NULL;
    }
    for (size_t i = 0; i < q->n_lanes; i++)
        ns_readyq_set_lane(q, i, SIZE_MAX, 1);
    return q;
}

void ns_readyq_destroy(ns_readyq_t *q)
{
    if (q == NULL)
        return;
    free(q->lanes);
    free(q);
}

void ns_readyq_set_lane(ns_readyq_t *q, size_t lane, size_t limit, size_t batch)
{
    if (lane >= q->n_lanes)
        return;
    q->lanes[lane].limit = limit > 0 ? limit : 1;
    q->lanes[lane].batch = batch > 0 ? batch : 1;
}

void ns_readyq_count_tasks(ns_readyq_t *q, size_t lane)
{
    if (lane < q->n_lanes)
        q->lanes[lane].per_task = true;
}

void ns_readyq_push(ns_readyq_t *q, size_t lane, ns_task_t *task)
{
    lane_t *l = &q->lanes[lane < q->n_lanes ? lane : q->n_lanes - 1];
    task->next = NULL;
    if (l->tail != NULL)
        l->tail->next = task;
    else
        l->head = task;
    l->tail = task;
    l->len++;
    q->len++;
}

static bool can_start(const lane_t *l)
{
    return l->head != NULL && l->running < l->limit;
}

size_t ns_readyq_take(ns_readyq_t *q, ns_task_t **out, size_t max, size_t *lane)
{
    for (size_t k = 0; k < q->n_lanes; k++) {
        size_t i = (q->next + k) % q->n_lanes;
        lane_t *l = &q->lanes[i];
        if (!can_start(l))
            continue;
        size_t n = 0, most = l->batch < max ? l->batch : max;
        if (l->per_task && l->limit - l->running < most)
            most = l->limit - l->running;
        while (l->head != NULL && n < most) {
            ns_task_t *t = l->head;
            l->head = t->next;
            t->next = NULL;
            out[n++] = t;
        }
        if (l->head == NULL)
            l->tail = NULL;
        l->len -= n;
        q->len -= n;
        l->running += l->per_task ? n : 1;
        q->next = (i + 1) % q->n_lanes;
        *lane = i;
        return n;
    }
    return 0;
}

void ns_readyq_release(ns_readyq_t *q, size_t lane)
{
    if (lane < q->n_lanes && q->lanes[lane].running > 0)
        q->lanes[lane].running--;
}

bool ns_readyq_runnable(const ns_readyq_t *q)
{
    for (size_t i = 0; i < q->n_lanes; i++)
        if (can_start(&q->lanes[i]))
            return true;
    return false;
}

ns_task_t *ns_readyq_pull_if(ns_readyq_t *q,
                             bool (*pred)(const ns_task_t *, void *), void *arg)
{
    ns_task_t *pulled = NULL, **pulled_tail = &pulled;
    for (size_t i = 0; i < q->n_lanes; i++) {
        lane_t *l = &q->lanes[i];
        ns_task_t **pp = &l->head;
        l->tail = NULL;
        while (*pp != NULL) {
            ns_task_t *t = *pp;
            if (pred(t, arg)) {
                *pp = t->next;
                t->next = NULL;
                *pulled_tail = t;
                pulled_tail = &t->next;
                l->len--;
                q->len--;
            } else {
                l->tail = t;
                pp = &t->next;
            }
        }
    }
    return pulled;
}

size_t ns_readyq_len(const ns_readyq_t *q)
{
    return q->len;
}

size_t ns_readyq_running(const ns_readyq_t *q, size_t lane)
{
    return lane < q->n_lanes ? q->lanes[lane].running : 0;
}
