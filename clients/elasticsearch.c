/* elasticsearch.c: a time range of an index, paged (see elasticsearch.h):
 *   POST {url}/{index}/_pit?keep_alive=2m           -> {"id"}
 *   POST {url}/_search  {"size", "query": range, "pit": {"id",
 *        "keep_alive"}, "sort": [{time: asc}, {"_shard_doc": asc}],
 *        "search_after": <the last hit's sort>}      -> hits, pit_id
 *   DELETE {url}/_pit {"id"} */
#include "ns/elasticsearch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ns/buf.h"
#include "ns/http.h"

typedef struct es_call {
    const ns_es_settings_t *es;
    char auth[1024];
} es_call_t;

static void call_init(es_call_t *c, const ns_es_settings_t *es)
{
    c->es = es;
    c->auth[0] = '\0';
    if (es->api_key != NULL && es->api_key[0] != '\0') {
        snprintf(c->auth, sizeof(c->auth), "Authorization: ApiKey %s",
                 es->api_key);
    } else if (es->user != NULL && es->user[0] != '\0') {
        ns_buf_t raw, b64;
        ns_buf_init(&raw, 1024);
        ns_buf_init(&b64, 2048);
        ns_buf_addf(&raw, "%s:%s", es->user, es->password ? es->password : "");
        ns_buf_add_base64(&b64, raw.data, raw.len);
        snprintf(c->auth, sizeof(c->auth), "Authorization: Basic %s",
                 b64.data ? b64.data : "");
        ns_buf_free(&raw);
        ns_buf_free(&b64);
    }
}

/* One call; the answer parsed into *out (NULL for an empty body). */
static ns_err_t es_do(const es_call_t *c, const char *what, const char *method,
                      const char *path, const cJSON *body, cJSON **out,
                      ns_error_t *err)
{
    char *json = body ? cJSON_PrintUnformatted(body) : NULL;
    ns_buf_t url;
    ns_buf_init(&url, 8192);
    size_t n = strlen(c->es->url);
    while (n > 0 && c->es->url[n - 1] == '/')
        n--;
    ns_buf_addf(&url, "%.*s%s", (int)n, c->es->url, path);
    const char *headers[] = {"Content-Type: application/json",
                             c->auth[0] ? c->auth : NULL, NULL};
    ns_http_req_t req = {.method = method,
                         .url = url.data,
                         .headers = headers,
                         .body = json,
                         .body_len = json ? strlen(json) : 0,
                         .timeout_ms = c->es->timeout_ms,
                         .max_response = 64 << 20};
    ns_http_resp_t resp = {0};
    ns_err_t rc = ns_http_do(&req, &resp, err);
    free(json);
    ns_buf_free(&url);
    if (rc != NS_OK)
        return rc;
    err->http_status = resp.status;
    rc = ns_http_classify(resp.status);
    cJSON *doc = resp.body_len ? cJSON_Parse(resp.body) : NULL;
    if (rc != NS_OK) {
        /* {"error": {"type", "reason", "root_cause": [...]}, "status"} */
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(doc, "error");
        const cJSON *reason = cJSON_GetObjectItemCaseSensitive(e, "reason");
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(e, "type");
        const char *hint = resp.status == 401 || resp.status == 403
                               ? " (check the elasticsearch user and "
                                 "password or api_key)"
                           : resp.status == 404 ? " (no such index)"
                                                : "";
        ns_error_set(err, rc, "elasticsearch: %s: HTTP %ld%s: %s%s%.200s", what,
                     resp.status, hint,
                     cJSON_IsString(type) ? type->valuestring : "",
                     cJSON_IsString(type) ? ": " : "",
                     cJSON_IsString(reason) ? reason->valuestring : "");
        err->http_status = resp.status;
        err->retry_after_s = resp.retry_after_s;
        cJSON_Delete(doc);
        ns_http_resp_free(&resp);
        return rc;
    }
    ns_http_resp_free(&resp);
    if (out != NULL)
        *out = doc;
    else
        cJSON_Delete(doc);
    return NS_OK;
}

static cJSON *search_body(const char *pit, const char *time_field,
                          int64_t from_ms, int64_t to_ms, int size,
                          const cJSON *after)
{
    cJSON *b = cJSON_CreateObject();
    cJSON_AddNumberToObject(b, "size", size);
    cJSON_AddBoolToObject(b, "track_total_hits", 0);
    cJSON *range = cJSON_AddObjectToObject(
        cJSON_AddObjectToObject(cJSON_AddObjectToObject(b, "query"), "range"),
        time_field);
    cJSON_AddNumberToObject(range, "gte", (double)from_ms);
    cJSON_AddNumberToObject(range, "lt", (double)to_ms);
    cJSON_AddStringToObject(range, "format", "epoch_millis");
    cJSON *p = cJSON_AddObjectToObject(b, "pit");
    cJSON_AddStringToObject(p, "id", pit);
    cJSON_AddStringToObject(p, "keep_alive", "2m");
    cJSON *sort = cJSON_AddArrayToObject(b, "sort");
    cJSON *t = cJSON_CreateObject();
    cJSON_AddStringToObject(t, time_field, "asc");
    cJSON_AddItemToArray(sort, t);
    cJSON *tie = cJSON_CreateObject();
    cJSON_AddStringToObject(tie, "_shard_doc", "asc");
    cJSON_AddItemToArray(sort, tie);
    if (after != NULL)
        cJSON_AddItemToObject(b, "search_after", cJSON_Duplicate(after, 1));
    return b;
}

ns_err_t ns_es_read_range(const ns_es_settings_t *es, const char *index,
                          const char *time_field, int64_t from_ms,
                          int64_t to_ms, int page_size, ns_es_doc_fn fn,
                          void *arg, int64_t *docs, ns_error_t *err)
{
    *docs = 0;
    if (es->url == NULL || es->url[0] == '\0')
        return ns_error_set(err, NS_ERR_PERMANENT,
                            "elasticsearch: no URL (params.elasticsearch.url "
                            "or NS_ELASTICSEARCH_URL)");
    if (index == NULL || strpbrk(index, "/?#& ") != NULL || index[0] == '\0')
        return ns_error_set(err, NS_ERR_PERMANENT,
                            "elasticsearch: bad index name \"%s\"",
                            index ? index : "");
    es_call_t c;
    call_init(&c, es);
    char path[600];
    snprintf(path, sizeof(path), "/%s/_pit?keep_alive=2m", index);
    cJSON *opened = NULL;
    ns_err_t rc =
        es_do(&c, "opening a point in time", "POST", path, NULL, &opened, err);
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(opened, "id");
    if (rc == NS_OK && !cJSON_IsString(id))
        rc = ns_error_set(err, NS_ERR_TRANSIENT,
                          "elasticsearch: no point in time in the answer");
    char *pit = rc == NS_OK ? strdup(id->valuestring) : NULL;
    cJSON_Delete(opened);
    cJSON *after = NULL;
    while (rc == NS_OK && pit != NULL) {
        cJSON *body = search_body(pit, time_field, from_ms, to_ms,
                                  page_size > 0 ? page_size : 1000, after);
        cJSON *page = NULL;
        rc = es_do(&c, "searching", "POST", "/_search", body, &page, err);
        cJSON_Delete(body);
        if (rc != NS_OK)
            break;
        /* The point in time may move on: keep the newest id. */
        const cJSON *pid = cJSON_GetObjectItemCaseSensitive(page, "pit_id");
        if (cJSON_IsString(pid) && strcmp(pid->valuestring, pit) != 0) {
            free(pit);
            pit = strdup(pid->valuestring);
        }
        const cJSON *hits = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(page, "hits"), "hits");
        int n = cJSON_IsArray(hits) ? cJSON_GetArraySize(hits) : -1;
        if (n < 0)
            rc = ns_error_set(err, NS_ERR_TRANSIENT,
                              "elasticsearch: an answer without hits.hits");
        for (const cJSON *hit = n > 0 ? hits->child : NULL; hit != NULL;
             hit = hit->next) {
            const cJSON *src = cJSON_GetObjectItemCaseSensitive(hit, "_source");
            (*docs)++;
            if (cJSON_IsObject(src) && fn(src, arg) != 0) {
                rc = ns_error_set(err, NS_ERR_NOMEM, "out of memory");
                break;
            }
        }
        const cJSON *last = n > 0 ? cJSON_GetArrayItem(hits, n - 1) : NULL;
        const cJSON *sort = cJSON_GetObjectItemCaseSensitive(last, "sort");
        cJSON_Delete(after);
        after = cJSON_IsArray(sort) ? cJSON_Duplicate(sort, 1) : NULL;
        cJSON_Delete(page);
        if (rc != NS_OK || n < (page_size > 0 ? page_size : 1000))
            break;
        if (after == NULL)
            rc = ns_error_set(err, NS_ERR_TRANSIENT,
                              "elasticsearch: a full page without sort "
                              "values");
    }
    cJSON_Delete(after);
    if (pit != NULL) {
        cJSON *close_body = cJSON_CreateObject();
        cJSON_AddStringToObject(close_body, "id", pit);
        ns_error_t cerr;
        ns_error_clear(&cerr);
        es_do(&c, "closing the point in time", "DELETE", "/_pit", close_body,
              NULL, &cerr);
        cJSON_Delete(close_body);
        free(pit);
    }
    return rc;
}
