/* handlers.h: every handler and finalizer function, for the table. */
#ifndef NS_HANDLERS_H
#define NS_HANDLERS_H

#include "handler.h"

/* analyzer.c: batch-analyzer (seed 000). */
ns_err_t ns_analyzer_project(ns_item_ctx_t *ctx, ns_error_t *err);
ns_err_t ns_analyzer_summary(ns_item_ctx_t *ctx, ns_error_t *err);

/* webhook.c: generic handlers. */
ns_err_t ns_noop(ns_item_ctx_t *ctx, ns_error_t *err);
ns_err_t ns_webhook_post(ns_item_ctx_t *ctx, ns_error_t *err);
ns_err_t ns_webhook_request(ns_item_ctx_t *ctx, ns_http_req_t *req,
                            void **state, ns_error_t *err);
ns_err_t ns_webhook_response(ns_item_ctx_t *ctx, void *state, ns_err_t rc,
                             const ns_http_resp_t *resp, ns_error_t *err);

/* stopwords.c: the stopword refresh (seed 004). */
ns_err_t ns_stopwords_count(ns_item_ctx_t *ctx, ns_error_t *err);
ns_err_t ns_stopwords_merge(ns_item_ctx_t *ctx, ns_error_t *err);

/* reports.c: the hourly report (seed 001). */
ns_err_t ns_reports_hourly(ns_item_ctx_t *ctx, ns_error_t *err);
ns_err_t ns_reports_alert(ns_item_ctx_t *ctx, ns_error_t *err);

/* ingest.c: the raw store behind `nightshift ingest` (seed 002). */
ns_err_t ns_ingest_telegram(ns_item_ctx_t *ctx, ns_error_t *err);

/* structure.c: the nightly structuring (seed 002). */
ns_err_t ns_structure_message(ns_item_ctx_t *ctx, ns_error_t *err);

/* logs.c: the log analyzer's windows (seed 003). */
ns_err_t ns_logs_window(ns_item_ctx_t *ctx, ns_error_t *err);
/* logs_report.c: the daily backfill's report (seed 003). */
ns_err_t ns_logs_daily_report(ns_item_ctx_t *ctx, ns_error_t *err);

#endif
