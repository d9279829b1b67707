/* res.c: a pool thread's resources: its Postgres connection (pooled or
 * its own), interruptible sleeps, the shared outbound rate limits and the
 * item outcome metrics. */
#include "res.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "ns/clock.h"
#include "ns/log.h"
#include "ns/metrics.h"
#include "ns/pg.h"

#define PG_RETRY_MS 1000

int ns_item_sleep(ns_item_res_t *res, int64_t ms)
{
    int64_t until = ns_clock_mono_ms() + ms;
    while (*res->running) {
        int64_t left = until - ns_clock_mono_ms();
        if (left <= 0)
            return 1;
        if (left > 50)
            left = 50;
        struct timespec ts = {0, (long)left * 1000000L};
        nanosleep(&ts, NULL);
    }
    return 0;
}

PGconn *ns_item_pg_acquire(ns_item_res_t *res, ns_error_t *err)
{
    if (res->pool == NULL) {
        if (ns_pg_ensure(&res->pg, res->cfg->pg_dsn, err) != NS_OK)
            return NULL;
        return res->pg;
    }
    if (res->pg != NULL && PQstatus(res->pg) == CONNECTION_OK)
        return res->pg;
    ns_item_pg_release(res);
    res->pg = ns_pgpool_get(res->pool, 5000, err);
    return res->pg;
}

void ns_item_pg_release(ns_item_res_t *res)
{
    if (res->pool == NULL || res->pg == NULL)
        return;
    ns_pgpool_put(res->pool, res->pg);
    res->pg = NULL;
}

int ns_item_pg_wait(ns_item_res_t *res)
{
    for (int tries = 0;; tries++) {
        ns_error_t err;
        ns_error_clear(&err);
        if (ns_item_pg_acquire(res, &err) != NULL)
            return 1;
        if (tries % 10 == 0)
            NS_WARN(NULL, "waiting for postgres: %s", err.msg);
        if (!ns_item_sleep(res, PG_RETRY_MS))
            return 0;
    }
}

void item_count(const char *job, const char *outcome, double seconds)
{
    char esc[200], labels[300];
    ns_metrics_label_escape(job ? job : "", esc, sizeof(esc));
    snprintf(labels, sizeof(labels), "job=\"%s\",outcome=\"%s\"", esc, outcome);
    ns_metrics_counter_add("nightshift_items_processed_total",
                           "Items that reached an outcome.", labels, 1);
    if (seconds >= 0) {
        snprintf(labels, sizeof(labels), "job=\"%s\"", esc);
        ns_metrics_histogram_observe("nightshift_item_duration_seconds",
                                     "Time from first attempt to outcome.",
                                     labels, seconds);
    }
}

ns_err_t ns_item_limit(ns_item_res_t *res, const char *name, const char *suffix,
                       int64_t max_wait_ms, ns_error_t *err)
{
    const ns_config_t *cfg = res->cfg;
    for (size_t i = 0; i < cfg->n_rate_limits; i++) {
        if (strcmp(cfg->rate_limits[i].key, name) != 0)
            continue;
        double rate, burst;
        if (ns_ratelimit_parse(cfg->rate_limits[i].value, &rate, &burst, err) !=
            NS_OK)
            return NS_OK; /* validated at load; never blocks the work */
        char bucket[256];
        snprintf(bucket, sizeof(bucket), "%s%s%s", name, suffix ? ":" : "",
                 suffix ? suffix : "");
        ns_err_t rc = ns_ratelimit_wait(res->rl, bucket, rate, burst,
                                        max_wait_ms, res->running, err);
        if (rc == NS_ERR_TRANSIENT) {
            double after = err->retry_after_s > 0 ? err->retry_after_s : 1;
            ns_error_set(err, NS_ERR_DEFERRED,
                         "rate limit %s: next call in %.1f s", bucket, after);
            err->retry_after_s = after;
            return NS_ERR_DEFERRED;
        }
        return NS_OK;
    }
    return NS_OK;
}
