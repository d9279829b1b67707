#include "ns/llm.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ns/buf.h"
#include "ns/clock.h"
#include "ns/http.h"

#define LLM_DEFAULT_BASE_URL "https://api.perplexity.ai"
#define LLM_DEFAULT_MODEL "sonar-reasoning-pro"
#define LLM_DEFAULT_MAX_TOKENS 500
#define LLM_DEFAULT_TIMEOUT_S 60

static char *build_url(const char *base_url)
{
    const char *base =
        base_url && base_url[0] ? base_url : LLM_DEFAULT_BASE_URL;
    size_t len = strlen(base);
    while (len > 0 && base[len - 1] == '/')
        len--;
    ns_buf_t b;
    ns_buf_init(&b, len + 64);
    if (ns_buf_add(&b, base, len) != NS_OK ||
        ns_buf_adds(&b, "/chat/completions") != NS_OK) {
        ns_buf_free(&b);
        return NULL;
    }
    return ns_buf_take(&b);
}

static int add_message(cJSON *messages, const char *role, const char *content)
{
    cJSON *msg = cJSON_CreateObject();
    if (msg == NULL)
        return 0;
    cJSON_AddItemToArray(messages, msg);
    return cJSON_AddStringToObject(msg, "role", role) != NULL &&
           cJSON_AddStringToObject(msg, "content", content) != NULL;
}

static char *build_body(const ns_llm_settings_t *cfg,
                        const ns_llm_request_t *rq)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *messages = cJSON_AddArrayToObject(root, "messages");
    const char *model =
        cfg->model && cfg->model[0] ? cfg->model : LLM_DEFAULT_MODEL;
    int max_tokens =
        cfg->max_tokens > 0 ? cfg->max_tokens : LLM_DEFAULT_MAX_TOKENS;
    char *body = NULL;
    int ok = root != NULL && messages != NULL &&
             cJSON_AddStringToObject(root, "model", model) != NULL;
    if (ok && rq->system != NULL)
        ok = add_message(messages, "system", rq->system);
    /* The conversation: user, assistant, user, ... */
    for (size_t i = 0; ok && i < rq->n_turns; i++)
        ok = add_message(messages, i % 2 == 0 ? "user" : "assistant",
                         rq->turns[i]);
    if (ok)
        ok = cJSON_AddNumberToObject(root, "max_tokens", max_tokens) != NULL;
    if (ok && rq->json_schema != NULL) {
        /* Structured output: the answer must match the schema. */
        cJSON *rf = cJSON_AddObjectToObject(root, "response_format");
        cJSON *js = rf ? cJSON_AddObjectToObject(rf, "json_schema") : NULL;
        ok = js != NULL &&
             cJSON_AddStringToObject(rf, "type", "json_schema") != NULL &&
             cJSON_AddStringToObject(js, "name",
                                     rq->schema_name ? rq->schema_name
                                                     : "answer") != NULL &&
             cJSON_AddBoolToObject(js, "strict", 1) != NULL;
        cJSON *schema = ok ? cJSON_Duplicate(rq->json_schema, 1) : NULL;
        ok = schema != NULL;
        if (ok)
            cJSON_AddItemToObject(js, "schema", schema);
    }
    if (ok)
        body = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return body;
}

/* The error text of an OpenAI-style error body: {"error":{"message":..}},
 * {"error":".."} or FastAPI's {"detail":".."}. */
static const char *api_error_message(const cJSON *root)
{
    const cJSON *error = cJSON_GetObjectItemCaseSensitive(root, "error");
    const cJSON *message = cJSON_GetObjectItemCaseSensitive(error, "message");
    if (cJSON_IsString(message))
        return message->valuestring;
    if (cJSON_IsString(error))
        return error->valuestring;
    const cJSON *detail = cJSON_GetObjectItemCaseSensitive(root, "detail");
    if (cJSON_IsString(detail))
        return detail->valuestring;
    return NULL;
}

/* An API key echoed in an error message must not reach logs or the DLQ. */
static void mask_secret(char *msg, const char *secret)
{
    if (secret == NULL || strlen(secret) < 4)
        return;
    size_t slen = strlen(secret);
    char *hit = strstr(msg, secret);
    while (hit != NULL) {
        memcpy(hit, "***", 3);
        memmove(hit + 3, hit + slen, strlen(hit + slen) + 1);
        hit = strstr(hit + 3, secret);
    }
}

static ns_err_t status_error(const ns_llm_settings_t *cfg,
                             const ns_http_resp_t *resp, ns_error_t *err)
{
    cJSON *root = cJSON_ParseWithLength(resp->body, resp->body_len);
    const char *message = api_error_message(root);
    ns_err_t code = ns_http_classify(resp->status);
    if (code == NS_OK)
        code = NS_ERR_PERMANENT;
    ns_error_set(err, code, "LLM API %ld: %s", resp->status,
                 message ? message : "(no error message)");
    cJSON_Delete(root);
    if (err != NULL) {
        mask_secret(err->msg, cfg->api_key);
        err->http_status = resp->status;
        if (code == NS_ERR_TRANSIENT)
            err->retry_after_s = resp->retry_after_s;
    }
    return code;
}

static int json_int(const cJSON *obj, const char *name)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, name);
    return cJSON_IsNumber(item) ? item->valueint : 0;
}

static ns_err_t parse_success(const ns_llm_settings_t *cfg,
                              const ns_http_resp_t *resp, ns_llm_result_t *out,
                              ns_error_t *err)
{
    cJSON *root = cJSON_ParseWithLength(resp->body, resp->body_len);
    const char *problem = NULL;
    const cJSON *choices = cJSON_GetObjectItemCaseSensitive(root, "choices");
    const cJSON *content = NULL;
    if (!cJSON_IsObject(root))
        problem = "not a JSON object";
    else if (!cJSON_IsArray(choices))
        problem = "no choices";
    else if (cJSON_GetArraySize(choices) == 0)
        problem = "empty choices";
    if (problem == NULL) {
        const cJSON *message = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetArrayItem(choices, 0), "message");
        content = cJSON_GetObjectItemCaseSensitive(message, "content");
        if (!cJSON_IsString(content))
            problem = "choices[0].message.content is not a string";
        else if (content->valuestring[0] == '\0')
            problem = "empty content";
    }
    if (problem != NULL) {
        cJSON_Delete(root);
        ns_error_set(err, NS_ERR_TRANSIENT,
                     "LLM API %ld: malformed response: %s", resp->status,
                     problem);
        return NS_ERR_TRANSIENT;
    }

    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    const cJSON *usage = cJSON_GetObjectItemCaseSensitive(root, "usage");
    out->content = strdup(content->valuestring);
    out->model = strdup(cJSON_IsString(model) ? model->valuestring
                        : cfg->model          ? cfg->model
                                              : "");
    out->prompt_tokens = json_int(usage, "prompt_tokens");
    out->completion_tokens = json_int(usage, "completion_tokens");
    out->total_tokens = json_int(usage, "total_tokens");
    cJSON_Delete(root);
    if (out->content == NULL || out->model == NULL) {
        ns_llm_result_free(out);
        return ns_error_set(err, NS_ERR_NOMEM, "LLM API: out of memory");
    }
    return NS_OK;
}

ns_err_t ns_llm_chat(const ns_llm_settings_t *cfg, const char *system_prompt,
                     const char *user_prompt, ns_llm_result_t *out,
                     ns_error_t *err)
{
    const char *turns[] = {user_prompt};
    ns_llm_request_t rq = {
        .system = system_prompt, .turns = turns, .n_turns = 1};
    return ns_llm_chat_ex(cfg, &rq, out, err);
}

ns_err_t ns_llm_chat_ex(const ns_llm_settings_t *cfg,
                        const ns_llm_request_t *rq, ns_llm_result_t *out,
                        ns_error_t *err)
{
    ns_error_clear(err);
    memset(out, 0, sizeof(*out));
    if (cfg == NULL || rq == NULL || rq->n_turns == 0 || rq->turns[0] == NULL)
        return ns_error_set(err, NS_ERR_INVALID, "LLM: no settings or prompt");

    char *url = build_url(cfg->base_url);
    char *body = build_body(cfg, rq);
    char *auth = NULL;
    if (cfg->api_key != NULL && cfg->api_key[0] != '\0') {
        ns_buf_t b;
        ns_buf_init(&b, strlen(cfg->api_key) + 64);
        ns_buf_addf(&b, "Authorization: Bearer %s", cfg->api_key);
        auth = ns_buf_take(&b);
    }
    const char *headers[] = {"Content-Type: application/json",
                             "Accept: application/json", auth, NULL};
    if (url == NULL || body == NULL) {
        free(url);
        free(body);
        free(auth);
        return ns_error_set(err, NS_ERR_NOMEM, "LLM: out of memory");
    }

    int timeout_s = cfg->timeout_s > 0 ? cfg->timeout_s : LLM_DEFAULT_TIMEOUT_S;
    ns_http_req_t req = {
        .method = "POST",
        .url = url,
        .headers = headers,
        .body = body,
        .body_len = strlen(body),
        .timeout_ms = (long)timeout_s * 1000,
    };
    ns_http_resp_t resp;
    int64_t started = ns_clock_mono_ms();
    ns_err_t code = ns_http_do(&req, &resp, err);
    if (code == NS_OK && ns_http_classify(resp.status) != NS_OK)
        code = status_error(cfg, &resp, err);
    else if (code == NS_OK)
        code = parse_success(cfg, &resp, out, err);
    out->latency_ms = (long)(ns_clock_mono_ms() - started);
    if (err != NULL && code != NS_OK && resp.status != 0)
        err->http_status = resp.status;

    ns_http_resp_free(&resp);
    free(url);
    free(body);
    free(auth);
    return code;
}

void ns_llm_result_free(ns_llm_result_t *r)
{
    if (r == NULL)
        return;
    free(r->content);
    free(r->model);
    r->content = NULL;
    r->model = NULL;
}
