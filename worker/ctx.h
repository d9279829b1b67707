/* ctx.h (private): the item context behind handler.h's accessors. */
#ifndef NS_CTX_H
#define NS_CTX_H

#include "handler.h"
#include "item.h"

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

/** @brief Commits (ok) or rolls back the context's transaction. */
ns_err_t ns_ctx_end_tx(ns_item_ctx_t *ctx, bool commit, ns_error_t *err);

/** @brief The report as JSON text (malloc'd) or NULL when empty. */
char *ns_ctx_report_text(const ns_item_ctx_t *ctx);

#endif
