#include "ns/log.h"

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ns/buf.h"
#include "ns/clock.h"

#define NS_LOG_MAX_SECRETS 32

static const char *log_component = "nightshift";
static ns_log_level_t log_min_level = NS_LOG_INFO;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char *log_secrets[NS_LOG_MAX_SECRETS];
static int log_n_secrets;

static const char *level_name(ns_log_level_t level)
{
    switch (level) {
    case NS_LOG_DEBUG: return "debug";
    case NS_LOG_INFO: return "info";
    case NS_LOG_WARN: return "warn";
    case NS_LOG_ERROR: return "error";
    }
    return "info";
}

void ns_log_init(const char *component, ns_log_level_t min_level)
{
    log_component = component;
    log_min_level = min_level;
    const char *env = getenv("NS_LOG_LEVEL");
    if (env == NULL)
        return;
    for (int l = NS_LOG_DEBUG; l <= NS_LOG_ERROR; l++)
        if (strcasecmp(env, level_name((ns_log_level_t)l)) == 0)
            log_min_level = (ns_log_level_t)l;
}

void ns_log_add_secret(const char *secret)
{
    /* Very short values would mask ordinary words; they are not secrets. */
    if (secret == NULL || strlen(secret) < 4)
        return;
    pthread_mutex_lock(&log_lock);
    int known = 0;
    for (int i = 0; i < log_n_secrets; i++)
        known |= strcmp(log_secrets[i], secret) == 0;
    char *copy = known ? NULL : strdup(secret);
    if (copy != NULL && log_n_secrets < NS_LOG_MAX_SECRETS) {
        /* Longest first: a secret that contains a shorter one must be
         * masked whole, not left with its tail readable. */
        int at = log_n_secrets++;
        for (; at > 0 && strlen(log_secrets[at - 1]) < strlen(copy); at--)
            log_secrets[at] = log_secrets[at - 1];
        log_secrets[at] = copy;
        copy = NULL;
    }
    pthread_mutex_unlock(&log_lock);
    free(copy);
}

int ns_log_enabled(ns_log_level_t level)
{
    return level >= log_min_level;
}

/* Caller holds log_lock. */
static char *redact_locked(const char *s)
{
    char *cur = strdup(s);
    for (int i = 0; i < log_n_secrets && cur != NULL; i++) {
        const char *secret = log_secrets[i];
        size_t slen = strlen(secret);
        if (strstr(cur, secret) == NULL)
            continue;
        ns_buf_t b;
        ns_buf_init(&b, (size_t)1 << 30);
        const char *p = cur, *hit;
        while ((hit = strstr(p, secret)) != NULL) {
            ns_buf_add(&b, p, (size_t)(hit - p));
            ns_buf_adds(&b, "***");
            p = hit + slen;
        }
        ns_buf_adds(&b, p);
        free(cur);
        cur = ns_buf_take(&b);
    }
    return cur;
}

char *ns_log_redact(const char *s)
{
    pthread_mutex_lock(&log_lock);
    char *out = redact_locked(s);
    pthread_mutex_unlock(&log_lock);
    return out;
}

void ns_logf(ns_log_level_t level, const ns_log_ctx_t *ctx, const char *fmt,
             ...)
{
    ns_buf_t msg;
    ns_buf_init(&msg, 64 * 1024);
    va_list ap;
    va_start(ap, fmt);
    ns_buf_vaddf(&msg, fmt, ap);
    va_end(ap);

    char when[40];
    ns_clock_format_utc(ns_clock_now_ms(), when, sizeof(when));
    cJSON *line = cJSON_CreateObject();
    cJSON_AddStringToObject(line, "time", when);
    cJSON_AddStringToObject(line, "level", level_name(level));
    cJSON_AddStringToObject(line, "component", log_component);
    if (ctx != NULL && ctx->job != NULL)
        cJSON_AddStringToObject(line, "job", ctx->job);
    if (ctx != NULL && ctx->run_id > 0)
        cJSON_AddNumberToObject(line, "run_id", (double)ctx->run_id);
    if (ctx != NULL && ctx->item_key != NULL)
        cJSON_AddStringToObject(line, "item_key", ctx->item_key);
    /* Masked before JSON escaping too: a secret holding a quote or a
     * backslash no longer matches once escaped. */
    char *msg_safe = ns_log_redact(msg.data ? msg.data : "");
    cJSON_AddStringToObject(line, "msg", msg_safe ? msg_safe : "");
    free(msg_safe);
    ns_buf_free(&msg);
    char *text = cJSON_PrintUnformatted(line);
    cJSON_Delete(line);
    if (text == NULL)
        return;

    pthread_mutex_lock(&log_lock);
    char *safe = redact_locked(text);
    fprintf(stderr, "%s\n", safe ? safe : text);
    pthread_mutex_unlock(&log_lock);
    free(safe);
    free(text);
}
