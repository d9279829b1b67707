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
 * Fast handlers (no I/O, e.g. noop) spend their time on bookkeeping, so a
 * thread takes several of their items at once: one query checks them all,
 * one marks the attempts, one marks them done. Handlers that write open
 * their own transaction as usual; anything unusual (bad input, an item
 * that is not pending, a failure) takes the one-item path. */

typedef struct batch_item {
    const ns_msg_t *msg;
    ns_envelope_t env;
    const ns_job_t *job;
    const ns_handler_def_t *h;
    int attempts;
    int pending;
} batch_item_t;

static cJSON *batch_keys(const batch_item_t *items, size_t n, bool pending)
{
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; i < n; i++) {
        if (pending && !items[i].pending)
            continue;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "idx", (double)i);
        cJSON_AddNumberToObject(o, "run_id", (double)items[i].env.run_id);
        cJSON_AddStringToObject(o, "item_key", items[i].env.item_key);
        cJSON_AddItemToArray(arr, o);
    }
    return arr;
}

/* One round trip: which items are pending (and their attempts so far). */
static int batch_precheck(ns_item_res_t *res, batch_item_t *items, size_t n)
{
    cJSON *arr = batch_keys(items, n, false);
    char *json = cJSON_PrintUnformatted(arr);
    cJSON_Delete(arr);
    const char *params[] = {json};
    ns_error_t err;
    PGresult *r = ns_item_pg_wait(res)
                      ? ns_pg_query(res->pg,
                                    "SELECT x.idx, i.attempts FROM "
                                    "jsonb_to_recordset($1::jsonb) AS "
                                    "x(idx int, run_id bigint, item_key "
                                    "text) JOIN items i ON i.run_id = "
                                    "x.run_id AND i.item_key = x.item_key "
                                    "JOIN runs r ON r.run_id = x.run_id "
                                    "WHERE i.status = 'pending' AND "
                                    "r.status NOT IN ('cancelled', "
                                    "'failed')",
                                    1, params, &err)
                      : NULL;
    free(json);
    if (r == NULL)
        return 0;
    for (int row = 0; row < PQntuples(r); row++) {
        size_t idx = (size_t)ns_pg_int64(r, row, 0);
        if (idx < n) {
            items[idx].pending = 1;
            items[idx].attempts = (int)ns_pg_int64(r, row, 1);
        }
    }
    PQclear(r);
    return 1;
}

static int batch_update(ns_item_res_t *res, const char *sql, cJSON *arr)
{
    char *json = cJSON_PrintUnformatted(arr);
    const char *params[] = {json};
    ns_error_t err;
    int ok = ns_item_pg_wait(res) &&
             ns_pg_exec(res->pg, sql, 1, params, &err) == NS_OK;
    free(json);
    return ok;
}

void ns_item_process_batch(ns_item_res_t *res, const ns_msg_t *msgs,
                           ns_item_outcome_t *outcomes, size_t n)
{
    batch_item_t *items = calloc(n, sizeof(*items));
    if (items == NULL || n < 2)
        goto one_by_one;
    for (size_t i = 0; i < n; i++) {
        items[i].msg = &msgs[i];
        if (ns_envelope_decode(msgs[i].value, msgs[i].len, msgs[i].compressed,
                               res->cfg->max_payload_bytes, &items[i].env,
                               NULL) != NS_OK)
            continue;
        items[i].job = ns_config_job(res->cfg, items[i].env.job);
        items[i].h =
            items[i].job ? ns_handler_find(items[i].job->handler, 0) : NULL;
    }
    if (!batch_precheck(res, items, n))
        goto one_by_one;
    for (size_t i = 0; i < n; i++)
        items[i].pending = items[i].pending && items[i].h != NULL;
    cJSON *keys = batch_keys(items, n, true);
    int started = batch_update(
        res,
        "UPDATE items i SET attempts = i.attempts + 1, started_at = "
        "coalesce(i.started_at, now()) FROM jsonb_to_recordset($1::jsonb) "
        "AS x(run_id bigint, item_key text) WHERE i.run_id = x.run_id AND "
        "i.item_key = x.item_key",
        keys);
    cJSON_Delete(keys);
    if (!started)
        goto one_by_one;
    ns_item_pg_release(res);

    cJSON *done = cJSON_CreateArray();
    int64_t t0 = ns_clock_mono_ms();
    for (size_t i = 0; i < n; i++) {
        batch_item_t *it = &items[i];
        if (!it->pending) {
            outcomes[i] = ns_item_process(res, it->msg);
            continue;
        }
        ns_item_ctx_t ctx;
        item_init_ctx(&ctx, res, it->job, &it->env);
        ctx.attempt = ++it->attempts;
        ns_error_t err;
        ns_error_clear(&err);
        ns_err_t rc = it->h->process(&ctx, &err);
        if (rc == NS_OK && ctx.in_tx) {
            rc = item_commit_done(&ctx, &err);
        } else if (rc == NS_OK) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddNumberToObject(o, "run_id", (double)it->env.run_id);
            cJSON_AddStringToObject(o, "item_key", it->env.item_key);
            if (ctx.report != NULL)
                cJSON_AddItemToObject(o, "report",
                                      cJSON_Duplicate(ctx.report, 1));
            cJSON_AddItemToArray(done, o);
        } else {
            ns_ctx_end_tx(&ctx, false, NULL);
        }
        cJSON_Delete(ctx.report);
        outcomes[i] = NS_ITEM_COMMITTED;
        if (rc != NS_OK) {
            int next = item_after_failure(res, it->msg, &it->env, it->job,
                                          &ctx.log, it->attempts, rc, &err, t0);
            outcomes[i] = next == ITEM_RETRY_HERE
                              ? item_run(res, it->msg, &it->env, it->job, it->h,
                                         it->attempts, false)
                              : (ns_item_outcome_t)next;
        }
    }
    /* Items only marked done now: until this commits, their offsets stay
     * uncommitted, so a crash here redelivers them. */
    if (cJSON_GetArraySize(done) > 0 &&
        !batch_update(res,
                      "UPDATE items i SET status = 'done', error = NULL, "
                      "report = x.report, finished_at = now() FROM "
                      "jsonb_to_recordset($1::jsonb) AS x(run_id bigint, "
                      "item_key text, report jsonb) WHERE i.run_id = "
                      "x.run_id AND i.item_key = x.item_key AND i.status = "
                      "'pending'",
                      done)) {
        for (size_t k = 0; k < n; k++)
            if (items[k].pending && outcomes[k] == NS_ITEM_COMMITTED)
                outcomes[k] = NS_ITEM_ABANDONED;
    } else if (cJSON_GetArraySize(done) > 0) {
        double per_item = (double)(ns_clock_mono_ms() - t0) / 1000.0 /
                          cJSON_GetArraySize(done);
        for (int k = 0; k < cJSON_GetArraySize(done); k++)
            item_count(items[0].job->name, "done", per_item);
    }
    cJSON_Delete(done);
    /* One completion check per run in the batch: a read, batched with
     * other threads' (bookkeeper.h); the claim only when it may be done. */
    for (size_t i = 0; i < n; i++) {
        bool seen = false;
        for (size_t k = 0; k < i; k++)
            seen |= items[k].env.run_id == items[i].env.run_id;
        if (seen || !items[i].pending || outcomes[i] != NS_ITEM_COMMITTED)
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
    return;
one_by_one:
    for (size_t i = 0; items != NULL && i < n; i++)
        ns_envelope_free(&items[i].env);
    free(items);
    ns_item_pg_release(res);
    for (size_t i = 0; i < n; i++)
        outcomes[i] = ns_item_process(res, &msgs[i]);
}
