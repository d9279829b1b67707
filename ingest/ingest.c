/* ingest.c: `nightshift ingest`, the endpoint Telegram's setWebhook points
 * at. An update is appended to the ingest topic (acks=all, idempotent
 * producer), keyed by its chat, before it is answered 200: once Telegram
 * saw 200 the update is in Kafka, whether Postgres is up or not, and the
 * stream job behind the topic (ingest.telegram) stores it when it can.
 *
 *   POST /telegram/webhook       an Update; the X-Telegram-Bot-Api-Secret-
 *                                Token header must equal ingest.secret_token
 *   POST /telegram/bot-response  a bot's own reply: the Message its
 *                                sendMessage returned (same header); stored
 *                                as {"bot_response": message}
 *
 * 401: a missing or wrong secret; 400: not UTF-8, not a JSON object, no
 * update_id (or no chat for a bot response); 413: over max_body_bytes;
 * 503: Kafka did not acknowledge in time (Telegram delivers it again). */
#include "ingest.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ns/httpd.h"
#include "ns/kafka.h"
#include "ns/log.h"
#include "ns/metrics.h"
#include "ns/utf8.h"

#define SECRET_HEADER "X-Telegram-Bot-Api-Secret-Token"

struct ns_ingest {
    const ns_config_t *cfg;
    rd_kafka_t *rk;
    ns_httpd_t *httpd;
};

static void count(const char *route, const char *outcome)
{
    char labels[160];
    snprintf(labels, sizeof(labels), "route=\"%s\",outcome=\"%s\"", route,
             outcome);
    ns_metrics_counter_add("nightshift_ingest_requests_total",
                           "Webhook requests by outcome.", labels, 1);
}

/* Compares without stopping at the first difference. */
static bool same_secret(const char *given, const char *want)
{
    if (given == NULL)
        return false;
    size_t a = strlen(given), b = strlen(want);
    unsigned char diff = a != b;
    for (size_t i = 0; i < b; i++)
        diff |= (unsigned char)(given[i < a ? i : 0] ^ want[i]);
    return diff == 0;
}

static const cJSON *get(const cJSON *o, const char *key)
{
    return cJSON_GetObjectItemCaseSensitive(o, key);
}

/* The chat an update belongs to, for the message key: one chat's updates
 * stay in order. */
static bool chat_of(const cJSON *update, char *out, size_t cap)
{
    static const char *const with_chat[] = {"message",
                                            "edited_message",
                                            "channel_post",
                                            "edited_channel_post",
                                            "business_message",
                                            "edited_business_message",
                                            "my_chat_member",
                                            "chat_member",
                                            "chat_join_request",
                                            "message_reaction",
                                            NULL};
    const cJSON *chat = NULL;
    for (int i = 0; with_chat[i] != NULL && chat == NULL; i++)
        chat = get(get(update, with_chat[i]), "chat");
    if (chat == NULL)
        chat = get(get(get(update, "callback_query"), "message"), "chat");
    if (chat == NULL)
        chat = get(update, "chat"); /* a Message (bot response) */
    const cJSON *id = get(chat, "id");
    if (cJSON_IsNumber(id)) {
        snprintf(out, cap, "%.0f", id->valuedouble);
        return true;
    }
    /* Inline queries and the like: keyed by their user. */
    const cJSON *from = NULL;
    for (const cJSON *c = update ? update->child : NULL; c && !from;
         c = c->next)
        if (cJSON_IsObject(c))
            from = get(get(c, "from"), "id");
    snprintf(out, cap, cJSON_IsNumber(from) ? "user:%.0f" : "none",
             cJSON_IsNumber(from) ? from->valuedouble : 0.0);
    return false;
}

static void answer(int *status, const char **type, char **body, int code,
                   const char *description)
{
    *status = code;
    *type = "application/json";
    cJSON *o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "ok", code == 200);
    if (description != NULL)
        cJSON_AddStringToObject(o, "description", description);
    *body = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
}

static void take(ns_ingest_t *in, const ns_httpd_request_t *req,
                 bool bot_response, int *status, const char **type, char **body)
{
    const char *route = bot_response ? "bot-response" : "webhook";
    if (!same_secret(req->header(req, SECRET_HEADER),
                     in->cfg->ingest.secret_token)) {
        count(route, "unauthorized");
        answer(status, type, body, 401, "Unauthorized");
        return;
    }
    long bad = ns_utf8_invalid_at(req->body, req->body_len);
    cJSON *doc =
        bad < 0 ? cJSON_ParseWithLength(req->body, req->body_len) : NULL;
    const char *problem = bad >= 0               ? "invalid UTF-8"
                          : !cJSON_IsObject(doc) ? "not a JSON object"
                                                 : NULL;
    char key[64];
    bool has_chat = doc != NULL && chat_of(doc, key, sizeof(key));
    if (problem == NULL && !bot_response &&
        !cJSON_IsNumber(get(doc, "update_id")))
        problem = "no update_id";
    if (problem == NULL && bot_response &&
        (!has_chat || !cJSON_IsNumber(get(doc, "message_id"))))
        problem = "a bot response is a Message: chat and message_id";
    if (problem != NULL) {
        cJSON_Delete(doc);
        count(route, "bad_request");
        char why[120];
        snprintf(why, sizeof(why), "Bad Request: %s", problem);
        answer(status, type, body, 400, why);
        return;
    }
    char *value = NULL;
    if (bot_response) {
        cJSON *wrap = cJSON_CreateObject();
        cJSON_AddItemToObject(wrap, "bot_response", doc);
        value = cJSON_PrintUnformatted(wrap);
        cJSON_Delete(wrap);
    } else {
        cJSON_Delete(doc);
    }
    const char *bytes = value != NULL ? value : req->body;
    size_t len = value != NULL ? strlen(value) : req->body_len;
    ns_error_t err;
    ns_error_clear(&err);
    ns_err_t rc = ns_kafka_produce_sync(in->rk, in->cfg->ingest.topic, key,
                                        strlen(key), bytes, len, NULL,
                                        in->cfg->ingest.timeout_ms, &err);
    free(value);
    if (rc != NS_OK) {
        NS_WARN(NULL, "ingest: not appended, answering 503: %s", err.msg);
        count(route, "unavailable");
        answer(status, type, body, 503, "Service Unavailable: retry later");
        return;
    }
    count(route, "accepted");
    answer(status, type, body, 200, NULL);
}

static void on_webhook(void *arg, const ns_httpd_request_t *req, int *status,
                       const char **type, char **body)
{
    take(arg, req, false, status, type, body);
}

static void on_bot_response(void *arg, const ns_httpd_request_t *req,
                            int *status, const char **type, char **body)
{
    take(arg, req, true, status, type, body);
}

/* Telegram's rule for secret_token: 1-256 of A-Z a-z 0-9 _ -. */
static bool secret_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 256)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
              (*s >= '0' && *s <= '9') || *s == '_' || *s == '-'))
            return false;
    return true;
}

static int ready(void *arg)
{
    (void)arg;
    return 1; /* the topic was there at start; Kafka says the rest (503) */
}

ns_ingest_t *ns_ingest_new(const ns_config_t *cfg, ns_error_t *err)
{
    const ns_ingest_settings_t *s = &cfg->ingest;
    if (!secret_ok(s->secret_token)) {
        ns_error_set(err, NS_ERR_INVALID,
                     "ingest: set NS_TELEGRAM_WEBHOOK_SECRET (or "
                     "ingest.secret_token) to 1-256 characters of A-Z a-z "
                     "0-9 _ - and pass the same secret_token to setWebhook");
        return NULL;
    }
    ns_ingest_t *in = calloc(1, sizeof(*in));
    if (in == NULL) {
        ns_error_set(err, NS_ERR_NOMEM, "out of memory");
        return NULL;
    }
    in->cfg = cfg;
    rd_kafka_conf_t *conf = ns_kafka_conf(cfg, err);
    char timeout[24];
    snprintf(timeout, sizeof(timeout), "%d", s->timeout_ms);
    if (conf != NULL) {
        rd_kafka_conf_set_dr_msg_cb(conf, ns_kafka_sync_dr);
        if (ns_kafka_set(conf, "enable.idempotence", "true", err) != NS_OK ||
            ns_kafka_set(conf, "acks", "all", err) != NS_OK ||
            ns_kafka_set(conf, "linger.ms", "1", err) != NS_OK ||
            /* A request never waits longer than this for Kafka. */
            ns_kafka_set(conf, "message.timeout.ms", timeout, err) != NS_OK) {
            rd_kafka_conf_destroy(conf);
            conf = NULL;
        }
    }
    char errstr[512];
    if (conf != NULL) {
        in->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
        if (in->rk == NULL) {
            rd_kafka_conf_destroy(conf);
            ns_error_set(err, NS_ERR_INVALID, "kafka producer: %s", errstr);
        }
    }
    if (in->rk == NULL || ns_kafka_ensure_topic(in->rk, s->topic, s->partitions,
                                                10000, err) != NS_OK) {
        ns_ingest_destroy(in);
        return NULL;
    }
    in->httpd = ns_httpd_new(s->bind, s->port, ready, in, err);
    if (in->httpd == NULL ||
        ns_httpd_route(in->httpd, "POST", "/telegram/webhook", s->max_body,
                       on_webhook, in) != NS_OK ||
        ns_httpd_route(in->httpd, "POST", "/telegram/bot-response", s->max_body,
                       on_bot_response, in) != NS_OK) {
        ns_ingest_destroy(in);
        return NULL;
    }
    return in;
}

int ns_ingest_port(const ns_ingest_t *in)
{
    return ns_httpd_port(in->httpd);
}

int ns_ingest_run(ns_ingest_t *in, volatile sig_atomic_t *running)
{
    NS_INFO(NULL, "ingest: listening on %s:%d, appending to %s",
            in->cfg->ingest.bind, ns_httpd_port(in->httpd),
            in->cfg->ingest.topic);
    while (*running)
        rd_kafka_poll(in->rk, 200);
    /* Requests in flight still get their answer before the handle goes. */
    ns_httpd_destroy(in->httpd);
    in->httpd = NULL;
    rd_kafka_flush(in->rk, in->cfg->ingest.timeout_ms);
    NS_INFO(NULL, "ingest: stopped");
    return 0;
}

void ns_ingest_destroy(ns_ingest_t *in)
{
    if (in == NULL)
        return;
    ns_httpd_destroy(in->httpd);
    if (in->rk != NULL)
        rd_kafka_destroy(in->rk);
    free(in);
}
