/* ctx.h (private): the per-item context behind handler.h's accessors.
 * With res.h the lowest layer of item processing: the paths above it
 * (item.c, batch.c, stream.c, deadletter.c, finalize.c) include it, it
 * includes none of them. */
#ifndef NS_CTX_H
#define NS_CTX_H

#include "handler.h"
#include "ns/envelope.h"
#include "res.h"

struct ns_item_ctx {
    ns_item_res_t *res;
    const ns_job_t *job;
    int64_t run_id;
    const char *item_key; /* NULL in a finalizer */
    int attempt;
    bool dry_run;
    const cJSON *payload;
    ns_log_ctx_t log;
    bool in_tx;
    cJSON *report; /* array of {action, ...}; NULL until first entry */
    ns_run_stats_t stats;
};

/** @brief A context for env's item of job, not yet in a transaction. */
void item_init_ctx(ns_item_ctx_t *ctx, ns_item_res_t *res, const ns_job_t *job,
                   const ns_envelope_t *env);

/** @brief Commits (ok) or rolls back the context's transaction. */
ns_err_t ns_ctx_end_tx(ns_item_ctx_t *ctx, bool commit, ns_error_t *err);

/** @brief The report as JSON text (malloc'd) or NULL when empty. */
char *ns_ctx_report_text(const ns_item_ctx_t *ctx);

#endif
