/* backfill.c: replaying a job's past slots (see backfill.h). The slots
 * come from the job's own cron expression in its zone (ns_cron_next), so
 * a backfill runs exactly what the scheduler would have run. Runs are
 * kind "backfill": the concurrency policy of scheduled runs does not
 * apply, and at most max_concurrent are active at once, so a long
 * backfill takes a few of the job's worker threads, never all of them. */
#include "backfill.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ns/clock.h"
#include "ns/cron.h"
#include "ns/pg.h"
#include "planner.h"

#define MAX_SLOTS 100000

/* A date or time as epoch ms; a bare date is midnight in tz, plus a day
 * when end_of_day (an inclusive --to). */
static int parse_bound(PGconn *pg, const char *text, const char *tz,
                       bool end_of_day, int64_t *ms, ns_error_t *err)
{
    const char *params[] = {text, tz, end_of_day ? "1" : "0"};
    PGresult *r = ns_pg_query(
        pg,
        "SELECT (extract(epoch FROM CASE WHEN $1 ~ '^\\d{4}-\\d{2}-\\d{2}$' "
        "THEN ($1::date + $3::int)::timestamp AT TIME ZONE $2 WHEN $1 ~ "
        "'(Z|z|[+-][0-9][0-9](:?[0-9][0-9])?)$' THEN $1::timestamptz ELSE "
        "$1::timestamp AT TIME ZONE $2 END) * 1000)::bigint",
        3, params, err);
    if (r == NULL)
        return -1;
    *ms = ns_pg_int64(r, 0, 0);
    PQclear(r);
    return 0;
}

/* The slot's run that already succeeded (any kind), or 0. */
static int64_t succeeded_before(PGconn *pg, const ns_job_t *job,
                                int64_t slot_ms, ns_error_t *err)
{
    char slot[24];
    ns_pg_i64str(slot_ms, slot);
    const char *params[] = {job->name, slot};
    PGresult *r = ns_pg_query(pg,
                              "SELECT run_id FROM runs WHERE job = $1 AND "
                              "scheduled_for = to_timestamp($2::bigint / "
                              "1000.0) AND status = 'succeeded' AND NOT "
                              "dry_run ORDER BY run_id DESC LIMIT 1",
                              2, params, err);
    if (r == NULL)
        return -1;
    int64_t id = PQntuples(r) ? ns_pg_int64(r, 0, 0) : 0;
    PQclear(r);
    return id;
}

static int is_terminal(const char *s)
{
    return strcmp(s, "succeeded") == 0 || strcmp(s, "failed") == 0 ||
           strcmp(s, "skipped") == 0 || strcmp(s, "cancelled") == 0;
}

typedef struct active {
    int64_t run_id;
    int64_t slot_ms;
    int64_t started_mono;
} active_t;

/* Polls the active runs; prints and drops the finished ones. */
static void reap(PGconn *pg, active_t *act, int *n_act, int timeout_s,
                 int *failed, int *done, FILE *out)
{
    for (int i = 0; i < *n_act;) {
        char id[24], when[40];
        ns_pg_i64str(act[i].run_id, id);
        const char *params[] = {id};
        ns_error_t err;
        PGresult *r = ns_pg_query(pg,
                                  "SELECT status FROM runs WHERE run_id = "
                                  "$1::bigint",
                                  1, params, &err);
        char status[32] = "pending";
        if (r != NULL && PQntuples(r) == 1)
            snprintf(status, sizeof(status), "%s", PQgetvalue(r, 0, 0));
        PQclear(r);
        bool late = timeout_s > 0 && ns_clock_mono_ms() - act[i].started_mono >
                                         (int64_t)timeout_s * 1000;
        if (!is_terminal(status) && !late) {
            i++;
            continue;
        }
        ns_clock_format_utc(act[i].slot_ms, when, sizeof(when));
        fprintf(out, "  run %s (slot %s): %s\n", id, when,
                late && !is_terminal(status) ? "still running, given up on"
                                             : status);
        fflush(out);
        if (strcmp(status, "succeeded") != 0)
            (*failed)++;
        (*done)++;
        act[i] = act[--*n_act];
    }
}

static void nap_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

int ns_ops_backfill(const ns_config_t *cfg, const ns_backfill_opts_t *opts,
                    FILE *out, volatile sig_atomic_t *running)
{
    const ns_job_t *job = ns_config_job(cfg, opts->job);
    if (job == NULL || job->cron == NULL) {
        fprintf(stderr,
                job ? "nightshift backfill: %s has no schedule: there are no "
                      "slots to backfill (use nightshift run)\n"
                    : "nightshift backfill: unknown job \"%s\"\n",
                opts->job);
        return 2;
    }
    if (opts->from == NULL || opts->to == NULL) {
        fprintf(stderr, "nightshift backfill: --from and --to are needed "
                        "(a date such as 2026-11-30, or a time)\n");
        return 2;
    }
    ns_error_t err;
    ns_error_clear(&err);
    ns_planner_t *p = ns_planner_new(cfg, &err);
    if (p == NULL) {
        fprintf(stderr, "nightshift backfill: %s\n", err.msg);
        return 1;
    }
    PGconn *pg = ns_planner_pg(p);
    int64_t from_ms, to_ms;
    if (parse_bound(pg, opts->from, job->timezone, false, &from_ms, &err) ||
        parse_bound(pg, opts->to, job->timezone, true, &to_ms, &err)) {
        fprintf(stderr, "nightshift backfill: --from/--to: %s\n", err.msg);
        ns_planner_destroy(p);
        return 2;
    }
    if (job->source.kind == NS_SOURCE_WINDOWS && job->source.align_day) {
        /* Days analysed: each one's run is the slot after it. */
        from_ms += 86400000;
        to_ms += 86400000;
    }
    int64_t *slots = calloc(MAX_SLOTS, sizeof(*slots));
    int n = 0;
    for (int64_t t = ns_cron_next(job->cron, job->timezone, from_ms / 1000 - 1);
         slots != NULL && t >= 0 && t * 1000 < to_ms && n < MAX_SLOTS;
         t = ns_cron_next(job->cron, job->timezone, t))
        slots[n++] = t * 1000;
    int64_t now_ms = ns_clock_now_ms();
    int future = 0;
    while (n > 0 && slots[n - 1] > now_ms) {
        n--; /* the future is the scheduler's */
        future++;
    }
    fprintf(out, "backfill of %s: %d slot%s%s\n", job->name, n,
            n == 1 ? "" : "s", opts->dry_run ? " (dry runs)" : "");
    if (future > 0) {
        char when[32];
        ns_clock_format_utc(slots[n], when, sizeof(when));
        fprintf(out,
                "  %d slot%s from %s still to come: left to the scheduler\n",
                future, future == 1 ? "" : "s", when);
    }
    int max = opts->max_concurrent > 0 ? opts->max_concurrent : 1;
    active_t *act = calloc((size_t)max, sizeof(*act));
    int n_act = 0, failed = 0, done = 0, skipped = 0;
    for (int i = 0; act != NULL && *running && (i < n || n_act > 0);) {
        if (i < n && n_act < max) {
            int64_t before =
                opts->dry_run ? 0 : succeeded_before(pg, job, slots[i], &err);
            if (before != 0) {
                char when[40];
                ns_clock_format_utc(slots[i], when, sizeof(when));
                if (before < 0)
                    fprintf(out, "  slot %s: %s\n", when, err.msg);
                else
                    fprintf(out,
                            "  slot %s: run %lld succeeded already, "
                            "skipped\n",
                            when, (long long)before);
                failed += before < 0;
                skipped += before > 0;
                i++;
                continue;
            }
            int64_t run_id = 0;
            bool was_skipped = false;
            if (ns_planner_create_run(p, job, NS_RUN_BACKFILL, slots[i],
                                      opts->dry_run, NULL, &run_id,
                                      &was_skipped, &err) != NS_OK ||
                ns_planner_emit(p, run_id, &err) != NS_OK) {
                fprintf(stderr, "nightshift backfill: %s\n", err.msg);
                failed++;
                break;
            }
            act[n_act++] = (active_t){run_id, slots[i], ns_clock_mono_ms()};
            i++;
            continue;
        }
        nap_ms(250);
        reap(pg, act, &n_act, opts->timeout_s, &failed, &done, out);
    }
    fprintf(out,
            "backfill of %s: %d run%s, %d failed, %d skipped (done "
            "before)\n",
            job->name, done, done == 1 ? "" : "s", failed, skipped);
    free(act);
    free(slots);
    ns_planner_destroy(p);
    return failed > 0 || !*running ? 1 : 0;
}
