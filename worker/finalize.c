/* Fan-in: a run's finalizer runs exactly once, after its last item is
 * terminal. The claim (running -> finalizing) is a single UPDATE; the
 * finalizer itself runs in one transaction holding the run row, with its
 * effects, so a crash rolls everything back and a sweeper retries. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctx.h"
#include "finalize.h"
#include "ns/clock.h"
#include "ns/log.h"
#include "ns/metrics.h"
#include "ns/pg.h"

/* How long an in-process finalizer has before sweepers may take over. */
#define FINALIZE_GRACE "30 seconds"
#define FINALIZE_RETRY "10 seconds"
#define FINALIZE_LOCK_WAIT "5s"

static void finalize_run(ns_item_res_t *res, int64_t run_id, bool claimed);

void ns_finalize_if_complete(ns_item_res_t *res, int64_t run_id)
{
    char run[24];
    ns_pg_i64str(run_id, run);
    const char *params[] = {run};
    ns_error_t err;
    ns_error_clear(&err);
    PGresult *r = ns_pg_query(
        res->pg,
        "UPDATE runs SET status = 'finalizing', finalize_after = now() + "
        "interval '" FINALIZE_GRACE "' WHERE run_id = $1::bigint AND "
        "status = 'running' AND emitted_at IS NOT NULL AND NOT EXISTS "
        "(SELECT 1 FROM items WHERE run_id = $1::bigint AND "
        "status = 'pending') RETURNING run_id",
        1, params, &err);
    if (r == NULL) {
        /* The sweeper will notice the complete run later. */
        NS_WARN(&(ns_log_ctx_t){.run_id = run_id},
                "completion check failed: %s", err.msg);
        return;
    }
    int claimed = PQntuples(r) == 1;
    PQclear(r);
    if (claimed)
        finalize_run(res, run_id, true);
}

static void run_metrics(const ns_job_t *job, const char *status,
                        double duration_s)
{
    char esc[200], labels[300];
    ns_metrics_label_escape(job->name, esc, sizeof(esc));
    snprintf(labels, sizeof(labels), "job=\"%s\",status=\"%s\"", esc, status);
    ns_metrics_counter_add("nightshift_runs_total",
                           "Finished runs by job and final status.", labels, 1);
    snprintf(labels, sizeof(labels), "job=\"%s\"", esc);
    ns_metrics_gauge_set("nightshift_run_duration_seconds",
                         "Duration of the last finished run.", labels,
                         duration_s);
    if (strcmp(status, "succeeded") == 0)
        ns_metrics_gauge_set(
            "nightshift_job_last_success_timestamp_seconds",
            "When the job last finished a run without failures.", labels,
            (double)ns_clock_now_ms() / 1000.0);
}

/* Caller is in a transaction holding the run row. */
static ns_err_t load_stats(PGconn *pg, const char *run, ns_run_stats_t *s,
                           ns_error_t *err)
{
    const char *params[] = {run};
    PGresult *r = ns_pg_query(
        pg,
        "SELECT count(*) FILTER (WHERE status = 'done'), "
        "count(*) FILTER (WHERE status = 'failed'), count(*), "
        "(SELECT floor(extract(epoch FROM coalesce(started_at, created_at)) "
        "* 1000)::bigint FROM runs WHERE run_id = $1::bigint), "
        "floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint "
        "FROM items WHERE run_id = $1::bigint",
        1, params, err);
    if (r == NULL)
        return err->code;
    s->done = ns_pg_int64(r, 0, 0);
    s->failed = ns_pg_int64(r, 0, 1);
    s->total = ns_pg_int64(r, 0, 2);
    s->started_ms = ns_pg_int64(r, 0, 3);
    s->now_ms = ns_pg_int64(r, 0, 4);
    PQclear(r);
    return NS_OK;
}

/* claimed: this thread has just claimed the run (set it finalizing), so
 * it waits for the row (up to FINALIZE_LOCK_WAIT) instead of skipping it
 * when locked: a concurrent claim attempt holds a tuple lock on it for a
 * moment, and skipping then left the run to the sweeper's 30 s grace
 * (seen in 2 of 3 benchmark runs at 1,024 calls in flight). A sweeper
 * skips a run another worker holds (its finalizer is running). */
static void finalize_run(ns_item_res_t *res, int64_t run_id, bool claimed)
{
    char run[24];
    ns_pg_i64str(run_id, run);
    const char *params[] = {run};
    ns_log_ctx_t lc = {.run_id = run_id};
    ns_error_t err;
    ns_error_clear(&err);
    if (!ns_item_pg_wait(res))
        return;
    PGconn *pg = res->pg;
    if (ns_pg_exec(pg, "BEGIN", 0, NULL, &err) != NS_OK)
        return;
    if (claimed &&
        ns_pg_exec(pg, "SET LOCAL lock_timeout = '" FINALIZE_LOCK_WAIT "'", 0,
                   NULL, &err) != NS_OK) {
        ns_pg_rollback(pg);
        return;
    }
    PGresult *r = ns_pg_query(pg,
                              claimed ? "SELECT job, dry_run FROM runs WHERE "
                                        "run_id = $1::bigint AND status = "
                                        "'finalizing' FOR UPDATE"
                                      : "SELECT job, dry_run FROM runs WHERE "
                                        "run_id = $1::bigint AND status = "
                                        "'finalizing' FOR UPDATE SKIP LOCKED",
                              1, params, &err);
    if (r == NULL || PQntuples(r) == 0) {
        PQclear(r);
        ns_pg_rollback(pg);
        return; /* finished already, or another worker holds it */
    }
    if (claimed &&
        ns_pg_exec(pg, "SET LOCAL lock_timeout = 0", 0, NULL, &err) != NS_OK) {
        ns_pg_rollback(pg);
        return;
    }
    const ns_job_t *job = ns_config_job(res->cfg, PQgetvalue(r, 0, 0));
    bool dry_run = strcmp(PQgetvalue(r, 0, 1), "t") == 0;
    PQclear(r);
    if (job == NULL) {
        ns_pg_rollback(pg);
        NS_ERROR(&lc, "cannot finalize: job not in this worker's config");
        return;
    }
    lc.job = job->name;
    ns_item_ctx_t ctx = {
        .res = res,
        .job = job,
        .run_id = run_id,
        .dry_run = dry_run,
        .attempt = 1,
        .log = lc,
        .in_tx = false,
    };
    cJSON *empty = cJSON_CreateObject();
    ctx.payload = empty;
    ns_err_t rc = load_stats(pg, run, &ctx.stats, &err);
    const ns_handler_def_t *fin =
        job->finalizer ? ns_handler_find(job->finalizer, 1) : NULL;
    char error_text[600] = "";
    if (rc == NS_OK && job->finalizer != NULL && fin == NULL)
        snprintf(error_text, sizeof(error_text), "unknown finalizer \"%s\"",
                 job->finalizer);
    if (rc == NS_OK && fin != NULL) {
        /* The finalizer writes in this same transaction. */
        ctx.in_tx = !dry_run;
        rc = fin->process(&ctx, &err);
        if (rc == NS_ERR_TRANSIENT) {
            ns_pg_rollback(pg);
            NS_WARN(&lc, "finalizer failed, retrying later: %s", err.msg);
            ns_pg_exec(pg,
                       "UPDATE runs SET finalize_after = now() + interval "
                       "'" FINALIZE_RETRY "' WHERE run_id = $1::bigint",
                       1, params, NULL);
            cJSON_Delete(empty);
            cJSON_Delete(ctx.report);
            return;
        }
        if (rc != NS_OK) {
            snprintf(error_text, sizeof(error_text), "finalizer: %s", err.msg);
            /* A permanent failure keeps nothing the finalizer wrote. */
            ns_pg_rollback(pg);
            ns_pg_exec(pg, "BEGIN", 0, NULL, NULL);
            rc = NS_OK;
        }
    }
    const char *status = (ctx.stats.failed > 0 || error_text[0] != '\0')
                             ? "failed"
                             : "succeeded";
    char done[24], failed[24];
    ns_pg_i64str(ctx.stats.done, done);
    ns_pg_i64str(ctx.stats.failed, failed);
    char *report = ns_ctx_report_text(&ctx);
    const char *p2[] = {
        run, status, done, failed, error_text[0] ? error_text : NULL, report};
    /* clock_timestamp(), not now(): now() is when this transaction began,
     * before the finalizer ran (a merge of several seconds would date the
     * run's end to its start). */
    if (rc == NS_OK)
        rc = ns_pg_exec(pg,
                        "UPDATE runs SET status = $2, items_done = $3, "
                        "items_failed = $4, error = $5, report = $6::jsonb, "
                        "finished_at = clock_timestamp(), delivered_at = "
                        "CASE WHEN EXISTS (SELECT 1 FROM outbox o WHERE "
                        "o.run_id = $1::bigint) AND NOT EXISTS (SELECT 1 "
                        "FROM outbox o WHERE o.run_id = $1::bigint AND "
                        "o.status = 'pending') THEN clock_timestamp() END "
                        "WHERE run_id = $1::bigint",
                        6, p2, &err);
    if (rc == NS_OK)
        rc = ns_pg_exec(pg, "COMMIT", 0, NULL, &err);
    if (rc != NS_OK) {
        ns_pg_rollback(pg);
        NS_WARN(&lc, "finalizing failed, a sweeper will retry: %s", err.msg);
    } else {
        double duration =
            (double)(ctx.stats.now_ms - ctx.stats.started_ms) / 1000.0;
        NS_INFO(&lc, "run %s: %lld done, %lld failed, %.1f s", status,
                (long long)ctx.stats.done, (long long)ctx.stats.failed,
                duration);
        run_metrics(job, status, duration);
    }
    free(report);
    cJSON_Delete(ctx.report);
    cJSON_Delete(empty);
}

void ns_finalize_sweep(ns_item_res_t *res)
{
    ns_error_t err;
    ns_error_clear(&err);
    if (ns_pg_ensure(&res->pg, res->cfg->pg_dsn, &err) != NS_OK)
        return;
    /* Complete runs nobody claimed: the claimer crashed, or the run had
     * no items at all. */
    ns_pg_exec(res->pg,
               "UPDATE runs r SET status = 'finalizing', finalize_after = "
               "now() WHERE status = 'running' AND emitted_at IS NOT NULL "
               "AND NOT EXISTS (SELECT 1 FROM items i WHERE i.run_id = "
               "r.run_id AND i.status = 'pending')",
               0, NULL, &err);
    PGresult *r = ns_pg_query(res->pg,
                              "SELECT run_id FROM runs WHERE status = "
                              "'finalizing' AND finalize_after <= now() "
                              "ORDER BY run_id LIMIT 20",
                              0, NULL, &err);
    if (r == NULL)
        return;
    int n = PQntuples(r);
    int64_t *ids = calloc((size_t)n + 1, sizeof(int64_t));
    for (int i = 0; ids != NULL && i < n; i++)
        ids[i] = ns_pg_int64(r, i, 0);
    PQclear(r);
    for (int i = 0; ids != NULL && i < n; i++)
        finalize_run(res, ids[i], false);
    free(ids);
}
