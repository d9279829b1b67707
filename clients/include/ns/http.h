/* http.h: outbound HTTP through libcurl.
 * One call = one request with a timeout and a bounded response; TLS
 * verification always on. Failures are classified for the retry logic. */
#ifndef NS_HTTP_H
#define NS_HTTP_H

#include <stdbool.h>
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

/* ---- many requests on one thread -------------------------------------
 * A thread waiting on each request costs a thread's wakeups and stack per
 * call; at hundreds of calls in flight that is most of the CPU. An
 * ns_http_async_t drives any number of requests from one thread with
 * curl's multi interface (connections are kept between them). */

typedef struct ns_http_async ns_http_async_t;

/** Groups an ns_http_async_t can have. */
#define NS_HTTP_GROUPS_MAX 64

/** One request in flight: the caller's, untouched by it from
 *  ns_http_async_submit until it comes back through the done callback. */
typedef struct ns_http_xfer {
    const ns_http_req_t *req; /**< in: it and what it points at live until
                                   the transfer comes back */
    int group;                /**< in: ns_http_async_group's id, 0: none */
    bool slot_kept; /**< out: it failed (no answer, or not 2xx) and keeps its
                         group's slot until ns_http_async_release */
    ns_err_t rc;    /**< out: as ns_http_do returns */
    ns_error_t err; /**< out: the cause when rc != NS_OK */
    ns_http_resp_t resp;       /**< out: when rc == NS_OK; the caller frees */
    struct ns_http_xfer *next; /**< the done list; free for the caller's
                                    lists once it is back */
    void *priv;                /**< the loop's; do not touch */
} ns_http_xfer_t;

/** @brief How many transfers a list (linked through ->next) holds; *last
 *  (when not NULL) its last one. */
size_t ns_http_xfers_count(ns_http_xfer_t *list, ns_http_xfer_t **last);

/** Called on the loop's thread with the transfers that finished together,
 *  linked through ->next; they are the callee's again. */
typedef void (*ns_http_done_fn)(void *arg, ns_http_xfer_t *done);

/** @brief Starts the loop's thread, with n_groups groups of transfers
 *  (ids 1..n_groups, at most NS_HTTP_GROUPS_MAX): of group i at most
 * limits[i-1] (>= 1) run at once, the others wait in order. A slot is free
 * again when a transfer is answered 2xx, or when the caller releases a failed
 * one (so that its retries, made elsewhere, count against the limit too).
 *  @returns NULL with err set. */
ns_http_async_t *ns_http_async_new(const size_t *limits, int n_groups,
                                   ns_http_done_fn done, void *arg,
                                   ns_error_t *err);

/** @brief Queues a list of transfers (linked through ->next) from any
 *  thread; each comes back exactly once through the done callback, a
 *  failure to start it included. */
void ns_http_async_submit(ns_http_async_t *a, ns_http_xfer_t *list);

/** @brief Gives back the slot of a transfer that came back with
 *  slot_kept (any thread). */
void ns_http_async_release(ns_http_async_t *a, int group);

/** @brief Transfers submitted and not yet back. */
size_t ns_http_async_in_flight(ns_http_async_t *a);

/** @brief Stops the thread. Transfers still running come back through the
 *  callback first, with NS_ERR_TRANSIENT "stopped". NULL: no-op. */
void ns_http_async_destroy(ns_http_async_t *a);

/** @brief curl_global_init once per process (call from main). */
void ns_http_global_init(void);

#endif
