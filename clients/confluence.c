/* confluence.c: Confluence's REST content API (see confluence.h):
 *   GET  {base}/rest/api/content/{id}?expand=version     the version
 *   PUT  {base}/rest/api/content/{id}/child/attachment   create or update
 *        (multipart "file", X-Atlassian-Token: no-check)
 *   PUT  {base}/rest/api/content/{id}                    version + 1 */
#include "ns/confluence.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ns/buf.h"
#include "ns/http.h"
#include "ns/utf8.h"

#define MAX_CONFLICTS 3

char *ns_confluence_escape(const char *text)
{
    char *clean = ns_utf8_sanitize(text ? text : "", strlen(text ? text : ""));
    if (clean == NULL)
        return NULL;
    ns_buf_t b;
    ns_buf_init(&b, (size_t)1 << 28);
    for (const char *p = clean; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c < 0x20 && c != '\n' && c != '\t')
            continue;
        switch (c) {
        case '&': ns_buf_adds(&b, "&amp;"); break;
        case '<': ns_buf_adds(&b, "&lt;"); break;
        case '>': ns_buf_adds(&b, "&gt;"); break;
        case '"': ns_buf_adds(&b, "&quot;"); break;
        case '\'': ns_buf_adds(&b, "&#39;"); break;
        default: ns_buf_add(&b, p, 1);
        }
    }
    free(clean);
    return ns_buf_take(&b);
}

typedef struct call {
    const ns_confluence_settings_t *cfg;
    char auth[1024];
} call_t;

static ns_err_t call_init(call_t *c, const ns_confluence_settings_t *cfg,
                          ns_error_t *err)
{
    c->cfg = cfg;
    if (cfg->base_url == NULL || cfg->base_url[0] == '\0')
        return ns_error_set(err, NS_ERR_PERMANENT,
                            "confluence: no base URL (set NS_CONFLUENCE_URL "
                            "or confluence.base_url)");
    if (cfg->token == NULL || cfg->token[0] == '\0')
        return ns_error_set(err, NS_ERR_PERMANENT,
                            "confluence: no token (set NS_CONFLUENCE_TOKEN)");
    if (strcmp(cfg->auth, "bearer") == 0) {
        snprintf(c->auth, sizeof(c->auth), "Authorization: Bearer %s",
                 cfg->token);
        return NS_OK;
    }
    ns_buf_t raw, b64;
    ns_buf_init(&raw, 1024);
    ns_buf_init(&b64, 2048);
    ns_buf_addf(&raw, "%s:%s", cfg->user ? cfg->user : "", cfg->token);
    ns_buf_add_base64(&b64, raw.data, raw.len);
    snprintf(c->auth, sizeof(c->auth), "Authorization: Basic %s",
             b64.data ? b64.data : "");
    ns_buf_free(&raw);
    ns_buf_free(&b64);
    return NS_OK;
}

/* A status as an error: what to fix, never the credentials. */
static ns_err_t judge(const call_t *c, const char *what,
                      const ns_http_resp_t *resp, ns_error_t *err)
{
    ns_err_t rc = ns_http_classify(resp->status);
    err->http_status = resp->status;
    if (rc == NS_OK)
        return NS_OK;
    const char *hint = "";
    if (resp->status == 401)
        hint = strcmp(c->cfg->auth, "bearer") == 0
                   ? " (check NS_CONFLUENCE_TOKEN: a personal access token)"
                   : " (check NS_CONFLUENCE_USER and NS_CONFLUENCE_TOKEN)";
    else if (resp->status == 403)
        hint = " (the user may not edit this page)";
    else if (resp->status == 404)
        hint = " (no such page: check the page id)";
    char shown[200];
    cJSON *body = resp->body ? cJSON_Parse(resp->body) : NULL;
    const cJSON *msg = cJSON_GetObjectItemCaseSensitive(body, "message");
    snprintf(shown, sizeof(shown), "%.160s",
             cJSON_IsString(msg) ? msg->valuestring : "");
    cJSON_Delete(body);
    ns_error_set(err, rc, "confluence: %s: HTTP %ld%s%s%s", what, resp->status,
                 hint, shown[0] ? ": " : "", shown);
    err->http_status = resp->status;
    err->retry_after_s = resp->retry_after_s;
    return rc;
}

static ns_err_t request(const call_t *c, const char *method, const char *url,
                        const char *json, const ns_http_part_t *parts,
                        size_t n_parts, ns_http_resp_t *resp, ns_error_t *err)
{
    const char *headers[] = {c->auth, "Accept: application/json",
                             json ? "Content-Type: application/json"
                                  : "X-Atlassian-Token: no-check",
                             NULL};
    ns_http_req_t req = {.method = method,
                         .url = url,
                         .headers = headers,
                         .body = json,
                         .body_len = json ? strlen(json) : 0,
                         .parts = parts,
                         .n_parts = n_parts,
                         .timeout_ms = c->cfg->timeout_s * 1000L,
                         .max_response = 4 << 20};
    return ns_http_do(&req, resp, err);
}

static char *url_of(const call_t *c, const char *page_id, const char *tail)
{
    ns_buf_t b;
    ns_buf_init(&b, 4096);
    size_t n = strlen(c->cfg->base_url);
    while (n > 0 && c->cfg->base_url[n - 1] == '/')
        n--;
    ns_buf_addf(&b, "%.*s/rest/api/content/%s%s", (int)n, c->cfg->base_url,
                page_id, tail);
    return ns_buf_take(&b);
}

/* The page's version and title (malloc'd). */
static ns_err_t get_version(const call_t *c, const char *page_id, int *version,
                            char **title, ns_error_t *err)
{
    char *url = url_of(c, page_id, "?expand=version");
    ns_http_resp_t resp = {0};
    ns_err_t rc = request(c, "GET", url, NULL, NULL, 0, &resp, err);
    free(url);
    if (rc == NS_OK)
        rc = judge(c, "reading the page", &resp, err);
    cJSON *page = rc == NS_OK ? cJSON_Parse(resp.body) : NULL;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(page, "version"), "number");
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(page, "title");
    if (rc == NS_OK && (!cJSON_IsNumber(v) || !cJSON_IsString(t)))
        rc = ns_error_set(err, NS_ERR_TRANSIENT,
                          "confluence: page %s: an answer without version "
                          "or title",
                          page_id);
    if (rc == NS_OK) {
        *version = v->valueint;
        *title = strdup(t->valuestring);
    }
    cJSON_Delete(page);
    ns_http_resp_free(&resp);
    return rc;
}

static ns_err_t attach(const call_t *c, const char *page_id,
                       const ns_confluence_file_t *f, ns_error_t *err)
{
    ns_http_part_t parts[] = {
        {.name = "file",
         .data = (const char *)f->data,
         .len = f->len,
         .filename = f->filename,
         .mime_type = f->mime_type},
        {.name = "minorEdit", .data = "true", .len = 4},
    };
    char *url = url_of(c, page_id, "/child/attachment");
    ns_http_resp_t resp = {0};
    ns_err_t rc = request(c, "PUT", url, NULL, parts, 2, &resp, err);
    free(url);
    if (rc == NS_OK)
        rc = judge(c, "attaching a file", &resp, err);
    ns_http_resp_free(&resp);
    return rc;
}

static ns_err_t put_page(const call_t *c, const char *page_id,
                         const char *title, int version, const char *storage,
                         ns_error_t *err)
{
    cJSON *doc = cJSON_CreateObject();
    cJSON_AddStringToObject(doc, "id", page_id);
    cJSON_AddStringToObject(doc, "type", "page");
    cJSON_AddStringToObject(doc, "title", title);
    cJSON *v = cJSON_AddObjectToObject(doc, "version");
    cJSON_AddNumberToObject(v, "number", version);
    cJSON_AddBoolToObject(v, "minorEdit", 1);
    cJSON *st = cJSON_AddObjectToObject(cJSON_AddObjectToObject(doc, "body"),
                                        "storage");
    cJSON_AddStringToObject(st, "value", storage);
    cJSON_AddStringToObject(st, "representation", "storage");
    char *json = cJSON_PrintUnformatted(doc);
    cJSON_Delete(doc);
    if (json == NULL)
        return ns_error_set(err, NS_ERR_NOMEM, "out of memory");
    char *url = url_of(c, page_id, "");
    ns_http_resp_t resp = {0};
    ns_err_t rc = request(c, "PUT", url, json, NULL, 0, &resp, err);
    free(url);
    free(json);
    if (rc == NS_OK)
        rc = judge(c, "writing the page", &resp, err);
    ns_http_resp_free(&resp);
    return rc;
}

ns_err_t ns_confluence_publish(const ns_confluence_settings_t *cfg,
                               const char *page_id, const char *title,
                               const char *storage,
                               const ns_confluence_file_t *files,
                               size_t n_files, ns_error_t *err)
{
    call_t c;
    if (call_init(&c, cfg, err) != NS_OK)
        return err->code;
    ns_err_t rc = NS_OK;
    for (size_t i = 0; rc == NS_OK && i < n_files; i++)
        rc = attach(&c, page_id, &files[i], err);
    for (int tries = 0; rc == NS_OK; tries++) {
        int version = 0;
        char *current = NULL;
        rc = get_version(&c, page_id, &version, &current, err);
        if (rc == NS_OK)
            rc = put_page(&c, page_id, title ? title : current, version + 1,
                          storage, err);
        free(current);
        if (rc == NS_OK || err->http_status != 409)
            break;
        if (tries + 1 >= MAX_CONFLICTS) {
            err->code = rc = NS_ERR_TRANSIENT;
            break;
        }
        rc = NS_OK; /* someone edited in between: read the version again */
    }
    return rc;
}
