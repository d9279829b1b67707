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

ns_err_t ns_webhook_post(ns_item_ctx_t *ctx, ns_error_t *err)
{
    const cJSON *params = ns_item_job(ctx)->params;
    const cJSON *url = cJSON_GetObjectItemCaseSensitive(params, "url");
    const cJSON *timeout =
        cJSON_GetObjectItemCaseSensitive(params, "timeout_seconds");
    if (!cJSON_IsString(url))
        return ns_error_set(err, NS_ERR_PERMANENT,
                            "webhook.post: params.url is not set");
    if (ns_item_dry_run(ctx)) {
        cJSON *d = cJSON_CreateObject();
        cJSON_AddStringToObject(d, "url", url->valuestring);
        cJSON_AddItemToObject(d, "body",
                              cJSON_Duplicate(ns_item_payload(ctx), 1));
        ns_item_report(ctx, "webhook.post", d);
        return NS_OK;
    }
    char *body = cJSON_PrintUnformatted(ns_item_payload(ctx));
    char idem[700];
    snprintf(idem, sizeof(idem), "Idempotency-Key: %lld:%s",
             (long long)ns_item_run_id(ctx), ns_item_key(ctx));
    const char *headers[] = {"Content-Type: application/json", idem, NULL};
    ns_http_req_t req = {
        .method = "POST",
        .url = url->valuestring,
        .headers = headers,
        .body = body,
        .body_len = body ? strlen(body) : 0,
        .timeout_ms = cJSON_IsNumber(timeout)
                          ? (long)(timeout->valuedouble * 1000)
                          : 30000,
    };
    ns_http_resp_t resp = {0};
    ns_err_t rc = ns_http_do(&req, &resp, err);
    free(body);
    if (rc == NS_OK) {
        rc = ns_http_classify(resp.status);
        if (rc != NS_OK) {
            ns_error_set(err, rc, "webhook.post: HTTP %ld", resp.status);
            err->http_status = resp.status;
            err->retry_after_s = resp.retry_after_s;
        }
    }
    ns_http_resp_free(&resp);
    return rc;
}
