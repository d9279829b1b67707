#include "tracker.h"

#include <stdlib.h>
#include <string.h>

#define KEY_BUCKETS 4096

struct ns_keyq {
    char *key; /* topic NUL key */
    size_t key_len;
    ns_task_t *head, *tail; /* waiting tasks */
    ns_keyq_t *next;        /* bucket chain */
};

struct ns_tracker {
    ns_part_t **parts;
    size_t n_parts, cap_parts;
    ns_keyq_t *buckets[KEY_BUCKETS];
};

ns_tracker_t *ns_tracker_new(void)
{
    return calloc(1, sizeof(ns_tracker_t));
}

static void free_part(ns_part_t *p)
{
    free(p->topic);
    free(p->offsets);
    free(p->done);
    free(p);
}

void ns_tracker_clear_parts(ns_tracker_t *t)
{
    for (size_t i = 0; i < t->n_parts; i++)
        free_part(t->parts[i]);
    t->n_parts = 0;
}

void ns_tracker_destroy(ns_tracker_t *t)
{
    if (t == NULL)
        return;
    ns_tracker_clear_parts(t);
    free(t->parts);
    for (int b = 0; b < KEY_BUCKETS; b++) {
        ns_keyq_t *kq = t->buckets[b];
        while (kq != NULL) {
            ns_keyq_t *next = kq->next;
            free(kq->key);
            free(kq);
            kq = next;
        }
    }
    free(t);
}

size_t ns_tracker_n_parts(const ns_tracker_t *t)
{
    return t->n_parts;
}

ns_part_t *ns_tracker_part(ns_tracker_t *t, size_t i)
{
    return t->parts[i];
}

static ns_part_t *find_part(ns_tracker_t *t, const char *topic,
                            int32_t partition, bool create)
{
    for (size_t i = 0; i < t->n_parts; i++)
        if (t->parts[i]->partition == partition &&
            strcmp(t->parts[i]->topic, topic) == 0)
            return t->parts[i];
    if (!create)
        return NULL;
    if (t->n_parts == t->cap_parts) {
        size_t cap = t->cap_parts ? t->cap_parts * 2 : 16;
        ns_part_t **p = realloc(t->parts, cap * sizeof(*p));
        if (p == NULL)
            return NULL;
        t->parts = p;
        t->cap_parts = cap;
    }
    ns_part_t *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return NULL;
    p->topic = strdup(topic);
    p->partition = partition;
    p->next_offset = -1;
    p->stored = -1;
    t->parts[t->n_parts++] = p;
    return p;
}

ns_part_t *ns_tracker_find(ns_tracker_t *t, const char *topic,
                           int32_t partition)
{
    return find_part(t, topic, partition, false);
}

void ns_tracker_remove_part(ns_tracker_t *t, const char *topic,
                            int32_t partition)
{
    for (size_t i = 0; i < t->n_parts; i++) {
        ns_part_t *p = t->parts[i];
        if (p->partition == partition && strcmp(p->topic, topic) == 0) {
            free_part(p);
            t->parts[i] = t->parts[--t->n_parts];
            return;
        }
    }
}

ns_part_t *ns_tracker_consumed(ns_tracker_t *t, const char *topic,
                               int32_t partition, int64_t offset)
{
    ns_part_t *p = find_part(t, topic, partition, true);
    if (p == NULL)
        return NULL;
    if (p->count == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 64;
        int64_t *offs = malloc(cap * sizeof(*offs));
        bool *done = malloc(cap * sizeof(*done));
        if (offs == NULL || done == NULL) {
            free(offs);
            free(done);
            return NULL;
        }
        for (size_t i = 0; i < p->count; i++) {
            offs[i] = p->offsets[(p->head + i) % p->cap];
            done[i] = p->done[(p->head + i) % p->cap];
        }
        free(p->offsets);
        free(p->done);
        p->offsets = offs;
        p->done = done;
        p->head = 0;
        p->cap = cap;
    }
    size_t slot = (p->head + p->count) % p->cap;
    p->offsets[slot] = offset;
    p->done[slot] = false;
    p->count++;
    p->next_offset = offset + 1;
    return p;
}

void ns_tracker_finished(ns_tracker_t *t, const char *topic, int32_t partition,
                         int64_t offset)
{
    ns_part_t *p = find_part(t, topic, partition, false);
    if (p == NULL)
        return;
    for (size_t i = 0; i < p->count; i++) {
        size_t slot = (p->head + i) % p->cap;
        if (p->offsets[slot] == offset) {
            p->done[slot] = true;
            break;
        }
    }
    while (p->count > 0 && p->done[p->head]) {
        p->head = (p->head + 1) % p->cap;
        p->count--;
    }
}

static int64_t committable(const ns_part_t *p)
{
    if (p->count > 0)
        return p->offsets[p->head];
    return p->next_offset;
}

int ns_tracker_committable(ns_tracker_t *t,
                           rd_kafka_topic_partition_list_t *list, bool all)
{
    int n = 0;
    for (size_t i = 0; i < t->n_parts; i++) {
        ns_part_t *p = t->parts[i];
        int64_t off = committable(p);
        if (off < 0 || (!all && off == p->stored))
            continue;
        rd_kafka_topic_partition_list_add(list, p->topic, p->partition)
            ->offset = off;
        p->stored = off;
        n++;
    }
    return n;
}

static uint64_t hash_key(const char *k, size_t len)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)k[i]) * 1099511628211ULL;
    return h;
}

bool ns_tracker_key_enqueue(ns_tracker_t *t, ns_task_t *task, const char *topic,
                            const void *key, size_t key_len)
{
    task->next = NULL;
    task->kq = NULL;
    if (key == NULL)
        return true;
    size_t tlen = strlen(topic);
    size_t len = tlen + 1 + key_len;
    char *full = malloc(len);
    if (full == NULL)
        return true; /* ordering cannot be tracked; still process it */
    memcpy(full, topic, tlen + 1);
    memcpy(full + tlen + 1, key, key_len);
    uint64_t b = hash_key(full, len) % KEY_BUCKETS;
    for (ns_keyq_t *kq = t->buckets[b]; kq != NULL; kq = kq->next) {
        if (kq->key_len == len && memcmp(kq->key, full, len) == 0) {
            free(full);
            task->kq = kq;
            if (kq->tail)
                kq->tail->next = task;
            else
                kq->head = task;
            kq->tail = task;
            return false;
        }
    }
    ns_keyq_t *kq = calloc(1, sizeof(*kq));
    if (kq == NULL) {
        free(full);
        return true;
    }
    kq->key = full;
    kq->key_len = len;
    kq->next = t->buckets[b];
    t->buckets[b] = kq;
    task->kq = kq;
    return true;
}

static void forget_key(ns_tracker_t *t, ns_keyq_t *kq)
{
    uint64_t b = hash_key(kq->key, kq->key_len) % KEY_BUCKETS;
    for (ns_keyq_t **pp = &t->buckets[b]; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == kq) {
            *pp = kq->next;
            break;
        }
    }
    free(kq->key);
    free(kq);
}

ns_task_t *ns_tracker_key_release(ns_tracker_t *t, ns_task_t *task)
{
    ns_keyq_t *kq = task->kq;
    if (kq == NULL)
        return NULL;
    ns_task_t *next = kq->head;
    if (next == NULL) {
        forget_key(t, kq);
        return NULL;
    }
    kq->head = next->next;
    if (kq->head == NULL)
        kq->tail = NULL;
    next->next = NULL;
    return next;
}

size_t ns_tracker_drop_waiting_if(ns_tracker_t *t,
                                  bool (*match)(const ns_task_t *, void *),
                                  void *arg, void (*drop)(ns_task_t *))
{
    size_t n = 0;
    for (int b = 0; b < KEY_BUCKETS; b++) {
        for (ns_keyq_t *kq = t->buckets[b]; kq != NULL; kq = kq->next) {
            /* A key lives in one partition: all its waiting tasks match or
             * none does. */
            ns_task_t **pp = &kq->head;
            ns_task_t *prev = NULL;
            while (*pp != NULL) {
                ns_task_t *task = *pp;
                if (match == NULL || match(task, arg)) {
                    *pp = task->next;
                    drop(task);
                    n++;
                } else {
                    prev = task;
                    pp = &task->next;
                }
            }
            kq->tail = prev;
        }
    }
    return n;
}

size_t ns_tracker_drop_waiting(ns_tracker_t *t, void (*drop)(ns_task_t *))
{
    return ns_tracker_drop_waiting_if(t, NULL, NULL, drop);
}
