/* teams.c: Microsoft Teams webhooks (see teams.h). Cards are built with
 * cJSON; only strings the caller gave are escaped, the card's own
 * structure is ours. */
#include "ns/teams.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ns/buf.h"
#include "ns/http.h"
#include "ns/utf8.h"

char *ns_teams_escape(const char *text)
{
    char *clean = ns_utf8_sanitize(text ? text : "", strlen(text ? text : ""));
    if (clean == NULL)
        return NULL;
    ns_buf_t b;
    ns_buf_init(&b, (size_t)1 << 24);
    for (const char *p = clean; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c < 0x20 && c != '\n')
            continue;
        if (c == '<')
            ns_buf_adds(&b, "&lt;");
        else if (c == '>')
            ns_buf_adds(&b, "&gt;");
        else if (c == '&')
            ns_buf_adds(&b, "&amp;");
        else if (strchr("\\`*_{}[]()#+-.!|~", c) != NULL) {
            char esc[3] = {'\\', (char)c, 0};
            ns_buf_adds(&b, esc);
        } else {
            ns_buf_add(&b, p, 1);
        }
    }
    free(clean);
    return ns_buf_take(&b);
}

static const char *str_of(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static cJSON *text_block(const char *text, const char *size, const char *color,
                         int bold)
{
    cJSON *t = cJSON_CreateObject();
    cJSON_AddStringToObject(t, "type", "TextBlock");
    cJSON_AddStringToObject(t, "text", text);
    cJSON_AddBoolToObject(t, "wrap", 1);
    if (size != NULL)
        cJSON_AddStringToObject(t, "size", size);
    if (color != NULL)
        cJSON_AddStringToObject(t, "color", color);
    if (bold)
        cJSON_AddStringToObject(t, "weight", "Bolder");
    return t;
}

/* The message with text cut to max_text bytes (at a UTF-8 boundary). */
static char *build(const cJSON *card, size_t max_text)
{
    const char *severity = str_of(card, "severity");
    const char *color = severity == NULL                    ? NULL
                        : strcmp(severity, "critical") == 0 ? "Attention"
                        : strcmp(severity, "warning") == 0  ? "Warning"
                        : strcmp(severity, "good") == 0     ? "Good"
                                                            : NULL;
    cJSON *ac = cJSON_CreateObject();
    cJSON_AddStringToObject(ac, "type", "AdaptiveCard");
    cJSON_AddStringToObject(
        ac, "$schema", "http://adaptivecards.io/schemas/adaptive-card.json");
    cJSON_AddStringToObject(ac, "version", "1.4");
    cJSON *body = cJSON_AddArrayToObject(ac, "body");
    char *title = ns_teams_escape(str_of(card, "title"));
    char *text = ns_teams_escape(str_of(card, "text"));
    if (title != NULL && title[0] != '\0')
        cJSON_AddItemToArray(body, text_block(title, "Large", color, 1));
    if (text != NULL && text[0] != '\0') {
        size_t len = strlen(text);
        if (len > max_text) {
            len = max_text;
            while (len > 0 && ((unsigned char)text[len] & 0xc0) == 0x80)
                len--;
            /* Never leave a lone escaping backslash at the cut. */
            if (len > 0 && text[len - 1] == '\\')
                len--;
            memcpy(text + len, "…", sizeof("…"));
        }
        cJSON_AddItemToArray(body, text_block(text, NULL, NULL, 0));
    }
    const cJSON *facts = cJSON_GetObjectItemCaseSensitive(card, "facts");
    if (cJSON_IsArray(facts) && cJSON_GetArraySize(facts) > 0) {
        cJSON *set = cJSON_CreateObject();
        cJSON_AddStringToObject(set, "type", "FactSet");
        cJSON *list = cJSON_AddArrayToObject(set, "facts");
        const cJSON *f;
        cJSON_ArrayForEach(f, facts)
        {
            const cJSON *k = cJSON_GetArrayItem(f, 0);
            const cJSON *v = cJSON_GetArrayItem(f, 1);
            if (!cJSON_IsString(k) || !cJSON_IsString(v))
                continue;
            char *ek = ns_teams_escape(k->valuestring);
            char *ev = ns_teams_escape(v->valuestring);
            cJSON *fact = cJSON_CreateObject();
            cJSON_AddStringToObject(fact, "title", ek ? ek : "");
            cJSON_AddStringToObject(fact, "value", ev ? ev : "");
            cJSON_AddItemToArray(list, fact);
            free(ek);
            free(ev);
        }
        cJSON_AddItemToArray(body, set);
    }
    free(title);
    free(text);
    cJSON *msg = cJSON_CreateObject();
    cJSON_AddStringToObject(msg, "type", "message");
    cJSON *atts = cJSON_AddArrayToObject(msg, "attachments");
    cJSON *att = cJSON_CreateObject();
    cJSON_AddStringToObject(att, "contentType",
                            "application/vnd.microsoft.card.adaptive");
    cJSON_AddNullToObject(att, "contentUrl");
    cJSON_AddItemToObject(att, "content", ac);
    cJSON_AddItemToArray(atts, att);
    char *out = cJSON_PrintUnformatted(msg);
    cJSON_Delete(msg);
    return out;
}

char *ns_teams_message(const cJSON *card)
{
    size_t max_text = NS_TEAMS_MAX_PAYLOAD;
    for (int tries = 0; tries < 8; tries++) {
        char *out = build(card, max_text);
        if (out == NULL || strlen(out) <= NS_TEAMS_MAX_PAYLOAD - 1024)
            return out;
        /* JSON escaping grows the text; cut by what is over, with room. */
        size_t over = strlen(out) - (NS_TEAMS_MAX_PAYLOAD - 1024);
        free(out);
        max_text = max_text > over + 64 ? max_text - over - 64 : 0;
    }
    return build(card, 0);
}

/* An incoming webhook may answer 200 with the error in its text (e.g.
 * "Microsoft Teams endpoint returned HTTP error 429 with ContextId ..."). */
static long status_in_text(const char *body)
{
    const char *p = body ? strstr(body, "HTTP error ") : NULL;
    return p ? strtol(p + 11, NULL, 10) : 0;
}

ns_err_t ns_teams_post(const char *url, const char *body, long timeout_ms,
                       ns_error_t *err)
{
    if (url == NULL || url[0] == '\0')
        return ns_error_set(err, NS_ERR_PERMANENT,
                            "teams: no webhook URL configured");
    if (strlen(body) > NS_TEAMS_MAX_PAYLOAD)
        return ns_error_set(err, NS_ERR_PERMANENT,
                            "teams: message of %zu bytes is over Teams' 28 KB",
                            strlen(body));
    static const char *const headers[] = {
        "Content-Type: application/json; charset=utf-8", NULL};
    ns_http_req_t req = {.method = "POST",
                         .url = url,
                         .headers = headers,
                         .body = body,
                         .body_len = strlen(body),
                         .timeout_ms = timeout_ms,
                         .max_response = 64 * 1024};
    ns_http_resp_t resp = {0};
    ns_err_t rc = ns_http_do(&req, &resp, err);
    if (rc != NS_OK) {
        ns_http_resp_free(&resp);
        return rc;
    }
    long status = resp.status;
    long inner = status / 100 == 2 ? status_in_text(resp.body) : 0;
    if (inner >= 400)
        status = inner;
    err->http_status = status;
    rc = ns_http_classify(status);
    if (rc != NS_OK) {
        char shown[200];
        snprintf(shown, sizeof(shown), "%.160s", resp.body ? resp.body : "");
        for (char *c = shown; *c; c++)
            if ((unsigned char)*c < 0x20)
                *c = ' ';
        ns_error_set(err, rc, "teams: HTTP %ld: %s", status, shown);
        err->http_status = status;
        err->retry_after_s = resp.retry_after_s;
    }
    ns_http_resp_free(&resp);
    return rc;
}
