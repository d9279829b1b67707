/* Where failed items go: the retry tiers (transient failures) and the
 * dead-letter topic plus table (permanent failures, exhausted retries,
 * messages that cannot be processed at all). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deadletter.h"
#include "ns/clock.h"
#include "ns/envelope.h"
#include "ns/log.h"
#include "ns/metrics.h"
#include "ns/pg.h"
#include "ns/retry.h"

#define PG_RETRY_MS 1000

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
ns_err_t item_send_to_retry(ns_item_res_t *res, const ns_msg_t *msg,
                            int64_t delay_ms, const char *why, ns_error_t *err)
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
int item_dead_letter(ns_item_res_t *res, const ns_msg_t *msg,
                     const ns_envelope_t *env, int attempts, const char *reason)
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

/* What follows a failed attempt: dead-letter the item (permanent failure or
 * retries exhausted), hand it to a retry tier, or, without tiers, wait here
 * and return ITEM_RETRY_HERE. */
int item_after_failure(ns_item_res_t *res, const ns_msg_t *msg,
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
        if (!item_dead_letter(res, msg, env, attempts, reason))
            return NS_ITEM_ABANDONED;
        item_count(job->name, "failed",
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
        if (item_send_to_retry(res, msg, delay, err->msg, &perr) == NS_OK) {
            if (deferred)
                NS_INFO(lc, "deferred (%s), back in %lld ms via retry topic",
                        err->msg, (long long)delay);
            else
                NS_WARN(lc,
                        "attempt %d failed (%s), retry in %lld ms via retry "
                        "topic",
                        attempts, err->msg, (long long)delay);
            item_count(job->name, "retry_scheduled", -1);
            return NS_ITEM_COMMITTED;
        }
        NS_WARN(lc, "retry topic unavailable (%s); waiting here", perr.msg);
    }
    NS_WARN(lc, "attempt %d failed (%s), retrying in %lld ms", attempts,
            err->msg, (long long)delay);
    return ns_item_sleep(res, delay) ? ITEM_RETRY_HERE : NS_ITEM_ABANDONED;
}
