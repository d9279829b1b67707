#include "item.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctx.h"
#include "ns/clock.h"
#include "ns/envelope.h"
#include "ns/log.h"
#include "ns/metrics.h"
#include "ns/pg.h"
#include "ns/retry.h"

#define PG_RETRY_MS 1000

int ns_item_sleep(ns_item_res_t *res, int64_t ms)
{
    int64_t until = ns_clock_mono_ms() + ms;
    while (*res->running) {
        int64_t left = until - ns_clock_mono_ms();
        if (left <= 0)
            return 1;
        if (left > 50)
            left = 50;
        struct timespec ts = {0, (long)left * 1000000L};
        nanosleep(&ts, NULL);
    }
    return 0;
}

PGconn *ns_item_pg_acquire(ns_item_res_t *res, ns_error_t *err)
{
    if (res->pool == NULL) {
        if (ns_pg_ensure(&res->pg, res->cfg->pg_dsn, err) != NS_OK)
            return NULL;
        return res->pg;
    }
    if (res->pg != NULL && PQstatus(res->pg) == CONNECTION_OK)
        return res->pg;
    ns_item_pg_release(res);
    res->pg = ns_pgpool_get(res->pool, 5000, err);
    return res->pg;
}

void ns_item_pg_release(ns_item_res_t *res)
{
    if (res->pool == NULL || res->pg == NULL)
        return;
    ns_pgpool_put(res->pool, res->pg);
    res->pg = NULL;
}

int ns_item_pg_wait(ns_item_res_t *res)
{
    for (int tries = 0;; tries++) {
        ns_error_t err;
        ns_error_clear(&err);
        if (ns_item_pg_acquire(res, &err) != NULL)
            return 1;
        if (tries % 10 == 0)
            NS_WARN(NULL, "waiting for postgres: %s", err.msg);
        if (!ns_item_sleep(res, PG_RETRY_MS))
            return 0;
    }
}

static void count_item(const char *job, const char *outcome, double seconds)
{
    char esc[200], labels[300];
    ns_metrics_label_escape(job ? job : "", esc, sizeof(esc));
    snprintf(labels, sizeof(labels), "job=\"%s\",outcome=\"%s\"", esc, outcome);
    ns_metrics_counter_add("nightshift_items_processed_total",
                           "Items that reached an outcome.", labels, 1);
    if (seconds >= 0) {
        snprintf(labels, sizeof(labels), "job=\"%s\"", esc);
        ns_metrics_histogram_observe("nightshift_item_duration_seconds",
                                     "Time from first attempt to outcome.",
                                     labels, seconds);
    }
}

static void add_header(rd_kafka_headers_t *h, const char *name,
                       const char *value)
{
    if (value != NULL)
        rd_kafka_header_add(h, name, -1, value, -1);
}

static void add_header_i64(rd_kafka_headers_t *h, const char *name,
                           int64_t value)
{
    char text[24];
    ns_pg_i64str(value, text);
    rd_kafka_header_add(h, name, -1, text, -1);
}

/* The dead letter on the ns.dlq topic: original key and bytes, the cause
 * and the origin in headers. Postgres keeps the same record, so a Kafka
 * outage here loses nothing; duplicates on the topic are harmless. */
static void publish_dead_letter(ns_item_res_t *res, const ns_msg_t *msg,
                                const ns_envelope_t *env, const ns_job_t *job,
                                int attempts, const char *reason)
{
    if (res->producer == NULL)
        return;
    rd_kafka_headers_t *h = rd_kafka_headers_new(12);
    char now[40];
    ns_clock_format_utc(ns_clock_now_ms(), now, sizeof(now));
    add_header(h, "ns-error", reason);
    add_header(h, "ns-handler", job ? job->handler : NULL);
    add_header(h, "ns-job", env->job);
    add_header_i64(h, "ns-attempts", attempts);
    add_header(h, "ns-first-failure",
               msg->first_failure ? msg->first_failure : now);
    add_header(h, "ns-last-failure", now);
    add_header(h, "ns-origin-topic",
               msg->origin_topic ? msg->origin_topic : msg->topic);
    add_header_i64(h, "ns-origin-partition", msg->partition);
    add_header_i64(h, "ns-origin-offset", msg->offset);
    if (env->run_id > 0)
        add_header_i64(h, "ns-run-id", env->run_id);
    add_header(h, NS_HEADER_ENCODING, msg->compressed ? "zstd" : "json");
    ns_error_t err;
    ns_error_clear(&err);
    if (ns_kafka_produce_sync(res->producer, NS_TOPIC_DLQ, msg->key,
                              msg->key_len, msg->value, msg->len, h, 30000,
                              &err) != NS_OK)
        NS_WARN(NULL, "dead letter not published to %s (kept in postgres): %s",
                NS_TOPIC_DLQ, err.msg);
}

/* Hands a transiently failed item to the retry tier for its delay; the
 * retrier re-injects it into its topic after the not-before time. */
static ns_err_t send_to_retry(ns_item_res_t *res, const ns_msg_t *msg,
                              int64_t delay_ms, const char *why,
                              ns_error_t *err)
{
    const ns_retry_tier_t *tier =
        ns_retry_tier_for(res->tiers, res->n_tiers, delay_ms);
    char topic[NS_TOPIC_MAX];
    snprintf(topic, sizeof(topic), "%s%s", NS_RETRY_TOPIC_PREFIX, tier->label);
    char now[40];
    ns_clock_format_utc(ns_clock_now_ms(), now, sizeof(now));
    rd_kafka_headers_t *h = rd_kafka_headers_new(6);
    add_header(h, NS_HEADER_ENCODING, msg->compressed ? "zstd" : "json");
    add_header(h, "ns-origin-topic",
               msg->origin_topic ? msg->origin_topic : msg->topic);
    add_header_i64(h, "ns-not-before", ns_clock_now_ms() + delay_ms);
    add_header(h, "ns-first-failure",
               msg->first_failure ? msg->first_failure : now);
    rd_kafka_header_add(h, "ns-last-error", -1, why,
                        (ssize_t)(strlen(why) < 256 ? strlen(why) : 256));
    return ns_kafka_produce_sync(res->producer, topic, msg->key, msg->key_len,
                                 msg->value, msg->len, h, 30000, err);
}

/* Records a message that cannot be processed, and fails its item when the
 * item is known. Both in one transaction; retried while Postgres is down.
 * Returns 0 if it had to give up because the worker is stopping. */
static int dead_letter(ns_item_res_t *res, const ns_msg_t *msg,
                       const ns_envelope_t *env, int attempts,
                       const char *reason)
{
    char part[24], off[24], run[24], att[24];
    ns_pg_i64str(msg->partition, part);
    ns_pg_i64str(msg->offset, off);
    ns_pg_i64str(env->run_id, run);
    ns_pg_i64str(attempts, att);
    /* Payloads are stored as bytes: they may not even be UTF-8. */
    const ns_job_t *job = env->job ? ns_config_job(res->cfg, env->job) : NULL;
    const char *params[] = {msg->topic,
                            part,
                            off,
                            NULL,
                            NULL,
                            reason,
                            env->job,
                            run,
                            env->item_key,
                            att,
                            job ? job->handler : NULL};
    int lengths[] = {0, 0, 0, (int)msg->key_len, (int)msg->len, 0, 0, 0,
                     0, 0, 0};
    int formats[] = {0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0};
    params[3] = msg->key;
    params[4] = msg->value;
    publish_dead_letter(res, msg, env, job, attempts, reason);
    for (;;) {
        if (!ns_item_pg_wait(res))
            return 0;
        ns_error_t err;
        ns_error_clear(&err);
        if (ns_pg_exec(res->pg, "BEGIN", 0, NULL, &err) != NS_OK)
            goto retry;
        PGresult *r = PQexecParams(
            res->pg,
            "INSERT INTO dead_letters (topic, partition, \"offset\", "
            "msg_key, payload, reason, job, run_id, item_key, attempts, "
            "handler, first_failed_at) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, nullif($8, '0')::bigint, "
            "$9, $10, $11, "
            "coalesce((SELECT started_at FROM items WHERE run_id = "
            "nullif($8, '0')::bigint AND item_key = $9), now())) "
            "ON CONFLICT (topic, partition, \"offset\") DO NOTHING",
            11, NULL, params, lengths, formats, 0);
        int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
        if (!ok)
            ns_error_set(&err, NS_ERR_TRANSIENT, "%s", PQresultErrorMessage(r));
        PQclear(r);
        if (!ok)
            goto retry;
        if (env->run_id > 0 && env->item_key != NULL) {
            const char *p2[] = {run, env->item_key, reason};
            if (ns_pg_exec(res->pg,
                           "UPDATE items SET status = 'failed', error = $3, "
                           "finished_at = now() WHERE run_id = $1::bigint "
                           "AND item_key = $2 AND status = 'pending'",
                           3, p2, &err) != NS_OK)
                goto retry;
        }
        if (ns_pg_exec(res->pg, "COMMIT", 0, NULL, &err) == NS_OK)
            return 1;
    retry:
        ns_pg_rollback(res->pg);
        NS_WARN(NULL, "recording dead letter failed, retrying: %s", err.msg);
        if (!ns_item_sleep(res, PG_RETRY_MS))
            return 0;
    }
}

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
static ns_err_t commit_done(ns_item_ctx_t *ctx, ns_error_t *err)
{
    PGconn *pg = ctx->in_tx ? ctx->res->pg : NULL;
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
                              "NULL, report = $3::jsonb, finished_at = now() "
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

ns_err_t ns_item_limit(ns_item_res_t *res, const char *name, const char *suffix,
                       int64_t max_wait_ms, ns_error_t *err)
{
    const ns_config_t *cfg = res->cfg;
    for (size_t i = 0; i < cfg->n_rate_limits; i++) {
        if (strcmp(cfg->rate_limits[i].key, name) != 0)
            continue;
        double rate, burst;
        if (ns_ratelimit_parse(cfg->rate_limits[i].value, &rate, &burst, err) !=
            NS_OK)
            return NS_OK; /* validated at load; never blocks the work */
        char bucket[256];
        snprintf(bucket, sizeof(bucket), "%s%s%s", name, suffix ? ":" : "",
                 suffix ? suffix : "");
        ns_err_t rc = ns_ratelimit_wait(res->rl, bucket, rate, burst,
                                        max_wait_ms, res->running, err);
        if (rc == NS_ERR_TRANSIENT) {
            double after = err->retry_after_s > 0 ? err->retry_after_s : 1;
            ns_error_set(err, NS_ERR_DEFERRED,
                         "rate limit %s: next call in %.1f s", bucket, after);
            err->retry_after_s = after;
            return NS_ERR_DEFERRED;
        }
        return NS_OK;
    }
    return NS_OK;
}

/* What follows a failed attempt: dead-letter the item (permanent failure or
 * retries exhausted), hand it to a retry tier, or, without tiers, wait here
 * and return RETRY_HERE. */
#define RETRY_HERE 2
static int after_failure(ns_item_res_t *res, const ns_msg_t *msg,
                         ns_envelope_t *env, const ns_job_t *job,
                         const ns_log_ctx_t *lc, int attempts, ns_err_t rc,
                         const ns_error_t *err, int64_t t0)
{
    bool deferred = rc == NS_ERR_DEFERRED;
    if (deferred) {
        /* The limiter said "not yet": that was no attempt. */
        char run[24];
        ns_pg_i64str(env->run_id, run);
        const char *params[] = {run, env->item_key};
        ns_error_t uerr;
        if (ns_item_pg_wait(res))
            ns_pg_exec(res->pg,
                       "UPDATE items SET attempts = greatest(attempts - 1, "
                       "0) WHERE run_id = $1::bigint AND item_key = $2",
                       2, params, &uerr);
    }
    bool permanent = rc != NS_ERR_TRANSIENT && !deferred;
    if (permanent || (!deferred && attempts >= job->retry.max_attempts)) {
        char reason[700];
        snprintf(reason, sizeof(reason), "%s%s (after %d attempt%s)",
                 permanent ? "" : "retries exhausted: ", err->msg, attempts,
                 attempts == 1 ? "" : "s");
        NS_ERROR(lc, "item failed: %s", reason);
        if (!dead_letter(res, msg, env, attempts, reason))
            return NS_ITEM_ABANDONED;
        count_item(job->name, "failed",
                   (double)(ns_clock_mono_ms() - t0) / 1000.0);
        return NS_ITEM_COMMITTED;
    }
    int64_t delay = deferred ? (int64_t)(err->retry_after_s * 1000)
                             : ns_backoff_ms(&job->retry, attempts,
                                             err->retry_after_s, &res->seed);
    ns_item_pg_release(res);
    if (res->n_tiers > 0 && res->producer != NULL && *res->running) {
        ns_error_t perr;
        ns_error_clear(&perr);
        if (send_to_retry(res, msg, delay, err->msg, &perr) == NS_OK) {
            if (deferred)
                NS_INFO(lc, "deferred (%s), back in %lld ms via retry topic",
                        err->msg, (long long)delay);
            else
                NS_WARN(lc,
                        "attempt %d failed (%s), retry in %lld ms via retry "
                        "topic",
                        attempts, err->msg, (long long)delay);
            count_item(job->name, "retry_scheduled", -1);
            return NS_ITEM_COMMITTED;
        }
        NS_WARN(lc, "retry topic unavailable (%s); waiting here", perr.msg);
    }
    NS_WARN(lc, "attempt %d failed (%s), retrying in %lld ms", attempts,
            err->msg, (long long)delay);
    return ns_item_sleep(res, delay) ? RETRY_HERE : NS_ITEM_ABANDONED;
}

static void init_ctx(ns_item_ctx_t *ctx, ns_item_res_t *res,
                     const ns_job_t *job, const ns_envelope_t *env)
{
    *ctx = (ns_item_ctx_t){
        .res = res,
        .job = job,
        .run_id = env->run_id,
        .item_key = env->item_key,
        .dry_run = env->dry_run,
        .payload = env->payload,
        .log = {.job = job->name,
                .run_id = env->run_id,
                .item_key = env->item_key},
    };
}

static ns_item_outcome_t run_item(ns_item_res_t *res, const ns_msg_t *msg,
                                  ns_envelope_t *env, const ns_job_t *job,
                                  const ns_handler_def_t *h, int attempts)
{
    ns_item_ctx_t ctx;
    init_ctx(&ctx, res, job, env);
    char run[24];
    ns_pg_i64str(env->run_id, run);
    int64_t t0 = ns_clock_mono_ms();
    for (;;) {
        if (!start_attempt(res, run, env->item_key))
            return NS_ITEM_ABANDONED;
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
            rc = commit_done(&ctx, &err);
        else
            ns_ctx_end_tx(&ctx, false, NULL);
        cJSON_Delete(ctx.report);
        ctx.report = NULL;
        if (rc == NS_OK) {
            count_item(job->name, "done",
                       (double)(ns_clock_mono_ms() - t0) / 1000.0);
            return NS_ITEM_COMMITTED;
        }
        int next =
            after_failure(res, msg, env, job, &ctx.log, attempts, rc, &err, t0);
        if (next != RETRY_HERE)
            return (ns_item_outcome_t)next;
        if (rc == NS_ERR_DEFERRED)
            attempts--; /* a rate-limit wait is not an attempt */
    }
}

ns_item_outcome_t ns_item_process(ns_item_res_t *res, const ns_msg_t *msg)
{
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
        int ok = dead_letter(res, msg, &env, 0, err.msg);
        if (ok)
            count_item(env.job, "dead_letter", -1);
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
    precheck_t pre = PRE_UNKNOWN;
    if (job != NULL && h != NULL)
        pre = precheck(res, &env, &attempts);
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
        out = dead_letter(res, msg, &env, attempts, reason) ? NS_ITEM_COMMITTED
                                                            : NS_ITEM_ABANDONED;
        if (out == NS_ITEM_COMMITTED)
            count_item(env.job, "dead_letter", -1);
    } else if (pre == PRE_TERMINAL) {
        NS_DEBUG(&lc, "already finished; redelivery ignored");
        count_item(env.job, "duplicate", -1);
    } else {
        out = run_item(res, msg, &env, job, h, attempts);
    }
    if (out == NS_ITEM_COMMITTED && pre != PRE_UNKNOWN && ns_item_pg_wait(res))
        ns_finalize_if_complete(res, env.run_id);
    ns_item_pg_release(res);
    ns_envelope_free(&env);
    return out;
}

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
        init_ctx(&ctx, res, it->job, &it->env);
        ctx.attempt = ++it->attempts;
        ns_error_t err;
        ns_error_clear(&err);
        ns_err_t rc = it->h->process(&ctx, &err);
        if (rc == NS_OK && ctx.in_tx) {
            rc = commit_done(&ctx, &err);
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
            int next = after_failure(res, it->msg, &it->env, it->job, &ctx.log,
                                     it->attempts, rc, &err, t0);
            outcomes[i] = next == RETRY_HERE
                              ? run_item(res, it->msg, &it->env, it->job, it->h,
                                         it->attempts)
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
            count_item(items[0].job->name, "done", per_item);
    }
    cJSON_Delete(done);
    /* One completion check per run in the batch. */
    for (size_t i = 0; i < n; i++) {
        bool seen = false;
        for (size_t k = 0; k < i; k++)
            seen |= items[k].env.run_id == items[i].env.run_id;
        if (!seen && items[i].pending && outcomes[i] == NS_ITEM_COMMITTED &&
            ns_item_pg_wait(res))
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
