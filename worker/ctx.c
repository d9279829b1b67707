/* ctx.c: the per-item context behind handler.h: accessors, the item's
 * transaction, its report, outbox messages and files. */
#include "ctx.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ns/pg.h"
#include "ns/telegram.h"

const ns_config_t *ns_item_config(const ns_item_ctx_t *ctx)
{
    return ctx->res->cfg;
}

const ns_job_t *ns_item_job(const ns_item_ctx_t *ctx)
{
    return ctx->job;
}

int64_t ns_item_run_id(const ns_item_ctx_t *ctx)
{
    return ctx->run_id;
}

const char *ns_item_key(const ns_item_ctx_t *ctx)
{
    return ctx->item_key;
}

int ns_item_attempt(const ns_item_ctx_t *ctx)
{
    return ctx->attempt;
}

bool ns_item_dry_run(const ns_item_ctx_t *ctx)
{
    return ctx->dry_run;
}

const cJSON *ns_item_payload(const ns_item_ctx_t *ctx)
{
    return ctx->payload;
}

const ns_log_ctx_t *ns_item_log(const ns_item_ctx_t *ctx)
{
    return &ctx->log;
}

void ns_item_run_stats(const ns_item_ctx_t *ctx, ns_run_stats_t *out)
{
    *out = ctx->stats;
}

PGconn *ns_item_pg(ns_item_ctx_t *ctx, ns_error_t *err)
{
    return ns_item_pg_acquire(ctx->res, err);
}

PGconn *ns_item_tx(ns_item_ctx_t *ctx, ns_error_t *err)
{
    if (ctx->dry_run)
        return NULL;
    return ns_item_scratch_tx(ctx, err);
}

PGconn *ns_item_scratch_tx(ns_item_ctx_t *ctx, ns_error_t *err)
{
    if (ctx->in_tx)
        return ctx->res->pg;
    PGconn *pg = ns_item_pg(ctx, err);
    if (pg == NULL || ns_pg_exec(pg, "BEGIN", 0, NULL, err) != NS_OK)
        return NULL;
    ctx->in_tx = true;
    return pg;
}

ns_err_t ns_ctx_end_tx(ns_item_ctx_t *ctx, bool commit, ns_error_t *err)
{
    if (!ctx->in_tx)
        return NS_OK;
    ctx->in_tx = false;
    if (!commit) {
        ns_pg_rollback(ctx->res->pg);
        return NS_OK;
    }
    ns_err_t rc = ns_pg_exec(ctx->res->pg, "COMMIT", 0, NULL, err);
    if (rc != NS_OK)
        ns_pg_rollback(ctx->res->pg);
    return rc;
}

void ns_item_report(ns_item_ctx_t *ctx, const char *action, cJSON *detail)
{
    if (ctx->report == NULL)
        ctx->report = cJSON_CreateArray();
    cJSON *entry = cJSON_IsObject(detail) ? detail : cJSON_CreateObject();
    if (entry != detail && detail != NULL)
        cJSON_AddItemToObject(entry, "detail", detail);
    cJSON_AddStringToObject(entry, "action", action);
    cJSON_AddItemToArray(ctx->report, entry);
}

char *ns_ctx_report_text(const ns_item_ctx_t *ctx)
{
    return ctx->report ? cJSON_PrintUnformatted(ctx->report) : NULL;
}

ns_err_t ns_item_rate_limit(ns_item_ctx_t *ctx, const char *name,
                            ns_error_t *err)
{
    return ns_item_limit(ctx->res, name, NULL, 1000, err);
}

const char *ns_item_telegram_chat(const ns_item_ctx_t *ctx)
{
    const cJSON *tg =
        cJSON_GetObjectItemCaseSensitive(ctx->job->notify, "telegram");
    const cJSON *chat = cJSON_GetObjectItemCaseSensitive(tg, "chat_id");
    if (cJSON_IsString(chat) && chat->valuestring[0] != '\0')
        return chat->valuestring;
    return NULL;
}

static ns_err_t outbox_insert(ns_item_ctx_t *ctx, const char *channel,
                              const char *target, cJSON *payload,
                              const char *key, const char *kind,
                              ns_error_t *err);

/* A finalizer's messages wait for the rest of their run's (fan-in order:
 * the summary goes out last); an item's whole report may share a digest. */
static const char *kind_of(const ns_item_ctx_t *ctx, bool whole_report)
{
    if (ctx->item_key == NULL && ctx->run_id > 0)
        return "summary";
    return whole_report && ctx->run_id > 0 ? "report" : "message";
}

static ns_err_t queue_one(ns_item_ctx_t *ctx, const char *chat_id,
                          const char *text, const char *key, bool whole,
                          ns_error_t *err)
{
    if (ctx->dry_run) {
        cJSON *d = cJSON_CreateObject();
        cJSON_AddStringToObject(d, "chat_id", chat_id);
        cJSON_AddStringToObject(d, "text", text);
        ns_item_report(ctx, "telegram.sendMessage", d);
        return NS_OK;
    }
    cJSON *payload = cJSON_CreateObject();
    cJSON_AddStringToObject(payload, "text", text);
    return outbox_insert(ctx, "telegram", chat_id, payload, key,
                         kind_of(ctx, whole), err);
}

ns_err_t ns_item_outbox(ns_item_ctx_t *ctx, const char *channel,
                        const char *target, cJSON *payload, const char *key,
                        ns_error_t *err)
{
    return outbox_insert(ctx, channel, target, payload, key,
                         kind_of(ctx, false), err);
}

static ns_err_t outbox_insert(ns_item_ctx_t *ctx, const char *channel,
                              const char *target, cJSON *payload,
                              const char *key, const char *kind,
                              ns_error_t *err)
{
    if (payload == NULL)
        return ns_error_set(err, NS_ERR_NOMEM, "out of memory");
    if (ctx->dry_run) {
        cJSON *d = cJSON_CreateObject();
        cJSON_AddStringToObject(d, "target", target);
        cJSON_AddItemToObject(d, "payload", payload);
        ns_item_report(ctx, channel, d);
        return NS_OK;
    }
    PGconn *pg = ns_item_tx(ctx, err);
    if (pg == NULL) {
        cJSON_Delete(payload);
        return err->code;
    }
    char *json = cJSON_PrintUnformatted(payload);
    cJSON_Delete(payload);
    if (json == NULL)
        return ns_error_set(err, NS_ERR_NOMEM, "out of memory");
    char run[24];
    ns_pg_i64str(ctx->run_id, run);
    const char *params[] = {
        key, ctx->run_id > 0 ? run : NULL, channel, target, json, kind};
    ns_err_t rc = ns_pg_exec(
        pg,
        "INSERT INTO outbox (idempotency_key, run_id, channel, target, "
        "payload, kind) VALUES ($1, $2, $3, $4, $5::jsonb, $6) "
        "ON CONFLICT (idempotency_key) DO NOTHING",
        6, params, err);
    free(json);
    return rc;
}

ns_err_t ns_item_file(ns_item_ctx_t *ctx, const char *key, const char *filename,
                      const char *mime_type, const void *data, size_t len,
                      int64_t *id, ns_error_t *err)
{
    *id = 0;
    if (len > (size_t)INT_MAX)
        return ns_error_set(err, NS_ERR_PERMANENT,
                            "attachment %s: %zu bytes is too large", filename,
                            len);
    if (ctx->dry_run)
        return NS_OK;
    PGconn *pg = ns_item_tx(ctx, err);
    if (pg == NULL)
        return err->code;
    char run[24];
    ns_pg_i64str(ctx->run_id, run);
    const char *params[] = {key, ctx->run_id > 0 ? run : NULL, filename,
                            mime_type, data};
    int lengths[] = {0, 0, 0, 0, (int)len};
    int formats[] = {0, 0, 0, 0, 1};
    /* The no-op update makes RETURNING give the id of a stored file too. */
    PGresult *r = PQexecParams(
        pg,
        "INSERT INTO outbox_files (key, run_id, filename, mime_type, "
        "content) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (key) DO UPDATE "
        "SET key = EXCLUDED.key RETURNING id",
        5, NULL, params, lengths, formats, 0);
    ns_err_t rc = NS_OK;
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
        *id = ns_pg_int64(r, 0, 0);
    else
        rc = ns_error_set(err, NS_ERR_TRANSIENT, "storing %s: %s", filename,
                          PQresultErrorMessage(r));
    PQclear(r);
    return rc;
}

ns_err_t ns_item_telegram(ns_item_ctx_t *ctx, const char *chat_id,
                          const char *html, const char *idempotency_key,
                          ns_error_t *err)
{
    char **chunks = NULL;
    size_t n = ns_tg_split_html(html, NS_TG_MAX_TEXT, &chunks);
    ns_err_t rc = NS_OK;
    for (size_t i = 0; i < n && rc == NS_OK; i++) {
        char key[600];
        if (n == 1)
            snprintf(key, sizeof(key), "%s", idempotency_key);
        else
            snprintf(key, sizeof(key), "%s#%zu", idempotency_key, i + 1);
        /* A report split over several messages is sent as it is: a
         * digest splits only between reports. */
        rc = queue_one(ctx, chat_id, chunks[i], key, n == 1, err);
    }
    ns_tg_chunks_free(chunks, n);
    return rc;
}

void item_init_ctx(ns_item_ctx_t *ctx, ns_item_res_t *res, const ns_job_t *job,
                   const ns_envelope_t *env)
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
