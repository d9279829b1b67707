/* calls.h (worker-private): the items of handlers whose attempt is one
 * HTTP request (handler.h: http_request / http_response). A pool thread
 * begins a batch of them (their starts recorded in one bookkeeper round,
 * their requests built and handed to the worker's HTTP loop) and is free
 * again; when the answers are back, a pool thread ends them (their ends
 * recorded in one round). Whatever is not that plain path — an item not
 * pending, a dry run, a failed attempt, a statement that failed — goes
 * down the one-item path (item.c) on the thread that has it, so every
 * outcome, retry and dead letter is the one-item path's. */
#ifndef NS_CALLS_H
#define NS_CALLS_H

#include <stddef.h>

#include "ns/http.h"
#include "res.h"

typedef struct ns_call ns_call_t;

/** @brief Begins n items (msgs[i], with the caller's tags[i]). Each either
 *  ended here (calls[i] NULL, outcomes[i] set) or is in flight (calls[i]
 *  set; do not touch it: it comes back through http's done callback,
 *  ns_call_of gives it back from the transfer). group: the HTTP loop's
 *  group of the job's calls. */
void ns_calls_begin(ns_item_res_t *res, ns_http_async_t *http, int group,
                    const ns_msg_t *msgs, void *const *tags, size_t n,
                    ns_call_t **calls, ns_item_outcome_t *outcomes);

/** @brief The call a transfer of ns_calls_begin belongs to. */
ns_call_t *ns_call_of(ns_http_xfer_t *x);

/** @brief Its transfer (slot_kept: see ns_http_async_release). */
const ns_http_xfer_t *ns_call_xfer(const ns_call_t *call);

/** @brief The tag its item was begun with. */
void *ns_call_tag(const ns_call_t *call);

/** @brief Ends n calls whose transfers are back: outcomes[i] for calls[i],
 *  which are freed. */
void ns_calls_end(ns_item_res_t *res, ns_call_t **calls, size_t n,
                  ns_item_outcome_t *outcomes);

#endif
