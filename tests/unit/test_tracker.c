/* test_tracker.c: per-partition committable offsets (the lowest unfinished
 * offset) and per-key queues (one task of a key at a time, in order). */
#include "tracker.h"

#include "nstest.h"

/* The offset the tracker would commit for topic/partition, or -1 when it
 * reports none. */
static int64_t committable_of(ns_tracker_t *t, const char *topic,
                              int32_t partition)
{
    rd_kafka_topic_partition_list_t *list =
        rd_kafka_topic_partition_list_new(8);
    ns_tracker_committable(t, list, true);
    int64_t offset = -1;
    for (int i = 0; i < list->cnt; i++)
        if (list->elems[i].partition == partition &&
            strcmp(list->elems[i].topic, topic) == 0)
            offset = list->elems[i].offset;
    rd_kafka_topic_partition_list_destroy(list);
    return offset;
}

/* How many partitions ns_tracker_committable(all = false) reports. */
static int moved(ns_tracker_t *t)
{
    rd_kafka_topic_partition_list_t *list =
        rd_kafka_topic_partition_list_new(8);
    int n = ns_tracker_committable(t, list, false);
    ASSERT_EQ(n, list->cnt);
    rd_kafka_topic_partition_list_destroy(list);
    return n;
}

static void consume_range(ns_tracker_t *t, const char *topic, int32_t partition,
                          int64_t from, int64_t to)
{
    for (int64_t o = from; o < to; o++)
        ASSERT(ns_tracker_consumed(t, topic, partition, o) != NULL);
}

/* xorshift64: a reproducible sequence without global state. */
static uint64_t next_random(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *state = x;
    return x;
}

TEST(nothing_consumed_nothing_committable)
{
    ns_tracker_t *t = ns_tracker_new();
    ASSERT(t != NULL);
    ASSERT_EQ(ns_tracker_n_parts(t), 0);
    ASSERT_EQ(moved(t), 0);
    /* Finishing what was never consumed is ignored. */
    ns_tracker_finished(t, "ns.items.a", 0, 5);
    ASSERT_EQ(ns_tracker_n_parts(t), 0);
    ns_tracker_destroy(t);
    ns_tracker_destroy(NULL);
}

TEST(out_of_order_commits_lowest_unfinished)
{
    ns_tracker_t *t = ns_tracker_new();
    consume_range(t, "ns.items.a", 0, 10, 20);
    ASSERT_EQ(committable_of(t, "ns.items.a", 0), 10);
    ns_tracker_finished(t, "ns.items.a", 0, 12);
    ns_tracker_finished(t, "ns.items.a", 0, 15);
    ns_tracker_finished(t, "ns.items.a", 0, 11);
    ASSERT_EQ(committable_of(t, "ns.items.a", 0), 10);
    ns_tracker_finished(t, "ns.items.a", 0, 10);
    ASSERT_EQ(committable_of(t, "ns.items.a", 0), 13);
    ns_tracker_finished(t, "ns.items.a", 0, 14);
    ASSERT_EQ(committable_of(t, "ns.items.a", 0), 13);
    ns_tracker_finished(t, "ns.items.a", 0, 13);
    ASSERT_EQ(committable_of(t, "ns.items.a", 0), 16);
    for (int64_t o = 19; o >= 16; o--)
        ns_tracker_finished(t, "ns.items.a", 0, o);
    /* Everything done: the next offset to consume. */
    ASSERT_EQ(committable_of(t, "ns.items.a", 0), 20);
    /* Finishing twice, or an offset never seen, changes nothing. */
    ns_tracker_finished(t, "ns.items.a", 0, 19);
    ns_tracker_finished(t, "ns.items.a", 0, 1000);
    ASSERT_EQ(committable_of(t, "ns.items.a", 0), 20);
    consume_range(t, "ns.items.a", 0, 20, 22);
    ASSERT_EQ(committable_of(t, "ns.items.a", 0), 20);
    ns_tracker_destroy(t);
}

TEST(gaps_in_offsets)
{
    /* Compacted topics and transaction markers leave holes. */
    ns_tracker_t *t = ns_tracker_new();
    const int64_t offsets[] = {5, 9, 30, 31, 100};
    for (size_t i = 0; i < 5; i++)
        ASSERT(ns_tracker_consumed(t, "logs.raw", 2, offsets[i]) != NULL);
    ASSERT_EQ(committable_of(t, "logs.raw", 2), 5);
    ns_tracker_finished(t, "logs.raw", 2, 9);
    ASSERT_EQ(committable_of(t, "logs.raw", 2), 5);
    ns_tracker_finished(t, "logs.raw", 2, 5);
    ASSERT_EQ(committable_of(t, "logs.raw", 2), 30);
    ns_tracker_finished(t, "logs.raw", 2, 31);
    ns_tracker_finished(t, "logs.raw", 2, 30);
    ASSERT_EQ(committable_of(t, "logs.raw", 2), 100);
    ns_tracker_finished(t, "logs.raw", 2, 100);
    ASSERT_EQ(committable_of(t, "logs.raw", 2), 101);
    ns_tracker_destroy(t);
}

TEST(partitions_and_topics_are_independent)
{
    ns_tracker_t *t = ns_tracker_new();
    consume_range(t, "ns.items.a", 0, 0, 10);
    consume_range(t, "ns.items.a", 1, 0, 10);
    consume_range(t, "ns.items.b", 0, 0, 10);
    consume_range(t, "ns.items.ab", 0, 0, 10);
    ASSERT_EQ(ns_tracker_n_parts(t), 4);
    ASSERT_EQ(moved(t), 4);
    ASSERT_EQ(moved(t), 0); /* nothing moved since */

    for (int64_t o = 0; o < 5; o++)
        ns_tracker_finished(t, "ns.items.a", 1, o);
    ns_tracker_finished(t, "ns.items.b", 0, 0);
    ns_tracker_finished(t, "ns.items.b", 0, 2);
    ASSERT_EQ(moved(t), 2);
    ASSERT_EQ(committable_of(t, "ns.items.a", 0), 0);
    ASSERT_EQ(committable_of(t, "ns.items.a", 1), 5);
    ASSERT_EQ(committable_of(t, "ns.items.b", 0), 1);
    ASSERT_EQ(committable_of(t, "ns.items.ab", 0), 0);

    /* The same offset in another partition is another item. */
    ns_tracker_finished(t, "ns.items.ab", 1, 0);
    ns_tracker_finished(t, "ns.items.c", 0, 0);
    ASSERT_EQ(committable_of(t, "ns.items.ab", 0), 0);
    ASSERT_EQ(ns_tracker_n_parts(t), 4);

    for (size_t i = 0; i < ns_tracker_n_parts(t); i++) {
        ns_part_t *p = ns_tracker_part(t, i);
        ASSERT_EQ(p->next_offset, 10);
    }
    ns_tracker_clear_parts(t);
    ASSERT_EQ(ns_tracker_n_parts(t), 0);
    ASSERT_EQ(moved(t), 0);
    consume_range(t, "ns.items.a", 0, 50, 51);
    ASSERT_EQ(committable_of(t, "ns.items.a", 0), 50);
    ns_tracker_destroy(t);
}

TEST(many_partitions)
{
    ns_tracker_t *t = ns_tracker_new();
    for (int32_t p = 0; p < 100; p++)
        consume_range(t, p % 2 ? "odd" : "even", p, p, p + 3);
    ASSERT_EQ(ns_tracker_n_parts(t), 100);
    for (int32_t p = 0; p < 100; p++)
        ns_tracker_finished(t, p % 2 ? "odd" : "even", p, p);
    for (int32_t p = 0; p < 100; p++)
        ASSERT_EQ(committable_of(t, p % 2 ? "odd" : "even", p), p + 1);
    ns_tracker_destroy(t);
}

/* A brute-force model of one partition: every consumed offset and whether
 * it is done. */
typedef struct model {
    int64_t *offsets;
    bool *done;
    size_t n;
    size_t lowest; /* index of the lowest unfinished offset */
} model_t;

static int64_t model_committable(model_t *m)
{
    while (m->lowest < m->n && m->done[m->lowest])
        m->lowest++;
    if (m->lowest < m->n)
        return m->offsets[m->lowest];
    return m->n ? m->offsets[m->n - 1] + 1 : -1;
}

TEST(ring_growth_random_finish_order)
{
    enum { N = 10000 };
    ns_tracker_t *t = ns_tracker_new();
    model_t m = {malloc(N * sizeof(int64_t)), calloc(N, sizeof(bool)), N, 0};
    size_t *order = malloc(N * sizeof(size_t));
    uint64_t rng = 0x9e3779b97f4a7c15ULL;
    int64_t offset = 1000;
    for (size_t i = 0; i < N; i++) {
        m.offsets[i] = offset;
        ASSERT(ns_tracker_consumed(t, "ns.items.big", 3, offset) != NULL);
        offset += 1 + (int64_t)(next_random(&rng) % 3); /* some gaps */
        order[i] = i;
    }
    ASSERT(ns_tracker_part(t, 0)->cap >= N);
    for (size_t i = N - 1; i > 0; i--) {
        size_t j = (size_t)(next_random(&rng) % (i + 1));
        size_t tmp = order[i];
        order[i] = order[j];
        order[j] = tmp;
    }
    ASSERT_EQ(committable_of(t, "ns.items.big", 3), 1000);
    for (size_t step = 0; step < N; step++) {
        m.done[order[step]] = true;
        ns_tracker_finished(t, "ns.items.big", 3, m.offsets[order[step]]);
        int64_t want = model_committable(&m);
        int64_t got = committable_of(t, "ns.items.big", 3);
        if (got != want)
            NSTEST_FAIL("step %zu: committable %lld, expected %lld", step,
                        (long long)got, (long long)want);
    }
    ASSERT_EQ(committable_of(t, "ns.items.big", 3), m.offsets[N - 1] + 1);
    free(order);
    free(m.offsets);
    free(m.done);
    ns_tracker_destroy(t);
}

TEST(ring_wraps_then_grows)
{
    /* Consuming and finishing interleaved moves the ring's head, so growth
     * has to copy a wrapped ring. */
    enum { N = 20000 };
    ns_tracker_t *t = ns_tracker_new();
    model_t m = {malloc(N * sizeof(int64_t)), calloc(N, sizeof(bool)), 0, 0};
    size_t *pending = malloc(N * sizeof(size_t));
    size_t n_pending = 0;
    uint64_t rng = 42;
    int64_t offset = 0;
    size_t max_outstanding = 0;
    for (size_t step = 0; step < 3 * N && (m.n < N || n_pending > 0); step++) {
        /* Consume more often in the middle third, so the backlog rises
         * past several ring sizes and falls again. */
        unsigned consume_pct = step < N ? 55 : step < 2 * N ? 75 : 0;
        bool consume = m.n < N && (n_pending == 0 ||
                                   next_random(&rng) % 100 < consume_pct);
        if (consume) {
            m.offsets[m.n] = offset;
            ASSERT(ns_tracker_consumed(t, "ns.items.w", 0, offset) != NULL);
            pending[n_pending++] = m.n++;
            offset += 1 + (int64_t)(next_random(&rng) % 2);
        } else {
            /* Finish a random outstanding one, biased towards old ones. */
            size_t k = (size_t)(next_random(&rng) % n_pending);
            if (next_random(&rng) % 2)
                k /= 4;
            size_t idx = pending[k];
            pending[k] = pending[--n_pending];
            m.done[idx] = true;
            ns_tracker_finished(t, "ns.items.w", 0, m.offsets[idx]);
        }
        ns_part_t *p = ns_tracker_part(t, 0);
        if (p->count > max_outstanding)
            max_outstanding = p->count;
        int64_t want = model_committable(&m);
        int64_t got = committable_of(t, "ns.items.w", 0);
        if (got != want)
            NSTEST_FAIL("step %zu: committable %lld, expected %lld", step,
                        (long long)got, (long long)want);
    }
    ASSERT_EQ(m.n, N);
    ASSERT_EQ(n_pending, 0);
    ASSERT(max_outstanding > 256);
    ASSERT_EQ(committable_of(t, "ns.items.w", 0), m.offsets[N - 1] + 1);
    free(pending);
    free(m.offsets);
    free(m.done);
    ns_tracker_destroy(t);
}

/* ---- key queues ---- */

static bool enqueue(ns_tracker_t *t, ns_task_t *task, const char *key)
{
    return ns_tracker_key_enqueue(t, task, "ns.items.a", key,
                                  key ? strlen(key) : 0);
}

TEST(same_key_serialises_in_order)
{
    ns_tracker_t *t = ns_tracker_new();
    ns_task_t a = {0}, b = {0}, c = {0}, d = {0};
    ASSERT(enqueue(t, &a, "chat-1"));
    ASSERT(!enqueue(t, &b, "chat-1"));
    ASSERT(!enqueue(t, &c, "chat-1"));
    ASSERT(ns_tracker_key_release(t, &a) == &b);
    ASSERT(b.next == NULL);
    ASSERT(ns_tracker_key_release(t, &b) == &c);
    /* A newcomer queues behind the running c. */
    ASSERT(!enqueue(t, &d, "chat-1"));
    ASSERT(ns_tracker_key_release(t, &c) == &d);
    ASSERT(ns_tracker_key_release(t, &d) == NULL);
    /* The key is forgotten: the next task starts at once. */
    ns_task_t e = {0};
    ASSERT(enqueue(t, &e, "chat-1"));
    ASSERT(ns_tracker_key_release(t, &e) == NULL);
    ns_tracker_destroy(t);
}

TEST(different_keys_run_at_once)
{
    ns_tracker_t *t = ns_tracker_new();
    ns_task_t a = {0}, b = {0}, c = {0}, d = {0}, e = {0};
    ASSERT(enqueue(t, &a, "chat-1"));
    ASSERT(enqueue(t, &b, "chat-2"));
    ASSERT(enqueue(t, &c, "chat-10"));
    /* The topic is part of the key. */
    ASSERT(ns_tracker_key_enqueue(t, &d, "ns.items.b", "chat-1", 6));
    /* Keys are bytes: a prefix or an embedded NUL makes another key. */
    ASSERT(ns_tracker_key_enqueue(t, &e, "ns.items.a", "chat-1\0x", 8));
    ns_task_t f = {0}, g = {0};
    ASSERT(ns_tracker_key_enqueue(t, &f, "ns.items.a", "chat-1\0y", 8));
    /* An empty key is still a key. */
    ASSERT(ns_tracker_key_enqueue(t, &g, "ns.items.a", "", 0));
    ns_task_t h = {0};
    ASSERT(!ns_tracker_key_enqueue(t, &h, "ns.items.a", "", 0));
    ns_task_t *all[] = {&a, &b, &c, &d, &e, &f};
    for (size_t i = 0; i < 6; i++)
        ASSERT(ns_tracker_key_release(t, all[i]) == NULL);
    ASSERT(ns_tracker_key_release(t, &g) == &h);
    ASSERT(ns_tracker_key_release(t, &h) == NULL);
    ns_tracker_destroy(t);
}

TEST(no_key_never_waits)
{
    ns_tracker_t *t = ns_tracker_new();
    ns_task_t tasks[5];
    memset(tasks, 0, sizeof(tasks));
    for (int i = 0; i < 5; i++) {
        tasks[i].next = &tasks[0]; /* stale link: must be reset */
        ASSERT(ns_tracker_key_enqueue(t, &tasks[i], "ns.items.a", NULL, 0));
        ASSERT(tasks[i].kq == NULL);
        ASSERT(tasks[i].next == NULL);
    }
    for (int i = 0; i < 5; i++)
        ASSERT(ns_tracker_key_release(t, &tasks[i]) == NULL);
    ns_tracker_destroy(t);
}

static size_t n_dropped;
static ns_task_t *dropped[16];

static void record_drop(ns_task_t *task)
{
    ASSERT(n_dropped < 16);
    dropped[n_dropped++] = task;
}

TEST(drop_waiting_keeps_running)
{
    ns_tracker_t *t = ns_tracker_new();
    ns_task_t a = {0}, b = {0}, c = {0}, d = {0}, e = {0}, f = {0};
    ASSERT(enqueue(t, &a, "k1"));
    ASSERT(!enqueue(t, &b, "k1"));
    ASSERT(!enqueue(t, &c, "k1"));
    ASSERT(enqueue(t, &d, "k2"));
    ASSERT(!enqueue(t, &e, "k2"));
    ASSERT(enqueue(t, &f, "k3"));
    ASSERT_EQ(ns_tracker_drop_waiting(t, record_drop), 3);
    ASSERT_EQ(n_dropped, 3);
    int seen_b = 0, seen_c = 0, seen_e = 0;
    for (size_t i = 0; i < n_dropped; i++) {
        seen_b += dropped[i] == &b;
        seen_c += dropped[i] == &c;
        seen_e += dropped[i] == &e;
    }
    ASSERT(seen_b == 1 && seen_c == 1 && seen_e == 1);
    ASSERT_EQ(ns_tracker_drop_waiting(t, record_drop), 0);

    /* a still runs: its key stays busy. */
    ns_task_t g = {0};
    ASSERT(!enqueue(t, &g, "k1"));
    ASSERT(ns_tracker_key_release(t, &a) == &g);
    ASSERT(ns_tracker_key_release(t, &g) == NULL);
    ASSERT(ns_tracker_key_release(t, &d) == NULL);
    ASSERT(ns_tracker_key_release(t, &f) == NULL);
    ns_task_t h = {0};
    ASSERT(enqueue(t, &h, "k1"));
    ASSERT(ns_tracker_key_release(t, &h) == NULL);
    ns_tracker_destroy(t);
}

TEST(many_keys_share_buckets)
{
    enum { KEYS = 10000 };
    ns_tracker_t *t = ns_tracker_new();
    ns_task_t *first = calloc(KEYS, sizeof(ns_task_t));
    ns_task_t *second = calloc(KEYS, sizeof(ns_task_t));
    char key[32];
    for (int i = 0; i < KEYS; i++) {
        snprintf(key, sizeof(key), "chat-%d", i);
        ASSERT(enqueue(t, &first[i], key));
        ASSERT(!enqueue(t, &second[i], key));
    }
    /* Release in an order unrelated to the bucket chains. */
    for (int i = KEYS - 1; i >= 0; i -= 2)
        ASSERT(ns_tracker_key_release(t, &first[i]) == &second[i]);
    for (int i = 0; i < KEYS; i += 2)
        ASSERT(ns_tracker_key_release(t, &first[i]) == &second[i]);
    for (int i = 0; i < KEYS; i++)
        ASSERT(ns_tracker_key_release(t, &second[i]) == NULL);
    for (int i = 0; i < KEYS; i++) {
        snprintf(key, sizeof(key), "chat-%d", i);
        ASSERT(enqueue(t, &first[i], key));
    }
    /* Destroying with keys still held frees them (ASan checks). */
    ns_tracker_destroy(t);
    free(first);
    free(second);
}

NSTEST_MAIN
