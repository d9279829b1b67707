/* logs.daily_report (seed 003): the finalizer of the daily backfill. Once
 * every window of the day is counted, it publishes the day: a Teams card
 * with the top 5 issues, the CSV exports errors_table_latest.csv (known
 * errors) and peaks_table_latest.csv (peaks), and three Confluence pages
 * (the daily report, known errors, known peaks; page ids from
 * params.pages), all through the outbox: a Teams or Confluence failure
 * never fails the analysis, it is retried and shown in `nightshift
 * status`. Idempotency keys name the job and the day, so a re-run of the
 * day publishes nothing twice.
 *
 * CSV cells are formula-safe (a leading = + - @ tab or CR gets a '),
 * quoted per RFC 4180, UTF-8 with a BOM and CRLF rows, as Excel expects. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handlers.h"
#include "ns/buf.h"
#include "ns/confluence.h"
#include "ns/pg.h"

#define CSV_MAX ((size_t)64 << 20)
#define PAGE_ROWS 500 /* rows shown on a page; the CSV has them all */
#define LEVELS                                                                 \
    "ARRAY['unknown','trace','debug','info','notice','warning','error',"       \
    "'critical','alert','emergency']"

static void csv_cell(ns_buf_t *b, const char *s, int first)
{
    if (!first)
        ns_buf_adds(b, ",");
    int formula = s[0] != '\0' && strchr("=+-@\t\r", s[0]) != NULL;
    int quote = formula || strpbrk(s, ",\"\r\n") != NULL || s[0] == ' ' ||
                (s[0] != '\0' && s[strlen(s) - 1] == ' ');
    if (quote)
        ns_buf_adds(b, "\"");
    if (formula)
        ns_buf_adds(b, "'");
    for (const char *p = s; *p; p++) {
        if (*p == '"')
            ns_buf_adds(b, "\"\"");
        else
            ns_buf_add(b, p, 1);
    }
    if (quote)
        ns_buf_adds(b, "\"");
}

/* The whole result as CSV: a header row of names, then every row. */
static char *csv_of(const PGresult *r, const char *const *names, size_t *len)
{
    ns_buf_t b;
    ns_buf_init(&b, CSV_MAX);
    ns_buf_adds(&b, "\xef\xbb\xbf");
    int cols = PQnfields(r);
    for (int c = 0; c < cols; c++)
        csv_cell(&b, names[c], c == 0);
    ns_buf_adds(&b, "\r\n");
    for (int i = 0; i < PQntuples(r); i++) {
        for (int c = 0; c < cols; c++)
            csv_cell(&b, PQgetvalue(r, i, c), c == 0);
        ns_buf_adds(&b, "\r\n");
    }
    *len = b.len;
    return ns_buf_take(&b);
}

static void xhtml_cell(ns_buf_t *b, const char *tag, const char *text)
{
    char *e = ns_confluence_escape(text);
    ns_buf_addf(b, "<%s>%s</%s>", tag, e ? e : "", tag);
    free(e);
}

static void xhtml_table(ns_buf_t *b, const PGresult *r,
                        const char *const *names, int max_rows)
{
    ns_buf_adds(b, "<table><tbody><tr>");
    for (int c = 0; c < PQnfields(r); c++)
        xhtml_cell(b, "th", names[c]);
    ns_buf_adds(b, "</tr>");
    for (int i = 0; i < PQntuples(r) && i < max_rows; i++) {
        ns_buf_adds(b, "<tr>");
        for (int c = 0; c < PQnfields(r); c++)
            xhtml_cell(b, "td", PQgetvalue(r, i, c));
        ns_buf_adds(b, "</tr>");
    }
    ns_buf_adds(b, "</tbody></table>");
}

static const char *page_param(const ns_item_ctx_t *ctx, const char *name)
{
    const cJSON *pages =
        cJSON_GetObjectItemCaseSensitive(ns_item_job(ctx)->params, "pages");
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(pages, name);
    return cJSON_IsString(id) && id->valuestring[0] ? id->valuestring : NULL;
}

typedef struct day {
    char label[16]; /* YYYY-MM-DD in the job's zone */
    char from[40], to[40];
    char lines[24], bad[24], windows[24];
    char key[300]; /* daily:<job>:<day> */
} day_t;

static ns_err_t day_of(ns_item_ctx_t *ctx, PGconn *pg, day_t *d,
                       ns_error_t *err)
{
    char run[24];
    ns_pg_i64str(ns_item_run_id(ctx), run);
    const char *params[] = {run, ns_item_job(ctx)->timezone};
    PGresult *r = ns_pg_query(
        pg,
        "WITH r AS (SELECT run_id, coalesce(scheduled_for, created_at) AS t "
        "FROM runs WHERE run_id = $1::bigint) "
        "SELECT to_char(coalesce(min(w.window_start), r.t - interval '1 "
        "day') AT TIME ZONE $2, 'YYYY-MM-DD'), coalesce(min(w.window_start), "
        "r.t - interval '1 day')::text, coalesce(max(w.window_end), "
        "r.t)::text, coalesce(sum(w.lines), 0), coalesce(sum(w.bad_lines), "
        "0), count(w.*) FROM r LEFT JOIN log_windows w ON w.run_id = "
        "r.run_id GROUP BY r.t",
        2, params, err);
    if (r == NULL)
        return err->code;
    if (PQntuples(r) != 1 || PQgetisnull(r, 0, 0)) {
        PQclear(r);
        return ns_error_set(err, NS_ERR_PERMANENT,
                            "logs.daily_report: run %s has no day (a run "
                            "of a windows source with align: day)",
                            run);
    }
    snprintf(d->label, sizeof(d->label), "%s", PQgetvalue(r, 0, 0));
    snprintf(d->from, sizeof(d->from), "%s", PQgetvalue(r, 0, 1));
    snprintf(d->to, sizeof(d->to), "%s", PQgetvalue(r, 0, 2));
    snprintf(d->lines, sizeof(d->lines), "%s", PQgetvalue(r, 0, 3));
    snprintf(d->bad, sizeof(d->bad), "%s", PQgetvalue(r, 0, 4));
    snprintf(d->windows, sizeof(d->windows), "%s", PQgetvalue(r, 0, 5));
    snprintf(d->key, sizeof(d->key), "daily:%s:%s", ns_item_job(ctx)->name,
             d->label);
    PQclear(r);
    return NS_OK;
}

static const char *const top_names[] = {"service", "issue", "level", "lines"};

static PGresult *top_issues(ns_item_ctx_t *ctx, PGconn *pg, const day_t *d,
                            ns_error_t *err)
{
    const char *params[] = {ns_item_job(ctx)->name, d->from, d->to};
    return ns_pg_query(
        pg,
        "SELECT c.service, t.template, (" LEVELS ")[max(array_position(" LEVELS
        ", c.level))], sum(c.lines)::text FROM log_window_counts c JOIN "
        "log_templates t USING (template_id) WHERE c.job = $1 AND "
        "c.window_start >= $2::timestamptz AND c.window_start < "
        "$3::timestamptz AND array_position(" LEVELS ", c.level) >= "
        "array_position(" LEVELS ", 'warning') GROUP BY c.service, "
        "t.template_id, t.template ORDER BY sum(c.lines) DESC, t.template_id "
        "LIMIT 5",
        3, params, err);
}

static const char *const error_names[] = {
    "template_id", "template",    "level", "first_seen",
    "last_seen",   "occurrences", "status"};
static const char *const peak_names[] = {
    "incident",  "job",        "service",  "template", "severity", "first_seen",
    "last_seen", "peak_lines", "baseline", "score",    "windows",  "status"};

static ns_err_t teams_card(ns_item_ctx_t *ctx, const day_t *d,
                           const PGresult *top, ns_error_t *err)
{
    const cJSON *teams =
        cJSON_GetObjectItemCaseSensitive(ns_item_job(ctx)->notify, "teams");
    const cJSON *hook = cJSON_GetObjectItemCaseSensitive(teams, "webhook");
    const char *url =
        cJSON_IsString(hook)
            ? ns_config_teams_url(ns_item_config(ctx), hook->valuestring)
            : NULL;
    if (url == NULL || url[0] == '\0')
        return NS_OK; /* no Teams configured */
    cJSON *card = cJSON_CreateObject();
    char title[80], text[200], key[340];
    snprintf(title, sizeof(title), "Daily log report %s", d->label);
    snprintf(text, sizeof(text),
             "%s lines in %s windows, %s bad lines. Top %d issues:", d->lines,
             d->windows, d->bad, PQntuples(top));
    cJSON_AddStringToObject(card, "title", title);
    cJSON_AddStringToObject(card, "text", text);
    cJSON_AddStringToObject(card, "severity",
                            PQntuples(top) > 0 ? "warning" : "good");
    cJSON *facts = cJSON_AddArrayToObject(card, "facts");
    for (int i = 0; i < PQntuples(top); i++) {
        char name[200];
        snprintf(name, sizeof(name), "%s lines, %s, %s", PQgetvalue(top, i, 3),
                 PQgetvalue(top, i, 2), PQgetvalue(top, i, 0));
        cJSON *f = cJSON_CreateArray();
        cJSON_AddItemToArray(f, cJSON_CreateString(name));
        cJSON_AddItemToArray(f, cJSON_CreateString(PQgetvalue(top, i, 1)));
        cJSON_AddItemToArray(facts, f);
    }
    snprintf(key, sizeof(key), "%s:teams", d->key);
    return ns_item_outbox(ctx, "teams", hook->valuestring, card, key, err);
}

/* One Confluence page: storage body plus optional attachment ids. */
static ns_err_t page(ns_item_ctx_t *ctx, const day_t *d, const char *which,
                     const char *storage, int64_t file_id, ns_error_t *err)
{
    const char *page_id = page_param(ctx, which);
    const char *base = ns_item_config(ctx)->confluence.base_url;
    if (page_id == NULL || base == NULL || base[0] == '\0')
        return NS_OK; /* no page configured, or no Confluence */
    cJSON *payload = cJSON_CreateObject();
    cJSON_AddStringToObject(payload, "storage", storage);
    if (file_id > 0)
        cJSON_AddItemToArray(cJSON_AddArrayToObject(payload, "files"),
                             cJSON_CreateNumber((double)file_id));
    char key[400];
    snprintf(key, sizeof(key), "%s:confluence:%s:%s", d->key, which, page_id);
    return ns_item_outbox(ctx, "confluence", page_id, payload, key, err);
}

/* The CSV of r stored once per day (outbox_files), and its page. */
static ns_err_t export(ns_item_ctx_t *ctx, const day_t *d, const PGresult *r,
                       const char *const *names, const char *filename,
                       const char *which, const char *heading, ns_error_t *err)
{
    size_t len = 0;
    char *csv = csv_of(r, names, &len);
    char key[400];
    snprintf(key, sizeof(key), "%s:%s", d->key, filename);
    int64_t file_id = 0;
    ns_err_t rc = csv ? ns_item_file(ctx, key, filename, "text/csv", csv, len,
                                     &file_id, err)
                      : ns_error_set(err, NS_ERR_NOMEM, "out of memory");
    free(csv);
    ns_buf_t b;
    ns_buf_init(&b, (size_t)64 << 20);
    ns_buf_addf(&b, "<h2>%s</h2><p>Updated for %s: %d rows", heading, d->label,
                PQntuples(r));
    if (PQntuples(r) > PAGE_ROWS)
        ns_buf_addf(&b, " (the first %d shown)", PAGE_ROWS);
    ns_buf_addf(&b,
                "; all of them in <ac:link><ri:attachment "
                "ri:filename=\"%s\" /></ac:link>.</p>",
                filename);
    xhtml_table(&b, r, names, PAGE_ROWS);
    if (rc == NS_OK)
        rc = page(ctx, d, which, b.data ? b.data : "<p/>", file_id, err);
    ns_buf_free(&b);
    return rc;
}

ns_err_t ns_logs_daily_report(ns_item_ctx_t *ctx, ns_error_t *err)
{
    PGconn *pg = ns_item_pg(ctx, err);
    if (pg == NULL)
        return err->code;
    day_t d;
    if (day_of(ctx, pg, &d, err) != NS_OK)
        return err->code;
    PGresult *top = top_issues(ctx, pg, &d, err);
    PGresult *errors =
        top ? ns_pg_query(pg,
                          "SELECT template_id::text, template, level, "
                          "first_seen::text, last_seen::text, "
                          "occurrences::text, status FROM log_known_errors "
                          "ORDER BY occurrences DESC, template_id",
                          0, NULL, err)
            : NULL;
    PGresult *peaks =
        errors ? ns_pg_query(pg,
                             "SELECT id::text, job, service, template, "
                             "severity, first_seen::text, last_seen::text, "
                             "peak_lines::text, round(baseline::numeric, "
                             "2)::text, round(score::numeric, 2)::text, "
                             "windows::text, status FROM log_peaks ORDER BY "
                             "first_seen DESC, id DESC",
                             0, NULL, err)
               : NULL;
    ns_err_t rc = peaks ? NS_OK : err->code;
    if (rc == NS_OK)
        rc = teams_card(ctx, &d, top, err);
    if (rc == NS_OK)
        rc = export(ctx, &d, errors, error_names, "errors_table_latest.csv",
                    "known_errors", "Known errors", err);
    if (rc == NS_OK)
        rc = export(ctx, &d, peaks, peak_names, "peaks_table_latest.csv",
                    "known_peaks", "Known peaks", err);
    if (rc == NS_OK) {
        ns_buf_t b;
        ns_buf_init(&b, (size_t)1 << 20);
        ns_buf_addf(&b,
                    "<h2>Log report %s</h2><p>%s lines in %s windows; %s "
                    "lines could not be read.</p><h3>Top issues</h3>",
                    d.label, d.lines, d.windows, d.bad);
        if (PQntuples(top) == 0)
            ns_buf_adds(&b, "<p>No warnings or errors.</p>");
        else
            xhtml_table(&b, top, top_names, 5);
        rc = page(ctx, &d, "daily_report", b.data, 0, err);
        ns_buf_free(&b);
    }
    cJSON *summary = cJSON_CreateObject();
    cJSON_AddStringToObject(summary, "day", d.label);
    cJSON_AddNumberToObject(summary, "top_issues", top ? PQntuples(top) : 0);
    cJSON_AddNumberToObject(summary, "known_errors",
                            errors ? PQntuples(errors) : 0);
    cJSON_AddNumberToObject(summary, "peaks", peaks ? PQntuples(peaks) : 0);
    ns_item_report(ctx, "daily report", summary);
    PQclear(top);
    PQclear(errors);
    PQclear(peaks);
    return rc;
}
