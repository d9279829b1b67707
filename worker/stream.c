/* stream.c: items of stream jobs (source type "stream"): messages that
 * arrive on a topic from outside — the updates `nightshift ingest` took
 * from Telegram — one item each, keyed by the message key (a chat), with
 * no run around them. The handler's writes commit in its own transaction;
 * its idempotency is the handler's (unique keys), so a redelivery stores
 * nothing twice. A transient failure is retried here, in order, and while
 * Postgres is unreachable the item simply waits (the messages behind it
 * wait in Kafka); a permanent one, or one out of attempts, is
 * dead-lettered with its reason. */
#include "stream.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deadletter.h"
#include "ns/clock.h"
#include "ns/log.h"
#include "ns/pg.h"
#include "ns/retry.h"
#include "ns/utf8.h"

const ns_job_t *ns_stream_job(const ns_config_t *cfg, const char *topic)
{
    for (size_t i = 0; topic != NULL && i < cfg->n_jobs; i++) {
        const ns_job_t *j = &cfg->jobs[i];
        if (j->source.kind == NS_SOURCE_STREAM && j->source.topic != NULL &&
            strcmp(j->source.topic, topic) == 0)
            return j;
    }
    return NULL;
}

/* The message as an item, or a reason it cannot be one. */
static bool parse(const ns_item_res_t *res, const ns_msg_t *msg,
                  const ns_job_t *job, ns_envelope_t *env, char *why,
                  size_t cap)
{
    char key[NS_ITEM_KEY_MAX + 1];
    size_t klen = msg->key_len < NS_ITEM_KEY_MAX ? msg->key_len : 0;
    if (msg->key != NULL && klen > 0)
        memcpy(key, msg->key, klen);
    else
        key[klen++] = '-';
    key[klen] = '\0';
    *env = (ns_envelope_t){.v = NS_ENVELOPE_VERSION,
                           .job = strdup(job->name),
                           .item_key = strdup(key)};
    if (msg->len > res->cfg->max_payload_bytes) {
        snprintf(why, cap, "bad input: %zu bytes (max_payload_bytes %zu)",
                 msg->len, res->cfg->max_payload_bytes);
        return false;
    }
    long bad = ns_utf8_invalid_at(msg->value, msg->len);
    if (bad >= 0) {
        snprintf(why, cap, "bad input: invalid UTF-8 at byte %ld", bad);
        return false;
    }
    const char *end = NULL;
    env->payload = cJSON_ParseWithLengthOpts(msg->value, msg->len, &end, false);
    if (!cJSON_IsObject(env->payload)) {
        snprintf(why, cap, "bad input: not a JSON object");
        return false;
    }
    return env->job != NULL && env->item_key != NULL;
}

static ns_item_outcome_t dead_letter(ns_item_res_t *res, const ns_msg_t *msg,
                                     const ns_envelope_t *env, int attempts,
                                     const char *why)
{
    ns_log_ctx_t lc = {.job = env->job, .item_key = env->item_key};
    NS_ERROR(&lc, "%s [%s/%d@%lld]", why, msg->topic, (int)msg->partition,
             (long long)msg->offset);
    if (!item_dead_letter(res, msg, env, attempts, why))
        return NS_ITEM_ABANDONED;
    item_count(env->job, "dead_letter", -1);
    return NS_ITEM_COMMITTED;
}

ns_item_outcome_t ns_stream_process(ns_item_res_t *res, const ns_msg_t *msg,
                                    const ns_job_t *job)
{
    ns_envelope_t env;
    char why[600];
    ns_item_outcome_t out;
    const ns_handler_def_t *h = ns_handler_find(job->handler, 0);
    if (!parse(res, msg, job, &env, why, sizeof(why)))
        out = dead_letter(res, msg, &env, 0, why);
    else if (h == NULL) {
        snprintf(why, sizeof(why), "bad input: unknown handler \"%s\"",
                 job->handler);
        out = dead_letter(res, msg, &env, 0, why);
    } else
        out = ns_stream_run(res, msg, &env, job, h);
    ns_item_pg_release(res);
    ns_envelope_free(&env);
    return out;
}

/* Whether Postgres answers now (a connection that looks fine may belong
 * to a server that went away: ask it). */
static bool pg_answers(ns_item_res_t *res)
{
    ns_error_t err;
    ns_error_clear(&err);
    PGconn *pg = ns_item_pg_acquire(res, &err);
    if (pg == NULL)
        return false;
    PGresult *r = PQexec(pg, "SELECT 1");
    bool ok = PQresultStatus(r) == PGRES_TUPLES_OK;
    PQclear(r);
    if (!ok && PQstatus(pg) == CONNECTION_OK)
        ns_pg_rollback(pg);
    return ok;
}

ns_item_outcome_t ns_stream_run(ns_item_res_t *res, const ns_msg_t *msg,
                                const ns_envelope_t *env, const ns_job_t *job,
                                const ns_handler_def_t *h)
{
    ns_item_ctx_t ctx;
    item_init_ctx(&ctx, res, job, env);
    int64_t t0 = ns_clock_mono_ms();
    for (int attempts = 0;;) {
        ctx.attempt = ++attempts;
        ns_item_pg_release(res);
        ns_error_t err;
        ns_error_clear(&err);
        ns_err_t rc = h->process(&ctx, &err);
        rc = rc == NS_OK ? ns_ctx_end_tx(&ctx, true, &err)
                         : (ns_ctx_end_tx(&ctx, false, NULL), rc);
        cJSON_Delete(ctx.report);
        ctx.report = NULL;
        if (rc == NS_OK) {
            item_count(job->name, "done",
                       (double)(ns_clock_mono_ms() - t0) / 1000.0);
            return NS_ITEM_COMMITTED;
        }
        if (rc != NS_ERR_TRANSIENT && rc != NS_ERR_DEFERRED)
            return dead_letter(res, msg, env, attempts, err.msg);
        attempts -= rc == NS_ERR_DEFERRED; /* a rate-limit wait */
        if (rc == NS_ERR_DEFERRED) {
            if (!ns_item_sleep(res, (int64_t)(err.retry_after_s * 1000) + 1))
                return NS_ITEM_ABANDONED;
            continue;
        }
        /* Postgres out of reach: not this item's fault; it waits (and
         * the messages behind it wait in Kafka). */
        if (!pg_answers(res)) {
            attempts--;
            NS_WARN(&ctx.log, "waiting for Postgres: %s", err.msg);
            if (!ns_item_pg_wait(res))
                return NS_ITEM_ABANDONED;
            continue;
        }
        if (attempts >= job->retry.max_attempts) {
            char reason[700];
            snprintf(reason, sizeof(reason), "%s (after %d attempts)", err.msg,
                     attempts);
            item_count(job->name, "failed", -1);
            return dead_letter(res, msg, env, attempts, reason);
        }
        int64_t delay =
            ns_backoff_ms(&job->retry, attempts, err.retry_after_s, &res->seed);
        NS_WARN(&ctx.log, "attempt %d failed (%s), retrying in %lld ms",
                attempts, err.msg, (long long)delay);
        if (!ns_item_sleep(res, delay))
            return NS_ITEM_ABANDONED;
    }
}
