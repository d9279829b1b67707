/* logs_detect.c: incidents from one counted window (see logs.h). The
 * history comes from log_window_counts: the same window on each of the
 * last history_days days, and the recent_windows windows just before it,
 * counting 0 for a processed window (log_windows) without the template.
 *
 * Until the job has processed warmup_windows windows, every template is
 * "new": bursts are judged only after that.
 *
 * params (of the logs.window job): detect (true), history_days (14),
 * recent_windows (8), min_count (10), spike_score (6), spike_ratio (3),
 * burst_count (20), rare_total (5), warmup_windows (4). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "logs.h"
#include "ns/anomaly.h"
#include "ns/buf.h"
#include "ns/pg.h"

#define MAX_HISTORY 64

static double num(const cJSON *params, const char *name, double dflt)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(params, name);
    return cJSON_IsNumber(v) ? v->valuedouble : dflt;
}

/* Lines of (service, template) in the windows at start - k * step for k =
 * 1..n that were processed, newest first. @returns how many, -1 on error. */
static int history(PGconn *pg, const char *job, const ns_logcount_t *c,
                   const char *start, const char *step, int n, int64_t *out,
                   ns_error_t *err)
{
    char id[24], count[24];
    ns_pg_i64str((int64_t)c->template_id, id);
    ns_pg_i64str(n, count);
    const char *params[] = {job, start, c->service, id, step, count};
    PGresult *r = ns_pg_query(
        pg,
        "WITH w AS (SELECT DISTINCT window_start FROM log_windows WHERE job = "
        "$1 AND window_start IN (SELECT $2::timestamptz - k * $5::interval "
        "FROM generate_series(1, $6::int) k)) SELECT coalesce(c.lines, 0) "
        "FROM w LEFT JOIN log_window_counts c ON c.job = $1 AND c.service = "
        "$3 AND c.template_id = $4::bigint AND c.window_start = "
        "w.window_start ORDER BY w.window_start DESC",
        6, params, err);
    if (r == NULL)
        return -1;
    int got = PQntuples(r) < MAX_HISTORY ? PQntuples(r) : MAX_HISTORY;
    for (int i = 0; i < got; i++)
        out[i] = ns_pg_int64(r, i, 0);
    PQclear(r);
    return got;
}

static int64_t seen_before(PGconn *pg, const char *job, uint64_t template_id,
                           const char *start, ns_error_t *err)
{
    char id[24];
    ns_pg_i64str((int64_t)template_id, id);
    const char *params[] = {job, id, start};
    PGresult *r = ns_pg_query(pg,
                              "SELECT coalesce(sum(lines), 0) FROM "
                              "log_window_counts WHERE job = $1 AND "
                              "template_id = $2::bigint AND window_start < "
                              "$3::timestamptz",
                              3, params, err);
    if (r == NULL)
        return -1;
    int64_t n = ns_pg_int64(r, 0, 0);
    PQclear(r);
    return n;
}

static const char *teams_webhook(const ns_item_ctx_t *ctx)
{
    const cJSON *teams =
        cJSON_GetObjectItemCaseSensitive(ns_item_job(ctx)->notify, "teams");
    const cJSON *hook = cJSON_GetObjectItemCaseSensitive(teams, "webhook");
    return cJSON_IsString(hook) ? hook->valuestring : NULL;
}

static void add_fact(cJSON *facts, const char *name, const char *value)
{
    cJSON *f = cJSON_CreateArray();
    cJSON_AddItemToArray(f, cJSON_CreateString(name));
    cJSON_AddItemToArray(f, cJSON_CreateString(value));
    cJSON_AddItemToArray(facts, f);
}

/* A Teams card for incident id opening or resolving. */
static ns_err_t alert(ns_item_ctx_t *ctx, const char *id, const char *what,
                      const char *kind, const char *service,
                      const char *template_text, const char *lines,
                      const char *baseline, const char *window, ns_error_t *err)
{
    const char *hook = teams_webhook(ctx);
    const char *url = ns_config_teams_url(ns_item_config(ctx), hook);
    if (hook == NULL || url == NULL || url[0] == '\0')
        return NS_OK; /* no Teams configured: the incident is recorded */
    bool opened = strcmp(what, "open") == 0;
    char title[300], key[96];
    snprintf(title, sizeof(title), "%s %s: %s in %s",
             opened ? "Critical" : "Resolved", kind,
             opened ? "log lines far above normal" : "back to normal",
             service[0] ? service : "(no service)");
    snprintf(key, sizeof(key), "incident:%s:%s", id, what);
    cJSON *card = cJSON_CreateObject();
    cJSON_AddStringToObject(card, "title", title);
    cJSON_AddStringToObject(card, "text", template_text);
    cJSON_AddStringToObject(card, "severity", opened ? "critical" : "good");
    cJSON *facts = cJSON_AddArrayToObject(card, "facts");
    add_fact(facts, "job", ns_item_job(ctx)->name);
    add_fact(facts, "service", service);
    add_fact(facts, "incident", id);
    add_fact(facts, "window", window);
    if (lines != NULL)
        add_fact(facts, "lines in the window", lines);
    if (baseline != NULL)
        add_fact(facts, "usual", baseline);
    return ns_item_outbox(ctx, "teams", hook, card, key, err);
}

static ns_err_t open_or_extend(ns_item_ctx_t *ctx, PGconn *tx,
                               const ns_logwindow_t *w, const ns_logcount_t *c,
                               const ns_anomaly_t *a, ns_error_t *err)
{
    char id[24], lines[24], baseline[32], score[32];
    ns_pg_i64str((int64_t)c->template_id, id);
    ns_pg_i64str(c->lines, lines);
    snprintf(baseline, sizeof(baseline), "%.2f", a->baseline);
    snprintf(score, sizeof(score), "%.2f", a->score);
    const char *kind = a->kind == NS_ANOMALY_SPIKE ? "spike" : "burst";
    const char *params[] = {ns_item_job(ctx)->name,
                            c->service,
                            id,
                            kind,
                            ns_severity_name(a->severity),
                            a->method,
                            w->start,
                            lines,
                            baseline,
                            score};
    PGresult *r = ns_pg_query(
        tx,
        "INSERT INTO log_incidents (job, service, template_id, kind, "
        "severity, method, opened_window, last_window, peak_lines, baseline, "
        "score) VALUES ($1, $2, $3::bigint, $4, $5, $6, $7::timestamptz, "
        "$7::timestamptz, $8::int, $9::float8, $10::float8) ON CONFLICT "
        "(job, service, template_id) WHERE status = 'open' DO UPDATE SET "
        "windows = log_incidents.windows + CASE WHEN EXCLUDED.last_window > "
        "log_incidents.last_window THEN 1 ELSE 0 END, last_window = "
        "greatest(log_incidents.last_window, EXCLUDED.last_window), "
        "peak_lines = greatest(log_incidents.peak_lines, "
        "EXCLUDED.peak_lines), score = greatest(log_incidents.score, "
        "EXCLUDED.score), severity = CASE WHEN log_incidents.severity = "
        "'critical' OR EXCLUDED.severity = 'critical' THEN 'critical' WHEN "
        "log_incidents.severity = 'warning' OR EXCLUDED.severity = "
        "'warning' THEN 'warning' ELSE 'info' END RETURNING id, severity, "
        "alerted",
        10, params, err);
    if (r == NULL)
        return err->code;
    char incident[24];
    snprintf(incident, sizeof(incident), "%s", PQgetvalue(r, 0, 0));
    bool critical = strcmp(PQgetvalue(r, 0, 1), "critical") == 0;
    bool alerted = PQgetvalue(r, 0, 2)[0] == 't';
    PQclear(r);
    if (!critical || alerted)
        return NS_OK;
    const char *text = ns_logparse_template(w->parser, c->template_id);
    ns_err_t rc = alert(ctx, incident, "open", kind, c->service,
                        text ? text : "", lines, baseline, w->start, err);
    const char *p2[] = {incident};
    if (rc == NS_OK)
        rc = ns_pg_exec(tx,
                        "UPDATE log_incidents SET alerted = true WHERE id = "
                        "$1::bigint",
                        1, p2, err);
    return rc;
}

/* Open incidents of the window's services that this window did not
 * judge anomalous: resolved now. */
static ns_err_t resolve_quiet(ns_item_ctx_t *ctx, PGconn *tx,
                              const ns_logwindow_t *w, const char *still_open,
                              ns_error_t *err)
{
    const char *params[] = {ns_item_job(ctx)->name, w->start, w->service,
                            still_open};
    PGresult *r = ns_pg_query(
        tx,
        "UPDATE log_incidents i SET status = 'resolved', resolved_window = "
        "$2::timestamptz FROM log_templates t WHERE t.template_id = "
        "i.template_id AND i.job = $1 AND i.status = 'open' AND "
        "i.last_window < $2::timestamptz AND ($3::text IS NULL OR i.service "
        "= $3) AND NOT ((i.service || ' ' || i.template_id::text) = "
        "ANY($4::text[])) RETURNING i.id, i.kind, i.service, t.template, "
        "i.alerted",
        4, params, err);
    if (r == NULL)
        return err->code;
    ns_err_t rc = NS_OK;
    for (int i = 0; rc == NS_OK && i < PQntuples(r); i++)
        if (PQgetvalue(r, i, 4)[0] == 't')
            rc = alert(ctx, PQgetvalue(r, i, 0), "resolved",
                       PQgetvalue(r, i, 1), PQgetvalue(r, i, 2),
                       PQgetvalue(r, i, 3), NULL, NULL, w->start, err);
    PQclear(r);
    return rc;
}

/* Is a window after this one processed already? Then this is a re-run or
 * a backfill of an older window: counts only. *earlier: how many windows
 * before it were processed. */
static int newer_exists(PGconn *pg, const char *job, const char *start,
                        int64_t *earlier, ns_error_t *err)
{
    const char *params[] = {job, start};
    PGresult *r = ns_pg_query(
        pg,
        "SELECT EXISTS (SELECT 1 FROM log_windows WHERE job = $1 AND "
        "window_start > $2::timestamptz), (SELECT count(DISTINCT "
        "window_start) FROM log_windows WHERE job = $1 AND window_start < "
        "$2::timestamptz)",
        2, params, err);
    if (r == NULL)
        return -1;
    int newer = PQgetvalue(r, 0, 0)[0] == 't';
    *earlier = ns_pg_int64(r, 0, 1);
    PQclear(r);
    return newer;
}

/* Appends "service template_id" to a Postgres text[] literal. */
static void add_key(ns_buf_t *b, const ns_logcount_t *c)
{
    ns_buf_adds(b, b->len > 1 ? ",\"" : "\"");
    for (const char *p = c->service; *p; p++) {
        if (*p == '"' || *p == '\\')
            ns_buf_add(b, "\\", 1);
        ns_buf_add(b, p, 1);
    }
    ns_buf_addf(b, " %lld\"", (long long)(int64_t)c->template_id);
}

ns_err_t ns_logs_detect(ns_item_ctx_t *ctx, const ns_logwindow_t *w,
                        ns_error_t *err)
{
    const cJSON *params = ns_item_job(ctx)->params;
    const cJSON *detect = cJSON_GetObjectItemCaseSensitive(params, "detect");
    if (cJSON_IsFalse(detect))
        return NS_OK;
    ns_anomaly_opts_t opts = {
        .min_count = (int64_t)num(params, "min_count", 0),
        .spike_score = num(params, "spike_score", 0),
        .spike_ratio = num(params, "spike_ratio", 0),
        .burst_count = (int64_t)num(params, "burst_count", 0),
        .rare_total = (int64_t)num(params, "rare_total", 0),
    };
    int days = (int)num(params, "history_days", 14);
    int recent_n = (int)num(params, "recent_windows", 8);
    days = days < 1 ? 1 : days > MAX_HISTORY ? MAX_HISTORY : days;
    recent_n = recent_n < 1             ? 1
               : recent_n > MAX_HISTORY ? MAX_HISTORY
                                        : recent_n;
    const char *job = ns_item_job(ctx)->name;
    bool dry = ns_item_dry_run(ctx);
    PGconn *pg = dry ? ns_item_pg(ctx, err) : ns_item_tx(ctx, err);
    if (pg == NULL)
        return err->code;
    int64_t earlier = 0;
    int newer = newer_exists(pg, job, w->start, &earlier, err);
    if (newer != 0)
        return newer < 0 ? err->code : NS_OK;
    if (earlier < (int64_t)num(params, "warmup_windows", 4))
        opts.burst_count = INT64_MAX; /* everything is new yet */
    char step[40];
    snprintf(step, sizeof(step), "%lld milliseconds",
             (long long)(w->end_ms - w->start_ms));
    int64_t floor_count = opts.min_count > 0 ? opts.min_count : 10;
    int64_t floor_burst = opts.burst_count > 0 ? opts.burst_count : 20;
    int64_t floor_n = floor_count < floor_burst ? floor_count : floor_burst;
    ns_buf_t open;
    ns_buf_init(&open, (size_t)1 << 24);
    ns_buf_adds(&open, "{");
    ns_err_t rc = NS_OK;
    for (size_t i = 0; rc == NS_OK && i < w->n_counts; i++) {
        const ns_logcount_t *c = &w->counts[i];
        if (c->lines < floor_n)
            continue;
        int64_t comparable[MAX_HISTORY], recent[MAX_HISTORY];
        int nc = history(pg, job, c, w->start, "1 day", days, comparable, err);
        int nr =
            nc < 0 ? -1
                   : history(pg, job, c, w->start, step, recent_n, recent, err);
        int64_t before =
            nr < 0 ? -1 : seen_before(pg, job, c->template_id, w->start, err);
        if (before < 0) {
            rc = err->code;
            break;
        }
        ns_anomaly_t a =
            ns_anomaly_judge(c->lines, comparable, (size_t)nc, recent,
                             (size_t)nr, before, c->level, &opts);
        if (a.kind == NS_ANOMALY_NONE)
            continue;
        add_key(&open, c);
        if (dry) {
            cJSON *d = cJSON_CreateObject();
            cJSON_AddStringToObject(d, "service", c->service);
            cJSON_AddStringToObject(
                d, "kind", a.kind == NS_ANOMALY_SPIKE ? "spike" : "burst");
            cJSON_AddStringToObject(d, "severity",
                                    ns_severity_name(a.severity));
            cJSON_AddNumberToObject(d, "lines", (double)c->lines);
            ns_item_report(ctx, "open incident", d);
            continue;
        }
        rc = open_or_extend(ctx, pg, w, c, &a, err);
    }
    ns_buf_adds(&open, "}");
    if (rc == NS_OK && !dry && open.data != NULL)
        rc = resolve_quiet(ctx, pg, w, open.data, err);
    ns_buf_free(&open);
    return rc;
}
