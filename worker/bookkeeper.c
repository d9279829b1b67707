#include "bookkeeper.h"

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ns/clock.h"
#include "ns/log.h"
#include "ns/pg.h"

/* Requests taken per batch; more wait for the next one. */
#define BK_BATCH_MAX 512
/* A statement that failed on a live connection (a deadlock with another
 * worker's batch, say) is tried this often before callers fall back. */
#define BK_TRIES 3

typedef enum bk_op { OP_START, OP_DONE, OP_CHECK } bk_op_t;

/* One caller's request; lives on the caller's stack until finished. */
typedef struct bk_req {
    bk_op_t op;
    int64_t run_id;
    const char *item_key;
    const char *report;
    ns_bk_result_t result;
    int attempt;
    bool maybe_complete;
    bool finished;
    pthread_cond_t cond;
    struct bk_req *next;
} bk_req_t;

typedef struct bk_conn {
    struct ns_bookkeeper *bk;
    PGconn *pg; /* this thread's */
    pthread_t thread;
    bool started;
} bk_conn_t;

/* Runs remembered with a pending item ("witness") each: while it is still
 * pending the run cannot be complete, which one primary-key lookup shows.
 * Without one, finding the run's first pending item walks the pending
 * index from the start of the run, over the entries of every item already
 * done (they stay until vacuum): a cost that grew with the run and was
 * paid for every batch. */
#define BK_WITNESSES 64

typedef struct bk_witness {
    int64_t run_id;
    char *key; /* NULL: slot free */
    uint64_t used;
} bk_witness_t;

struct ns_bookkeeper {
    char *dsn;
    bk_witness_t witnesses[BK_WITNESSES]; /* under lock */
    uint64_t witness_clock;
    volatile sig_atomic_t *running;
    bk_conn_t conns[NS_BK_MAX_CONNECTIONS];
    int n_conns;
    pthread_mutex_t lock;
    pthread_cond_t cond; /* work for the thread */
    bk_req_t *head, *tail;
    bool stop;
    ns_bk_stats_t stats; /* under lock */
};

static void nap_ms(int64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Every statement below finds its items through `run_id = $1 AND
 * item_key = ANY($2)`, an index condition whatever the statistics say. (A
 * join with a set of keys is not: right after a run's items were inserted
 * the statistics say almost nothing is pending, and the planner scans
 * every pending item of the table per batch.) */
static ns_err_t configure(PGconn *pg, ns_error_t *err)
{
    return ns_pg_exec(pg, "SET application_name = 'nightshift-bookkeeper'", 0,
                      NULL, err);
}

/* Runs one statement for a batch. Waits while Postgres is unreachable
 * (until the worker stops: *fail = NS_BK_STOPPING); gives up on a
 * statement that keeps failing on a live connection (*fail =
 * NS_BK_ERROR). */
static PGresult *bk_query(bk_conn_t *c, const char *name, const char *sql,
                          int n_params, const char *const *params,
                          ns_bk_result_t *fail)
{
    ns_bookkeeper_t *bk = c->bk;
    for (int tries = 0, errors = 0;; tries++) {
        ns_error_t err;
        ns_error_clear(&err);
        bool fresh = c->pg == NULL || PQstatus(c->pg) != CONNECTION_OK;
        if (ns_pg_ensure(&c->pg, bk->dsn, &err) == NS_OK &&
            (!fresh || configure(c->pg, &err) == NS_OK)) {
            PGresult *r =
                ns_pg_query_prepared(c->pg, name, sql, n_params, params, &err);
            pthread_mutex_lock(&bk->lock);
            bk->stats.statements++;
            pthread_mutex_unlock(&bk->lock);
            if (r != NULL)
                return r;
            if (PQstatus(c->pg) == CONNECTION_OK) {
                if (++errors >= BK_TRIES) {
                    NS_WARN(NULL, "bookkeeping statement failed: %s", err.msg);
                    *fail = NS_BK_ERROR;
                    return NULL;
                }
                nap_ms(50 * errors);
                continue;
            }
        }
        if (!*bk->running) {
            *fail = NS_BK_STOPPING;
            return NULL;
        }
        if (tries % 10 == 0)
            NS_WARN(NULL, "bookkeeping waits for postgres: %s", err.msg);
        for (int i = 0; i < 20 && *bk->running; i++)
            nap_ms(50);
    }
}

static void fail_all(bk_req_t **reqs, size_t n, ns_bk_result_t why)
{
    for (size_t i = 0; i < n; i++)
        reqs[i]->result = why;
}

static char *print_free(cJSON *doc)
{
    char *s = cJSON_PrintUnformatted(doc);
    cJSON_Delete(doc);
    return s;
}

static int by_run_and_key(const void *a, const void *b)
{
    const bk_req_t *x = *(bk_req_t *const *)a, *y = *(bk_req_t *const *)b;
    if (x->run_id != y->run_id)
        return x->run_id < y->run_id ? -1 : 1;
    if (x->item_key == NULL || y->item_key == NULL)
        return (x->item_key != NULL) - (y->item_key != NULL);
    return strcmp(x->item_key, y->item_key);
}

/* The requests of one run among reqs (sorted by run and key) whose key is
 * key: [*first, *first + count). */
static size_t find_key(bk_req_t **reqs, size_t n, const char *key,
                       size_t *first)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(reqs[mid]->item_key, key) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *first = lo;
    size_t end = lo;
    while (end < n && strcmp(reqs[end]->item_key, key) == 0)
        end++;
    return end - lo;
}

/* The keys of reqs as a text parameter: "{"k1","k2",...}" (a Postgres
 * array literal); NULL when out of memory. */
static char *keys_literal(bk_req_t **reqs, size_t n)
{
    ns_buf_t b;
    ns_buf_init(&b, NS_PG_ARRAY_MAX);
    ns_err_t rc = NS_OK;
    for (size_t i = 0; i < n && rc == NS_OK; i++)
        rc = ns_pg_array_add(&b, reqs[i]->item_key);
    if (rc == NS_OK)
        rc = ns_pg_array_end(&b);
    if (rc != NS_OK) {
        ns_buf_free(&b);
        return NULL;
    }
    return ns_buf_take(&b);
}

/* Starts of one run (reqs sorted by key). */
static void run_starts(bk_conn_t *c, bk_req_t **reqs, size_t n)
{
    char run[24];
    ns_pg_i64str(reqs[0]->run_id, run);
    char *keys = keys_literal(reqs, n);
    const char *params[] = {run, keys};
    ns_bk_result_t fail = NS_BK_ERROR;
    /* Three sets of rows: the items started by the update; every item as
     * it was before it (the statement's snapshot: one pending there but
     * not updated was finished, or its run ended, by a concurrent
     * transaction); the run's status. */
    PGresult *r =
        keys ? bk_query(
                   c, "ns_bk_start",
                   "WITH u AS (UPDATE items it SET attempts = it.attempts + "
                   "1, started_at = coalesce(it.started_at, now()) WHERE "
                   "it.run_id = $1::bigint AND it.item_key = ANY($2::text[]) "
                   "AND it.status = 'pending' AND EXISTS (SELECT 1 FROM runs "
                   "WHERE run_id = $1::bigint AND status NOT IN "
                   "('cancelled', 'failed')) RETURNING it.item_key, "
                   "it.attempts) SELECT item_key, attempts, true, NULL FROM u "
                   "UNION ALL SELECT item_key, attempts, false, status FROM "
                   "items WHERE run_id = $1::bigint AND item_key = "
                   "ANY($2::text[]) UNION ALL SELECT NULL, NULL, false, "
                   "status FROM runs WHERE run_id = $1::bigint",
                   2, params, &fail)
             : NULL;
    free(keys);
    if (r == NULL) {
        fail_all(reqs, n, fail);
        return;
    }
    bool run_ended = false;
    for (int row = 0; row < PQntuples(r); row++)
        if (PQgetisnull(r, row, 0))
            run_ended = strcmp(PQgetvalue(r, row, 3), "cancelled") == 0 ||
                        strcmp(PQgetvalue(r, row, 3), "failed") == 0;
    fail_all(reqs, n, NS_BK_UNKNOWN); /* no row: no such item */
    for (int pass = 0; pass < 2; pass++)
        for (int row = 0; row < PQntuples(r); row++) {
            bool started = PQgetvalue(r, row, 2)[0] == 't';
            if (PQgetisnull(r, row, 0) || started != (pass == 0))
                continue;
            size_t first,
                count = find_key(reqs, n, PQgetvalue(r, row, 0), &first);
            for (size_t k = first; k < first + count; k++) {
                bk_req_t *q = reqs[k];
                if (q->result == NS_BK_OK)
                    continue; /* started; the snapshot row is older */
                q->attempt = (int)ns_pg_int64(r, row, 1);
                if (started)
                    q->result = NS_BK_OK;
                else if (strcmp(PQgetvalue(r, row, 3), "pending") == 0 &&
                         run_ended)
                    q->result = NS_BK_CANCELLED;
                else
                    q->result = NS_BK_TERMINAL;
            }
        }
    PQclear(r);
}

/* Dones of one run (reqs sorted by key). Items another delivery finished
 * first are left alone. */
static void run_dones(bk_conn_t *c, bk_req_t **reqs, size_t n)
{
    char run[24];
    ns_pg_i64str(reqs[0]->run_id, run);
    char *keys = keys_literal(reqs, n);
    cJSON *reports = cJSON_CreateObject();
    for (size_t i = 0; i < n; i++)
        if (reqs[i]->report != NULL &&
            !cJSON_HasObjectItem(reports, reqs[i]->item_key))
            cJSON_AddStringToObject(reports, reqs[i]->item_key,
                                    reqs[i]->report);
    char *json = print_free(reports);
    const char *params[] = {run, keys, json};
    ns_bk_result_t fail = NS_BK_ERROR;
    PGresult *r =
        keys && json
            ? bk_query(c, "ns_bk_done",
                       "UPDATE items SET status = 'done', error = NULL, "
                       "report = ($3::jsonb ->> item_key)::jsonb, finished_at "
                       "= now() WHERE run_id = $1::bigint AND item_key = "
                       "ANY($2::text[]) AND status = 'pending'",
                       3, params, &fail)
            : NULL;
    free(keys);
    free(json);
    fail_all(reqs, n, r != NULL ? NS_BK_OK : fail);
    PQclear(r);
}

/* The run's witness (a copy, or NULL); bk->lock held. */
static char *witness_get(ns_bookkeeper_t *bk, int64_t run_id)
{
    for (int i = 0; i < BK_WITNESSES; i++)
        if (bk->witnesses[i].key != NULL && bk->witnesses[i].run_id == run_id) {
            bk->witnesses[i].used = ++bk->witness_clock;
            return strdup(bk->witnesses[i].key);
        }
    return NULL;
}

/* Remembers key (NULL: forgets) as the run's witness, in its slot, a free
 * one, or the least recently used; bk->lock held. */
static void witness_set(ns_bookkeeper_t *bk, int64_t run_id, const char *key)
{
    bk_witness_t *slot = NULL;
    for (int i = 0; i < BK_WITNESSES && slot == NULL; i++)
        if (bk->witnesses[i].key != NULL && bk->witnesses[i].run_id == run_id)
            slot = &bk->witnesses[i];
    if (slot == NULL && key == NULL)
        return;
    for (int i = 0; i < BK_WITNESSES && slot == NULL; i++)
        if (bk->witnesses[i].key == NULL)
            slot = &bk->witnesses[i];
    if (slot == NULL) {
        slot = &bk->witnesses[0];
        for (int i = 1; i < BK_WITNESSES; i++)
            if (bk->witnesses[i].used < slot->used)
                slot = &bk->witnesses[i];
    }
    free(slot->key);
    slot->key = key != NULL ? strdup(key) : NULL;
    slot->run_id = run_id;
    slot->used = ++bk->witness_clock;
}

/* One query for every run with a finished item in the batch; the first
 * request of each complete run is told so. A run's remembered witness
 * still pending answers for it; else the query finds the run's first
 * pending item, the next witness. */
static void run_checks(bk_conn_t *c, bk_req_t **reqs, size_t n)
{
    ns_bookkeeper_t *bk = c->bk;
    ns_buf_t runs, keys;
    ns_buf_init(&runs, NS_PG_ARRAY_MAX);
    ns_buf_init(&keys, NS_PG_ARRAY_MAX);
    ns_err_t rc = NS_OK;
    for (size_t i = 0; i < n && rc == NS_OK; i++) {
        bool seen = false;
        for (size_t k = 0; k < i && !seen; k++)
            seen = reqs[k]->run_id == reqs[i]->run_id;
        if (seen)
            continue;
        char id[24];
        ns_pg_i64str(reqs[i]->run_id, id);
        pthread_mutex_lock(&bk->lock);
        char *w = witness_get(bk, reqs[i]->run_id);
        pthread_mutex_unlock(&bk->lock);
        rc = ns_pg_array_add(&runs, id);
        if (rc == NS_OK)
            rc = ns_pg_array_add(&keys, w);
        free(w);
    }
    if (rc == NS_OK)
        rc = ns_pg_array_end(&runs);
    if (rc == NS_OK)
        rc = ns_pg_array_end(&keys);
    ns_bk_result_t fail = NS_BK_ERROR;
    const char *params[] = {runs.data, keys.data};
    /* Per run: the witness if it is still pending (a primary-key lookup),
     * else the index's first pending entry; never a join over every
     * pending item. A run that cannot be claimed (not running, or its
     * items still being recorded and produced: no emitted_at) is not
     * complete, and its index is not searched: with no pending item left
     * that search walks the entries of every item done (until vacuum), and
     * every redelivery of a failed run's items, or every batch while a
     * streamed run's last chunks are read, made it again. */
    PGresult *r =
        rc == NS_OK
            ? bk_query(c, "ns_bk_check",
                       "SELECT x.r, CASE WHEN NOT coalesce(k.claimable, "
                       "false) THEN NULL WHEN EXISTS (SELECT 1 FROM items i "
                       "WHERE i.run_id = x.r AND i.item_key = x.w AND "
                       "i.status = 'pending') THEN x.w ELSE (SELECT "
                       "i.item_key FROM items i WHERE i.run_id = x.r AND "
                       "i.status = 'pending' LIMIT 1) END, "
                       "coalesce(k.claimable, false) FROM "
                       "unnest($1::bigint[], $2::text[]) AS x(r, w) LEFT "
                       "JOIN LATERAL (SELECT status = 'running' AND "
                       "emitted_at IS NOT NULL AS claimable FROM runs WHERE "
                       "run_id = x.r) k ON true",
                       2, params, &fail)
            : NULL;
    ns_buf_free(&runs);
    ns_buf_free(&keys);
    if (r == NULL) {
        /* The callers claim the run themselves (one statement each). */
        for (size_t i = 0; i < n; i++)
            reqs[i]->maybe_complete = true;
        return;
    }
    for (int row = 0; row < PQntuples(r); row++) {
        int64_t run = ns_pg_int64(r, row, 0);
        if (strcmp(PQgetvalue(r, row, 2), "t") != 0)
            continue; /* not claimable: not complete, witness unchanged */
        bool pending = !PQgetisnull(r, row, 1);
        pthread_mutex_lock(&bk->lock);
        witness_set(bk, run, pending ? PQgetvalue(r, row, 1) : NULL);
        pthread_mutex_unlock(&bk->lock);
        for (size_t i = 0; i < n && !pending; i++)
            if (reqs[i]->run_id == run) {
                reqs[i]->maybe_complete = true;
                break;
            }
    }
    PQclear(r);
}

/* Runs fn once per run in reqs (sorted by run and key). */
static void per_run(bk_conn_t *c, bk_req_t **reqs, size_t n,
                    void (*fn)(bk_conn_t *, bk_req_t **, size_t))
{
    for (size_t i = 0; i < n;) {
        size_t end = i + 1;
        while (end < n && reqs[end]->run_id == reqs[i]->run_id)
            end++;
        fn(c, reqs + i, end - i);
        i = end;
    }
}

static void flush(bk_conn_t *c, bk_req_t **reqs, size_t n)
{
    bk_req_t *starts[BK_BATCH_MAX], *dones[BK_BATCH_MAX],
        *finished[BK_BATCH_MAX];
    size_t ns = 0, nd = 0, nf = 0;
    for (size_t i = 0; i < n; i++) {
        if (reqs[i]->op == OP_START)
            starts[ns++] = reqs[i];
        else if (reqs[i]->op == OP_DONE)
            dones[nd++] = reqs[i];
    }
    qsort(dones, nd, sizeof(dones[0]), by_run_and_key);
    qsort(starts, ns, sizeof(starts[0]), by_run_and_key);
    per_run(c, dones, nd, run_dones);
    per_run(c, starts, ns, run_starts);
    /* In arrival order: the first request of a run is told it is done. */
    for (size_t i = 0; i < n; i++) {
        if (reqs[i]->op == OP_CHECK)
            reqs[i]->result = NS_BK_OK;
        if (reqs[i]->op != OP_START && reqs[i]->result == NS_BK_OK)
            finished[nf++] = reqs[i];
    }
    if (nf > 0)
        run_checks(c, finished, nf);
}

static void *bk_main(void *arg)
{
    bk_conn_t *c = arg;
    ns_bookkeeper_t *bk = c->bk;
    bk_req_t *batch[BK_BATCH_MAX];
    for (;;) {
        pthread_mutex_lock(&bk->lock);
        while (bk->head == NULL && !bk->stop)
            pthread_cond_wait(&bk->cond, &bk->lock);
        size_t n = 0;
        while (bk->head != NULL && n < BK_BATCH_MAX) {
            batch[n++] = bk->head;
            bk->head = bk->head->next;
        }
        if (bk->head == NULL)
            bk->tail = NULL;
        bk->stats.queued -= n;
        bk->stats.taken += n;
        bk->stats.batches += n > 0;
        pthread_mutex_unlock(&bk->lock);
        if (n == 0)
            break; /* stopping, nothing queued */
        flush(c, batch, n);
        pthread_mutex_lock(&bk->lock);
        bk->stats.served += n;
        for (size_t i = 0; i < n; i++) {
            batch[i]->finished = true;
            pthread_cond_signal(&batch[i]->cond);
        }
        pthread_mutex_unlock(&bk->lock);
    }
    if (c->pg != NULL)
        PQfinish(c->pg);
    c->pg = NULL;
    return NULL;
}

/* Queues n requests and waits until their batches are through. */
static void submit_n(ns_bookkeeper_t *bk, bk_req_t *q, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        pthread_cond_init(&q[i].cond, NULL);
        q[i].finished = false;
        q[i].maybe_complete = false;
        q[i].next = i + 1 < n ? &q[i + 1] : NULL;
    }
    pthread_mutex_lock(&bk->lock);
    if (bk->tail != NULL)
        bk->tail->next = &q[0];
    else
        bk->head = &q[0];
    bk->tail = &q[n - 1];
    bk->stats.queued += n;
    if (n > BK_BATCH_MAX)
        pthread_cond_broadcast(&bk->cond); /* more than one batch's worth */
    else
        pthread_cond_signal(&bk->cond);
    for (size_t i = 0; i < n; i++)
        while (!q[i].finished)
            pthread_cond_wait(&q[i].cond, &bk->lock);
    pthread_mutex_unlock(&bk->lock);
    for (size_t i = 0; i < n; i++)
        pthread_cond_destroy(&q[i].cond);
}

static void submit(ns_bookkeeper_t *bk, bk_req_t *q)
{
    submit_n(bk, q, 1);
}

/* Requests for items, queued together (one by one when out of memory). */
static void submit_items(ns_bookkeeper_t *bk, bk_op_t op, ns_bk_item_t *items,
                         size_t n)
{
    if (n == 0)
        return;
    bk_req_t one, *q = n > 1 ? calloc(n, sizeof(*q)) : NULL;
    size_t per = q != NULL ? n : 1;
    if (q == NULL)
        q = &one;
    for (size_t i = 0; i < n; i += per) {
        for (size_t k = 0; k < per; k++)
            q[k] = (bk_req_t){.op = op,
                              .run_id = items[i + k].run_id,
                              .item_key = items[i + k].item_key,
                              .report = items[i + k].report};
        submit_n(bk, q, per);
        for (size_t k = 0; k < per; k++) {
            items[i + k].result = q[k].result;
            items[i + k].attempt = q[k].attempt;
            items[i + k].maybe_complete = q[k].maybe_complete;
        }
    }
    if (q != &one)
        free(q);
}

void ns_bookkeeper_start_n(ns_bookkeeper_t *bk, ns_bk_item_t *items, size_t n)
{
    submit_items(bk, OP_START, items, n);
}

void ns_bookkeeper_done_n(ns_bookkeeper_t *bk, ns_bk_item_t *items, size_t n)
{
    submit_items(bk, OP_DONE, items, n);
}

ns_bookkeeper_t *ns_bookkeeper_new(const char *dsn, int connections,
                                   volatile sig_atomic_t *running,
                                   ns_error_t *err)
{
    ns_bookkeeper_t *bk = calloc(1, sizeof(*bk));
    if (bk == NULL || (bk->dsn = strdup(dsn ? dsn : "")) == NULL) {
        free(bk);
        ns_error_set(err, NS_ERR_NOMEM, "out of memory");
        return NULL;
    }
    bk->running = running;
    pthread_mutex_init(&bk->lock, NULL);
    pthread_cond_init(&bk->cond, NULL);
    bk->n_conns = connections < 1                       ? 1
                  : connections > NS_BK_MAX_CONNECTIONS ? NS_BK_MAX_CONNECTIONS
                                                        : connections;
    for (int i = 0; i < bk->n_conns; i++) {
        bk_conn_t *c = &bk->conns[i];
        c->bk = bk;
        c->started = pthread_create(&c->thread, NULL, bk_main, c) == 0;
        if (!c->started) {
            ns_error_set(err, NS_ERR_IO,
                         "bookkeeper: cannot start its threads");
            ns_bookkeeper_destroy(bk);
            return NULL;
        }
    }
    return bk;
}

void ns_bookkeeper_destroy(ns_bookkeeper_t *bk)
{
    if (bk == NULL)
        return;
    pthread_mutex_lock(&bk->lock);
    bk->stop = true;
    pthread_cond_broadcast(&bk->cond);
    pthread_mutex_unlock(&bk->lock);
    for (int i = 0; i < bk->n_conns; i++)
        if (bk->conns[i].started)
            pthread_join(bk->conns[i].thread, NULL);
    pthread_cond_destroy(&bk->cond);
    pthread_mutex_destroy(&bk->lock);
    for (int i = 0; i < BK_WITNESSES; i++)
        free(bk->witnesses[i].key);
    free(bk->dsn);
    free(bk);
}

ns_bk_result_t ns_bookkeeper_start(ns_bookkeeper_t *bk, int64_t run_id,
                                   const char *item_key, int *attempt)
{
    bk_req_t q = {.op = OP_START, .run_id = run_id, .item_key = item_key};
    submit(bk, &q);
    *attempt = q.attempt;
    return q.result;
}

ns_bk_result_t ns_bookkeeper_done(ns_bookkeeper_t *bk, int64_t run_id,
                                  const char *item_key, const char *report,
                                  bool *maybe_complete)
{
    bk_req_t q = {.op = OP_DONE,
                  .run_id = run_id,
                  .item_key = item_key,
                  .report = report};
    submit(bk, &q);
    *maybe_complete = q.maybe_complete;
    return q.result;
}

ns_bk_result_t ns_bookkeeper_check(ns_bookkeeper_t *bk, int64_t run_id,
                                   bool *maybe_complete)
{
    bk_req_t q = {.op = OP_CHECK, .run_id = run_id};
    submit(bk, &q);
    *maybe_complete = q.maybe_complete;
    return q.result;
}

ns_bk_stats_t ns_bookkeeper_stats(ns_bookkeeper_t *bk)
{
    pthread_mutex_lock(&bk->lock);
    ns_bk_stats_t s = bk->stats;
    pthread_mutex_unlock(&bk->lock);
    return s;
}
