/* reports.c: the hourly report (seed 001).
 * reports.hourly: for the hour that ended at the run's slot — [H−1h, H) in
 * the job's time zone, H taken from the scheduled slot (the run's creation
 * for a manual run without --slot), never from the wall clock, so a late
 * or retried run reports the same hour — a workbook of every job's runs
 * and the analyses written (report_book.c), stored once and queued in the
 * item's transaction for email (notify.email.to) and Telegram
 * (notify.telegram.chat_id). The outbox sends each independently; the
 * idempotency keys name the job and the hour, so no re-run of the slot
 * sends it twice.
 * reports.alert (finalizer): a failed run alerts the job's Telegram chat
 * with the reason (the seed's send_error_alert).
 * Params: send_empty (true: an hour without activity still sends its
 * "No activity" workbook), work_dir (where workbooks are built; default
 * $TMPDIR or /tmp), dry_run_dir (where a dry run leaves its workbook;
 * default work_dir), subject (default "nightshift hourly report"). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "handlers.h"
#include "ns/log.h"
#include "ns/pg.h"
#include "ns/telegram.h"
#include "ns/tz.h"
#include "report_book.h"

static const char *param_str(const cJSON *params, const char *key,
                             const char *dflt)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(params, key);
    return cJSON_IsString(v) && v->valuestring[0] ? v->valuestring : dflt;
}

static bool param_bool(const cJSON *params, const char *key, bool dflt)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(params, key);
    return cJSON_IsBool(v) ? cJSON_IsTrue(v) : dflt;
}

static int64_t floor_div(int64_t a, int64_t b)
{
    return a / b - (a % b != 0 && (a < 0) != (b < 0));
}

/* "2026-11-30 05:00" of instant utc_s in tz. */
static void local_text(const ns_tz_t *tz, int64_t utc_s, char *out, size_t cap)
{
    int64_t local = utc_s + ns_tz_utc_offset(tz, utc_s);
    int64_t days = floor_div(local, 86400), secs = local - days * 86400;
    int64_t y;
    int m, d;
    ns_tz_civil_from_days(days, &y, &m, &d);
    snprintf(out, cap, "%04lld-%02d-%02d %02d:%02d", (long long)y, m, d,
             (int)(secs / 3600), (int)(secs / 60 % 60));
}

/* The hour reported on: the one that ended at the slot's local hour. */
static ns_err_t report_hour(ns_item_ctx_t *ctx, PGconn *pg,
                            ns_report_hour_t *hour, const ns_tz_t **tz,
                            ns_error_t *err)
{
    const ns_job_t *job = ns_item_job(ctx);
    *tz = ns_tz_get(job->timezone);
    if (*tz == NULL)
        return ns_error_set(err, NS_ERR_PERMANENT,
                            "reports.hourly: unknown time zone \"%s\"",
                            job->timezone);
    char run[24];
    ns_pg_i64str(ns_item_run_id(ctx), run);
    const char *params[] = {run};
    PGresult *r = ns_pg_query(pg,
                              "SELECT floor(extract(epoch FROM "
                              "coalesce(scheduled_for, created_at)))::bigint "
                              "FROM runs WHERE run_id = $1::bigint",
                              1, params, err);
    if (r == NULL)
        return err->code;
    if (PQntuples(r) != 1) {
        PQclear(r);
        return ns_error_set(err, NS_ERR_PERMANENT, "run %s is gone", run);
    }
    int64_t slot = ns_pg_int64(r, 0, 0);
    PQclear(r);
    /* Local hours start where local time is a multiple of an hour (zones
     * a half hour off UTC included); one real hour back from there. */
    int64_t local = slot + ns_tz_utc_offset(*tz, slot);
    int64_t end = slot - (local - floor_div(local, 3600) * 3600);
    hour->start_ms = (end - 3600) * 1000;
    hour->end_ms = end * 1000;
    hour->tz = job->timezone;
    return NS_OK;
}

/* The rows of the hour; the result sets own the strings. */
typedef struct rows {
    PGresult *runs_r, *an_r;
    ns_report_run_t *runs;
    ns_report_analysis_t *an;
    size_t n_runs, n_an;
} rows_t;

static void rows_free(rows_t *w)
{
    PQclear(w->runs_r);
    PQclear(w->an_r);
    free(w->runs);
    free(w->an);
}

static ns_err_t load_rows(PGconn *pg, const ns_report_hour_t *hour, rows_t *w,
                          ns_error_t *err)
{
    char from[24], to[24];
    ns_pg_i64str(hour->start_ms / 1000, from);
    ns_pg_i64str(hour->end_ms / 1000, to);
    const char *params[] = {from, to};
    w->runs_r = ns_pg_query(
        pg,
        "SELECT r.job, r.run_id, (extract(epoch FROM coalesce(r.started_at, "
        "r.created_at)) * 1000)::bigint, r.status, CASE WHEN r.finished_at "
        "IS NULL THEN -1 ELSE extract(epoch FROM r.finished_at - "
        "coalesce(r.started_at, r.created_at)) END, CASE WHEN r.finished_at "
        "IS NOT NULL THEN r.items_done ELSE (SELECT count(*) FROM items i "
        "WHERE i.run_id = r.run_id AND i.status = 'done') END, CASE WHEN "
        "r.finished_at IS NOT NULL THEN r.items_failed ELSE (SELECT "
        "count(*) FROM items i WHERE i.run_id = r.run_id AND i.status = "
        "'failed') END, coalesce(r.items_total, 0) FROM runs r WHERE "
        "coalesce(r.started_at, r.created_at) >= to_timestamp($1::bigint) "
        "AND coalesce(r.started_at, r.created_at) < to_timestamp($2::bigint) "
        "AND NOT r.dry_run ORDER BY 3, 2",
        2, params, err);
    if (w->runs_r == NULL)
        return err->code;
    w->an_r = ns_pg_query(
        pg,
        "SELECT p.name, (extract(epoch FROM a.created_at) * 1000)::bigint, "
        "a.model, a.total_tokens, a.content FROM analyses a JOIN projects p "
        "ON p.id = a.project_id WHERE a.created_at >= "
        "to_timestamp($1::bigint) AND a.created_at < to_timestamp($2::bigint) "
        "ORDER BY a.created_at, a.id LIMIT 100000",
        2, params, err);
    if (w->an_r == NULL)
        return err->code;
    w->n_runs = (size_t)PQntuples(w->runs_r);
    w->n_an = (size_t)PQntuples(w->an_r);
    w->runs = calloc(w->n_runs + 1, sizeof(*w->runs));
    w->an = calloc(w->n_an + 1, sizeof(*w->an));
    if (w->runs == NULL || w->an == NULL)
        return ns_error_set(err, NS_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < w->n_runs; i++) {
        const PGresult *r = w->runs_r;
        int k = (int)i;
        w->runs[i] = (ns_report_run_t){
            .job = PQgetvalue(r, k, 0),
            .run_id = ns_pg_int64(r, k, 1),
            .started_ms = ns_pg_int64(r, k, 2),
            .status = PQgetvalue(r, k, 3),
            .duration_s = atof(PQgetvalue(r, k, 4)),
            .items_done = ns_pg_int64(r, k, 5),
            .items_failed = ns_pg_int64(r, k, 6),
            .items_total = ns_pg_int64(r, k, 7),
        };
    }
    for (size_t i = 0; i < w->n_an; i++) {
        const PGresult *r = w->an_r;
        int k = (int)i;
        w->an[i] = (ns_report_analysis_t){
            .project = PQgetvalue(r, k, 0),
            .created_ms = ns_pg_int64(r, k, 1),
            .model = PQgetvalue(r, k, 2),
            .tokens = ns_pg_int64(r, k, 3),
            .content = PQgetvalue(r, k, 4),
        };
    }
    return NS_OK;
}

/* Where workbooks are built: params.work_dir, else $TMPDIR, else /tmp. */
static const char *work_dir(const ns_job_t *job)
{
    const char *tmp = getenv("TMPDIR");
    return param_str(job->params, "work_dir", tmp && *tmp ? tmp : "/tmp");
}

/* The workbook, built in work_dir and read back into memory. */
static ns_err_t build_book(ns_item_ctx_t *ctx, const ns_report_hour_t *hour,
                           const rows_t *w, char *path, size_t cap, char **data,
                           size_t *len, ns_error_t *err)
{
    snprintf(path, cap, "%s/nightshift-report-%lld-%ld.xlsx",
             work_dir(ns_item_job(ctx)), (long long)ns_item_run_id(ctx),
             (long)getpid());
    if (ns_report_book_write(path, hour, w->runs, w->n_runs, w->an, w->n_an,
                             err) != NS_OK) {
        /* Out of memory may pass; a directory that cannot be written or a
         * zone that is unknown will not. */
        err->code =
            err->code == NS_ERR_NOMEM ? NS_ERR_TRANSIENT : NS_ERR_PERMANENT;
        return err->code;
    }
    FILE *f = fopen(path, "rb");
    long size = -1;
    if (f != NULL && fseek(f, 0, SEEK_END) == 0)
        size = ftell(f);
    *data = size > 0 ? malloc((size_t)size) : NULL;
    bool ok = *data != NULL && fseek(f, 0, SEEK_SET) == 0 &&
              fread(*data, 1, (size_t)size, f) == (size_t)size;
    int e = errno;
    if (f != NULL)
        fclose(f);
    if (!ok) {
        free(*data);
        *data = NULL;
        unlink(path);
        return ns_error_set(err, NS_ERR_PERMANENT, "reading %s back: %s", path,
                            strerror(e));
    }
    *len = (size_t)size;
    return NS_OK;
}

/* Figures of the hour, for the email body, the caption and the report. */
typedef struct summary {
    int64_t runs, failed_runs, running, done, failed, tokens;
} summary_t;

static summary_t summarize(const rows_t *w)
{
    summary_t s = {.runs = (int64_t)w->n_runs};
    for (size_t i = 0; i < w->n_runs; i++) {
        s.failed_runs += strcmp(w->runs[i].status, "failed") == 0;
        s.running += w->runs[i].duration_s < 0;
        s.done += w->runs[i].items_done;
        s.failed += w->runs[i].items_failed;
    }
    for (size_t i = 0; i < w->n_an; i++)
        s.tokens += w->an[i].tokens;
    return s;
}

static ns_err_t queue_deliveries(ns_item_ctx_t *ctx, const char *when,
                                 const char *key, int64_t file,
                                 const char *filename, const rows_t *w,
                                 ns_error_t *err)
{
    const ns_job_t *job = ns_item_job(ctx);
    summary_t s = summarize(w);
    const cJSON *email = cJSON_GetObjectItemCaseSensitive(job->notify, "email");
    const cJSON *to = cJSON_GetObjectItemCaseSensitive(email, "to");
    ns_err_t rc = NS_OK;
    char k[400];
    if (cJSON_IsArray(to)) { /* the config made it a checked list */
        cJSON *payload = cJSON_CreateObject();
        cJSON *list = cJSON_Duplicate(to, 1);
        cJSON_AddItemToObject(payload, "to", list);
        char subject[300], text[1200];
        snprintf(subject, sizeof(subject), "%s %s",
                 param_str(job->params, "subject", "nightshift hourly report"),
                 when);
        snprintf(text, sizeof(text),
                 "Hourly report for %s.\n\n"
                 "Job runs: %lld (%lld failed, %lld still running)\n"
                 "Items processed: %lld (%lld failed)\n"
                 "Analyses: %zu (%lld tokens)\n\n"
                 "The workbook is attached: %s\n\n"
                 "-- \nnightshift, job %s, run %lld\n",
                 when, (long long)s.runs, (long long)s.failed_runs,
                 (long long)s.running, (long long)(s.done + s.failed),
                 (long long)s.failed, w->n_an, (long long)s.tokens, filename,
                 job->name, (long long)ns_item_run_id(ctx));
        cJSON_AddStringToObject(payload, "subject", subject);
        cJSON_AddStringToObject(payload, "text", text);
        cJSON_AddNumberToObject(payload, "file", (double)file);
        cJSON_AddStringToObject(payload, "filename", filename);
        /* The target: the recipients, one outbox queue per list. */
        char *target = cJSON_PrintUnformatted(list);
        snprintf(k, sizeof(k), "%s:email", key);
        rc = target ? ns_item_outbox(ctx, "email", target, payload, k, err)
                    : ns_error_set(err, NS_ERR_NOMEM, "out of memory");
        free(target);
    }
    const char *chat = ns_item_telegram_chat(ctx);
    if (rc == NS_OK && chat != NULL) {
        char *esc = ns_tg_escape_html(when);
        char caption[900];
        snprintf(caption, sizeof(caption),
                 "📊 <b>Hourly report</b> %s\n%lld run(s), %lld failed · "
                 "%zu analyses",
                 esc ? esc : "", (long long)s.runs, (long long)s.failed_runs,
                 w->n_an);
        free(esc);
        cJSON *payload = cJSON_CreateObject();
        cJSON_AddNumberToObject(payload, "file", (double)file);
        cJSON_AddStringToObject(payload, "filename", filename);
        cJSON_AddStringToObject(payload, "caption", caption);
        snprintf(k, sizeof(k), "%s:telegram", key);
        rc = ns_item_outbox(ctx, "telegram", chat, payload, k, err);
    }
    return rc;
}

ns_err_t ns_reports_hourly(ns_item_ctx_t *ctx, ns_error_t *err)
{
    const ns_job_t *job = ns_item_job(ctx);
    PGconn *pg = ns_item_pg(ctx, err);
    if (pg == NULL)
        return err->code;
    ns_report_hour_t hour;
    const ns_tz_t *tz;
    if (report_hour(ctx, pg, &hour, &tz, err) != NS_OK)
        return err->code;
    rows_t w = {0};
    ns_err_t rc = load_rows(pg, &hour, &w, err);
    char from[32], to[32], when[120], filename[128], key[300];
    local_text(tz, hour.start_ms / 1000, from, sizeof(from));
    local_text(tz, hour.end_ms / 1000, to, sizeof(to));
    snprintf(when, sizeof(when), "%s – %s (%s)", from, to + 11, job->timezone);
    ns_report_book_filename(&hour, filename, sizeof(filename));
    snprintf(key, sizeof(key), "report:%s:%lld", job->name,
             (long long)(hour.start_ms / 1000));
    cJSON *d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "hour", when);
    cJSON_AddNumberToObject(d, "runs", (double)w.n_runs);
    cJSON_AddNumberToObject(d, "analyses", (double)w.n_an);
    if (rc == NS_OK && w.n_runs == 0 && w.n_an == 0 &&
        !param_bool(job->params, "send_empty", true)) {
        cJSON_AddStringToObject(d, "skipped", "no activity (send_empty off)");
        ns_item_report(ctx, "report", d);
        NS_INFO(ns_item_log(ctx), "hour %s had no activity: nothing sent",
                when);
        rows_free(&w);
        return NS_OK;
    }
    char path[4096];
    char *data = NULL;
    size_t len = 0;
    if (rc == NS_OK)
        rc = build_book(ctx, &hour, &w, path, sizeof(path), &data, &len, err);
    int64_t file = 0;
    if (rc == NS_OK && ns_item_dry_run(ctx)) {
        /* The workbook stays where the operator can open it. */
        char kept[4096];
        snprintf(kept, sizeof(kept), "%s/%s",
                 param_str(job->params, "dry_run_dir", work_dir(job)),
                 filename);
        if (rename(path, kept) != 0)
            rc = ns_error_set(err, NS_ERR_PERMANENT, "keeping %s: %s", kept,
                              strerror(errno));
        else
            cJSON_AddStringToObject(d, "workbook", kept);
    } else if (rc == NS_OK) {
        unlink(path);
        rc = ns_item_file(ctx, key, filename,
                          "application/"
                          "vnd.openxmlformats-officedocument.spreadsheetml."
                          "sheet",
                          data, len, &file, err);
    }
    if (rc == NS_OK) {
        cJSON_AddStringToObject(d, "filename", filename);
        cJSON_AddNumberToObject(d, "bytes", (double)len);
        ns_item_report(ctx, "report", cJSON_Duplicate(d, 1));
        rc = queue_deliveries(ctx, when, key, file, filename, &w, err);
    }
    if (rc == NS_OK)
        NS_INFO(ns_item_log(ctx),
                "report of %s: %zu run(s), %zu analyses, %zu bytes%s", when,
                w.n_runs, w.n_an, len,
                ns_item_dry_run(ctx) ? " (dry run)" : "");
    cJSON_Delete(d);
    free(data);
    rows_free(&w);
    return rc;
}

ns_err_t ns_reports_alert(ns_item_ctx_t *ctx, ns_error_t *err)
{
    ns_run_stats_t st;
    ns_item_run_stats(ctx, &st);
    const char *chat = ns_item_telegram_chat(ctx);
    if (st.failed == 0 || chat == NULL)
        return NS_OK;
    PGconn *pg = ns_item_pg(ctx, err);
    if (pg == NULL)
        return err->code;
    char run[24];
    ns_pg_i64str(ns_item_run_id(ctx), run);
    const char *params[] = {run};
    PGresult *r = ns_pg_query(pg,
                              "SELECT coalesce(error, 'unknown error') FROM "
                              "items WHERE run_id = $1::bigint AND status = "
                              "'failed' ORDER BY item_key LIMIT 1",
                              1, params, err);
    if (r == NULL)
        return err->code;
    char *why =
        ns_tg_escape_html(PQntuples(r) ? PQgetvalue(r, 0, 0) : "unknown error");
    PQclear(r);
    char *job = ns_tg_escape_html(ns_item_job(ctx)->name);
    /* The error is one ns_error_t message: short, escaped whole. */
    char html[8192], key[64];
    snprintf(html, sizeof(html),
             "⚠️ <b>ERROR in Reports Generator</b> (%s, run %s)\n<code>%s"
             "</code>",
             job ? job : "", run, why ? why : "");
    free(why);
    free(job);
    snprintf(key, sizeof(key), "report-failed:%s", run);
    return ns_item_telegram(ctx, chat, html, key, err);
}
