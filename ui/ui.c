/* ui.c: the status page's routes. Every read answer is JSON built by the
 * same code as the CLI's --json (status, dlq list / show, config check),
 * so the page, scripts and the terminal agree. The page itself is static
 * (ui/assets/, compiled in) and renders with DOM text nodes only; the
 * server adds a Content-Security-Policy that allows no inline script. */
#include "ui.h"

#include <cjson/cJSON.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "configcheck.h"
#include "dlq.h"
#include "guard.h"
#include "ns/clock.h"
#include "ns/embedded.h"
#include "ns/httpd.h"
#include "ns/log.h"
#include "ns/pg.h"
#include "status.h"

extern const ns_embedded_file_t ns_ui_assets[];
extern const int ns_ui_assets_count;

#define JSON_TYPE "application/json; charset=utf-8"
#define DLQ_LIMIT_DEFAULT 100
#define DLQ_LIMIT_MAX 1000
#define REPLAY_MAX_BODY 4096

struct ns_ui {
    const ns_config_t *cfg;
    ns_httpd_t *httpd;
    char *version, *bind;
    bool replay; /* a token is configured: the write route exists */
};

/* ---- answers ------------------------------------------------------------- */

static void answer_json(cJSON *doc, int code, int *status,
                        const char **content_type, char **body)
{
    *status = code;
    *content_type = JSON_TYPE;
    *body = doc ? cJSON_PrintUnformatted(doc) : NULL;
    cJSON_Delete(doc);
    if (*body == NULL) {
        *status = 500;
        *body = strdup("{\"error\":\"out of memory\"}");
    }
}

static void answer_error(int code, const char *message, int *status,
                         const char **content_type, char **body)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "error", message);
    answer_json(o, code, status, content_type, body);
}

/* A verb's --json output captured from out; NULL when it failed. */
typedef struct capture {
    char *text;
    size_t len;
    FILE *out;
} capture_t;

static FILE *capture_open(capture_t *c)
{
    *c = (capture_t){0};
    c->out = open_memstream(&c->text, &c->len);
    return c->out;
}

static char *capture_close(capture_t *c)
{
    if (c->out != NULL)
        fclose(c->out);
    return c->text;
}

/* Answers a verb's captured --json output as it is (already escaped by
 * cJSON) when it exited 0; else 503 (the verb said why on stderr, the
 * ui's log). */
static void answer_captured(capture_t *c, int rc, const char *what, int *status,
                            const char **content_type, char **body)
{
    char *text = capture_close(c);
    if (rc != 0) {
        free(text);
        char msg[160];
        snprintf(msg, sizeof(msg), "%s failed (the ui's log says why)", what);
        answer_error(503, msg, status, content_type, body);
        return;
    }
    *status = 200;
    *content_type = JSON_TYPE;
    *body = text;
}

static PGconn *connect_or_answer(const ns_ui_t *ui, int *status,
                                 const char **content_type, char **body)
{
    ns_error_t err;
    ns_error_clear(&err);
    PGconn *pg = ns_pg_connect(ui->cfg->pg_dsn, &err);
    if (pg == NULL) {
        NS_WARN(NULL, "%s", err.msg);
        answer_error(503, "the database is unavailable (the ui's log says why)",
                     status, content_type, body);
    }
    return pg;
}

/* ---- the page's files ---------------------------------------------------- */

static const char *type_of(const char *name)
{
    const char *dot = strrchr(name, '.');
    if (dot == NULL)
        return "application/octet-stream";
    if (strcmp(dot, ".html") == 0)
        return "text/html; charset=utf-8";
    if (strcmp(dot, ".js") == 0)
        return "text/javascript; charset=utf-8";
    if (strcmp(dot, ".css") == 0)
        return "text/css; charset=utf-8";
    if (strcmp(dot, ".json") == 0)
        return JSON_TYPE;
    if (strcmp(dot, ".svg") == 0)
        return "image/svg+xml";
    return "application/octet-stream";
}

static void serve_asset(const char *name, int *status,
                        const char **content_type, char **body)
{
    const char *data = ns_embedded_find(ns_ui_assets, ns_ui_assets_count, name);
    if (data == NULL) {
        *status = 404;
        *body = strdup("not found\n");
        return;
    }
    *content_type = type_of(name);
    *body = strdup(data);
}

/* A fixed file: arg is its name in the table ("/" is index.html). */
static void on_file(void *arg, const ns_httpd_request_t *req, int *status,
                    const char **content_type, char **body)
{
    (void)req;
    serve_asset(arg, status, content_type, body);
}

static void on_asset(void *arg, const ns_httpd_request_t *req, int *status,
                     const char **content_type, char **body)
{
    (void)arg;
    const char *name = req->path + strlen("/ui/");
    /* Only names of the table, never a path. */
    if (strchr(name, '/') != NULL || name[0] == '.') {
        *status = 404;
        *body = strdup("not found\n");
        return;
    }
    serve_asset(name, status, content_type, body);
}

/* ---- /api/v1 ------------------------------------------------------------- */

static void on_info(void *arg, const ns_httpd_request_t *req, int *status,
                    const char **content_type, char **body)
{
    (void)req;
    const ns_ui_t *ui = arg;
    char now[40];
    ns_clock_format_utc((int64_t)time(NULL) * 1000, now, sizeof(now));
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", "nightshift");
    cJSON_AddStringToObject(o, "version", ui->version);
    cJSON_AddStringToObject(o, "time", now);
    cJSON_AddBoolToObject(o, "replay", ui->replay);
    cJSON_AddNumberToObject(o, "refresh_ms", ui->cfg->ui.refresh_ms);
    cJSON_AddNumberToObject(o, "jobs", (double)ui->cfg->n_jobs);
    answer_json(o, 200, status, content_type, body);
}

/* The health entry of job in status JSON's "jobs" array, or NULL. */
static const cJSON *health_of(const cJSON *health, const char *job)
{
    const cJSON *h;
    cJSON_ArrayForEach(h, health)
    {
        const cJSON *name = cJSON_GetObjectItem(h, "job");
        if (cJSON_IsString(name) && strcmp(name->valuestring, job) == 0)
            return h;
    }
    return NULL;
}

/* ns_status_json(arg) on a connection of its own; NULL when it failed,
 * answered: 404 for an unknown run, 503 when the database failed. */
static cJSON *status_or_answer(const ns_ui_t *ui, const char *arg, int *status,
                               const char **content_type, char **body)
{
    PGconn *pg = connect_or_answer(ui, status, content_type, body);
    if (pg == NULL)
        return NULL;
    ns_error_t err;
    ns_error_clear(&err);
    cJSON *st = ns_status_json(pg, arg, &err);
    PQfinish(pg);
    if (st == NULL && err.code == NS_ERR_NOT_FOUND) {
        answer_error(404, err.msg, status, content_type, body);
    } else if (st == NULL) {
        NS_WARN(NULL, "status: %s", err.msg);
        answer_error(503,
                     "the database refused the query (the ui's log says "
                     "why)",
                     status, content_type, body);
    }
    return st;
}

static void on_jobs(void *arg, const ns_httpd_request_t *req, int *status,
                    const char **content_type, char **body)
{
    (void)req;
    const ns_ui_t *ui = arg;
    cJSON *st = status_or_answer(ui, NULL, status, content_type, body);
    if (st == NULL)
        return;
    const cJSON *health = cJSON_GetObjectItem(st, "jobs");
    int64_t now_s = (int64_t)time(NULL);
    cJSON *root = cJSON_CreateObject();
    cJSON *jobs = cJSON_AddArrayToObject(root, "jobs");
    for (size_t i = 0; i < ui->cfg->n_jobs; i++) {
        const ns_job_t *job = &ui->cfg->jobs[i];
        cJSON *o = ns_ops_job_json(job, now_s);
        const cJSON *h = health_of(health, job->name);
        const cJSON *last = h ? cJSON_GetObjectItem(h, "last_success") : NULL;
        const cJSON *active = h ? cJSON_GetObjectItem(h, "active_runs") : NULL;
        cJSON_AddItemToObject(o, "last_success",
                              cJSON_IsString(last)
                                  ? cJSON_CreateString(last->valuestring)
                                  : cJSON_CreateNull());
        cJSON_AddNumberToObject(
            o, "active_runs", cJSON_IsNumber(active) ? active->valuedouble : 0);
        cJSON_AddItemToArray(jobs, o);
    }
    cJSON_Delete(st);
    answer_json(root, 200, status, content_type, body);
}

static void runs_answer(const ns_ui_t *ui, const char *arg, int *status,
                        const char **content_type, char **body)
{
    cJSON *st = status_or_answer(ui, arg, status, content_type, body);
    if (st != NULL)
        answer_json(st, 200, status, content_type, body);
}

static void on_runs(void *arg, const ns_httpd_request_t *req, int *status,
                    const char **content_type, char **body)
{
    const char *job = req->query(req, "job");
    /* A job filter that looks like a run id would select that run. */
    if (job != NULL &&
        (job[0] == '\0' || strspn(job, "0123456789") == strlen(job))) {
        answer_error(400, "job must be a job's name", status, content_type,
                     body);
        return;
    }
    runs_answer(arg, job, status, content_type, body);
}

/* The id in req's path, "<prefix><digits><suffix>", as decimal text in
 * ids; false (answered 404, naming the shape wanted) otherwise. */
static bool path_id(const ns_httpd_request_t *req, const char *prefix,
                    const char *suffix, const char *shape, char ids[24],
                    int64_t *id, int *status, const char **content_type,
                    char **body)
{
    const char *rest;
    if (!ns_ui_path_id(req->path, prefix, id, &rest) ||
        strcmp(rest, suffix) != 0) {
        char msg[128];
        snprintf(msg, sizeof(msg), "no such path: want %s", shape);
        answer_error(404, msg, status, content_type, body);
        return false;
    }
    snprintf(ids, 24, "%lld", (long long)*id);
    return true;
}

static void on_run(void *arg, const ns_httpd_request_t *req, int *status,
                   const char **content_type, char **body)
{
    int64_t id;
    char ids[24];
    if (!path_id(req, "/api/v1/runs/", "", "/api/v1/runs/{run_id}", ids, &id,
                 status, content_type, body))
        return;
    runs_answer(arg, ids, status, content_type, body);
}

/* ?limit=: 1..DLQ_LIMIT_MAX, default DLQ_LIMIT_DEFAULT; -1 when invalid. */
static int limit_of(const ns_httpd_request_t *req)
{
    const char *s = req->query(req, "limit");
    if (s == NULL)
        return DLQ_LIMIT_DEFAULT;
    char *end = NULL;
    long n = strtol(s, &end, 10);
    if (end == s || *end != '\0' || n < 1 || n > DLQ_LIMIT_MAX)
        return -1;
    return (int)n;
}

static void on_dlq_list(void *arg, const ns_httpd_request_t *req, int *status,
                        const char **content_type, char **body)
{
    const ns_ui_t *ui = arg;
    int limit = limit_of(req);
    if (limit < 0) {
        answer_error(400, "limit must be a number from 1 to 1000", status,
                     content_type, body);
        return;
    }
    ns_dlq_filter_t f = {.job = req->query(req, "job"),
                         .since = req->query(req, "since"),
                         .limit = limit};
    if (f.since != NULL) {
        ns_error_t err;
        int64_t at;
        if (ns_dlq_parse_time(f.since, (int64_t)time(NULL) * 1000, &at, &err) !=
            NS_OK) {
            answer_error(400, err.msg, status, content_type, body);
            return;
        }
    }
    capture_t c;
    if (capture_open(&c) == NULL) {
        answer_error(500, "out of memory", status, content_type, body);
        return;
    }
    int rc = ns_dlq_list(ui->cfg, &f, true, c.out);
    answer_captured(&c, rc, "listing dead letters", status, content_type, body);
}

/* 1 when dead letter id exists, 0 when not, -1 when the database fails
 * (answered). */
static int letter_exists(const ns_ui_t *ui, const char *id, int *status,
                         const char **content_type, char **body)
{
    PGconn *pg = connect_or_answer(ui, status, content_type, body);
    if (pg == NULL)
        return -1;
    ns_error_t err;
    ns_error_clear(&err);
    const char *params[] = {id};
    PGresult *r =
        ns_pg_query(pg, "SELECT 1 FROM dead_letters WHERE id = $1::bigint", 1,
                    params, &err);
    int found = r != NULL ? PQntuples(r) > 0 : -1;
    PQclear(r);
    PQfinish(pg);
    if (found < 0) {
        NS_WARN(NULL, "dead letter %s: %s", id, err.msg);
        answer_error(503,
                     "the database refused the query (the ui's log says "
                     "why)",
                     status, content_type, body);
    } else if (found == 0) {
        char msg[64];
        snprintf(msg, sizeof(msg), "no dead letter %s", id);
        answer_error(404, msg, status, content_type, body);
    }
    return found;
}

static void on_dlq_get(void *arg, const ns_httpd_request_t *req, int *status,
                       const char **content_type, char **body)
{
    const ns_ui_t *ui = arg;
    int64_t id;
    char ids[24];
    if (!path_id(req, "/api/v1/dlq/", "", "/api/v1/dlq/{id}", ids, &id, status,
                 content_type, body))
        return;
    if (letter_exists(ui, ids, status, content_type, body) != 1)
        return;
    capture_t c;
    if (capture_open(&c) == NULL) {
        answer_error(500, "out of memory", status, content_type, body);
        return;
    }
    int rc = ns_dlq_show(ui->cfg, ids, true, c.out);
    answer_captured(&c, rc, "reading the dead letter", status, content_type,
                    body);
}

/* POST /api/v1/dlq/{id}/replay {"dry_run": false}: what `nightshift dlq
 * replay --id N` does, for the holder of the token. */
static void on_dlq_replay(void *arg, const ns_httpd_request_t *req, int *status,
                          const char **content_type, char **body)
{
    const ns_ui_t *ui = arg;
    int64_t id;
    char ids[24];
    if (!path_id(req, "/api/v1/dlq/", "/replay", "/api/v1/dlq/{id}/replay", ids,
                 &id, status, content_type, body))
        return;
    const char *why = ns_ui_cross_site(
        req->header(req, "Origin"), req->header(req, "Host"),
        req->header(req, "Sec-Fetch-Site"), req->header(req, "Content-Type"));
    if (why != NULL) {
        NS_WARN(NULL, "replay of dead letter %lld refused: %s", (long long)id,
                why);
        answer_error(403, why, status, content_type, body);
        return;
    }
    if (!ns_ui_bearer_ok(ui->cfg->ui.token,
                         req->header(req, "Authorization"))) {
        NS_WARN(NULL,
                "replay of dead letter %lld refused: wrong or "
                "missing token",
                (long long)id);
        answer_error(401,
                     "replay needs the token: send Authorization: Bearer "
                     "<the ui's NS_UI_TOKEN>",
                     status, content_type, body);
        return;
    }
    bool dry_run = false;
    if (req->body_len > 0) {
        cJSON *in = cJSON_ParseWithLength(req->body, req->body_len);
        const cJSON *dr = cJSON_GetObjectItem(in, "dry_run");
        bool ok = cJSON_IsObject(in) && (dr == NULL || cJSON_IsBool(dr));
        dry_run = cJSON_IsTrue(dr);
        cJSON_Delete(in);
        if (!ok) {
            answer_error(400, "the body must be {} or {\"dry_run\": true}",
                         status, content_type, body);
            return;
        }
    }
    if (letter_exists(ui, ids, status, content_type, body) != 1)
        return;
    capture_t c;
    if (capture_open(&c) == NULL) {
        answer_error(500, "out of memory", status, content_type, body);
        return;
    }
    NS_INFO(NULL, "replay of dead letter %s%s", ids,
            dry_run ? " (dry run)" : "");
    ns_dlq_filter_t f = {.id = ids};
    int rc = ns_dlq_replay(ui->cfg, &f, dry_run, c.out);
    char *text = capture_close(&c);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "id", (double)id);
    cJSON_AddBoolToObject(o, "dry_run", dry_run);
    cJSON_AddBoolToObject(o, "ok", rc == 0);
    cJSON_AddStringToObject(o, "output", text ? text : "");
    free(text);
    answer_json(o, rc == 0 ? 200 : 502, status, content_type, body);
}

/* ---- the server ---------------------------------------------------------- */

/* The page loads nothing from elsewhere and runs no inline script; it may
 * not be framed, and sends no Referer. */
static const char *const SECURITY_HEADERS[][2] = {
    {"Content-Security-Policy",
     "default-src 'none'; script-src 'self'; style-src 'self'; "
     "img-src 'self'; connect-src 'self'; base-uri 'none'; "
     "form-action 'none'; frame-ancestors 'none'"},
    {"X-Content-Type-Options", "nosniff"},
    {"X-Frame-Options", "DENY"},
    {"Referrer-Policy", "no-referrer"},
    {"Cache-Control", "no-store"},
};

typedef struct route_row {
    const char *method, *path;
    ns_httpd_route_fn fn;
} route_row_t;

static const route_row_t ROUTES[] = {
    {"GET", "/ui/*", on_asset},           {"GET", "/api/v1", on_info},
    {"GET", "/api/v1/jobs", on_jobs},     {"GET", "/api/v1/runs", on_runs},
    {"GET", "/api/v1/runs/*", on_run},    {"GET", "/api/v1/dlq", on_dlq_list},
    {"GET", "/api/v1/dlq/*", on_dlq_get},
};

static ns_err_t add_routes(ns_ui_t *ui)
{
    ns_err_t rc = NS_OK;
    size_t nh = sizeof(SECURITY_HEADERS) / sizeof(SECURITY_HEADERS[0]);
    for (size_t i = 0; i < nh && rc == NS_OK; i++)
        rc = ns_httpd_header(ui->httpd, SECURITY_HEADERS[i][0],
                             SECURITY_HEADERS[i][1]);
    for (size_t i = 0; i < sizeof(ROUTES) / sizeof(ROUTES[0]) && rc == NS_OK;
         i++)
        rc = ns_httpd_route(ui->httpd, ROUTES[i].method, ROUTES[i].path, 0,
                            ROUTES[i].fn, ui);
    if (rc == NS_OK)
        rc = ns_httpd_route(ui->httpd, "GET", "/", 0, on_file, "index.html");
    if (rc == NS_OK)
        rc = ns_httpd_route(ui->httpd, "GET", "/api/v1/openapi.json", 0,
                            on_file, "openapi.json");
    /* Without a token there is no write action at all, not a refused one. */
    if (rc == NS_OK && ui->replay)
        rc = ns_httpd_route(ui->httpd, "POST", "/api/v1/dlq/*", REPLAY_MAX_BODY,
                            on_dlq_replay, ui);
    return rc;
}

ns_ui_t *ns_ui_new(const ns_config_t *cfg, const char *bind, int port,
                   const char *version, ns_error_t *err)
{
    ns_ui_t *ui = calloc(1, sizeof(*ui));
    if (ui == NULL) {
        ns_error_set(err, NS_ERR_NOMEM, "ui: out of memory");
        return NULL;
    }
    ui->cfg = cfg;
    ui->version = strdup(version ? version : "unknown");
    ui->bind = strdup(bind ? bind : cfg->ui.bind);
    ui->replay = cfg->ui.token != NULL && cfg->ui.token[0] != '\0';
    if (ui->version == NULL || ui->bind == NULL) {
        ns_error_set(err, NS_ERR_NOMEM, "ui: out of memory");
        ns_ui_destroy(ui);
        return NULL;
    }
    ui->httpd = ns_httpd_new(ui->bind, port >= 0 ? port : cfg->ui.port, NULL,
                             NULL, err);
    if (ui->httpd == NULL) {
        ns_ui_destroy(ui);
        return NULL;
    }
    if (add_routes(ui) != NS_OK) {
        ns_error_set(err, NS_ERR_NOMEM, "ui: cannot add its routes");
        ns_ui_destroy(ui);
        return NULL;
    }
    return ui;
}

int ns_ui_port(const ns_ui_t *ui)
{
    return ui ? ns_httpd_port(ui->httpd) : -1;
}

int ns_ui_run(ns_ui_t *ui, volatile sig_atomic_t *running)
{
    NS_INFO(NULL, "serving the status page on http://%s:%d/ (%s)", ui->bind,
            ns_ui_port(ui),
            ui->replay ? "replay enabled by NS_UI_TOKEN"
                       : "read-only: set NS_UI_TOKEN to enable replay");
    while (*running) {
        struct timespec ts = {.tv_sec = 0, .tv_nsec = 200 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    NS_INFO(NULL, "stopped");
    return 0;
}

void ns_ui_destroy(ns_ui_t *ui)
{
    if (ui == NULL)
        return;
    ns_httpd_destroy(ui->httpd);
    free(ui->version);
    free(ui->bind);
    free(ui);
}
