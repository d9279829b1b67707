/* test_readyq.c: the pool's ready queue: a lane per job with a limit on
 * threads at once (max_in_flight, one per core for CPU-bound handlers), a
 * batch size, and lanes taken in turn. */
#include "readyq.h"

#include "nstest.h"

static ns_task_t tasks[64];

/* Task i carries i in its outcome field, to be recognised. */
static ns_task_t *task(int i)
{
    tasks[i] = (ns_task_t){.outcome = i};
    return &tasks[i];
}

TEST(one_lane_is_fifo_and_respects_its_limit)
{
    ns_readyq_t *q = ns_readyq_new(1);
    ns_readyq_set_lane(q, 0, 2, 1);
    for (int i = 0; i < 5; i++)
        ns_readyq_push(q, 0, task(i));
    ASSERT_EQ(ns_readyq_len(q), 5);
    ns_task_t *out[8];
    size_t lane = 99;
    ASSERT_EQ(ns_readyq_take(q, out, 8, &lane), 1);
    ASSERT_EQ(lane, 0);
    ASSERT_EQ(out[0]->outcome, 0);
    ASSERT_EQ(ns_readyq_take(q, out, 8, &lane), 1);
    ASSERT_EQ(out[0]->outcome, 1);
    /* Two threads on the lane: the third waits though tasks are ready. */
    ASSERT(!ns_readyq_runnable(q));
    ASSERT_EQ(ns_readyq_take(q, out, 8, &lane), 0);
    ASSERT_EQ(ns_readyq_running(q, 0), 2);
    ns_readyq_release(q, 0);
    ASSERT(ns_readyq_runnable(q));
    ASSERT_EQ(ns_readyq_take(q, out, 8, &lane), 1);
    ASSERT_EQ(out[0]->outcome, 2);
    ASSERT_EQ(ns_readyq_len(q), 2);
    ns_readyq_destroy(q);
}

TEST(batches_take_several_and_count_one_thread)
{
    ns_readyq_t *q = ns_readyq_new(1);
    ns_readyq_set_lane(q, 0, 1, 4);
    for (int i = 0; i < 10; i++)
        ns_readyq_push(q, 0, task(i));
    ns_task_t *out[8];
    size_t lane;
    ASSERT_EQ(ns_readyq_take(q, out, 8, &lane), 4);
    for (int i = 0; i < 4; i++)
        ASSERT_EQ(out[i]->outcome, i);
    ASSERT_EQ(ns_readyq_take(q, out, 8, &lane), 0);
    ns_readyq_release(q, 0);
    /* The caller's max caps a batch too. */
    ASSERT_EQ(ns_readyq_take(q, out, 3, &lane), 3);
    ASSERT_EQ(out[0]->outcome, 4);
    ns_readyq_destroy(q);
}

TEST(a_per_task_lane_counts_tasks_against_its_limit)
{
    ns_readyq_t *q = ns_readyq_new(1);
    ns_readyq_set_lane(q, 0, 5, 4);
    ns_readyq_count_tasks(q, 0);
    for (int i = 0; i < 10; i++)
        ns_readyq_push(q, 0, task(i));
    ns_task_t *out[8];
    size_t lane;
    ASSERT_EQ(ns_readyq_take(q, out, 8, &lane), 4);
    ASSERT_EQ(ns_readyq_running(q, 0), 4);
    /* One slot of five is left: a take gets one task, not a batch. */
    ASSERT_EQ(ns_readyq_take(q, out, 8, &lane), 1);
    ASSERT_EQ(out[0]->outcome, 4);
    ASSERT(!ns_readyq_runnable(q));
    ASSERT_EQ(ns_readyq_take(q, out, 8, &lane), 0);
    /* Each task ends on its own. */
    ns_readyq_release(q, 0);
    ns_readyq_release(q, 0);
    ASSERT_EQ(ns_readyq_running(q, 0), 3);
    ASSERT_EQ(ns_readyq_take(q, out, 8, &lane), 2);
    ASSERT_EQ(out[0]->outcome, 5);
    ASSERT_EQ(out[1]->outcome, 6);
    ASSERT_EQ(ns_readyq_running(q, 0), 5);
    ns_readyq_destroy(q);
}

TEST(lanes_take_turns_and_a_full_lane_does_not_block_others)
{
    ns_readyq_t *q = ns_readyq_new(3);
    ns_readyq_set_lane(q, 0, 1, 1);
    ns_readyq_set_lane(q, 1, 8, 1);
    /* A burst of lane 0, then lane 1 and lane 2 one each. */
    for (int i = 0; i < 6; i++)
        ns_readyq_push(q, 0, task(i));
    ns_readyq_push(q, 1, task(10));
    ns_readyq_push(q, 2, task(20));
    ns_task_t *out[1];
    size_t lane;
    int order[3];
    for (int i = 0; i < 3; i++) {
        ASSERT_EQ(ns_readyq_take(q, out, 1, &lane), 1);
        order[i] = out[0]->outcome;
    }
    ASSERT_EQ(order[0], 0);
    ASSERT_EQ(order[1], 10);
    ASSERT_EQ(order[2], 20);
    /* Lane 0 is at its limit: nothing else may start. */
    ASSERT_EQ(ns_readyq_take(q, out, 1, &lane), 0);
    ns_readyq_release(q, 0);
    ASSERT_EQ(ns_readyq_take(q, out, 1, &lane), 1);
    ASSERT_EQ(out[0]->outcome, 1);
    ns_readyq_destroy(q);
}

static bool odd(const ns_task_t *t, void *arg)
{
    (void)arg;
    return t->outcome % 2 == 1;
}

TEST(pull_if_removes_in_order_and_keeps_the_rest_usable)
{
    ns_readyq_t *q = ns_readyq_new(2);
    for (int i = 0; i < 6; i++)
        ns_readyq_push(q, (size_t)(i % 2 == 0 ? 0 : i / 3), task(i));
    /* lane 0: 0 1 2 4, lane 1: 3 5 */
    ns_task_t *pulled = ns_readyq_pull_if(q, odd, NULL);
    int seen[3], n = 0;
    for (ns_task_t *t = pulled; t != NULL; t = t->next)
        seen[n++] = t->outcome;
    ASSERT_EQ(n, 3);
    ASSERT_EQ(seen[0], 1);
    ASSERT_EQ(seen[1], 3);
    ASSERT_EQ(seen[2], 5);
    ASSERT_EQ(ns_readyq_len(q), 3);
    /* Pushing after a pull appends behind what is left. */
    ns_readyq_push(q, 0, task(40));
    ns_task_t *out[1];
    size_t lane;
    int got[4];
    for (int i = 0; i < 4; i++) {
        ASSERT_EQ(ns_readyq_take(q, out, 1, &lane), 1);
        got[i] = out[0]->outcome;
        ns_readyq_release(q, lane);
    }
    ASSERT_EQ(got[0], 0);
    ASSERT_EQ(got[1], 2);
    ASSERT_EQ(got[2], 4);
    ASSERT_EQ(got[3], 40);
    ASSERT_EQ(ns_readyq_len(q), 0);
    ASSERT(!ns_readyq_runnable(q));
    ns_readyq_destroy(q);
}

NSTEST_MAIN
