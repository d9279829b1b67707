#include "outbox.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ns/buf.h"
#include "ns/clock.h"
#include "ns/confluence.h"
#include "ns/log.h"
#include "ns/mail.h"
#include "ns/metrics.h"
#include "ns/pg.h"
#include "ns/retry.h"
#include "ns/teams.h"
#include "ns/telegram.h"
#include "pacing.h"
#include "res.h"

typedef ns_err_t (*send_fn)(PGconn *pg, const ns_config_t *cfg,
                            const char *target, const cJSON *payload,
                            ns_error_t *err);

/* An attachment of outbox_files (payload "file": id). */
typedef struct file {
    PGresult *r; /* filename, mime_type, content (binary) */
} file_t;

static ns_err_t load_file(PGconn *pg, const cJSON *id, file_t *f,
                          ns_error_t *err)
{
    if (!cJSON_IsNumber(id))
        return ns_error_set(err, NS_ERR_PERMANENT,
                            "payload: \"file\" is not an id");
    char ids[24];
    ns_pg_i64str((int64_t)id->valuedouble, ids);
    const char *params[] = {ids};
    f->r = PQexecParams(pg,
                        "SELECT filename, mime_type, content FROM "
                        "outbox_files WHERE id = $1::bigint",
                        1, NULL, params, NULL, NULL, 1);
    if (PQresultStatus(f->r) != PGRES_TUPLES_OK) {
        ns_error_set(err, NS_ERR_TRANSIENT, "loading file %s: %s", ids,
                     PQresultErrorMessage(f->r));
        PQclear(f->r);
        f->r = NULL;
        return err->code;
    }
    if (PQntuples(f->r) != 1) {
        PQclear(f->r);
        f->r = NULL;
        return ns_error_set(err, NS_ERR_PERMANENT, "file %s is gone", ids);
    }
    return NS_OK;
}

static const char *str_of(const cJSON *payload, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(payload, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* {"text": html} or {"file": id, "caption": html} (sendDocument). */
static ns_err_t send_telegram(PGconn *pg, const ns_config_t *cfg,
                              const char *target, const cJSON *payload,
                              ns_error_t *err)
{
    const cJSON *doc = cJSON_GetObjectItemCaseSensitive(payload, "file");
    if (doc != NULL) {
        file_t f;
        if (load_file(pg, doc, &f, err) != NS_OK)
            return err->code;
        ns_err_t rc = ns_tg_send_document(
            &cfg->telegram, target, PQgetvalue(f.r, 0, 0),
            PQgetvalue(f.r, 0, 2), (size_t)PQgetlength(f.r, 0, 2),
            str_of(payload, "caption"), err);
        PQclear(f.r);
        return rc;
    }
    const char *text = str_of(payload, "text");
    if (text == NULL)
        return ns_error_set(err, NS_ERR_PERMANENT, "payload has no text");
    return ns_tg_send_message(&cfg->telegram, target, text, err);
}

/* {"to": [addresses], "subject": s, "text": body, "file": id (optional)};
 * the target is the recipients as one string (per-target order). */
static ns_err_t send_email(PGconn *pg, const ns_config_t *cfg,
                           const char *target, const cJSON *payload,
                           ns_error_t *err)
{
    (void)target;
    const ns_smtp_settings_t *smtp = &cfg->smtp;
    if (smtp->url == NULL || smtp->url[0] == '\0')
        return ns_error_set(err, NS_ERR_TRANSIENT,
                            "email: no SMTP server (set NS_SMTP_URL or "
                            "smtp.url)");
    const cJSON *to = cJSON_GetObjectItemCaseSensitive(payload, "to");
    int n_to = cJSON_IsArray(to) ? cJSON_GetArraySize(to) : 0;
    if (n_to == 0 || str_of(payload, "subject") == NULL ||
        str_of(payload, "text") == NULL)
        return ns_error_set(err, NS_ERR_PERMANENT,
                            "email payload needs to, subject and text");
    const char **rcpt = calloc((size_t)n_to + 1, sizeof(*rcpt));
    if (rcpt == NULL)
        return ns_error_set(err, NS_ERR_NOMEM, "out of memory");
    int k = 0;
    const cJSON *one;
    cJSON_ArrayForEach(one, to)
    {
        if (cJSON_IsString(one))
            rcpt[k++] = one->valuestring;
    }
    file_t f = {0};
    ns_mail_attachment_t att = {0};
    const cJSON *file = cJSON_GetObjectItemCaseSensitive(payload, "file");
    ns_err_t rc = file ? load_file(pg, file, &f, err) : NS_OK;
    if (rc == NS_OK && f.r != NULL)
        att = (ns_mail_attachment_t){.filename = PQgetvalue(f.r, 0, 0),
                                     .mime_type = PQgetvalue(f.r, 0, 1),
                                     .data = PQgetvalue(f.r, 0, 2),
                                     .len = (size_t)PQgetlength(f.r, 0, 2)};
    if (rc == NS_OK) {
        ns_mail_t m = {.from = smtp->from,
                       .to = rcpt,
                       .subject = str_of(payload, "subject"),
                       .text = str_of(payload, "text"),
                       .attachments = f.r != NULL ? &att : NULL,
                       .n_attachments = f.r != NULL ? 1 : 0};
        const char *tls = smtp->starttls;
        ns_mail_server_t srv = {
            .url = smtp->url,
            .user = smtp->user[0] ? smtp->user : NULL,
            .password = smtp->password,
            .starttls = strcmp(tls, "none") == 0  ? NS_MAIL_TLS_NONE
                        : strcmp(tls, "try") == 0 ? NS_MAIL_TLS_TRY
                                                  : NS_MAIL_TLS_REQUIRED,
            .timeout_ms = smtp->timeout_s * 1000L};
        rc = ns_mail_send(&srv, &m, err);
        /* A setting to fix (bad URL): keep the message, retry later. */
        if (rc == NS_ERR_INVALID)
            err->code = rc = NS_ERR_TRANSIENT;
    }
    PQclear(f.r);
    free(rcpt);
    return rc;
}

/* {"title", "text", "facts", "severity"} as an Adaptive Card; the target
 * is the name of one of teams.webhooks (the URL is a secret and stays in
 * the configuration). */
static ns_err_t send_teams(PGconn *pg, const ns_config_t *cfg,
                           const char *target, const cJSON *payload,
                           ns_error_t *err)
{
    (void)pg;
    const char *url = ns_config_teams_url(cfg, target);
    if (url == NULL || url[0] == '\0')
        return ns_error_set(err, NS_ERR_PERMANENT,
                            "teams: no webhook \"%s\" in teams.webhooks",
                            target);
    char *body = ns_teams_message(payload);
    if (body == NULL)
        return ns_error_set(err, NS_ERR_NOMEM, "out of memory");
    ns_err_t rc = ns_teams_post(url, body, cfg->teams.timeout_s * 1000L, err);
    free(body);
    return rc;
}

/* {"storage": XHTML, "title"?: text, "files"?: [outbox_files ids]}: the
 * page's new body with its attachments; the target is the page id. */
static ns_err_t send_confluence(PGconn *pg, const ns_config_t *cfg,
                                const char *target, const cJSON *payload,
                                ns_error_t *err)
{
    const char *storage = str_of(payload, "storage");
    if (storage == NULL)
        return ns_error_set(err, NS_ERR_PERMANENT,
                            "confluence payload has no storage body");
    const cJSON *ids = cJSON_GetObjectItemCaseSensitive(payload, "files");
    int n = cJSON_IsArray(ids) ? cJSON_GetArraySize(ids) : 0;
    file_t *loaded = calloc((size_t)n + 1, sizeof(*loaded));
    ns_confluence_file_t *files = calloc((size_t)n + 1, sizeof(*files));
    ns_err_t rc = loaded && files
                      ? NS_OK
                      : ns_error_set(err, NS_ERR_NOMEM, "out of memory");
    for (int i = 0; rc == NS_OK && i < n; i++) {
        rc = load_file(pg, cJSON_GetArrayItem(ids, i), &loaded[i], err);
        if (rc == NS_OK)
            files[i] = (ns_confluence_file_t){
                .filename = PQgetvalue(loaded[i].r, 0, 0),
                .mime_type = PQgetvalue(loaded[i].r, 0, 1),
                .data = PQgetvalue(loaded[i].r, 0, 2),
                .len = (size_t)PQgetlength(loaded[i].r, 0, 2)};
    }
    if (rc == NS_OK)
        rc = ns_confluence_publish(&cfg->confluence, target,
                                   str_of(payload, "title"), storage, files,
                                   (size_t)n, err);
    for (int i = 0; loaded != NULL && i < n; i++)
        PQclear(loaded[i].r);
    free(loaded);
    free(files);
    return rc;
}

static const struct {
    const char *channel;
    send_fn send;
} channels[] = {
    {"telegram", send_telegram},
    {"email", send_email},
    {"teams", send_teams},
    {"confluence", send_confluence},
};

static send_fn find_channel(const char *name)
{
    for (size_t i = 0; i < sizeof(channels) / sizeof(channels[0]); i++)
        if (strcmp(channels[i].channel, name) == 0)
            return channels[i].send;
    return NULL;
}

static void count(const char *channel, const char *outcome)
{
    char labels[200];
    snprintf(labels, sizeof(labels), "channel=\"%s\",outcome=\"%s\"", channel,
             outcome);
    ns_metrics_counter_add("nightshift_outbox_deliveries_total",
                           "Outbox delivery attempts by outcome.", labels, 1);
}

/* A job's notify.telegram.mode for a run of items_total items: 1 to pack
 * its reports into digests. auto packs runs of more than
 * digest_min_items (default 20) items. */
static int digest_mode(const ns_config_t *cfg, const char *job_name,
                       int64_t items_total)
{
    const ns_job_t *job = job_name ? ns_config_job(cfg, job_name) : NULL;
    if (job == NULL)
        return 0;
    const cJSON *tg = cJSON_GetObjectItemCaseSensitive(job->notify, "telegram");
    const cJSON *mode = cJSON_GetObjectItemCaseSensitive(tg, "mode");
    const cJSON *min = cJSON_GetObjectItemCaseSensitive(tg, "digest_min_items");
    const char *m = cJSON_IsString(mode) ? mode->valuestring : "auto";
    if (strcmp(m, "digest") == 0)
        return 1;
    if (strcmp(m, "per_project") == 0)
        return 0;
    int64_t threshold = cJSON_IsNumber(min) ? (int64_t)min->valuedouble : 20;
    return items_total > threshold;
}

/* The message being delivered: the head row, plus, for a digest, the
 * reports that follow it (same run, same target) packed with it. */
typedef struct delivery {
    char id[24]; /* the head row */
    char channel[64];
    char *target;
    cJSON *payload; /* the head's, or the digest's {"text": ...} */
    int attempts;
    char kind[16];
    char run_id[24]; /* "" when none */
    char job[128];
    int64_t items_total;
    char *packed_ids; /* "{id,id,...}" of every row sent, head included */
    int n_packed;
} delivery_t;

static void delivery_free(delivery_t *d)
{
    free(d->target);
    cJSON_Delete(d->payload);
    free(d->packed_ids);
}

/* Packs the reports queued right behind the head into its message, up to
 * Telegram's length: the head and each follower are whole reports of the
 * same run to the same target. Followers are locked with the head. */
static void pack_followers(PGconn *pg, delivery_t *d)
{
    const cJSON *text = cJSON_GetObjectItemCaseSensitive(d->payload, "text");
    if (!cJSON_IsString(text))
        return;
    const char *params[] = {d->channel, d->target, d->id};
    ns_error_t err;
    PGresult *r = ns_pg_query(
        pg,
        "SELECT id, kind, coalesce(run_id::text, ''), payload->>'text', "
        "payload ? 'file' FROM outbox WHERE status = 'pending' AND channel "
        "= $1 AND target = $2 AND id > $3::bigint ORDER BY id LIMIT 64 FOR "
        "UPDATE SKIP LOCKED",
        3, params, &err);
    if (r == NULL)
        return;
    int n = PQntuples(r);
    const char **texts = calloc((size_t)n + 1, sizeof(*texts));
    size_t *widths = calloc((size_t)n + 1, sizeof(*widths));
    int k = 0;
    if (texts != NULL && widths != NULL) {
        texts[0] = text->valuestring;
        widths[0] = ns_tg_html_width(text->valuestring);
        /* Only the unbroken run of this run's whole reports right behind
         * the head: anything else keeps its place in the chat's order. */
        while (k < n && strcmp(PQgetvalue(r, k, 1), "report") == 0 &&
               strcmp(PQgetvalue(r, k, 2), d->run_id) == 0 &&
               !PQgetisnull(r, k, 3) && PQgetvalue(r, k, 4)[0] == 'f') {
            texts[k + 1] = PQgetvalue(r, k, 3);
            widths[k + 1] = ns_tg_html_width(texts[k + 1]);
            k++;
        }
        k = (int)ns_tg_digest_fit(widths, (size_t)k + 1, NS_TG_MAX_TEXT) - 1;
    }
    char *joined = k > 0 ? ns_tg_digest_join(texts, (size_t)k + 1) : NULL;
    ns_buf_t ids;
    ns_buf_init(&ids, 1 << 16);
    ns_buf_addf(&ids, "{%s", d->id);
    for (int i = 0; joined != NULL && i < k; i++)
        ns_buf_addf(&ids, ",%s", PQgetvalue(r, i, 0));
    ns_buf_add(&ids, "}", 1);
    if (joined != NULL && ids.data != NULL) {
        cJSON *digest = cJSON_CreateObject();
        cJSON_AddStringToObject(digest, "text", joined);
        cJSON_Delete(d->payload);
        d->payload = digest;
        free(d->packed_ids);
        d->packed_ids = ns_buf_take(&ids);
        d->n_packed = k + 1;
    }
    ns_buf_free(&ids);
    free(joined);
    free(texts);
    free(widths);
    PQclear(r);
}

/* The oldest due message of a target whose older messages are all
 * delivered (per-target order even with several dispatchers); a summary
 * also waits for every other message of its run. 0: none due. */
static int take_head(PGconn *pg, delivery_t *d, ns_error_t *err)
{
    PGresult *r = ns_pg_query(
        pg,
        "SELECT o.id, o.channel, o.target, o.payload::text, o.attempts, "
        "o.kind, coalesce(o.run_id::text, ''), coalesce(r.job, ''), "
        "coalesce(r.items_total, 0) FROM outbox o LEFT JOIN runs r ON "
        "r.run_id = o.run_id WHERE o.status = 'pending' AND "
        "o.next_attempt_at <= now() AND NOT EXISTS (SELECT 1 FROM outbox p "
        "WHERE p.status = 'pending' AND p.channel = o.channel AND p.target "
        "= o.target AND p.id < o.id) AND NOT (o.kind = 'summary' AND EXISTS "
        "(SELECT 1 FROM outbox q WHERE q.status = 'pending' AND q.run_id = "
        "o.run_id AND q.id < o.id)) ORDER BY o.id LIMIT 1 FOR UPDATE OF o "
        "SKIP LOCKED",
        0, NULL, err);
    if (r == NULL)
        return -1;
    if (PQntuples(r) == 0) {
        PQclear(r);
        return 0;
    }
    snprintf(d->id, sizeof(d->id), "%s", PQgetvalue(r, 0, 0));
    snprintf(d->channel, sizeof(d->channel), "%s", PQgetvalue(r, 0, 1));
    d->target = strdup(PQgetvalue(r, 0, 2));
    d->payload = cJSON_Parse(PQgetvalue(r, 0, 3));
    d->attempts = (int)ns_pg_int64(r, 0, 4) + 1;
    snprintf(d->kind, sizeof(d->kind), "%s", PQgetvalue(r, 0, 5));
    snprintf(d->run_id, sizeof(d->run_id), "%s", PQgetvalue(r, 0, 6));
    snprintf(d->job, sizeof(d->job), "%s", PQgetvalue(r, 0, 7));
    d->items_total = ns_pg_int64(r, 0, 8);
    PQclear(r);
    d->n_packed = 1;
    size_t len = strlen(d->id) + 3;
    d->packed_ids = malloc(len);
    if (d->target == NULL || d->packed_ids == NULL)
        return ns_error_set(err, NS_ERR_NOMEM, "out of memory"), -1;
    snprintf(d->packed_ids, len, "{%s}", d->id);
    return 1;
}

static int reschedule(PGconn *pg, const delivery_t *d, int64_t wait_ms)
{
    char delay[32];
    snprintf(delay, sizeof(delay), "%.3f", (double)wait_ms / 1000.0);
    const char *p[] = {d->id, delay};
    ns_error_t err;
    int ok = ns_pg_exec(pg,
                        "UPDATE outbox SET next_attempt_at = now() + "
                        "make_interval(secs => $2::double precision) "
                        "WHERE id = $1::bigint",
                        2, p, &err) == NS_OK &&
             ns_pg_exec(pg, "COMMIT", 0, NULL, &err) == NS_OK;
    if (!ok)
        ns_pg_rollback(pg);
    return ok ? 1 : -1;
}

/* Once the last pending message of a finished run is sent or failed, the
 * run records when its reports were all delivered. */
static void mark_run_delivered(PGconn *pg, const char *run_id)
{
    if (run_id[0] == '\0')
        return;
    const char *p[] = {run_id};
    ns_error_t err;
    ns_pg_exec(pg,
               "UPDATE runs SET delivered_at = now() WHERE run_id = "
               "$1::bigint AND delivered_at IS NULL AND status IN "
               "('succeeded', 'failed', 'cancelled') AND NOT EXISTS (SELECT "
               "1 FROM outbox WHERE run_id = $1::bigint AND status = "
               "'pending')",
               1, p, &err);
}

/* Runs the outcome's statement, then (terminal outcomes) the run's
 * delivered mark, and commits. */
static int finish(PGconn *pg, const delivery_t *d, const char *sql, int n,
                  const char *const *params, bool terminal)
{
    ns_log_ctx_t lc = {0};
    ns_error_t uerr;
    ns_error_clear(&uerr);
    int ok = ns_pg_exec(pg, sql, n, params, &uerr) == NS_OK;
    if (ok && terminal)
        mark_run_delivered(pg, d->run_id);
    ok = ok && ns_pg_exec(pg, "COMMIT", 0, NULL, &uerr) == NS_OK;
    if (!ok) {
        /* The send happened but is not recorded: the documented duplicate
         * window. Say so loudly. */
        ns_pg_rollback(pg);
        NS_ERROR(&lc, "outbox %s: recording delivery failed: %s", d->id,
                 uerr.msg);
    }
    return ok ? 1 : -1;
}

/* Records a send's outcome for every row it carried. */
static int record(PGconn *pg, const delivery_t *d, ns_err_t rc,
                  const ns_error_t *err)
{
    ns_log_ctx_t lc = {0};
    char att[24], delay_s[32];
    ns_pg_i64str(d->attempts, att);
    const char *params[3] = {d->id};
    int n_params = 1;
    const char *sql;
    if (rc == NS_OK) {
        sql = "UPDATE outbox SET status = 'sent', sent_at = now(), "
              "attempts = CASE WHEN id = $1::bigint THEN $2::int ELSE 1 END, "
              "last_error = NULL, sent_with = $1::bigint WHERE id = "
              "ANY($3::bigint[])";
        params[1] = att;
        params[2] = d->packed_ids;
        n_params = 3;
        count(d->channel, "sent");
        if (d->n_packed > 1)
            ns_metrics_counter_add("nightshift_outbox_packed_total",
                                   "Reports sent inside a digest with "
                                   "others.",
                                   NULL, d->n_packed);
    } else if (rc != NS_ERR_TRANSIENT && d->n_packed > 1) {
        /* The digest was refused: send the head on its own next, so that
         * one bad report fails alone and the rest go on. */
        sql = "UPDATE outbox SET kind = 'message', last_error = $2 WHERE "
              "id = $1::bigint";
        params[1] = err->msg;
        n_params = 2;
        NS_WARN(&lc,
                "outbox %s to %s: digest of %d refused (%s); sending them "
                "one by one",
                d->channel, d->target, d->n_packed, err->msg);
        count(d->channel, "digest_refused");
    } else if (rc == NS_ERR_TRANSIENT && d->attempts < NS_OUTBOX_MAX_ATTEMPTS) {
        ns_retry_t policy = {.backoff_s = 2, .backoff_max_s = 600};
        unsigned seed = (unsigned)d->attempts * 2654435761u;
        snprintf(
            delay_s, sizeof(delay_s), "%.3f",
            ns_backoff_ms(&policy, d->attempts, err->retry_after_s, &seed) /
                1000.0);
        sql = "UPDATE outbox SET attempts = $2::int, last_error = $3, "
              "next_attempt_at = now() + make_interval(secs => "
              "$4::double precision) WHERE id = $1::bigint";
        NS_WARN(&lc, "outbox %s to %s: attempt %d failed (%s), retry in %s s",
                d->channel, d->target, d->attempts, err->msg, delay_s);
        count(d->channel, err->http_status == 429 ? "refused_429" : "retry");
        const char *p4[] = {d->id, att, err->msg, delay_s};
        return finish(pg, d, sql, 4, p4, false);
    } else {
        sql = "UPDATE outbox SET status = 'failed', attempts = $2::int, "
              "last_error = $3 WHERE id = $1::bigint";
        params[1] = att;
        params[2] = err->msg;
        n_params = 3;
        NS_ERROR(&lc, "outbox %s to %s: giving up after %d attempts: %s",
                 d->channel, d->target, d->attempts, err->msg);
        count(d->channel, "failed");
    }
    bool terminal = rc == NS_OK || d->n_packed == 1;
    return finish(pg, d, sql, n_params, params, terminal);
}

int ns_outbox_dispatch_one(PGconn *pg, const ns_config_t *cfg,
                           ns_ratelimit_t *rl)
{
    ns_error_t err;
    ns_error_clear(&err);
    if (ns_pg_exec(pg, "BEGIN", 0, NULL, &err) != NS_OK)
        return -1;
    delivery_t d = {0};
    int got = take_head(pg, &d, &err);
    if (got <= 0) {
        ns_pg_rollback(pg);
        delivery_free(&d);
        return got;
    }
    int64_t wait_ms = ns_pacing_take(rl, cfg, d.channel, d.target);
    if (wait_ms > 0) {
        count(d.channel, "paced");
        int rc = reschedule(pg, &d, wait_ms);
        delivery_free(&d);
        return rc;
    }
    if (strcmp(d.kind, "report") == 0 && strcmp(d.channel, "telegram") == 0 &&
        digest_mode(cfg, d.job, d.items_total))
        pack_followers(pg, &d);
    send_fn send = find_channel(d.channel);
    ns_err_t rc = send ? send(pg, cfg, d.target, d.payload, &err)
                       : ns_error_set(&err, NS_ERR_PERMANENT,
                                      "unknown channel \"%s\"", d.channel);
    int out = record(pg, &d, rc, &err);
    delivery_free(&d);
    return out;
}

int64_t ns_outbox_next_due_ms(PGconn *pg)
{
    ns_error_t err;
    PGresult *r = ns_pg_query(pg,
                              "SELECT ceil(extract(epoch FROM "
                              "min(next_attempt_at) - now()) * 1000) FROM "
                              "outbox WHERE status = 'pending'",
                              0, NULL, &err);
    int64_t ms = -1;
    if (r != NULL && PQntuples(r) == 1 && !PQgetisnull(r, 0, 0)) {
        ms = ns_pg_int64(r, 0, 0);
        ms = ms < 0 ? 0 : ms;
    }
    PQclear(r);
    return ms;
}

/* Pending messages and the age of the oldest, per channel, for /metrics:
 * outbox lag is how far delivery is behind. Every channel is published,
 * 0 when idle, so a dashboard's series never vanish. */
static void publish_lag(PGconn *pg)
{
    ns_error_t err;
    PGresult *r = ns_pg_query(
        pg,
        "SELECT channel, count(*), extract(epoch FROM now() - "
        "min(created_at)) FROM outbox WHERE status = 'pending' GROUP BY "
        "channel",
        0, NULL, &err);
    if (r == NULL)
        return;
    for (size_t c = 0; c < sizeof(channels) / sizeof(channels[0]); c++) {
        double pending = 0, lag = 0;
        for (int i = 0; i < PQntuples(r); i++)
            if (strcmp(PQgetvalue(r, i, 0), channels[c].channel) == 0) {
                pending = (double)ns_pg_int64(r, i, 1);
                lag = atof(PQgetvalue(r, i, 2));
            }
        char labels[96];
        snprintf(labels, sizeof(labels), "channel=\"%s\"", channels[c].channel);
        ns_metrics_gauge_set("nightshift_outbox_pending",
                             "Outbox messages waiting to be delivered.", labels,
                             pending);
        ns_metrics_gauge_set("nightshift_outbox_lag_seconds",
                             "Age of the oldest undelivered outbox message.",
                             labels, lag);
    }
    PQclear(r);
}

struct ns_outbox {
    pthread_t thread;
    ns_item_res_t res;
};

#define LAG_EVERY_MS 5000
#define IDLE_MAX_MS 200

static void *outbox_main(void *arg)
{
    ns_outbox_t *o = arg;
    int64_t last_lag = 0;
    while (*o->res.running) {
        if (!ns_item_pg_wait(&o->res))
            break;
        int64_t now = ns_clock_mono_ms();
        if (now - last_lag >= LAG_EVERY_MS) {
            last_lag = now;
            publish_lag(o->res.pg);
        }
        int n = ns_outbox_dispatch_one(o->res.pg, o->res.cfg, o->res.rl);
        if (n < 0) {
            ns_item_sleep(&o->res, 1000);
        } else if (n == 0) {
            /* Sleep until the next message is due (a paced one is due
             * when its token is), never longer than IDLE_MAX_MS: new
             * messages do not wake us. */
            int64_t due = ns_outbox_next_due_ms(o->res.pg);
            if (due < 0 || due > IDLE_MAX_MS)
                due = IDLE_MAX_MS;
            ns_item_sleep(&o->res, due < 2 ? 2 : due);
        }
    }
    PQfinish(o->res.pg);
    o->res.pg = NULL;
    return NULL;
}

ns_outbox_t *ns_outbox_start(const ns_config_t *cfg, ns_ratelimit_t *rl,
                             volatile sig_atomic_t *running, ns_error_t *err)
{
    ns_outbox_t *o = calloc(1, sizeof(*o));
    if (o == NULL) {
        ns_error_set(err, NS_ERR_NOMEM, "out of memory");
        return NULL;
    }
    o->res.cfg = cfg;
    o->res.rl = rl;
    o->res.running = running;
    if (pthread_create(&o->thread, NULL, outbox_main, o) != 0) {
        free(o);
        ns_error_set(err, NS_ERR_IO, "outbox: cannot start thread");
        return NULL;
    }
    return o;
}

void ns_outbox_join(ns_outbox_t *o)
{
    if (o == NULL)
        return;
    pthread_join(o->thread, NULL);
    free(o);
}
