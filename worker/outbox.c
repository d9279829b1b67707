#include "outbox.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "item.h"
#include "ns/log.h"
#include "ns/metrics.h"
#include "ns/pg.h"
#include "ns/retry.h"
#include "ns/telegram.h"

typedef ns_err_t (*send_fn)(const ns_config_t *cfg, const char *target,
                            const cJSON *payload, ns_error_t *err);

static ns_err_t send_telegram(const ns_config_t *cfg, const char *target,
                              const cJSON *payload, ns_error_t *err)
{
    const cJSON *text = cJSON_GetObjectItemCaseSensitive(payload, "text");
    if (!cJSON_IsString(text))
        return ns_error_set(err, NS_ERR_PERMANENT, "payload has no text");
    return ns_tg_send_message(&cfg->telegram, target, text->valuestring, err);
}

static const struct {
    const char *channel;
    send_fn send;
} channels[] = {
    {"telegram", send_telegram},
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
    ns_err_t rc = send ? send(cfg, target, payload, &err)
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
