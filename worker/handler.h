/* handler.h: what a handler (one kind of work) sees of its item.
 * A handler reads its payload, does its computing and I/O, then writes
 * through ns_item_tx() — the item's own transaction, committed with the
 * item's status — and queues external messages with ns_item_outbox().
 * In a dry run ns_item_tx() returns NULL and the outbox only reports. */
#ifndef NS_HANDLER_H
#define NS_HANDLER_H

#include <cjson/cJSON.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>

#include "ns/config.h"
#include "ns/err.h"
#include "ns/http.h"
#include "ns/log.h"

typedef struct ns_item_ctx ns_item_ctx_t;

/** Processes one item (or, for a finalizer, one finished run).
 *  @returns NS_OK, NS_ERR_TRANSIENT (retried with backoff, honouring
 *  err->retry_after_s) or NS_ERR_PERMANENT (failed at once). */
typedef ns_err_t (*ns_handler_fn)(ns_item_ctx_t *ctx, ns_error_t *err);

/** The first half of an attempt that is one HTTP request: fills *req for
 *  the item. *state owns req's strings until the response half frees it.
 *  @returns NS_OK (send it), or a failure of the attempt (nothing sent,
 *  *state NULL). */
typedef ns_err_t (*ns_http_request_fn)(ns_item_ctx_t *ctx, ns_http_req_t *req,
                                       void **state, ns_error_t *err);
/** The second half: judges the transport's outcome (rc, and err filled
 *  when rc != NS_OK) and resp (when rc == NS_OK); frees state.
 *  @returns the attempt's outcome, as ns_handler_fn does. */
typedef ns_err_t (*ns_http_response_fn)(ns_item_ctx_t *ctx, void *state,
                                        ns_err_t rc, const ns_http_resp_t *resp,
                                        ns_error_t *err);

typedef struct ns_handler_def {
    const char *name;
    ns_handler_fn process;
    int is_finalizer;
    /** 1: the handler does no I/O and has no effects of its own
     *  (microseconds per item), so a thread takes many of its items at
     *  once, runs them, and records them done with one statement, their
     *  attempts counted then (not before: ns_item_attempt() says 1). A
     *  failure or a write of its own sends the item down the one-item path.
     *  Never for handlers that wait on HTTP. */
    int batch;
    /** 1: the handler computes (no waiting on I/O): at most one item per
     *  core at once, whatever the job's max_in_flight. */
    int cpu_bound;
    /** Set for a handler whose attempt is one HTTP request and nothing
     *  else (no transaction, no outbox, no rate limit): its items wait on
     *  the worker's HTTP loop (hundreds on one thread) instead of a pool
     *  thread each, and their starts and ends are recorded in batches.
     *  process stays the one-item form of the same (dry runs, fallbacks):
     *  http_request, ns_http_do, http_response. */
    ns_http_request_fn http_request;
    ns_http_response_fn http_response;
} ns_handler_def_t;

/** @brief The handler or finalizer called name, or NULL. */
const ns_handler_def_t *ns_handler_find(const char *name, int is_finalizer);
/** @brief For ns_config_load: 1 when name is a known handler/finalizer. */
int ns_handler_known(const char *name, int is_finalizer);

const ns_config_t *ns_item_config(const ns_item_ctx_t *ctx);
const ns_job_t *ns_item_job(const ns_item_ctx_t *ctx);
int64_t ns_item_run_id(const ns_item_ctx_t *ctx);
/** The item key; NULL in a finalizer. */
const char *ns_item_key(const ns_item_ctx_t *ctx);
int ns_item_attempt(const ns_item_ctx_t *ctx);
bool ns_item_dry_run(const ns_item_ctx_t *ctx);
/** The item's payload object (finalizer: an empty object). */
const cJSON *ns_item_payload(const ns_item_ctx_t *ctx);
const ns_log_ctx_t *ns_item_log(const ns_item_ctx_t *ctx);

/** Run figures, for finalizers: items done / failed / total and the
 *  run's start (epoch ms). */
typedef struct ns_run_stats {
    int64_t done;
    int64_t failed;
    int64_t total;
    int64_t started_ms;
    int64_t now_ms;
} ns_run_stats_t;
void ns_item_run_stats(const ns_item_ctx_t *ctx, ns_run_stats_t *out);

/** @brief A read-only connection outside the item's transaction (reads
 *  before the write phase, also in dry runs). */
PGconn *ns_item_pg(ns_item_ctx_t *ctx, ns_error_t *err);

/** @brief The item's transaction (begun on first call), or NULL in a dry
 *  run (then describe the write with ns_item_report instead). */
PGconn *ns_item_tx(ns_item_ctx_t *ctx, ns_error_t *err);

/** @brief The item's transaction even in a dry run: only for a dry run's
 *  working state (scratch rows its own finalizer reads and removes, as
 *  the stopword counts are), never for results. Otherwise as ns_item_tx. */
PGconn *ns_item_scratch_tx(ns_item_ctx_t *ctx, ns_error_t *err);

/** @brief Adds an entry to the item's report (what was or would have been
 *  written). detail is owned by the report. */
void ns_item_report(ns_item_ctx_t *ctx, const char *action, cJSON *detail);

/** @brief Queues a Telegram message (HTML) to chat_id in the item's
 *  transaction; split into several messages over 4096 characters. The
 *  idempotency key (e.g. "analysis:<run>:<project>") makes a re-run of
 *  the item send nothing twice. Dry run: reported, not queued. */
ns_err_t ns_item_telegram(ns_item_ctx_t *ctx, const char *chat_id,
                          const char *html, const char *idempotency_key,
                          ns_error_t *err);

/** @brief Queues a message on an outbox channel ("telegram", "email") for
 *  target, in the item's transaction; payload (owned by the call) is what
 *  the channel sends (see worker/outbox.c). The idempotency key makes a
 *  re-run queue nothing twice. Dry run: reported as action "<channel>"
 *  with target and payload, not queued. */
ns_err_t ns_item_outbox(ns_item_ctx_t *ctx, const char *channel,
                        const char *target, cJSON *payload,
                        const char *idempotency_key, ns_error_t *err);

/** @brief Stores an attachment for outbox messages ("file": *id in their
 *  payload) in the item's transaction, once per key: a re-run gets the id
 *  stored first. Dry run: nothing stored, *id = 0. */
ns_err_t ns_item_file(ns_item_ctx_t *ctx, const char *key, const char *filename,
                      const char *mime_type, const void *data, size_t len,
                      int64_t *id, ns_error_t *err);

/** @brief Takes a token of the shared rate limit `name` (rate_limits: in
 *  jobs.yaml; e.g. "llm"), waiting up to a second. @returns NS_OK, or
 *  NS_ERR_DEFERRED (return it: the item is retried later and the wait does
 *  not count as an attempt). A name without a configured limit: NS_OK. */
ns_err_t ns_item_rate_limit(ns_item_ctx_t *ctx, const char *name,
                            ns_error_t *err);

/** @brief The job's Telegram chat (notify.telegram.chat_id), or NULL. */
const char *ns_item_telegram_chat(const ns_item_ctx_t *ctx);

#endif
