#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bookkeeper.h"
#include "deadletter.h"
#include "finalize.h"
#include "item.h"
#include "item_internal.h"
#include "ns/clock.h"
#include "ns/envelope.h"
#include "ns/log.h"
#include "ns/metrics.h"
#include "ns/pg.h"

/* ---- batches ------------------------------------------------------------
 * Fast handlers (no I/O of their own, e.g. noop) spend their time on
 * bookkeeping, so a thread takes up to 256 of their items at once, runs the
 * handler on each, and records the lot with one statement: every item
 * still pending, of a run neither cancelled nor failed, becomes done with
 * its attempt counted, one row version per item. Nothing is written before
 * the handler runs: such a handler has no effects to protect, so a worker
 * that dies mid-batch costs only the uncounted attempt (the items are
 * redelivered and done by the next owner). Anything else takes the
 * one-item path (item.c), which checks, records the start and handles
 * failures: an item the statement did not take (an unknown key, a
 * cancelled run; a redelivery of a finished item is told apart in one query
 * per run and only counted), a handler that failed
 * or opened its own transaction (its writes are rolled back and the item
 * runs again there), and every item when the statement itself failed. */

typedef struct batch_item {
    const ns_msg_t *msg;
    ns_envelope_t env;
    const ns_job_t *job;
    int ran;       /* the handler succeeded without writing */
    cJSON *report; /* its report, if any */
    int seen;      /* taken into its run's statement */
    int done;      /* the statement marked it done */
    int asked;     /* not done by it, and asked whether finished before */
    int finished;  /* so it was (a redelivery) */
} batch_item_t;

/* Runs the handlers; marks ran the items for the statement. */
static void batch_run(ns_item_res_t *res, batch_item_t *items, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        batch_item_t *it = &items[i];
        const ns_handler_def_t *h =
            it->job ? ns_handler_find(it->job->handler, 0) : NULL;
        if (h == NULL || !h->batch)
            continue;
        ns_item_ctx_t ctx;
        item_init_ctx(&ctx, res, it->job, &it->env);
        ctx.attempt = 1; /* not read from the database on this path */
        ns_error_t err;
        ns_error_clear(&err);
        ns_err_t rc = h->process(&ctx, &err);
        if (ctx.in_tx) {
            ns_ctx_end_tx(&ctx, false, NULL);
            rc = NS_ERR_TRANSIENT; /* writes: the one-item path */
        }
        if (rc == NS_OK) {
            it->ran = 1;
            it->report = ctx.report; /* kept for the statement */
            ctx.report = NULL;
        }
        cJSON_Delete(ctx.report);
        ns_item_pg_release(res);
    }
}

static int by_key(const void *a, const void *b)
{
    const batch_item_t *x = *(batch_item_t *const *)a,
                       *y = *(batch_item_t *const *)b;
    return strcmp(x->env.item_key, y->env.item_key);
}

/* The statement for the ran items of one run (sorted by key): every one
 * still pending, in a run neither cancelled nor failed, becomes done, its
 * attempt counted. It finds them by `run_id = $1 AND item_key = ANY($2)`,
 * an index condition whatever the statistics say (a join with the batch
 * as a set lets the planner hash every pending item of the table, once per
 * batch). 0 when it failed (nothing was written). */
static int batch_record_run(ns_item_res_t *res, batch_item_t **run, size_t n)
{
    char id[24];
    ns_pg_i64str(run[0]->env.run_id, id);
    ns_buf_t keys;
    ns_buf_init(&keys, NS_PG_ARRAY_MAX);
    cJSON *reports = NULL;
    ns_err_t rc = NS_OK;
    for (size_t i = 0; i < n && rc == NS_OK; i++) {
        rc = ns_pg_array_add(&keys, run[i]->env.item_key);
        if (run[i]->report != NULL) {
            if (reports == NULL)
                reports = cJSON_CreateObject();
            cJSON_AddItemToObject(reports, run[i]->env.item_key,
                                  cJSON_Duplicate(run[i]->report, 1));
        }
    }
    if (rc == NS_OK)
        rc = ns_pg_array_end(&keys);
    bool with_reports = reports != NULL;
    char *json = with_reports ? cJSON_PrintUnformatted(reports) : NULL;
    cJSON_Delete(reports);
    const char *params[] = {id, keys.data, json};
    ns_error_t err;
    ns_error_clear(&err);
    PGresult *r =
        rc == NS_OK && (!with_reports || json != NULL) && ns_item_pg_wait(res)
            ? ns_pg_query_prepared(
                  res->pg, "ns_batch_done",
                  "UPDATE items SET status = 'done', attempts = attempts + "
                  "1, started_at = coalesce(started_at, now()), finished_at "
                  "= now(), error = NULL, report = ($3::jsonb -> item_key) "
                  "WHERE run_id = $1::bigint AND item_key = ANY($2::text[]) "
                  "AND status = 'pending' AND EXISTS (SELECT 1 FROM runs "
                  "WHERE run_id = $1::bigint AND status NOT IN "
                  "('cancelled', 'failed')) RETURNING item_key",
                  3, params, &err)
            : NULL;
    ns_buf_free(&keys);
    free(json);
    if (r == NULL) {
        if (err.msg[0] != '\0')
            NS_WARN(NULL, "batch of %zu items not recorded, one by one: %s", n,
                    err.msg);
        return 0;
    }
    /* Each key returned is done once: its first item here (a repeat of the
     * key in the batch goes one by one, and finds it finished). */
    for (int row = 0; row < PQntuples(r); row++) {
        batch_item_t probe = {.env = {.item_key = PQgetvalue(r, row, 0)}};
        const batch_item_t *key = &probe;
        batch_item_t **hit = bsearch(&key, run, n, sizeof(run[0]), by_key);
        while (hit != NULL && hit > run && by_key(hit - 1, &key) == 0)
            hit--;
        if (hit != NULL)
            (*hit)->done = 1;
    }
    PQclear(r);
    return 1;
}

/* Of the items of one run (sorted by key) the statement did not take, those
 * finished before: redeliveries (a crashed worker's, a resumed or failed
 * emission's), told apart in one query instead of one by one. */
static void batch_finished_run(ns_item_res_t *res, batch_item_t **run, size_t n)
{
    char id[24];
    ns_pg_i64str(run[0]->env.run_id, id);
    ns_buf_t keys;
    ns_buf_init(&keys, NS_PG_ARRAY_MAX);
    ns_err_t rc = NS_OK;
    for (size_t i = 0; i < n && rc == NS_OK; i++)
        rc = ns_pg_array_add(&keys, run[i]->env.item_key);
    if (rc == NS_OK)
        rc = ns_pg_array_end(&keys);
    const char *params[] = {id, keys.data};
    ns_error_t err;
    ns_error_clear(&err);
    PGresult *r = rc == NS_OK && ns_item_pg_wait(res)
                      ? ns_pg_query_prepared(
                            res->pg, "ns_batch_finished",
                            "SELECT item_key FROM items WHERE run_id = "
                            "$1::bigint AND item_key = ANY($2::text[]) AND "
                            "status <> 'pending'",
                            2, params, &err)
                      : NULL;
    ns_buf_free(&keys);
    for (int row = 0; r != NULL && row < PQntuples(r); row++) {
        batch_item_t probe = {.env = {.item_key = PQgetvalue(r, row, 0)}};
        const batch_item_t *key = &probe;
        batch_item_t **hit = bsearch(&key, run, n, sizeof(run[0]), by_key);
        while (hit != NULL && hit > run && by_key(hit - 1, &key) == 0)
            hit--;
        for (; hit != NULL && hit < run + n && by_key(hit, &key) == 0; hit++)
            (*hit)->finished = 1;
    }
    PQclear(r);
}

/* Per run: the items that ran but were not done, and finished before. */
static void batch_finished(ns_item_res_t *res, batch_item_t *items, size_t n)
{
    batch_item_t **run = malloc(n * sizeof(*run));
    for (size_t i = 0; run != NULL && i < n; i++) {
        if (!items[i].ran || items[i].done || items[i].asked)
            continue;
        size_t m = 0;
        for (size_t k = i; k < n; k++)
            if (items[k].ran && !items[k].done && !items[k].asked &&
                items[k].env.run_id == items[i].env.run_id) {
                items[k].asked = 1;
                run[m++] = &items[k];
            }
        qsort(run, m, sizeof(run[0]), by_key);
        batch_finished_run(res, run, m);
    }
    free(run);
}

/* Records the ran items, one statement per run among them. */
static void batch_record(ns_item_res_t *res, batch_item_t *items, size_t n)
{
    batch_item_t **run = malloc(n * sizeof(*run));
    for (size_t i = 0; run != NULL && i < n; i++) {
        if (!items[i].ran || items[i].seen)
            continue;
        size_t m = 0;
        for (size_t k = i; k < n; k++)
            if (items[k].ran && !items[k].seen &&
                items[k].env.run_id == items[i].env.run_id) {
                items[k].seen = 1;
                run[m++] = &items[k];
            }
        qsort(run, m, sizeof(run[0]), by_key);
        batch_record_run(res, run, m);
    }
    free(run);
}

void ns_item_process_batch(ns_item_res_t *res, const ns_msg_t *msgs,
                           ns_item_outcome_t *outcomes, size_t n)
{
    batch_item_t *items = n >= 2 ? calloc(n, sizeof(*items)) : NULL;
    if (items == NULL) {
        for (size_t i = 0; i < n; i++)
            outcomes[i] = ns_item_process(res, &msgs[i]);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        items[i].msg = &msgs[i];
        if (ns_envelope_decode(msgs[i].value, msgs[i].len, msgs[i].compressed,
                               res->cfg->max_payload_bytes, &items[i].env,
                               NULL) == NS_OK)
            items[i].job = ns_config_job(res->cfg, items[i].env.job);
    }
    int64_t t0 = ns_clock_mono_ms();
    batch_run(res, items, n);
    batch_record(res, items, n);
    size_t n_done = 0;
    for (size_t i = 0; i < n; i++)
        n_done += (size_t)items[i].done;
    size_t n_finished = 0;
    if (n_done < n)
        batch_finished(res, items, n);
    for (size_t i = 0; i < n; i++)
        n_finished += (size_t)items[i].finished;
    NS_DEBUG(NULL,
             "batch of %zu items: %zu done in one statement, %zu finished "
             "before, %zu one by one",
             n, n_done, n_finished, n - n_done - n_finished);
    if (n_done > 0) {
        double per_item =
            (double)(ns_clock_mono_ms() - t0) / 1000.0 / (double)n_done;
        for (size_t i = 0; i < n; i++)
            if (items[i].done)
                item_count(items[i].job->name, "done", per_item);
    }
    for (size_t i = 0; i < n; i++) {
        if (items[i].finished)
            item_count(items[i].job->name, "duplicate", -1);
        outcomes[i] = items[i].done || items[i].finished
                          ? NS_ITEM_COMMITTED
                          : ns_item_process(res, &msgs[i]);
    }
    /* One completion check per run with an item done here: a read, batched
     * with other threads' (bookkeeper.h); the claim only when it may be
     * complete. (The one-item path checked its own.) */
    for (size_t i = 0; i < n; i++) {
        bool seen = false;
        for (size_t k = 0; k < i && !seen; k++)
            seen = items[k].done && items[k].env.run_id == items[i].env.run_id;
        if (seen || !items[i].done)
            continue;
        bool maybe = true;
        if (res->bk != NULL) {
            ns_item_pg_release(res);
            if (ns_bookkeeper_check(res->bk, items[i].env.run_id, &maybe) !=
                NS_BK_OK)
                maybe = true;
        }
        if (maybe && ns_item_pg_wait(res))
            ns_finalize_if_complete(res, items[i].env.run_id);
    }
    ns_item_pg_release(res);
    for (size_t i = 0; i < n; i++) {
        cJSON_Delete(items[i].report);
        ns_envelope_free(&items[i].env);
    }
    free(items);
}
