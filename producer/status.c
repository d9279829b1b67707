/* `nightshift status`: runs, their state and item counts (with the pace
 * and time left of a running one), the delivery of their messages, and
 * per-job health (last success), as a table or JSON; the status page's
 * /api/v1/runs serves the same JSON. */
#include <cjson/cJSON.h>
#include <ctype.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ns/pg.h"
#include "ops.h"
#include "status.h"

/* Columns shared by the table and the JSON form. */
#define RUN_COLUMNS                                                            \
    "SELECT r.run_id, r.job, r.kind, r.status, r.dry_run, "                    \
    "coalesce(r.items_total, (SELECT count(*) FROM items i WHERE "             \
    " i.run_id = r.run_id)), "                                                 \
    "(SELECT count(*) FROM items i WHERE i.run_id = r.run_id AND "             \
    " i.status = 'done'), "                                                    \
    "(SELECT count(*) FROM items i WHERE i.run_id = r.run_id AND "             \
    " i.status = 'failed'), "                                                  \
    "(SELECT count(*) FROM items i WHERE i.run_id = r.run_id AND "             \
    " i.status = 'pending'), "                                                 \
    "to_char(r.scheduled_for AT TIME ZONE 'UTC', "                             \
    " 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "                                     \
    "to_char(coalesce(r.started_at, r.created_at) AT TIME ZONE 'UTC', "        \
    " 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "                                     \
    "round(extract(epoch FROM coalesce(r.finished_at, now()) - "               \
    " coalesce(r.started_at, r.created_at))::numeric, 1), "                    \
    "coalesce(r.error, ''), r.report::text, "                                  \
    "d.sent, d.messages, d.pending, d.failed, coalesce(d.span, 0), "           \
    "to_char(r.delivered_at AT TIME ZONE 'UTC', "                              \
    " 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') FROM runs r "                          \
    "LEFT JOIN LATERAL (SELECT count(*) FILTER (WHERE o.status = 'sent') "     \
    " AS sent, count(DISTINCT o.sent_with) FILTER (WHERE o.status = 'sent') "  \
    " AS messages, count(*) FILTER (WHERE o.status = 'pending') AS pending, "  \
    " count(*) FILTER (WHERE o.status = 'failed') AS failed, "                 \
    " extract(epoch FROM max(o.sent_at) - min(o.sent_at)) AS span "            \
    " FROM outbox o WHERE o.run_id = r.run_id) d ON true "

/* Delivery of the run's outbox messages, apart from its items: reports
 * sent (in how many messages: digests carry several), pending, failed,
 * the rate so far and the time left at that rate. */
typedef struct delivery {
    int64_t sent, messages, pending, failed;
    double rate_per_s;        /* 0: not known yet */
    double eta_s;             /* < 0: not known */
    const char *delivered_at; /* NULL: not (yet) all delivered */
} delivery_t;

static bool delivery_of(const PGresult *r, int row, delivery_t *d)
{
    *d = (delivery_t){.sent = ns_pg_int64(r, row, 14),
                      .messages = ns_pg_int64(r, row, 15),
                      .pending = ns_pg_int64(r, row, 16),
                      .failed = ns_pg_int64(r, row, 17),
                      .eta_s = -1,
                      .delivered_at = PQgetisnull(r, row, 19)
                                          ? NULL
                                          : PQgetvalue(r, row, 19)};
    double span = atof(PQgetvalue(r, row, 18));
    if (d->sent > 1 && span > 0)
        d->rate_per_s = (double)(d->sent - 1) / span;
    if (d->pending == 0)
        d->eta_s = 0;
    else if (d->rate_per_s > 0)
        d->eta_s = (double)d->pending / d->rate_per_s;
    return d->sent + d->pending + d->failed > 0;
}

static cJSON *delivery_json(const delivery_t *d)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "sent", (double)d->sent);
    cJSON_AddNumberToObject(o, "messages", (double)d->messages);
    cJSON_AddNumberToObject(o, "pending", (double)d->pending);
    cJSON_AddNumberToObject(o, "failed", (double)d->failed);
    if (d->rate_per_s > 0)
        cJSON_AddNumberToObject(o, "rate_per_s", d->rate_per_s);
    if (d->eta_s >= 0)
        cJSON_AddNumberToObject(o, "eta_s", d->eta_s);
    if (d->delivered_at != NULL)
        cJSON_AddStringToObject(o, "delivered_at", d->delivered_at);
    return o;
}

static void print_delivery(const delivery_t *d, FILE *out)
{
    fprintf(out,
            "        delivery: %lld sent in %lld message%s, %lld pending, "
            "%lld failed",
            (long long)d->sent, (long long)d->messages,
            d->messages == 1 ? "" : "s", (long long)d->pending,
            (long long)d->failed);
    if (d->delivered_at != NULL)
        fprintf(out, "; all delivered %s\n", d->delivered_at);
    else if (d->rate_per_s > 0 && d->pending > 0)
        fprintf(out, "; %.1f/s, ETA %.0f s\n", d->rate_per_s, d->eta_s);
    else
        fprintf(out, "\n");
}

/* Items finished per second so far, and the seconds left at that pace
 * while the run still has items to go (*eta < 0 otherwise). false when
 * nothing has finished yet. */
static bool pace_of(const PGresult *r, int row, double *rate, double *eta)
{
    double duration = atof(PQgetvalue(r, row, 11));
    int64_t total = ns_pg_int64(r, row, 5);
    int64_t finished = ns_pg_int64(r, row, 6) + ns_pg_int64(r, row, 7);
    if (finished <= 0 || duration <= 0)
        return false;
    *rate = (double)finished / duration;
    const char *state = PQgetvalue(r, row, 3);
    *eta = total > finished &&
                   (!strcmp(state, "running") || !strcmp(state, "pending"))
               ? (double)(total - finished) / *rate
               : -1;
    return true;
}

static cJSON *run_json(const PGresult *r, int row)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "run_id", (double)ns_pg_int64(r, row, 0));
    cJSON_AddStringToObject(o, "job", PQgetvalue(r, row, 1));
    cJSON_AddStringToObject(o, "kind", PQgetvalue(r, row, 2));
    cJSON_AddStringToObject(o, "status", PQgetvalue(r, row, 3));
    cJSON_AddBoolToObject(o, "dry_run", PQgetvalue(r, row, 4)[0] == 't');
    cJSON_AddNumberToObject(o, "items_total", (double)ns_pg_int64(r, row, 5));
    cJSON_AddNumberToObject(o, "items_done", (double)ns_pg_int64(r, row, 6));
    cJSON_AddNumberToObject(o, "items_failed", (double)ns_pg_int64(r, row, 7));
    cJSON_AddNumberToObject(o, "items_pending", (double)ns_pg_int64(r, row, 8));
    if (!PQgetisnull(r, row, 9))
        cJSON_AddStringToObject(o, "scheduled_for", PQgetvalue(r, row, 9));
    cJSON_AddStringToObject(o, "started", PQgetvalue(r, row, 10));
    double duration = atof(PQgetvalue(r, row, 11));
    cJSON_AddNumberToObject(o, "duration_s", duration);
    double rate, eta;
    if (pace_of(r, row, &rate, &eta)) {
        cJSON_AddNumberToObject(o, "rate_per_s", rate);
        if (eta >= 0)
            cJSON_AddNumberToObject(o, "eta_s", eta);
    }
    if (PQgetvalue(r, row, 12)[0] != '\0')
        cJSON_AddStringToObject(o, "error", PQgetvalue(r, row, 12));
    if (!PQgetisnull(r, row, 13))
        cJSON_AddItemToObject(o, "report", cJSON_Parse(PQgetvalue(r, row, 13)));
    delivery_t d;
    if (delivery_of(r, row, &d))
        cJSON_AddItemToObject(o, "delivery", delivery_json(&d));
    return o;
}

static void print_table(const PGresult *r, FILE *out)
{
    fprintf(out, "%-7s %-22s %-9s %-10s %17s  %-20s %9s\n", "RUN", "JOB",
            "KIND", "STATUS", "DONE/FAILED/TOTAL", "STARTED", "DURATION");
    for (int i = 0; i < PQntuples(r); i++) {
        char counts[48];
        snprintf(counts, sizeof(counts), "%lld/%lld/%lld",
                 (long long)ns_pg_int64(r, i, 6),
                 (long long)ns_pg_int64(r, i, 7),
                 (long long)ns_pg_int64(r, i, 5));
        char status[32];
        snprintf(status, sizeof(status), "%s%s", PQgetvalue(r, i, 3),
                 PQgetvalue(r, i, 4)[0] == 't' ? "*" : "");
        fprintf(out, "%-7s %-22.22s %-9s %-10s %17s  %-20s %8ss\n",
                PQgetvalue(r, i, 0), PQgetvalue(r, i, 1), PQgetvalue(r, i, 2),
                status, counts, PQgetvalue(r, i, 10), PQgetvalue(r, i, 11));
        double rate, eta;
        if (pace_of(r, i, &rate, &eta) && eta >= 0)
            fprintf(out, "        progress: %.1f items/s, ETA %.0f s\n", rate,
                    eta);
        if (PQgetvalue(r, i, 12)[0] != '\0')
            fprintf(out, "        error: %s\n", PQgetvalue(r, i, 12));
        delivery_t d;
        if (delivery_of(r, i, &d))
            print_delivery(&d, out);
    }
}

/* Item details of one run: failures with their reasons, and for a dry run
 * what every item would have written and sent. */
static cJSON *items_json(PGconn *pg, const char *run_id)
{
    const char *params[] = {run_id};
    ns_error_t err;
    PGresult *r = ns_pg_query(pg,
                              "SELECT item_key, status, attempts, "
                              "coalesce(error, ''), report::text FROM items "
                              "WHERE run_id = $1::bigint AND (status = "
                              "'failed' OR report IS NOT NULL) "
                              "ORDER BY item_key LIMIT 1000",
                              1, params, &err);
    cJSON *arr = cJSON_CreateArray();
    for (int i = 0; r != NULL && i < PQntuples(r); i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "item_key", PQgetvalue(r, i, 0));
        cJSON_AddStringToObject(o, "status", PQgetvalue(r, i, 1));
        cJSON_AddNumberToObject(o, "attempts", (double)ns_pg_int64(r, i, 2));
        if (PQgetvalue(r, i, 3)[0] != '\0')
            cJSON_AddStringToObject(o, "error", PQgetvalue(r, i, 3));
        if (!PQgetisnull(r, i, 4))
            cJSON_AddItemToObject(o, "report",
                                  cJSON_Parse(PQgetvalue(r, i, 4)));
        cJSON_AddItemToArray(arr, o);
    }
    PQclear(r);
    return arr;
}

static void print_items(const cJSON *items, FILE *out)
{
    const cJSON *it;
    cJSON_ArrayForEach(it, items)
    {
        const cJSON *err = cJSON_GetObjectItem(it, "error");
        fprintf(out, "  item %s: %s",
                cJSON_GetObjectItem(it, "item_key")->valuestring,
                cJSON_GetObjectItem(it, "status")->valuestring);
        if (cJSON_IsString(err))
            fprintf(out, " — %s", err->valuestring);
        fputc('\n', out);
        const cJSON *report = cJSON_GetObjectItem(it, "report");
        const cJSON *entry;
        cJSON_ArrayForEach(entry, report)
        {
            char *text = cJSON_PrintUnformatted(entry);
            fprintf(out, "    would: %s\n", text ? text : "?");
            free(text);
        }
    }
}

/* What the run's finalizer reported (figures; for a dry run, what it
 * would have changed), one line per entry. */
static void print_run_report(const char *text, FILE *out)
{
    cJSON *report = cJSON_Parse(text);
    const cJSON *entry;
    cJSON_ArrayForEach(entry, report)
    {
        const cJSON *action = cJSON_GetObjectItem(entry, "action");
        cJSON *rest = cJSON_Duplicate(entry, 1);
        cJSON_DeleteItemFromObject(rest, "action");
        char *body = cJSON_PrintUnformatted(rest);
        fprintf(out, "  %s: %s\n",
                cJSON_IsString(action) ? action->valuestring : "report",
                body ? body : "?");
        free(body);
        cJSON_Delete(rest);
    }
    cJSON_Delete(report);
}

static int all_digits(const char *s)
{
    if (s == NULL || *s == '\0')
        return 0;
    for (; *s; s++)
        if (!isdigit((unsigned char)*s))
            return 0;
    return 1;
}

/* What status shows: the runs (one, a job's latest 20, or the latest 20),
 * per-job health and, for one run, its item details. */
typedef struct status_data {
    bool one_run;
    PGresult *runs, *health;
    cJSON *items;
} status_data_t;

static void status_data_free(status_data_t *d)
{
    PQclear(d->runs);
    PQclear(d->health);
    cJSON_Delete(d->items);
    *d = (status_data_t){0};
}

static ns_err_t status_query(PGconn *pg, const char *arg, status_data_t *d,
                             ns_error_t *err)
{
    *d = (status_data_t){.one_run = all_digits(arg)};
    const char *params[] = {arg};
    if (d->one_run)
        d->runs = ns_pg_query(pg, RUN_COLUMNS "WHERE r.run_id = $1::bigint", 1,
                              params, err);
    else if (arg != NULL)
        d->runs = ns_pg_query(pg,
                              RUN_COLUMNS "WHERE r.job = $1 ORDER BY r.run_id "
                                          "DESC LIMIT 20",
                              1, params, err);
    else
        d->runs = ns_pg_query(pg, RUN_COLUMNS "ORDER BY r.run_id DESC LIMIT 20",
                              0, NULL, err);
    if (d->runs == NULL)
        return err->code;
    if (d->one_run && PQntuples(d->runs) == 0) {
        status_data_free(d);
        return ns_error_set(err, NS_ERR_NOT_FOUND, "no run %s", arg);
    }
    d->health = ns_pg_query(
        pg,
        "SELECT job, to_char(max(finished_at) FILTER (WHERE status = "
        "'succeeded') AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "
        "count(*) FILTER (WHERE status IN ('pending','running',"
        "'finalizing')) FROM runs GROUP BY job ORDER BY job",
        0, NULL, err);
    if (d->health == NULL) {
        status_data_free(d);
        return err->code;
    }
    if (d->one_run)
        d->items = items_json(pg, arg);
    return NS_OK;
}

static cJSON *status_to_json(status_data_t *d)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *runs = cJSON_AddArrayToObject(root, "runs");
    for (int i = 0; i < PQntuples(d->runs); i++)
        cJSON_AddItemToArray(runs, run_json(d->runs, i));
    if (d->items != NULL) {
        cJSON_AddItemToObject(root, "items", d->items);
        d->items = NULL;
    }
    cJSON *jobs = cJSON_AddArrayToObject(root, "jobs");
    for (int i = 0; i < PQntuples(d->health); i++) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "job", PQgetvalue(d->health, i, 0));
        if (!PQgetisnull(d->health, i, 1))
            cJSON_AddStringToObject(j, "last_success",
                                    PQgetvalue(d->health, i, 1));
        cJSON_AddNumberToObject(j, "active_runs",
                                (double)ns_pg_int64(d->health, i, 2));
        cJSON_AddItemToArray(jobs, j);
    }
    return root;
}

cJSON *ns_status_json(PGconn *pg, const char *arg, ns_error_t *err)
{
    status_data_t d;
    if (status_query(pg, arg, &d, err) != NS_OK)
        return NULL;
    cJSON *root = status_to_json(&d);
    status_data_free(&d);
    return root;
}

static void print_status(const status_data_t *d, FILE *out)
{
    const PGresult *r = d->runs;
    print_table(r, out);
    if (d->one_run && !PQgetisnull(r, 0, 13))
        print_run_report(PQgetvalue(r, 0, 13), out);
    if (d->items != NULL)
        print_items(d->items, out);
    if (d->one_run)
        return;
    const PGresult *health = d->health;
    fprintf(out, "\n%-22s %-22s %s\n", "JOB", "LAST SUCCESS", "ACTIVE RUNS");
    for (int i = 0; i < PQntuples(health); i++)
        fprintf(out, "%-22.22s %-22s %s\n", PQgetvalue(health, i, 0),
                PQgetisnull(health, i, 1) ? "never" : PQgetvalue(health, i, 1),
                PQgetvalue(health, i, 2));
}

int ns_ops_status(const ns_config_t *cfg, const char *arg, bool json, FILE *out)
{
    ns_error_t err;
    ns_error_clear(&err);
    PGconn *pg = ns_pg_connect(cfg->pg_dsn, &err);
    if (pg == NULL) {
        fprintf(stderr, "nightshift status: %s\n", err.msg);
        return 1;
    }
    status_data_t d;
    if (status_query(pg, arg, &d, &err) != NS_OK) {
        fprintf(stderr, "nightshift status: %s\n", err.msg);
        PQfinish(pg);
        return 1;
    }
    if (json) {
        cJSON *root = status_to_json(&d);
        char *text = cJSON_Print(root);
        fprintf(out, "%s\n", text ? text : "{}");
        free(text);
        cJSON_Delete(root);
    } else {
        print_status(&d, out);
    }
    status_data_free(&d);
    PQfinish(pg);
    return 0;
}
