#include "outbox.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ns/log.h"
#include "ns/mail.h"
#include "ns/metrics.h"
#include "ns/pg.h"
#include "ns/retry.h"
#include "ns/telegram.h"
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

static const struct {
    const char *channel;
    send_fn send;
} channels[] = {
    {"telegram", send_telegram},
    {"email", send_email},
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

/* Milliseconds until the shared limits allow a message to target (0: go).
 * Never waits; a limiter outage lets everything through. */
static int64_t limit_wait(const ns_config_t *cfg, ns_ratelimit_t *rl,
                          const char *channel, const char *target)
{
    ns_item_res_t res = {.cfg = cfg, .rl = rl};
    char chat_limit[80];
    snprintf(chat_limit, sizeof(chat_limit), "%s.chat", channel);
    const char *names[] = {channel, chat_limit};
    const char *suffixes[] = {NULL, target};
    for (int i = 0; i < 2; i++) {
        ns_error_t err;
        ns_error_clear(&err);
        if (ns_item_limit(&res, names[i], suffixes[i], 0, &err) ==
            NS_ERR_DEFERRED)
            return (int64_t)(err.retry_after_s * 1000) + 1;
    }
    return 0;
}

int ns_outbox_dispatch_one(PGconn *pg, const ns_config_t *cfg,
                           ns_ratelimit_t *rl)
{
    ns_error_t err;
    ns_error_clear(&err);
    if (ns_pg_exec(pg, "BEGIN", 0, NULL, &err) != NS_OK)
        return -1;
    /* The oldest due message of a target whose older messages are all
     * delivered: per-target order holds even with several dispatchers. */
    PGresult *r = ns_pg_query(
        pg,
        "SELECT id, channel, target, payload::text, attempts FROM outbox o "
        "WHERE status = 'pending' AND next_attempt_at <= now() AND NOT "
        "EXISTS (SELECT 1 FROM outbox p WHERE p.status = 'pending' AND "
        "p.channel = o.channel AND p.target = o.target AND p.id < o.id) "
        "ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED",
        0, NULL, &err);
    if (r == NULL) {
        ns_pg_rollback(pg);
        return -1;
    }
    if (PQntuples(r) == 0) {
        PQclear(r);
        ns_pg_rollback(pg);
        return 0;
    }
    char id[24], channel[64];
    snprintf(id, sizeof(id), "%s", PQgetvalue(r, 0, 0));
    snprintf(channel, sizeof(channel), "%s", PQgetvalue(r, 0, 1));
    char *target = strdup(PQgetvalue(r, 0, 2));
    cJSON *payload = cJSON_Parse(PQgetvalue(r, 0, 3));
    int attempts = (int)ns_pg_int64(r, 0, 4) + 1;
    PQclear(r);

    int64_t wait_ms = limit_wait(cfg, rl, channel, target);
    if (wait_ms > 0) {
        char delay[32];
        snprintf(delay, sizeof(delay), "%.3f", wait_ms / 1000.0);
        const char *p[] = {id, delay};
        ns_error_t uerr;
        int ok = ns_pg_exec(pg,
                            "UPDATE outbox SET next_attempt_at = now() + "
                            "make_interval(secs => $2::double precision) "
                            "WHERE id = $1::bigint",
                            2, p, &uerr) == NS_OK &&
                 ns_pg_exec(pg, "COMMIT", 0, NULL, &uerr) == NS_OK;
        if (!ok)
            ns_pg_rollback(pg);
        count(channel, "rate_limited");
        free(target);
        cJSON_Delete(payload);
        return ok ? 1 : -1;
    }
    send_fn send = find_channel(channel);
    ns_err_t rc = send ? send(pg, cfg, target, payload, &err)
                       : ns_error_set(&err, NS_ERR_PERMANENT,
                                      "unknown channel \"%s\"", channel);
    ns_log_ctx_t lc = {0};
    const char *sql;
    char delay_s[32] = "0";
    if (rc == NS_OK) {
        sql = "UPDATE outbox SET status = 'sent', sent_at = now(), "
              "attempts = $2, last_error = NULL WHERE id = $1::bigint";
        count(channel, "sent");
    } else if (rc == NS_ERR_TRANSIENT && attempts < NS_OUTBOX_MAX_ATTEMPTS) {
        ns_retry_t policy = {.backoff_s = 2, .backoff_max_s = 600};
        unsigned seed = (unsigned)attempts * 2654435761u;
        snprintf(delay_s, sizeof(delay_s), "%.3f",
                 ns_backoff_ms(&policy, attempts, err.retry_after_s, &seed) /
                     1000.0);
        sql = "UPDATE outbox SET attempts = $2, last_error = $3, "
              "next_attempt_at = now() + make_interval(secs => "
              "$4::double precision) WHERE id = $1::bigint";
        NS_WARN(&lc, "outbox %s to %s: attempt %d failed (%s), retry in %s s",
                channel, target, attempts, err.msg, delay_s);
        count(channel, "retry");
    } else {
        sql = "UPDATE outbox SET status = 'failed', attempts = $2, "
              "last_error = $3 WHERE id = $1::bigint";
        NS_ERROR(&lc, "outbox %s to %s: giving up after %d attempts: %s",
                 channel, target, attempts, err.msg);
        count(channel, "failed");
    }
    char att[24];
    ns_pg_i64str(attempts, att);
    const char *params[] = {id, att, err.msg, delay_s};
    int n = rc == NS_OK ? 2 : (strstr(sql, "$4") ? 4 : 3);
    ns_error_t uerr;
    ns_error_clear(&uerr);
    int ok = ns_pg_exec(pg, sql, n, params, &uerr) == NS_OK &&
             ns_pg_exec(pg, "COMMIT", 0, NULL, &uerr) == NS_OK;
    if (!ok) {
        /* The send happened but is not recorded: the documented duplicate
         * window. Say so loudly. */
        ns_pg_rollback(pg);
        NS_ERROR(&lc, "outbox %s: recording delivery failed: %s", id, uerr.msg);
    }
    free(target);
    cJSON_Delete(payload);
    return ok ? 1 : -1;
}

struct ns_outbox {
    pthread_t thread;
    ns_item_res_t res;
};

static void *outbox_main(void *arg)
{
    ns_outbox_t *o = arg;
    while (*o->res.running) {
        if (!ns_item_pg_wait(&o->res))
            break;
        int n = ns_outbox_dispatch_one(o->res.pg, o->res.cfg, o->res.rl);
        if (n <= 0)
            ns_item_sleep(&o->res, n < 0 ? 1000 : 200);
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
