/* http.h: outbound HTTP through libcurl.
 * One call = one request with a timeout and a bounded response; TLS
 * verification always on. Failures are classified for the retry logic. */
#ifndef NS_HTTP_H
#define NS_HTTP_H

#include <stddef.h>

#include "ns/err.h"

typedef struct ns_http_part {
    const char *name;
    const char *data; /**< contents (a file part when filename != NULL) */
    size_t len;
    const char *filename;  /**< NULL: a plain form field */
    const char *mime_type; /**< NULL: curl's default */
} ns_http_part_t;

typedef struct ns_http_req {
    const char *method; /**< "GET", "POST", ...; default POST if body */
    const char *url;
    const char *const *headers; /**< NULL-terminated "Name: value" list */
    const char *body;           /**< may be NULL */
    size_t body_len;
    const ns_http_part_t *parts; /**< multipart/form-data when n_parts > 0 */
    size_t n_parts;
    long timeout_ms;     /**< whole request; default 30000 */
    size_t max_response; /**< default 8 MiB; larger is an error */
} ns_http_req_t;

typedef struct ns_http_resp {
    long status;
    char *body; /**< NUL-terminated, malloc'd */
    size_t body_len;
    double retry_after_s; /**< Retry-After header in seconds, -1 if absent */
    long elapsed_ms;
} ns_http_resp_t;

/** @brief Performs req. Transport failures (timeout, refused, reset) return
 *  NS_ERR_TRANSIENT; any HTTP status returns NS_OK with resp filled (use
 *  ns_http_classify to judge it). Secrets in URLs are never logged here. */
ns_err_t ns_http_do(const ns_http_req_t *req, ns_http_resp_t *resp,
                    ns_error_t *err);
void ns_http_resp_free(ns_http_resp_t *resp);

/** @brief Maps a status: 2xx NS_OK; 408, 425, 429, 5xx NS_ERR_TRANSIENT;
 *  other 4xx NS_ERR_PERMANENT. */
ns_err_t ns_http_classify(long status);

/** @brief curl_global_init once per process (call from main). */
void ns_http_global_init(void);

#endif
