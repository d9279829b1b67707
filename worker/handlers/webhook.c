/* Generic handlers: `noop` (does nothing, and says so in a dry run's
 * report; for plumbing tests and the throughput benchmark) and `webhook.post`
 * (POSTs the item's payload as JSON to params.url; 2xx is done, 408/429/5xx and
 * timeouts are retried, other 4xx fail the item). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handlers.h"
#include "ns/http.h"

ns_err_t ns_noop(ns_item_ctx_t *ctx, ns_error_t *err)
{
    (void)err;
    if (ns_item_dry_run(ctx)) {
        /* What a run would do: nothing, for this item. */
        cJSON *d = cJSON_CreateObject();
        cJSON_AddStringToObject(d, "item_key", ns_item_key(ctx));
        ns_item_report(ctx, "noop", d);
    }
    return NS_OK;
}

/* What a webhook request points at, from request to response. */
typedef struct webhook_call {
    char *body;
    char idem[700];
    const char *headers[3];
} webhook_call_t;

ns_err_t ns_webhook_request(ns_item_ctx_t *ctx, ns_http_req_t *req,
                            void **state, ns_error_t *err)
{
    *state = NULL;
    const cJSON *params = ns_item_job(ctx)->params;
    const cJSON *url = cJSON_GetObjectItemCaseSensitive(params, "url");
    const cJSON *timeout =
        cJSON_GetObjectItemCaseSensitive(params, "timeout_seconds");
    if (!cJSON_IsString(url))
        return ns_error_set(err, NS_ERR_PERMANENT,
                            "webhook.post: params.url is not set");
    webhook_call_t *call = calloc(1, sizeof(*call));
    if (call == NULL ||
        (call->body = cJSON_PrintUnformatted(ns_item_payload(ctx))) == NULL) {
        free(call);
        return ns_error_set(err, NS_ERR_TRANSIENT,
                            "webhook.post: out of memory");
    }
    snprintf(call->idem, sizeof(call->idem), "Idempotency-Key: %lld:%s",
             (long long)ns_item_run_id(ctx), ns_item_key(ctx));
    call->headers[0] = "Content-Type: application/json";
    call->headers[1] = call->idem;
    *req = (ns_http_req_t){
        .method = "POST",
        .url = url->valuestring,
        .headers = call->headers,
        .body = call->body,
        .body_len = strlen(call->body),
        .timeout_ms = cJSON_IsNumber(timeout)
                          ? (long)(timeout->valuedouble * 1000)
                          : 30000,
    };
    *state = call;
    return NS_OK;
}

ns_err_t ns_webhook_response(ns_item_ctx_t *ctx, void *state, ns_err_t rc,
                             const ns_http_resp_t *resp, ns_error_t *err)
{
    (void)ctx;
    webhook_call_t *call = state;
    if (call != NULL)
        free(call->body);
    free(call);
    if (rc != NS_OK)
        return rc;
    rc = ns_http_classify(resp->status);
    if (rc != NS_OK) {
        ns_error_set(err, rc, "webhook.post: HTTP %ld", resp->status);
        err->http_status = resp->status;
        err->retry_after_s = resp->retry_after_s;
    }
    return rc;
}

ns_err_t ns_webhook_post(ns_item_ctx_t *ctx, ns_error_t *err)
{
    if (ns_item_dry_run(ctx)) {
        const cJSON *url =
            cJSON_GetObjectItemCaseSensitive(ns_item_job(ctx)->params, "url");
        if (!cJSON_IsString(url))
            return ns_error_set(err, NS_ERR_PERMANENT,
                                "webhook.post: params.url is not set");
        cJSON *d = cJSON_CreateObject();
        cJSON_AddStringToObject(d, "url", url->valuestring);
        cJSON_AddItemToObject(d, "body",
                              cJSON_Duplicate(ns_item_payload(ctx), 1));
        ns_item_report(ctx, "webhook.post", d);
        return NS_OK;
    }
    ns_http_req_t req;
    void *state = NULL;
    ns_err_t rc = ns_webhook_request(ctx, &req, &state, err);
    if (rc != NS_OK)
        return rc;
    ns_http_resp_t resp = {0};
    rc = ns_http_do(&req, &resp, err);
    rc = ns_webhook_response(ctx, state, rc, &resp, err);
    ns_http_resp_free(&resp);
    return rc;
}
