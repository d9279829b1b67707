/* logs.window (seed 003): one time window of the log topic (or of an
 * Elasticsearch index, params.source: elasticsearch), counted by
 * template. The item names the window [start, end) and optionally one
 * service. The handler waits until the window's grace has passed, reads
 * the topic by timestamp (logs_read.c), decodes every line (text/
 * logline.c), groups it into a template (text/logparse.c, primed with the
 * templates already in Postgres so ids stay stable across windows and
 * processes), and replaces the window's counts in the item's transaction:
 * a re-run or a backfill of the same window changes nothing twice; then
 * the incident detection (logs_detect.c) judges the counts. Bad
 * lines are counted, and the first few of each window are kept in
 * dead_letters with their reason; they never stop a window.
 *
 * params: topic (logs.raw), grace_seconds (120: lines appended to Kafka
 * up to this long after the window's end still count), skew_seconds (60:
 * how long before the window's start to look for its lines),
 * max_line_bytes (1 MiB), bad_line_samples (10), similarity (the
 * parser's default, 0.5). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handlers.h"
#include "logs.h"
#include "logs_read.h"
#include "ns/buf.h"
#include "ns/clock.h"
#include "ns/elasticsearch.h"
#include "ns/logline.h"
#include "ns/logparse.h"
#include "ns/pg.h"

#define READ_TIMEOUT_MS 120000

typedef ns_logcount_t count_t;

typedef struct bad_line {
    int32_t partition;
    int64_t offset;
    char *key;
    size_t key_len;
    char *value;
    size_t len;
    char reason[200];
} bad_line_t;

typedef struct window {
    const ns_config_t *cfg;
    int64_t start_ms, end_ms, now_ms;
    const char *service; /* the item's; NULL: every service */
    size_t max_line_bytes;
    ns_logparse_t *parser;
    count_t *counts;
    size_t n_counts, cap_counts;
    size_t *slots; /* index of counts by (service, template) */
    size_t cap_slots;
    bad_line_t *bad;
    size_t n_bad, max_bad;
    int64_t lines, bad_lines, outside;
    int64_t es_docs; /* documents read from Elasticsearch so far */
} window_t;

static double param_num(const cJSON *params, const char *name, double dflt)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(params, name);
    return cJSON_IsNumber(v) ? v->valuedouble : dflt;
}

static const char *param_str(const cJSON *params, const char *name,
                             const char *dflt)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(params, name);
    return cJSON_IsString(v) && v->valuestring[0] ? v->valuestring : dflt;
}

static uint64_t slot_hash(const char *service, uint64_t id)
{
    uint64_t h = id ^ 0x9e3779b97f4a7c15ULL;
    for (const unsigned char *p = (const unsigned char *)service; *p; p++)
        h = (h ^ *p) * 0x100000001b3ULL;
    return h ^ (h >> 29);
}

/* An open-addressing index over counts (slots hold count index + 1),
 * grown at half full: a window of a million lines does a million
 * lookups. */
static int regrow(window_t *w)
{
    size_t cap = w->cap_slots ? w->cap_slots * 2 : 256;
    size_t *slots = calloc(cap, sizeof(*slots));
    if (slots == NULL)
        return -1;
    for (size_t i = 0; i < w->n_counts; i++) {
        size_t at = slot_hash(w->counts[i].service, w->counts[i].template_id) &
                    (cap - 1);
        while (slots[at] != 0)
            at = (at + 1) & (cap - 1);
        slots[at] = i + 1;
    }
    free(w->slots);
    w->slots = slots;
    w->cap_slots = cap;
    return 0;
}

static int add_count(window_t *w, const char *service, uint64_t id,
                     ns_loglevel_t level)
{
    if (2 * (w->n_counts + 1) > w->cap_slots && regrow(w) != 0)
        return -1;
    size_t at = slot_hash(service, id) & (w->cap_slots - 1);
    for (; w->slots[at] != 0; at = (at + 1) & (w->cap_slots - 1)) {
        count_t *c = &w->counts[w->slots[at] - 1];
        if (c->template_id == id && strcmp(c->service, service) == 0) {
            c->lines++;
            if (level > c->level)
                c->level = level;
            return 0;
        }
    }
    if (w->n_counts == w->cap_counts) {
        size_t cap = w->cap_counts ? w->cap_counts * 2 : 64;
        count_t *grown = realloc(w->counts, cap * sizeof(*grown));
        if (grown == NULL)
            return -1;
        w->counts = grown;
        w->cap_counts = cap;
    }
    char *copy = strdup(service);
    if (copy == NULL)
        return -1;
    w->counts[w->n_counts++] = (count_t){copy, id, 1, level};
    w->slots[at] = w->n_counts;
    return 0;
}

/* Where a line came from, for a bad line's dead letter. */
typedef struct raw {
    int32_t partition;
    int64_t offset;
    const char *key;
    size_t key_len;
    const char *value;
    size_t len;
} raw_t;

static void keep_bad(window_t *w, const raw_t *m, const char *reason)
{
    w->bad_lines++;
    if (w->n_bad >= w->max_bad)
        return;
    bad_line_t *b = &w->bad[w->n_bad];
    size_t keep = m->len < 65536 ? m->len : 65536; /* a sample, not a copy */
    *b = (bad_line_t){.partition = m->partition, .offset = m->offset};
    b->value = malloc(keep + 1);
    b->key = malloc(m->key_len + 1);
    if (b->value == NULL || b->key == NULL) {
        free(b->value);
        free(b->key);
        return;
    }
    memcpy(b->value, m->value, keep);
    b->len = keep;
    if (m->key_len > 0)
        memcpy(b->key, m->key, m->key_len);
    b->key_len = m->key_len;
    snprintf(b->reason, sizeof(b->reason), "%s", reason);
    w->n_bad++;
}

/* A decoded line of the window's source: counted under its template. */
static int count_line(window_t *w, ns_logline_t *line, const raw_t *m)
{
    if (line->ts_ms < w->start_ms || line->ts_ms >= w->end_ms) {
        w->outside++; /* another window's line */
        return 0;
    }
    char service[NS_LOGLINE_FIELD_MAX];
    if (line->service[0] != '\0' || m->key_len == 0)
        snprintf(service, sizeof(service), "%s", line->service);
    else
        snprintf(service, sizeof(service), "%.*s",
                 (int)(m->key_len < sizeof(service) - 1 ? m->key_len
                                                        : sizeof(service) - 1),
                 m->key);
    if (w->service != NULL && strcmp(service, w->service) != 0)
        return 0;
    uint64_t id = 0;
    ns_error_t err;
    ns_error_clear(&err);
    if (ns_logparse_add(w->parser, line->message, line->message_len, &id,
                        &err) != NS_OK) {
        keep_bad(w, m, err.msg);
        return 0;
    }
    w->lines++;
    return add_count(w, service, id, line->level);
}

static int on_message(const rd_kafka_message_t *m, void *arg)
{
    window_t *w = arg;
    raw_t raw = {m->partition, m->offset,  m->key,
                 m->key_len,   m->payload, m->len};
    ns_logline_t line;
    ns_error_t err;
    ns_error_clear(&err);
    if (ns_logline_parse(m->payload, m->len, w->max_line_bytes, w->now_ms,
                         &line, &err) != NS_OK) {
        keep_bad(w, &raw, err.msg);
        return err.code == NS_ERR_NOMEM ? -1 : 0;
    }
    int out = count_line(w, &line, &raw);
    ns_logline_free(&line);
    return out;
}

/* An Elasticsearch document (its _source). Dead letters of bad ones are
 * named "es:<index>", partition 0, offset: the window's start in seconds
 * x 100000 + the document's place in it (stable across re-runs). */
static int on_doc(const cJSON *source, void *arg)
{
    window_t *w = arg;
    w->es_docs++;
    raw_t raw = {0, (w->start_ms / 1000) * 100000 + w->es_docs, NULL, 0, NULL,
                 0};
    ns_logline_t line;
    ns_error_t err;
    ns_error_clear(&err);
    if (ns_logline_from_object(source, &line, &err) != NS_OK) {
        char *text = cJSON_PrintUnformatted(source);
        raw.value = text ? text : "";
        raw.len = strlen(raw.value);
        keep_bad(w, &raw, err.msg);
        free(text);
        return err.code == NS_ERR_NOMEM ? -1 : 0;
    }
    int out = count_line(w, &line, &raw);
    ns_logline_free(&line);
    return out;
}

/* Primes the parser with every known template, so that a line of a known
 * kind gets the id it had in earlier windows and other processes. */
static ns_err_t load_templates(ns_item_ctx_t *ctx, ns_logparse_t *p,
                               ns_error_t *err)
{
    PGconn *pg = ns_item_pg(ctx, err);
    if (pg == NULL)
        return err->code;
    PGresult *r = ns_pg_query(pg,
                              "SELECT template_id, template FROM "
                              "log_templates ORDER BY first_seen, "
                              "template_id",
                              0, NULL, err);
    if (r == NULL)
        return err->code;
    for (int i = 0; i < PQntuples(r); i++) {
        ns_error_t lerr;
        ns_error_clear(&lerr);
        /* A template the parser cannot take back (the limit) is only not
         * primed: its lines then make a new one. */
        ns_logparse_load(p, (uint64_t)ns_pg_int64(r, i, 0), PQgetvalue(r, i, 1),
                         0, &lerr);
    }
    PQclear(r);
    return NS_OK;
}

/* COPY text format: backslash, tab, newline and CR escaped. */
static void copy_field(ns_buf_t *b, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\')
            ns_buf_adds(b, "\\\\");
        else if (*s == '\t')
            ns_buf_adds(b, "\\t");
        else if (*s == '\n')
            ns_buf_adds(b, "\\n");
        else if (*s == '\r')
            ns_buf_adds(b, "\\r");
        else
            ns_buf_add(b, s, 1);
    }
}

static ns_err_t copy_counts(PGconn *pg, const char *job, const char *start,
                            const window_t *w, ns_error_t *err)
{
    PGresult *r = PQexec(pg, "COPY log_window_counts (job, service, "
                             "window_start, template_id, lines, level) FROM "
                             "STDIN");
    if (PQresultStatus(r) != PGRES_COPY_IN) {
        ns_error_set(err, NS_ERR_TRANSIENT, "COPY log_window_counts: %s",
                     PQresultErrorMessage(r));
        PQclear(r);
        return err->code;
    }
    PQclear(r);
    ns_buf_t b;
    ns_buf_init(&b, (size_t)1 << 30);
    for (size_t i = 0; i < w->n_counts; i++) {
        const count_t *c = &w->counts[i];
        copy_field(&b, job);
        ns_buf_adds(&b, "\t");
        copy_field(&b, c->service);
        ns_buf_addf(&b, "\t%s\t%lld\t%lld\t%s\n", start,
                    (long long)(int64_t)c->template_id, (long long)c->lines,
                    ns_loglevel_name(c->level));
    }
    int ok = b.data == NULL || PQputCopyData(pg, b.data, (int)b.len) == 1;
    ns_buf_free(&b);
    ok = PQputCopyEnd(pg, ok ? NULL : "out of memory") == 1 && ok;
    r = PQgetResult(pg);
    if (PQresultStatus(r) != PGRES_COMMAND_OK || !ok)
        ns_error_set(err, NS_ERR_TRANSIENT, "COPY log_window_counts: %s",
                     PQresultErrorMessage(r));
    else
        err->code = NS_OK;
    PQclear(r);
    while ((r = PQgetResult(pg)) != NULL)
        PQclear(r);
    return ok && err->code == NS_OK ? NS_OK : NS_ERR_TRANSIENT;
}

typedef struct upsert {
    PGconn *pg;
    const window_t *w;
    ns_error_t *err;
    ns_err_t rc;
} upsert_t;

static ns_loglevel_t level_of(const window_t *w, uint64_t id)
{
    ns_loglevel_t level = NS_LOGLEVEL_UNKNOWN;
    for (size_t i = 0; i < w->n_counts; i++)
        if (w->counts[i].template_id == id && w->counts[i].level > level)
            level = w->counts[i].level;
    return level;
}

static ns_err_t upsert_template(upsert_t *u, const ns_logtemplate_t *t,
                                const char *start, const char *end)
{
    char id[24], rev[24];
    ns_pg_i64str((int64_t)t->id, id);
    ns_pg_i64str(t->revision, rev);
    const char *params[] = {
        id, t->text, rev, ns_loglevel_name(level_of(u->w, t->id)), start, end};
    /* The level column keeps the most severe level ever seen; names sort
     * by severity through array_position. */
    return ns_pg_exec(
        u->pg,
        "INSERT INTO log_templates (template_id, template, revision, level, "
        "first_seen, last_seen) VALUES ($1::bigint, $2, $3::int, $4, "
        "$5::timestamptz, $6::timestamptz) ON CONFLICT (template_id) DO "
        "UPDATE SET template = EXCLUDED.template, revision = "
        "greatest(log_templates.revision, EXCLUDED.revision), level = CASE "
        "WHEN array_position(ARRAY['unknown','trace','debug','info',"
        "'notice','warning','error','critical','alert','emergency'], "
        "EXCLUDED.level) > array_position(ARRAY['unknown','trace','debug',"
        "'info','notice','warning','error','critical','alert','emergency'], "
        "log_templates.level) THEN EXCLUDED.level ELSE log_templates.level "
        "END, first_seen = least(log_templates.first_seen, "
        "EXCLUDED.first_seen), last_seen = greatest(log_templates.last_seen, "
        "EXCLUDED.last_seen)",
        6, params, u->err);
}

typedef struct each_arg {
    upsert_t *u;
    const char *start, *end;
} each_arg_t;

static void upsert_used(const ns_logtemplate_t *t, void *arg)
{
    each_arg_t *a = arg;
    if (a->u->rc != NS_OK)
        return;
    for (size_t i = 0; i < a->u->w->n_counts; i++)
        if (a->u->w->counts[i].template_id == t->id) {
            a->u->rc = upsert_template(a->u, t, a->start, a->end);
            return;
        }
}

static ns_err_t store_bad(PGconn *pg, ns_item_ctx_t *ctx, const char *topic,
                          const window_t *w, ns_error_t *err)
{
    char run[24];
    ns_pg_i64str(ns_item_run_id(ctx), run);
    for (size_t i = 0; i < w->n_bad; i++) {
        const bad_line_t *b = &w->bad[i];
        char part[24], off[24], reason[260];
        ns_pg_i64str(b->partition, part);
        ns_pg_i64str(b->offset, off);
        snprintf(reason, sizeof(reason), "bad log line: %s", b->reason);
        const char *params[] = {topic,
                                part,
                                off,
                                b->key,
                                b->value,
                                reason,
                                ns_item_job(ctx)->name,
                                run,
                                ns_item_key(ctx)};
        int lengths[] = {0, 0, 0, (int)b->key_len, (int)b->len, 0, 0, 0, 0};
        int formats[] = {0, 0, 0, 1, 1, 0, 0, 0, 0};
        PGresult *r = PQexecParams(
            pg,
            "INSERT INTO dead_letters (topic, partition, \"offset\", msg_key, "
            "payload, reason, job, run_id, item_key, handler, "
            "first_failed_at) VALUES ($1, $2::int, $3::bigint, $4, $5, $6, "
            "$7, $8::bigint, $9, 'logs.window', now()) ON CONFLICT (topic, "
            "partition, \"offset\") DO NOTHING",
            9, NULL, params, lengths, formats, 0);
        int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
        if (!ok)
            ns_error_set(err, NS_ERR_TRANSIENT, "dead_letters: %s",
                         PQresultErrorMessage(r));
        PQclear(r);
        if (!ok)
            return err->code;
    }
    return NS_OK;
}

static ns_err_t store(ns_item_ctx_t *ctx, const char *topic, const window_t *w,
                      const char *start, const char *end, ns_error_t *err)
{
    PGconn *pg = ns_item_tx(ctx, err);
    if (pg == NULL)
        return err->code;
    const char *job = ns_item_job(ctx)->name;
    upsert_t u = {pg, w, err, NS_OK};
    each_arg_t a = {&u, start, end};
    ns_logparse_each(w->parser, upsert_used, &a);
    if (u.rc != NS_OK)
        return u.rc;
    const char *del[] = {job, start, w->service};
    ns_err_t rc = ns_pg_exec(pg,
                             "DELETE FROM log_window_counts WHERE job = $1 "
                             "AND window_start = $2::timestamptz AND ($3::text "
                             "IS NULL OR service = $3)",
                             3, del, err);
    if (rc == NS_OK && w->n_counts > 0)
        rc = copy_counts(pg, job, start, w, err);
    char run[24], lines[24], bad[24], outside[24], templates[24];
    ns_pg_i64str(ns_item_run_id(ctx), run);
    ns_pg_i64str(w->lines, lines);
    ns_pg_i64str(w->bad_lines, bad);
    ns_pg_i64str(w->outside, outside);
    ns_pg_i64str((int64_t)w->n_counts, templates);
    const char *win[] = {job,      w->service ? w->service : "",
                         start,    end,
                         run,      lines,
                         bad,      outside,
                         templates};
    if (rc == NS_OK)
        rc = ns_pg_exec(
            pg,
            "INSERT INTO log_windows (job, service, window_start, window_end, "
            "run_id, lines, bad_lines, outside_lines, templates) VALUES ($1, "
            "$2, "
            "$3::timestamptz, $4::timestamptz, $5::bigint, $6::bigint, "
            "$7::bigint, $8::bigint, $9::int) ON CONFLICT (job, service, "
            "window_start) DO UPDATE SET window_end = EXCLUDED.window_end, "
            "run_id = EXCLUDED.run_id, lines = EXCLUDED.lines, bad_lines = "
            "EXCLUDED.bad_lines, outside_lines = EXCLUDED.outside_lines, "
            "templates "
            "= EXCLUDED.templates, processed_at = now()",
            9, win, err);
    if (rc == NS_OK)
        rc = store_bad(pg, ctx, topic, w, err);
    return rc;
}

/* The window from Elasticsearch: params.elasticsearch {url, index,
 * time_field (@timestamp), page_size (1000)}; the URL may also come from
 * NS_ELASTICSEARCH_URL, credentials from NS_ELASTICSEARCH_USER and
 * NS_ELASTICSEARCH_PASSWORD or NS_ELASTICSEARCH_API_KEY (secrets: never in
 * jobs.yaml, masked in logs). */
static ns_err_t read_elasticsearch(window_t *w, const cJSON *es,
                                   const char *index, ns_error_t *err)
{
    const char *env_url = getenv("NS_ELASTICSEARCH_URL");
    ns_es_settings_t s = {
        .url = param_str(es, "url", env_url ? env_url : ""),
        .user = getenv("NS_ELASTICSEARCH_USER"),
        .password = getenv("NS_ELASTICSEARCH_PASSWORD"),
        .api_key = getenv("NS_ELASTICSEARCH_API_KEY"),
        .timeout_ms = READ_TIMEOUT_MS / 4,
    };
    ns_log_add_secret(s.password);
    ns_log_add_secret(s.api_key);
    int64_t docs = 0;
    return ns_es_read_range(
        &s, index, param_str(es, "time_field", "@timestamp"), w->start_ms,
        w->end_ms, (int)param_num(es, "page_size", 1000), on_doc, w, &docs,
        err);
}

static void report_dry_run(ns_item_ctx_t *ctx, const window_t *w)
{
    cJSON *d = cJSON_CreateObject();
    cJSON_AddNumberToObject(d, "lines", (double)w->lines);
    cJSON_AddNumberToObject(d, "bad_lines", (double)w->bad_lines);
    cJSON_AddNumberToObject(d, "templates", (double)w->n_counts);
    ns_item_report(ctx, "replace log_window_counts", d);
}

static void window_free(window_t *w)
{
    for (size_t i = 0; i < w->n_counts; i++)
        free(w->counts[i].service);
    free(w->counts);
    free(w->slots);
    for (size_t i = 0; i < w->n_bad; i++) {
        free(w->bad[i].key);
        free(w->bad[i].value);
    }
    free(w->bad);
    ns_logparse_destroy(w->parser);
}

ns_err_t ns_logs_window(ns_item_ctx_t *ctx, ns_error_t *err)
{
    const cJSON *payload = ns_item_payload(ctx);
    const cJSON *params = ns_item_job(ctx)->params;
    const cJSON *start_ms =
        cJSON_GetObjectItemCaseSensitive(payload, "start_ms");
    const cJSON *end_ms = cJSON_GetObjectItemCaseSensitive(payload, "end_ms");
    const cJSON *start =
        cJSON_GetObjectItemCaseSensitive(payload, "window_start");
    const cJSON *end = cJSON_GetObjectItemCaseSensitive(payload, "window_end");
    const cJSON *svc = cJSON_GetObjectItemCaseSensitive(payload, "service");
    if (!cJSON_IsNumber(start_ms) || !cJSON_IsNumber(end_ms) ||
        !cJSON_IsString(start) || !cJSON_IsString(end) ||
        start_ms->valuedouble >= end_ms->valuedouble)
        return ns_error_set(err, NS_ERR_PERMANENT,
                            "bad input: a logs.window item needs a window "
                            "(a \"windows\" source)");
    window_t w = {
        .cfg = ns_item_config(ctx),
        .start_ms = (int64_t)start_ms->valuedouble,
        .end_ms = (int64_t)end_ms->valuedouble,
        .now_ms = ns_clock_now_ms(),
        .service = cJSON_IsString(svc) ? svc->valuestring : NULL,
        .max_line_bytes = (size_t)param_num(params, "max_line_bytes", 1 << 20),
        .max_bad = (size_t)param_num(params, "bad_line_samples", 10),
    };
    int64_t grace_ms =
        (int64_t)(param_num(params, "grace_seconds", 120) * 1000);
    int64_t skew_ms = (int64_t)(param_num(params, "skew_seconds", 60) * 1000);
    if (w.now_ms < w.end_ms + grace_ms) {
        /* Lines may still arrive: come back when the grace is over (not an
         * attempt). */
        ns_error_set(err, NS_ERR_DEFERRED,
                     "window %s still open for late lines", start->valuestring);
        err->retry_after_s = (double)(w.end_ms + grace_ms - w.now_ms) / 1000.0;
        return NS_ERR_DEFERRED;
    }
    char perr[256];
    ns_logparse_opts_t opts = {.sim_threshold =
                                   param_num(params, "similarity", 0)};
    w.parser = ns_logparse_new(&opts, perr, sizeof(perr));
    w.bad = calloc(w.max_bad + 1, sizeof(*w.bad));
    if (w.parser == NULL || w.bad == NULL) {
        window_free(&w);
        return ns_error_set(err, NS_ERR_PERMANENT, "log parser: %s",
                            w.parser == NULL ? perr : "out of memory");
    }
    const char *topic = param_str(params, "topic", "logs.raw");
    const char *source = param_str(params, "source", "kafka");
    char es_topic[300];
    int64_t read = 0;
    ns_err_t rc = load_templates(ctx, w.parser, err);
    if (rc == NS_OK && strcmp(source, "elasticsearch") == 0) {
        const cJSON *es =
            cJSON_GetObjectItemCaseSensitive(params, "elasticsearch");
        const char *index = param_str(es, "index", "logs-*");
        snprintf(es_topic, sizeof(es_topic), "es:%s", index);
        topic = es_topic;
        rc = read_elasticsearch(&w, es, index, err);
    } else if (rc == NS_OK && strcmp(source, "kafka") == 0) {
        rc = ns_logs_read_range(w.cfg, topic, w.start_ms - skew_ms,
                                w.end_ms + grace_ms, READ_TIMEOUT_MS,
                                on_message, &w, &read, err);
    } else if (rc == NS_OK) {
        rc = ns_error_set(err, NS_ERR_PERMANENT,
                          "logs.window: params.source is \"%s\": kafka or "
                          "elasticsearch",
                          source);
    }
    if (rc == NS_OK && ns_item_dry_run(ctx))
        report_dry_run(ctx, &w);
    else if (rc == NS_OK)
        rc = store(ctx, topic, &w, start->valuestring, end->valuestring, err);
    ns_logwindow_t counted = {.service = w.service,
                              .start = start->valuestring,
                              .start_ms = w.start_ms,
                              .end_ms = w.end_ms,
                              .counts = w.counts,
                              .n_counts = w.n_counts,
                              .parser = w.parser};
    if (rc == NS_OK)
        rc = ns_logs_detect(ctx, &counted, err);
    window_free(&w);
    return rc;
}
