#include "producer.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "health.h"
#include "ns/clock.h"
#include "ns/cron.h"
#include "ns/httpd.h"
#include "ns/log.h"
#include "ns/metrics.h"
#include "ns/pg.h"
#include "planner.h"
#include "scheduler.h"

#define RECOVER_EVERY_MS 5000
#define RECOVER_GRACE_S 30

struct ns_producer {
    const ns_config_t *cfg;
    ns_planner_t *planner;
    ns_httpd_t *httpd;
    int64_t started_s; /* a job never run starts counting from here */
    /* Per job: slots up to here are accounted for (fired or counted as
     * missed), so a missed slot is reported once, not on every tick. */
    int64_t *considered_s;
    int64_t last_recover_ms;
    int healthy;
};

static int ready(void *arg)
{
    ns_producer_t *p = arg;
    return p->healthy;
}

ns_producer_t *ns_producer_new(const ns_config_t *cfg, ns_error_t *err)
{
    ns_producer_t *p = calloc(1, sizeof(*p));
    if (p == NULL) {
        ns_error_set(err, NS_ERR_NOMEM, "out of memory");
        return NULL;
    }
    p->cfg = cfg;
    p->started_s = ns_clock_now_ms() / 1000;
    p->considered_s = calloc(cfg->n_jobs + 1, sizeof(int64_t));
    for (size_t i = 0; p->considered_s != NULL && i < cfg->n_jobs; i++)
        p->considered_s[i] = INT64_MIN;
    p->planner = ns_planner_new(cfg, err);
    if (p->planner == NULL || p->considered_s == NULL)
        goto fail;
    if (cfg->producer_metrics_port >= 0) {
        p->httpd =
            ns_httpd_new("0.0.0.0", cfg->producer_metrics_port, ready, p, err);
        if (p->httpd == NULL)
            goto fail;
        NS_INFO(NULL, "metrics on port %d", ns_httpd_port(p->httpd));
    }
    p->healthy = 1;
    return p;
fail:
    ns_producer_destroy(p);
    return NULL;
}

void ns_producer_destroy(ns_producer_t *p)
{
    if (p == NULL)
        return;
    ns_httpd_destroy(p->httpd);
    ns_planner_destroy(p->planner);
    free(p->considered_s);
    free(p);
}

/* The last recorded slot of every job, in one query. */
static int64_t last_slot(PGresult *res, const char *job, int64_t fallback)
{
    for (int r = 0; res != NULL && r < PQntuples(res); r++)
        if (strcmp(PQgetvalue(res, r, 0), job) == 0)
            return ns_pg_int64(res, r, 1);
    return fallback;
}

static void fire(ns_producer_t *p, const ns_job_t *job, int64_t slot_s)
{
    ns_log_ctx_t lc = {.job = job->name};
    ns_error_t err;
    ns_error_clear(&err);
    int64_t run_id = 0;
    bool skipped = false;
    if (ns_planner_create_run(p->planner, job, NS_RUN_SCHEDULED, slot_s * 1000,
                              false, NULL, &run_id, &skipped, &err) != NS_OK) {
        NS_ERROR(&lc, "recording the run of slot %lld failed: %s",
                 (long long)slot_s, err.msg);
        return;
    }
    if (run_id == 0)
        return; /* another producer fired this slot */
    lc.run_id = run_id;
    if (skipped) {
        NS_WARN(&lc,
                "slot %lld skipped: concurrency policy Forbid and an "
                "earlier run is still active",
                (long long)slot_s);
        return;
    }
    NS_INFO(&lc, "fired slot %lld", (long long)slot_s);
    if (ns_planner_emit(p->planner, run_id, &err) != NS_OK)
        NS_ERROR(&lc, "emitting run failed (will be resumed): %s", err.msg);
}

/* Run-level figures come from Postgres, so every producer replica reports
 * the same truth whichever worker finished a run. */
static void publish_run_metrics(ns_producer_t *p)
{
    ns_error_t err;
    PGresult *res = ns_pg_query(
        ns_planner_pg(p->planner),
        "SELECT job, status, count(*), extract(epoch FROM max(finished_at)) "
        "FROM runs GROUP BY job, status",
        0, NULL, &err);
    for (int r = 0; res != NULL && r < PQntuples(res); r++) {
        char job[200], labels[300];
        ns_metrics_label_escape(PQgetvalue(res, r, 0), job, sizeof(job));
        snprintf(labels, sizeof(labels), "job=\"%s\",status=\"%s\"", job,
                 PQgetvalue(res, r, 1));
        ns_metrics_gauge_set("nightshift_runs",
                             "Runs recorded in Postgres, by job and status.",
                             labels, (double)ns_pg_int64(res, r, 2));
        if (strcmp(PQgetvalue(res, r, 1), "succeeded") == 0 &&
            !PQgetisnull(res, r, 3)) {
            snprintf(labels, sizeof(labels), "job=\"%s\"", job);
            ns_metrics_gauge_set(
                "nightshift_job_last_success_timestamp_seconds",
                "When the job last finished a run without failures.", labels,
                atof(PQgetvalue(res, r, 3)));
        }
    }
    PQclear(res);
    /* For alert rules: how often a job should succeed, and how many items
     * its last finished run had (a run of 0 where there are usually some
     * is the "silent zero"). */
    int64_t now_s = ns_clock_now_ms() / 1000;
    for (size_t i = 0; i < p->cfg->n_jobs; i++) {
        const ns_job_t *job = &p->cfg->jobs[i];
        if (job->cron == NULL)
            continue;
        int64_t t1 = ns_cron_next(job->cron, job->timezone, now_s);
        int64_t t2 = t1 >= 0 ? ns_cron_next(job->cron, job->timezone, t1) : -1;
        if (t2 <= t1)
            continue;
        char esc[200], labels[300];
        ns_metrics_label_escape(job->name, esc, sizeof(esc));
        snprintf(labels, sizeof(labels), "job=\"%s\"", esc);
        ns_metrics_gauge_set("nightshift_job_interval_seconds",
                             "Seconds between the job's next two cron slots.",
                             labels, (double)(t2 - t1));
    }
    res = ns_pg_query(ns_planner_pg(p->planner),
                      "SELECT DISTINCT ON (job) job, coalesce(items_total, 0) "
                      "FROM runs WHERE status IN ('succeeded', 'failed') AND "
                      "NOT dry_run ORDER BY job, run_id DESC",
                      0, NULL, &err);
    for (int r = 0; res != NULL && r < PQntuples(res); r++) {
        char job[200], labels[300];
        ns_metrics_label_escape(PQgetvalue(res, r, 0), job, sizeof(job));
        snprintf(labels, sizeof(labels), "job=\"%s\"", job);
        ns_metrics_gauge_set("nightshift_job_last_run_items",
                             "Items of the job's last finished run.", labels,
                             (double)ns_pg_int64(res, r, 1));
    }
    PQclear(res);
}

void ns_producer_tick(ns_producer_t *p)
{
    int64_t now_ms = ns_clock_now_ms();
    int64_t now_s = now_ms / 1000;
    ns_error_t err;
    ns_error_clear(&err);
    PGresult *res = ns_pg_query(
        ns_planner_pg(p->planner),
        "SELECT job, floor(extract(epoch FROM max(scheduled_for)))::bigint "
        "FROM runs WHERE kind = 'scheduled' GROUP BY job",
        0, NULL, &err);
    if (res == NULL) {
        p->healthy = 0;
        NS_ERROR(NULL, "reading run history failed: %s", err.msg);
        /* The planner reconnects on its next use. */
        ns_planner_recover(p->planner, RECOVER_GRACE_S, &err);
        return;
    }
    p->healthy = 1;
    for (size_t i = 0; i < p->cfg->n_jobs; i++) {
        const ns_job_t *job = &p->cfg->jobs[i];
        if (job->cron == NULL || job->suspend)
            continue;
        int64_t last = last_slot(res, job->name, p->started_s);
        if (last < p->considered_s[i])
            last = p->considered_s[i];
        ns_due_t due = ns_schedule_due(job, last, now_s);
        if (due.missed > 0) {
            char labels[256];
            snprintf(labels, sizeof(labels), "job=\"%s\"", job->name);
            ns_metrics_counter_add("nightshift_missed_slots_total",
                                   "Cron slots not fired (downtime beyond "
                                   "the starting deadline).",
                                   labels, (double)due.missed);
            NS_WARN(&(ns_log_ctx_t){.job = job->name},
                    "%lld slot(s) missed (starting deadline %d s)",
                    (long long)due.missed, job->starting_deadline_s);
            /* A slot that is about to fire stays due until it is recorded
             * (if recording fails it is retried next tick). */
            p->considered_s[i] = due.slot_s >= 0 ? due.slot_s - 1 : now_s;
        }
        if (due.slot_s >= 0)
            fire(p, job, due.slot_s);
    }
    PQclear(res);
    if (now_ms - p->last_recover_ms >= RECOVER_EVERY_MS) {
        p->last_recover_ms = now_ms;
        publish_run_metrics(p);
        ns_health_check(ns_planner_pg(p->planner), p->cfg, now_ms);
        int n = ns_planner_recover(p->planner, RECOVER_GRACE_S, &err);
        if (n > 0)
            NS_INFO(NULL,
                    "resumed %d run(s) left unfinished by a dead "
                    "process",
                    n);
    }
    ns_metrics_gauge_set("nightshift_producer_last_tick_timestamp_seconds",
                         "When the scheduler last ran.", NULL, (double)now_s);
}

int ns_producer_run(ns_producer_t *p, volatile sig_atomic_t *running)
{
    NS_INFO(NULL, "producer started with %zu job(s)", p->cfg->n_jobs);
    while (*running) {
        ns_producer_tick(p);
        int64_t until = ns_clock_mono_ms() + p->cfg->producer_tick_ms;
        while (*running && ns_clock_mono_ms() < until) {
            struct timespec ts = {0, 50 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
    }
    NS_INFO(NULL, "producer stopping");
    return 0;
}
