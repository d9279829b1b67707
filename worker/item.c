/* item.c: one item message, start to end: decode, check it is still
 * pending, run the handler's attempts, commit its writes with the item's
 * status, then hand over to the failure paths or the finalizer. */
#include "item.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bookkeeper.h"
#include "ctx.h"
#include "deadletter.h"
#include "finalize.h"
#include "item_internal.h"
#include "ns/clock.h"
#include "ns/envelope.h"
#include "ns/log.h"
#include "ns/pg.h"
#include "stream.h"

#define PG_RETRY_MS 1000

typedef enum precheck {
    PRE_PENDING,
    PRE_TERMINAL, /* already done or failed: a redelivery */
    PRE_UNKNOWN,  /* no such item */
    PRE_CANCELLED,
    PRE_STOPPING,
} precheck_t;

static precheck_t precheck(ns_item_res_t *res, const ns_envelope_t *env,
                           int *attempts)
{
    char run[24];
    ns_pg_i64str(env->run_id, run);
    const char *params[] = {run, env->item_key};
    for (;;) {
        if (!ns_item_pg_wait(res))
            return PRE_STOPPING;
        ns_error_t err;
        ns_error_clear(&err);
        PGresult *r = ns_pg_query(
            res->pg,
            "SELECT i.status, i.attempts, r.status FROM items i JOIN runs r "
            "USING (run_id) WHERE i.run_id = $1::bigint AND i.item_key = $2",
            2, params, &err);
        if (r == NULL) {
            NS_WARN(NULL, "item check failed, retrying: %s", err.msg);
            if (!ns_item_sleep(res, PG_RETRY_MS))
                return PRE_STOPPING;
            continue;
        }
        precheck_t out = PRE_UNKNOWN;
        if (PQntuples(r) == 1) {
            *attempts = (int)ns_pg_int64(r, 0, 1);
            const char *run_status = PQgetvalue(r, 0, 2);
            if (strcmp(PQgetvalue(r, 0, 0), "pending") != 0)
                out = PRE_TERMINAL;
            else if (strcmp(run_status, "cancelled") == 0 ||
                     strcmp(run_status, "failed") == 0)
                out = PRE_CANCELLED;
            else
                out = PRE_PENDING;
        }
        PQclear(r);
        return out;
    }
}

/* The precheck and the first attempt's start in one statement, batched
 * with other threads' (bookkeeper.h); the one-item statements without a
 * bookkeeper or when its statement failed. *started: the attempt is
 * recorded, *attempts counts those before it. */
static precheck_t check_and_start(ns_item_res_t *res, const ns_envelope_t *env,
                                  int *attempts, bool *started)
{
    *started = false;
    res->done_hint = -1;
    if (res->bk == NULL)
        return precheck(res, env, attempts);
    int attempt = 0;
    switch (
        ns_bookkeeper_start(res->bk, env->run_id, env->item_key, &attempt)) {
    case NS_BK_OK:
        *started = true;
        *attempts = attempt - 1;
        return PRE_PENDING;
    case NS_BK_TERMINAL: *attempts = attempt; return PRE_TERMINAL;
    case NS_BK_UNKNOWN: return PRE_UNKNOWN;
    case NS_BK_CANCELLED: *attempts = attempt; return PRE_CANCELLED;
    case NS_BK_STOPPING: return PRE_STOPPING;
    case NS_BK_ERROR: break;
    }
    return precheck(res, env, attempts);
}

/* Whether an item's outcome may have completed its run: known from the
 * batched "done" (done_hint), else asked in a batch; without a bookkeeper
 * the caller claims the run (one statement that is a no-op unless the run
 * is complete). */
static bool run_may_be_complete(ns_item_res_t *res, int64_t run_id, bool ran)
{
    if (res->bk == NULL)
        return true;
    if (ran && res->done_hint >= 0)
        return res->done_hint == 1;
    bool maybe = true;
    if (ns_bookkeeper_check(res->bk, run_id, &maybe) != NS_BK_OK)
        return true;
    return maybe;
}

/* Marks the attempt as started; transient failures are retried. */
static int start_attempt(ns_item_res_t *res, const char *run, const char *key)
{
    const char *params[] = {run, key};
    for (;;) {
        if (!ns_item_pg_wait(res))
            return 0;
        ns_error_t err;
        ns_error_clear(&err);
        if (ns_pg_exec(res->pg,
                       "UPDATE items SET attempts = attempts + 1, "
                       "started_at = coalesce(started_at, now()) "
                       "WHERE run_id = $1::bigint AND item_key = $2",
                       2, params, &err) == NS_OK)
            return 1;
        if (!ns_item_sleep(res, PG_RETRY_MS))
            return 0;
    }
}

/* Marks the item done inside the context's transaction and commits.
 * Returns NS_OK also when a concurrent delivery finished it first (then
 * everything the handler wrote is rolled back). */
ns_err_t item_commit_done(ns_item_ctx_t *ctx, ns_error_t *err)
{
    PGconn *pg = ctx->in_tx ? ctx->res->pg : NULL;
    ctx->res->done_hint = -1;
    if (pg == NULL && ctx->res->bk != NULL) {
        /* Nothing of the handler's to commit with it: batched. */
        char *report = ns_ctx_report_text(ctx);
        bool maybe = true;
        ns_bk_result_t b = ns_bookkeeper_done(ctx->res->bk, ctx->run_id,
                                              ctx->item_key, report, &maybe);
        free(report);
        if (b == NS_BK_OK) {
            ctx->res->done_hint = maybe;
            return NS_OK;
        }
        if (b == NS_BK_STOPPING) {
            ns_error_set(err, NS_ERR_TRANSIENT,
                         "postgres unavailable while stopping");
            return err->code;
        }
        /* NS_BK_ERROR: on this connection, one item at a time. */
    }
    if (pg == NULL) {
        /* Dry runs and handlers that wrote nothing still record status. */
        if (ns_item_pg(ctx, err) == NULL)
            return err->code;
        if (ns_pg_exec(ctx->res->pg, "BEGIN", 0, NULL, err) != NS_OK)
            return err->code;
        ctx->in_tx = true;
        pg = ctx->res->pg;
    }
    char run[24];
    ns_pg_i64str(ctx->run_id, run);
    char *report = ns_ctx_report_text(ctx);
    const char *params[] = {run, ctx->item_key, report};
    PGresult *r = ns_pg_query(pg,
                              "UPDATE items SET status = 'done', error = "
                              "NULL, report = $3::jsonb, finished_at = "
                              "clock_timestamp() "
                              "WHERE run_id = $1::bigint AND item_key = $2 "
                              "AND status = 'pending'",
                              3, params, err);
    free(report);
    if (r == NULL) {
        ns_ctx_end_tx(ctx, false, NULL);
        return err->code;
    }
    int updated = strcmp(PQcmdTuples(r), "1") == 0;
    PQclear(r);
    return ns_ctx_end_tx(ctx, updated, err);
}

ns_item_outcome_t item_run(ns_item_res_t *res, const ns_msg_t *msg,
                           ns_envelope_t *env, const ns_job_t *job,
                           const ns_handler_def_t *h, int attempts,
                           bool started)
{
    ns_item_ctx_t ctx;
    item_init_ctx(&ctx, res, job, env);
    char run[24];
    ns_pg_i64str(env->run_id, run);
    int64_t t0 = ns_clock_mono_ms();
    for (;;) {
        if (!started && !start_attempt(res, run, env->item_key))
            return NS_ITEM_ABANDONED;
        started = false;
        ctx.attempt = ++attempts;
        cJSON_Delete(ctx.report);
        ctx.report = NULL;
        /* The handler's I/O happens without a connection held; it takes
         * one when it reads or writes. */
        ns_item_pg_release(res);
        ns_error_t err;
        ns_error_clear(&err);
        ns_err_t rc = h->process(&ctx, &err);
        if (rc == NS_OK)
            rc = item_commit_done(&ctx, &err);
        else
            ns_ctx_end_tx(&ctx, false, NULL);
        cJSON_Delete(ctx.report);
        ctx.report = NULL;
        if (rc == NS_OK) {
            item_count(job->name, "done",
                       (double)(ns_clock_mono_ms() - t0) / 1000.0);
            return NS_ITEM_COMMITTED;
        }
        int next = item_after_failure(res, msg, env, job, &ctx.log, attempts,
                                      rc, &err, t0);
        if (next != ITEM_RETRY_HERE)
            return (ns_item_outcome_t)next;
        if (rc == NS_ERR_DEFERRED)
            attempts--; /* a rate-limit wait is not an attempt */
    }
}

ns_item_outcome_t item_after_attempt(ns_item_res_t *res, const ns_msg_t *msg,
                                     ns_envelope_t *env, const ns_job_t *job,
                                     const ns_handler_def_t *h, int attempts,
                                     ns_err_t rc, const ns_error_t *err,
                                     int64_t t0)
{
    ns_log_ctx_t lc = {
        .job = env->job, .run_id = env->run_id, .item_key = env->item_key};
    int next =
        item_after_failure(res, msg, env, job, &lc, attempts, rc, err, t0);
    if (next != ITEM_RETRY_HERE)
        return (ns_item_outcome_t)next;
    if (rc == NS_ERR_DEFERRED)
        attempts--; /* a rate-limit wait is not an attempt */
    return item_run(res, msg, env, job, h, attempts, false);
}

void item_finalize_check(ns_item_res_t *res, int64_t run_id, bool ask)
{
    if ((!ask || run_may_be_complete(res, run_id, false)) &&
        ns_item_pg_wait(res))
        ns_finalize_if_complete(res, run_id);
    ns_item_pg_release(res);
}

ns_item_outcome_t ns_item_process(ns_item_res_t *res, const ns_msg_t *msg)
{
    const ns_job_t *stream = ns_stream_job(res->cfg, msg->topic);
    if (stream != NULL)
        return ns_stream_process(res, msg, stream);
    ns_envelope_t env;
    ns_error_t err;
    ns_error_clear(&err);
    ns_log_ctx_t lc = {0};
    if (ns_envelope_decode(msg->value, msg->len, msg->compressed,
                           res->cfg->max_payload_bytes, &env, &err) != NS_OK) {
        lc = (ns_log_ctx_t){
            .job = env.job, .run_id = env.run_id, .item_key = env.item_key};
        NS_ERROR(&lc, "%s [%s/%d@%lld]", err.msg, msg->topic,
                 (int)msg->partition, (long long)msg->offset);
        int ok = item_dead_letter(res, msg, &env, 0, err.msg);
        if (ok)
            item_count(env.job, "dead_letter", -1);
        if (ok && env.run_id > 0)
            ns_finalize_if_complete(res, env.run_id);
        ns_item_pg_release(res);
        ns_envelope_free(&env);
        return ok ? NS_ITEM_COMMITTED : NS_ITEM_ABANDONED;
    }
    lc = (ns_log_ctx_t){
        .job = env.job, .run_id = env.run_id, .item_key = env.item_key};
    ns_item_outcome_t out = NS_ITEM_COMMITTED;
    const ns_job_t *job = ns_config_job(res->cfg, env.job);
    const ns_handler_def_t *h = job ? ns_handler_find(job->handler, 0) : NULL;
    int attempts = 0;
    bool started = false;
    precheck_t pre = PRE_UNKNOWN;
    if (job != NULL && h != NULL)
        pre = check_and_start(res, &env, &attempts, &started);
    char reason[600];
    reason[0] = '\0';
    if (job == NULL)
        snprintf(reason, sizeof(reason),
                 "bad input: unknown job \"%s\" (not in this worker's "
                 "config)",
                 env.job);
    else if (h == NULL)
        snprintf(reason, sizeof(reason), "bad input: unknown handler \"%s\"",
                 job->handler);
    else if (pre == PRE_UNKNOWN)
        snprintf(reason, sizeof(reason),
                 "bad input: run %lld has no item \"%s\"",
                 (long long)env.run_id, env.item_key);
    else if (pre == PRE_CANCELLED)
        snprintf(reason, sizeof(reason), "run %lld was cancelled",
                 (long long)env.run_id);

    if (pre == PRE_STOPPING) {
        out = NS_ITEM_ABANDONED;
    } else if (reason[0] != '\0') {
        NS_ERROR(&lc, "%s", reason);
        out = item_dead_letter(res, msg, &env, attempts, reason)
                  ? NS_ITEM_COMMITTED
                  : NS_ITEM_ABANDONED;
        if (out == NS_ITEM_COMMITTED)
            item_count(env.job, "dead_letter", -1);
    } else if (pre == PRE_TERMINAL) {
        NS_DEBUG(&lc, "already finished; redelivery ignored");
        item_count(env.job, "duplicate", -1);
    } else {
        out = item_run(res, msg, &env, job, h, attempts, started);
    }
    if (out == NS_ITEM_COMMITTED && pre != PRE_UNKNOWN &&
        run_may_be_complete(res, env.run_id, pre == PRE_PENDING) &&
        ns_item_pg_wait(res))
        ns_finalize_if_complete(res, env.run_id);
    ns_item_pg_release(res);
    ns_envelope_free(&env);
    return out;
}
