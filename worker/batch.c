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
 * bookkeeping, so a thread takes up to 64 of their items at once, runs the
 * handler on each, and records the lot with one statement: every item
 * still pending, of a run neither cancelled nor failed, becomes done with
 * its attempt counted, one row version per item. Nothing is written before
 * the handler runs: such a handler has no effects to protect, so a worker
 * that dies mid-batch costs only the uncounted attempt (the items are
 * redelivered and done by the next owner). Anything else takes the
 * one-item path (item.c), which checks, records the start and handles
 * failures: an item the statement did not take (a redelivery of a
 * finished item, an unknown key, a cancelled run), a handler that failed
 * or opened its own transaction (its writes are rolled back and the item
 * runs again there), and every item when the statement itself failed. */

typedef struct batch_item {
    const ns_msg_t *msg;
    ns_envelope_t env;
    const ns_job_t *job;
    int decoded;
    int ran;  /* the handler succeeded without writing: in the statement */
    int done; /* the statement marked it done */
} batch_item_t;

/* Runs the handlers; returns the items for the statement (idx, run_id,
 * item_key, report) as a JSON array. */
static cJSON *batch_run(ns_item_res_t *res, batch_item_t *items, size_t n)
{
    cJSON *arr = cJSON_CreateArray();
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
            cJSON *o = cJSON_CreateObject();
            cJSON_AddNumberToObject(o, "idx", (double)i);
            cJSON_AddNumberToObject(o, "run_id", (double)it->env.run_id);
            cJSON_AddStringToObject(o, "item_key", it->env.item_key);
            if (ctx.report != NULL)
                cJSON_AddItemToObject(o, "report",
                                      cJSON_Duplicate(ctx.report, 1));
            cJSON_AddItemToArray(arr, o);
            it->ran = 1;
        }
        cJSON_Delete(ctx.report);
        ns_item_pg_release(res);
    }
    return arr;
}

/* One statement: marks done every item of arr still pending in a live run
 * and returns their indexes. 0 when it failed (nothing was written). */
static int batch_record(ns_item_res_t *res, batch_item_t *items, size_t n,
                        cJSON *arr)
{
    char *json = cJSON_PrintUnformatted(arr);
    const char *params[] = {json};
    ns_error_t err;
    ns_error_clear(&err);
    PGresult *r =
        json != NULL && ns_item_pg_wait(res)
            ? ns_pg_query(
                  res->pg,
                  "UPDATE items i SET status = 'done', attempts = "
                  "i.attempts + 1, started_at = coalesce(i.started_at, "
                  "now()), finished_at = now(), error = NULL, report = "
                  "x.report FROM jsonb_to_recordset($1::jsonb) AS x(idx "
                  "int, run_id bigint, item_key text, report jsonb) WHERE "
                  "i.run_id = x.run_id AND i.item_key = x.item_key AND "
                  "i.status = 'pending' AND EXISTS (SELECT 1 FROM runs r "
                  "WHERE r.run_id = x.run_id AND r.status NOT IN "
                  "('cancelled', 'failed')) RETURNING x.idx",
                  1, params, &err)
            : NULL;
    free(json);
    if (r == NULL) {
        if (err.msg[0] != '\0')
            NS_WARN(NULL, "batch of %zu items not recorded, one by one: %s", n,
                    err.msg);
        return 0;
    }
    for (int row = 0; row < PQntuples(r); row++) {
        size_t idx = (size_t)ns_pg_int64(r, row, 0);
        if (idx < n)
            items[idx].done = 1;
    }
    PQclear(r);
    return 1;
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
        items[i].decoded =
            ns_envelope_decode(msgs[i].value, msgs[i].len, msgs[i].compressed,
                               res->cfg->max_payload_bytes, &items[i].env,
                               NULL) == NS_OK;
        if (items[i].decoded)
            items[i].job = ns_config_job(res->cfg, items[i].env.job);
    }
    int64_t t0 = ns_clock_mono_ms();
    cJSON *arr = batch_run(res, items, n);
    size_t n_done = 0;
    if (cJSON_GetArraySize(arr) > 0 && batch_record(res, items, n, arr))
        for (size_t i = 0; i < n; i++)
            n_done += (size_t)items[i].done;
    cJSON_Delete(arr);
    NS_DEBUG(NULL,
             "batch of %zu items: %zu done in one statement, %zu one by one", n,
             n_done, n - n_done);
    if (n_done > 0) {
        double per_item =
            (double)(ns_clock_mono_ms() - t0) / 1000.0 / (double)n_done;
        for (size_t i = 0; i < n; i++)
            if (items[i].done)
                item_count(items[i].job->name, "done", per_item);
    }
    for (size_t i = 0; i < n; i++)
        outcomes[i] =
            items[i].done ? NS_ITEM_COMMITTED : ns_item_process(res, &msgs[i]);
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
    for (size_t i = 0; i < n; i++)
        ns_envelope_free(&items[i].env);
    free(items);
}
