/* batch-analyzer (seed 000): each active project is sent to an
 * OpenAI-compatible chat-completions API for an assessment, risks and next
 * steps; the answer is stored in `analyses` and reported on Telegram. The
 * finalizer sends one summary per run. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "handlers.h"
#include "ns/buf.h"
#include "ns/clock.h"
#include "ns/llm.h"
#include "ns/pg.h"
#include "ns/telegram.h"

static const char *str_field(const cJSON *obj, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    return cJSON_IsString(v) ? v->valuestring : "";
}

static void now_text(char out[32])
{
    time_t secs = (time_t)(ns_clock_now_ms() / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    strftime(out, 32, "%Y-%m-%d %H:%M:%S", &tm);
}

/* The seed's prompt, with the project's fields. */
static char *build_prompt(const cJSON *project, int progress)
{
    ns_buf_t b;
    ns_buf_init(&b, 1 << 20);
    ns_buf_addf(&b,
                "Analyze this project:\n- Name: %s\n- Description: %s\n"
                "- Status: %s\n- Progress: %d%%\n\nProvide:\n"
                "1. Quick assessment\n2. Risks identified\n3. Next steps\n",
                str_field(project, "name"), str_field(project, "description"),
                str_field(project, "status"), progress);
    return ns_buf_take(&b);
}

static char *build_report(const cJSON *project, int progress,
                          const char *analysis)
{
    char *name = ns_tg_escape_html(str_field(project, "name"));
    char *body = ns_tg_escape_html(analysis);
    char when[32];
    now_text(when);
    ns_buf_t b;
    ns_buf_init(&b, 1 << 22);
    ns_buf_addf(&b,
                "📊 <b>Batch Analysis Report</b>\n\n<b>Project:</b> %s\n"
                "<b>Progress:</b> %d%%\n\n<b>AI Analysis:</b>\n%s\n\n"
                "⏰ Generated: %s UTC",
                name, progress, body, when);
    free(name);
    free(body);
    return ns_buf_take(&b);
}

static ns_llm_settings_t llm_settings(const ns_item_ctx_t *ctx)
{
    ns_llm_settings_t s = ns_item_config(ctx)->llm;
    const cJSON *params = ns_item_job(ctx)->params;
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(params, "model");
    const cJSON *max = cJSON_GetObjectItemCaseSensitive(params, "max_tokens");
    if (cJSON_IsString(model))
        s.model = model->valuestring;
    if (cJSON_IsNumber(max) && max->valueint > 0)
        s.max_tokens = max->valueint;
    return s;
}

static ns_err_t store_analysis(ns_item_ctx_t *ctx, int64_t project_id,
                               const ns_llm_result_t *res, ns_error_t *err)
{
    char project[24], run[24], pt[24], ct[24], tt[24], lat[24];
    ns_pg_i64str(project_id, project);
    ns_pg_i64str(ns_item_run_id(ctx), run);
    ns_pg_i64str(res->prompt_tokens, pt);
    ns_pg_i64str(res->completion_tokens, ct);
    ns_pg_i64str(res->total_tokens, tt);
    ns_pg_i64str(res->latency_ms, lat);
    PGconn *tx = ns_item_tx(ctx, err);
    if (tx == NULL && !ns_item_dry_run(ctx))
        return err->code;
    if (tx == NULL) {
        cJSON *d = cJSON_CreateObject();
        cJSON_AddNumberToObject(d, "project_id", (double)project_id);
        cJSON_AddStringToObject(d, "model", res->model);
        cJSON_AddNumberToObject(d, "total_tokens", res->total_tokens);
        cJSON_AddStringToObject(d, "content", res->content);
        ns_item_report(ctx, "insert analyses", d);
        return NS_OK;
    }
    const char *params[] = {project, run, res->content, res->model,
                            pt,      ct,  tt,           lat};
    return ns_pg_exec(tx,
                      "INSERT INTO analyses (project_id, run_id, content, "
                      "model, prompt_tokens, completion_tokens, "
                      "total_tokens, latency_ms) VALUES ($1, $2, $3, $4, "
                      "$5, $6, $7, $8) ON CONFLICT (project_id, run_id) DO "
                      "UPDATE SET content = EXCLUDED.content, model = "
                      "EXCLUDED.model, prompt_tokens = "
                      "EXCLUDED.prompt_tokens, completion_tokens = "
                      "EXCLUDED.completion_tokens, total_tokens = "
                      "EXCLUDED.total_tokens, latency_ms = "
                      "EXCLUDED.latency_ms",
                      8, params, err);
}

ns_err_t ns_analyzer_project(ns_item_ctx_t *ctx, ns_error_t *err)
{
    const cJSON *project = ns_item_payload(ctx);
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(project, "id");
    if (!cJSON_IsNumber(id) || id->valuedouble < 1)
        return ns_error_set(err, NS_ERR_PERMANENT,
                            "bad input: payload has no numeric project id");
    const cJSON *prog = cJSON_GetObjectItemCaseSensitive(project, "progress");
    int progress = cJSON_IsNumber(prog) ? prog->valueint : 0;
    int64_t project_id = (int64_t)id->valuedouble;

    ns_err_t rc = ns_item_rate_limit(ctx, "llm", err);
    if (rc != NS_OK)
        return rc;
    ns_llm_settings_t llm = llm_settings(ctx);
    char *prompt = build_prompt(project, progress);
    ns_llm_result_t res = {0};
    rc = ns_llm_chat(&llm, NULL, prompt, &res, err);
    free(prompt);
    if (rc != NS_OK)
        return rc;
    rc = store_analysis(ctx, project_id, &res, err);
    const char *chat = ns_item_telegram_chat(ctx);
    if (rc == NS_OK && chat != NULL) {
        char *html = build_report(project, progress, res.content);
        char key[96];
        snprintf(key, sizeof(key), "analysis:%lld:%lld",
                 (long long)ns_item_run_id(ctx), (long long)project_id);
        rc = ns_item_telegram(ctx, chat, html, key, err);
        free(html);
    }
    ns_llm_result_free(&res);
    return rc;
}

ns_err_t ns_analyzer_summary(ns_item_ctx_t *ctx, ns_error_t *err)
{
    const char *chat = ns_item_telegram_chat(ctx);
    if (chat == NULL)
        return NS_OK;
    ns_run_stats_t st;
    ns_item_run_stats(ctx, &st);
    char when[32];
    now_text(when);
    ns_buf_t b;
    ns_buf_init(&b, 1 << 16);
    ns_buf_addf(&b,
                "%s <b>Batch Analysis Complete</b>\n\n<b>Stats:</b>\n"
                "- Projects processed: %lld\n- Errors: %lld\n"
                "- Duration: %.1f seconds\n\n⏰ %s UTC",
                st.failed > 0 ? "⚠️" : "✅", (long long)st.done,
                (long long)st.failed,
                (double)(st.now_ms - st.started_ms) / 1000.0, when);
    char key[64];
    snprintf(key, sizeof(key), "summary:%lld", (long long)ns_item_run_id(ctx));
    ns_err_t rc = ns_item_telegram(ctx, chat, b.data, key, err);
    ns_buf_free(&b);
    return rc;
}
