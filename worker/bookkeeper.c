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

struct ns_bookkeeper {
    char *dsn;
    volatile sig_atomic_t *running;
    PGconn *pg; /* the bookkeeper thread's */
    pthread_t thread;
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

/* Runs one statement for a batch. Waits while Postgres is unreachable
 * (until the worker stops: *fail = NS_BK_STOPPING); gives up on a
 * statement that keeps failing on a live connection (*fail =
 * NS_BK_ERROR). */
static PGresult *bk_query(ns_bookkeeper_t *bk, const char *sql,
                          const char *param, ns_bk_result_t *fail)
{
    const char *params[] = {param};
    for (int tries = 0, errors = 0;; tries++) {
        ns_error_t err;
        ns_error_clear(&err);
        if (ns_pg_ensure(&bk->pg, bk->dsn, &err) == NS_OK) {
            PGresult *r = ns_pg_query(bk->pg, sql, 1, params, &err);
            pthread_mutex_lock(&bk->lock);
            bk->stats.statements++;
            pthread_mutex_unlock(&bk->lock);
            if (r != NULL)
                return r;
            if (PQstatus(bk->pg) == CONNECTION_OK) {
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

static void run_starts(ns_bookkeeper_t *bk, bk_req_t **reqs, size_t n)
{
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; i < n; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "i", (double)i);
        cJSON_AddNumberToObject(o, "r", (double)reqs[i]->run_id);
        cJSON_AddStringToObject(o, "k", reqs[i]->item_key);
        cJSON_AddItemToArray(arr, o);
    }
    char *json = print_free(arr);
    ns_bk_result_t fail = NS_BK_ERROR;
    /* The outer query reads the rows as they were before the update: an
     * item that was pending there but not updated was finished (or its
     * run ended) by a concurrent transaction. */
    PGresult *r =
        json ? bk_query(
                   bk,
                   "WITH x AS (SELECT * FROM jsonb_to_recordset($1::jsonb) AS "
                   "x(i int, r bigint, k text)), u AS (UPDATE items it SET "
                   "attempts = it.attempts + 1, started_at = "
                   "coalesce(it.started_at, now()) FROM x, runs ru WHERE "
                   "it.run_id = x.r AND it.item_key = x.k AND it.status = "
                   "'pending' AND ru.run_id = x.r AND ru.status NOT IN "
                   "('cancelled', 'failed') RETURNING x.i, it.attempts) "
                   "SELECT x.i, u.attempts, it.status, ru.status, it.attempts "
                   "FROM x LEFT "
                   "JOIN u ON u.i = x.i LEFT JOIN items it ON it.run_id = x.r "
                   "AND it.item_key = x.k LEFT JOIN runs ru ON ru.run_id = x.r",
                   json, &fail)
             : NULL;
    free(json);
    if (r == NULL) {
        fail_all(reqs, n, fail);
        return;
    }
    fail_all(reqs, n, NS_BK_ERROR); /* rows missing below: not decided */
    for (int row = 0; row < PQntuples(r); row++) {
        size_t i = (size_t)ns_pg_int64(r, row, 0);
        if (i >= n)
            continue;
        bk_req_t *q = reqs[i];
        q->attempt = (int)ns_pg_int64(r, row, PQgetisnull(r, row, 1) ? 4 : 1);
        if (!PQgetisnull(r, row, 1)) {
            q->result = NS_BK_OK;
        } else if (PQgetisnull(r, row, 2)) {
            q->result = NS_BK_UNKNOWN;
        } else if (strcmp(PQgetvalue(r, row, 2), "pending") != 0) {
            q->result = NS_BK_TERMINAL;
        } else if (!PQgetisnull(r, row, 3) &&
                   (strcmp(PQgetvalue(r, row, 3), "cancelled") == 0 ||
                    strcmp(PQgetvalue(r, row, 3), "failed") == 0)) {
            q->result = NS_BK_CANCELLED;
        } else {
            q->result = NS_BK_TERMINAL;
        }
    }
    PQclear(r);
}

static void run_dones(ns_bookkeeper_t *bk, bk_req_t **reqs, size_t n)
{
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; i < n; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "r", (double)reqs[i]->run_id);
        cJSON_AddStringToObject(o, "k", reqs[i]->item_key);
        if (reqs[i]->report != NULL)
            cJSON_AddStringToObject(o, "p", reqs[i]->report);
        cJSON_AddItemToArray(arr, o);
    }
    char *json = print_free(arr);
    ns_bk_result_t fail = NS_BK_ERROR;
    /* Items already finished by another delivery are left alone. */
    PGresult *r =
        json ? bk_query(bk,
                        "UPDATE items it SET status = 'done', error = NULL, "
                        "report = x.p::jsonb, finished_at = now() FROM "
                        "jsonb_to_recordset($1::jsonb) AS x(r bigint, k "
                        "text, p text) WHERE it.run_id = x.r AND it.item_key "
                        "= x.k AND it.status = 'pending'",
                        json, &fail)
             : NULL;
    free(json);
    fail_all(reqs, n, r != NULL ? NS_BK_OK : fail);
    PQclear(r);
}

/* One query for every run with a finished item in the batch; the first
 * request of each complete run is told so. */
static void run_checks(ns_bookkeeper_t *bk, bk_req_t **reqs, size_t n)
{
    size_t cap = 16 + 24 * n, len = 0;
    char *arr = malloc(cap);
    if (arr == NULL)
        return;
    arr[len++] = '{';
    for (size_t i = 0; i < n; i++) {
        bool seen = false;
        for (size_t k = 0; k < i && !seen; k++)
            seen = reqs[k]->run_id == reqs[i]->run_id;
        if (!seen)
            len += (size_t)snprintf(arr + len, cap - len, "%s%lld",
                                    len > 1 ? "," : "",
                                    (long long)reqs[i]->run_id);
    }
    snprintf(arr + len, cap - len, "}");
    ns_bk_result_t fail = NS_BK_ERROR;
    PGresult *r = bk_query(bk,
                           "SELECT r FROM unnest($1::bigint[]) AS r WHERE "
                           "NOT EXISTS (SELECT 1 FROM items i WHERE i.run_id "
                           "= r AND i.status = 'pending')",
                           arr, &fail);
    free(arr);
    if (r == NULL) {
        /* The callers claim the run themselves (one statement each). */
        for (size_t i = 0; i < n; i++)
            reqs[i]->maybe_complete = true;
        return;
    }
    for (int row = 0; row < PQntuples(r); row++) {
        int64_t run = ns_pg_int64(r, row, 0);
        for (size_t i = 0; i < n; i++)
            if (reqs[i]->run_id == run) {
                reqs[i]->maybe_complete = true;
                break;
            }
    }
    PQclear(r);
}

static void flush(ns_bookkeeper_t *bk, bk_req_t **reqs, size_t n)
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
    if (nd > 0)
        run_dones(bk, dones, nd);
    if (ns > 0)
        run_starts(bk, starts, ns);
    for (size_t i = 0; i < n; i++) {
        if (reqs[i]->op == OP_CHECK)
            reqs[i]->result = NS_BK_OK;
        if (reqs[i]->op != OP_START && reqs[i]->result == NS_BK_OK)
            finished[nf++] = reqs[i];
    }
    if (nf > 0)
        run_checks(bk, finished, nf);
}

static void *bk_main(void *arg)
{
    ns_bookkeeper_t *bk = arg;
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
        flush(bk, batch, n);
        pthread_mutex_lock(&bk->lock);
        bk->stats.served += n;
        for (size_t i = 0; i < n; i++) {
            batch[i]->finished = true;
            pthread_cond_signal(&batch[i]->cond);
        }
        pthread_mutex_unlock(&bk->lock);
    }
    if (bk->pg != NULL)
        PQfinish(bk->pg);
    bk->pg = NULL;
    return NULL;
}

/* Queues the request and waits for its batch. */
static void submit(ns_bookkeeper_t *bk, bk_req_t *q)
{
    pthread_cond_init(&q->cond, NULL);
    q->finished = false;
    q->maybe_complete = false;
    q->next = NULL;
    pthread_mutex_lock(&bk->lock);
    if (bk->tail != NULL)
        bk->tail->next = q;
    else
        bk->head = q;
    bk->tail = q;
    bk->stats.queued++;
    pthread_cond_signal(&bk->cond);
    while (!q->finished)
        pthread_cond_wait(&q->cond, &bk->lock);
    pthread_mutex_unlock(&bk->lock);
    pthread_cond_destroy(&q->cond);
}

ns_bookkeeper_t *ns_bookkeeper_new(const char *dsn,
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
    if (pthread_create(&bk->thread, NULL, bk_main, bk) != 0) {
        ns_error_set(err, NS_ERR_IO, "bookkeeper: cannot start its thread");
        pthread_cond_destroy(&bk->cond);
        pthread_mutex_destroy(&bk->lock);
        free(bk->dsn);
        free(bk);
        return NULL;
    }
    return bk;
}

void ns_bookkeeper_destroy(ns_bookkeeper_t *bk)
{
    if (bk == NULL)
        return;
    pthread_mutex_lock(&bk->lock);
    bk->stop = true;
    pthread_cond_signal(&bk->cond);
    pthread_mutex_unlock(&bk->lock);
    pthread_join(bk->thread, NULL);
    pthread_cond_destroy(&bk->cond);
    pthread_mutex_destroy(&bk->lock);
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
