#include "planner.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ns/envelope.h"
#include "ns/kafka.h"
#include "ns/log.h"
#include "ns/metrics.h"
#include "ns/pg.h"
#include "sources.h"

#define NS_STR_(x) #x
#define NS_STR(x) NS_STR_(x)

struct ns_planner {
    const ns_config_t *cfg;
    PGconn *pg;
    PGconn *wpg; /* records streamed items while pg reads the source */
    rd_kafka_t *rk;
};

/* Delivery failures of one emission, counted by the delivery callback. */
typedef struct emit_tally {
    long failed;
    char last_error[256];
} emit_tally_t;

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m,
                        void *opaque)
{
    emit_tally_t *tally = m->_private;
    if (m->err && tally != NULL) {
        tally->failed++;
        snprintf(tally->last_error, sizeof(tally->last_error), "%s",
                 rd_kafka_err2str(m->err));
    }
}

ns_planner_t *ns_planner_new(const ns_config_t *cfg, ns_error_t *err)
{
    ns_planner_t *p = calloc(1, sizeof(*p));
    if (p == NULL) {
        ns_error_set(err, NS_ERR_NOMEM, "out of memory");
        return NULL;
    }
    p->cfg = cfg;
    p->pg = ns_pg_connect(cfg->pg_dsn, err);
    if (p->pg == NULL)
        goto fail;
    p->rk = ns_kafka_producer_new(cfg, on_delivery, err);
    if (p->rk == NULL)
        goto fail;
    if (ns_kafka_ensure_job_topics(p->rk, cfg, err) != NS_OK)
        goto fail;
    return p;
fail:
    ns_planner_destroy(p);
    return NULL;
}

void ns_planner_destroy(ns_planner_t *p)
{
    if (p == NULL)
        return;
    if (p->rk != NULL) {
        rd_kafka_flush(p->rk, 10000);
        rd_kafka_destroy(p->rk);
    }
    PQfinish(p->pg);
    PQfinish(p->wpg);
    free(p);
}

PGconn *ns_planner_pg(ns_planner_t *p)
{
    ns_error_t err;
    if (ns_pg_ensure(&p->pg, p->cfg->pg_dsn, &err) != NS_OK)
        return NULL;
    return p->pg;
}

static const char *kind_name(ns_run_kind_t kind)
{
    switch (kind) {
    case NS_RUN_SCHEDULED: return "scheduled";
    case NS_RUN_MANUAL: return "manual";
    case NS_RUN_BACKFILL: return "backfill";
    case NS_RUN_TRIGGERED: return "triggered";
    }
    return "manual";
}

/* Caller is inside the transaction that created run_id. */
static ns_err_t apply_policy(ns_planner_t *p, const ns_job_t *job,
                             const char *run_id, bool *skipped, ns_error_t *err)
{
    const char *params[] = {job->name, run_id};
    if (job->concurrency == NS_CONC_ALLOW)
        return NS_OK;
    if (job->concurrency == NS_CONC_REPLACE)
        return ns_pg_exec(p->pg,
                          "UPDATE runs SET status = 'cancelled', "
                          "finished_at = now(), "
                          "error = 'replaced by run ' || $2 "
                          "WHERE job = $1 AND run_id <> $2::bigint AND "
                          "status IN ('pending', 'running', 'finalizing')",
                          2, params, err);
    PGresult *res = ns_pg_query(
        p->pg,
        "SELECT min(run_id) FROM runs WHERE job = $1 AND run_id <> "
        "$2::bigint AND status IN ('pending', 'running', 'finalizing')",
        2, params, err);
    if (res == NULL)
        return err->code;
    int busy = !PQgetisnull(res, 0, 0);
    PQclear(res);
    if (!busy)
        return NS_OK;
    *skipped = true;
    return ns_pg_exec(p->pg,
                      "UPDATE runs SET status = 'skipped', finished_at = "
                      "now(), error = 'concurrency policy Forbid: an earlier "
                      "run is still active' WHERE run_id = $2::bigint "
                      "AND job = $1",
                      2, params, err);
}

ns_err_t ns_planner_create_run(ns_planner_t *p, const ns_job_t *job,
                               ns_run_kind_t kind, int64_t scheduled_for_ms,
                               bool dry_run, const char *args_json,
                               int64_t *run_id, bool *skipped, ns_error_t *err)
{
    *run_id = 0;
    *skipped = false;
    if (ns_pg_ensure(&p->pg, p->cfg->pg_dsn, err) != NS_OK)
        return err->code;
    char slot[32] = "";
    if (scheduled_for_ms >= 0)
        snprintf(slot, sizeof(slot), "%.3f", scheduled_for_ms / 1000.0);
    const char *params[] = {job->name, kind_name(kind),
                            scheduled_for_ms >= 0 ? slot : NULL,
                            dry_run ? "true" : "false", args_json};
    if (ns_pg_exec(p->pg, "BEGIN", 0, NULL, err) != NS_OK)
        return err->code;
    /* One creator per job at a time, so policies see each other's runs. */
    const char *lock_params[] = {job->name};
    if (ns_pg_exec(p->pg,
                   "SELECT pg_advisory_xact_lock(hashtext('ns.job:' || $1))", 1,
                   lock_params, err) != NS_OK)
        goto fail;
    PGresult *res =
        ns_pg_query(p->pg,
                    "INSERT INTO runs (job, kind, scheduled_for, dry_run, "
                    "args) VALUES ($1, $2, to_timestamp($3::double "
                    "precision), $4, coalesce($5::jsonb, '{}')) "
                    "ON CONFLICT (job, scheduled_for) WHERE kind = 'scheduled' "
                    "DO NOTHING RETURNING run_id",
                    5, params, err);
    if (res == NULL)
        goto fail;
    if (PQntuples(res) == 0) {
        PQclear(res);
        ns_pg_rollback(p->pg);
        return NS_OK;
    }
    *run_id = ns_pg_int64(res, 0, 0);
    PQclear(res);
    char id[24];
    ns_pg_i64str(*run_id, id);
    if (kind == NS_RUN_SCHEDULED &&
        apply_policy(p, job, id, skipped, err) != NS_OK)
        goto fail;
    if (ns_pg_exec(p->pg, "COMMIT", 0, NULL, err) != NS_OK)
        goto fail;
    char labels[256];
    snprintf(labels, sizeof(labels), "job=\"%s\",kind=\"%s\"", job->name,
             kind_name(kind));
    ns_metrics_counter_add("nightshift_runs_created_total",
                           "Runs recorded, by job and kind.", labels, 1);
    return NS_OK;
fail:
    ns_pg_rollback(p->pg);
    *run_id = 0;
    return err->code;
}

/* Workers find a run's items by key. Right after a bulk insert the table's
 * statistics still describe the table before it (autovacuum refreshes them
 * within a minute or so): a run of ten thousand items looks like a few
 * rows, and the planner filters the whole run per batch instead of probing
 * the keys. A run that grows the table by more than a tenth refreshes them
 * at once, as autovacuum would, for the columns the lookups use (through
 * a function of the table's owner, migration 013: ANALYZE needs the owner
 * and the producer's role only changes rows). Failing only costs speed. */
static void refresh_stats(PGconn *pg, int64_t added)
{
    ns_error_t err;
    ns_error_clear(&err);
    PGresult *r = ns_pg_query(pg,
                              "SELECT reltuples FROM pg_class WHERE oid = "
                              "'items'::regclass",
                              0, NULL, &err);
    double before = r && PQntuples(r) == 1 ? atof(PQgetvalue(r, 0, 0)) : 0;
    PQclear(r);
    if (before >= 0 && (double)added <= 0.1 * before + 1000)
        return;
    if (ns_pg_exec(pg, "SELECT ns_analyze_items()", 0, NULL, &err) != NS_OK)
        NS_DEBUG(NULL, "refreshing the items statistics: %s", err.msg);
}

/* Fails a run whose source failed, with the items it has recorded that
 * are still pending (a streamed run's first chunks may have run already:
 * those stay done). */
static void fail_run(ns_planner_t *p, const char *id, const char *why)
{
    const char *params[] = {id, why};
    if (ns_pg_exec(p->pg, "BEGIN", 0, NULL, NULL) != NS_OK ||
        ns_pg_exec(p->pg,
                   "UPDATE items SET status = 'failed', error = $2, "
                   "finished_at = now() WHERE run_id = $1::bigint AND "
                   "status = 'pending'",
                   2, params, NULL) != NS_OK ||
        ns_pg_exec(p->pg,
                   "UPDATE runs SET status = 'failed', finished_at = now(), "
                   "error = $2 WHERE run_id = $1::bigint",
                   2, params, NULL) != NS_OK ||
        ns_pg_exec(p->pg, "COMMIT", 0, NULL, NULL) != NS_OK)
        ns_pg_rollback(p->pg);
}

/* Caller holds the run's advisory lock. Records the items and marks the run
 * running in one transaction. resumed: some items may be recorded already
 * (a streamed enumeration that stopped): the source is read again, the
 * keys already there are kept, and the total counts them all. */
static ns_err_t enumerate(ns_planner_t *p, const ns_job_t *job, const char *id,
                          int64_t run_id, bool resumed, ns_error_t *err)
{
    int64_t count = 0;
    const char *params[] = {id, NULL};
    if (ns_pg_exec(p->pg, "BEGIN", 0, NULL, err) != NS_OK)
        return err->code;
    if (ns_source_enumerate(p->pg, job, run_id, &count, err) != NS_OK) {
        ns_pg_rollback(p->pg);
        if (err->code != NS_ERR_PERMANENT)
            return err->code;
        /* A broken source query will not fix itself: fail the run. */
        fail_run(p, id, err->msg);
        NS_ERROR(&(ns_log_ctx_t){.job = job->name, .run_id = run_id},
                 "enumerating items failed: %s", err->msg);
        return err->code;
    }
    char n[24];
    ns_pg_i64str(count, n);
    params[1] = n;
    if (ns_pg_exec(p->pg,
                   resumed ? "UPDATE runs SET status = 'running', "
                             "items_total = (SELECT count(*) FROM items WHERE "
                             "run_id = $1::bigint), started_at = "
                             "coalesce(started_at, now()) WHERE run_id = "
                             "$1::bigint"
                           : "UPDATE runs SET status = 'running', items_total "
                             "= $2, started_at = now() WHERE run_id = "
                             "$1::bigint",
                   resumed ? 1 : 2, params, err) != NS_OK ||
        ns_pg_exec(p->pg, "COMMIT", 0, NULL, err) != NS_OK) {
        ns_pg_rollback(p->pg);
        return err->code;
    }
    NS_INFO(&(ns_log_ctx_t){.job = job->name, .run_id = run_id},
            "run started with %lld items%s", (long long)count,
            resumed ? " more" : "");
    /* Before the first item goes out: with the statistics of the table
     * without the run, the workers' statements are planned as for a tiny
     * table (a scan of it per batch; measured: a 50,000-item run twice as
     * slow when the refresh came after the produce). */
    refresh_stats(p->pg, count);
    return NS_OK;
}

/* One item message: the envelope JSON as Postgres built it, compressed
 * when large. */
static ns_err_t produce_one(ns_planner_t *p, const char *topic, const char *key,
                            const char *json, size_t len, emit_tally_t *tally,
                            ns_error_t *err)
{
    char *z = NULL;
    size_t zlen = 0;
    bool compressed = false;
    if (ns_envelope_compress(json, len, &z, &zlen, &compressed, err) != NS_OK)
        return err->code;
    for (;;) {
        rd_kafka_resp_err_t e = rd_kafka_producev(
            p->rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, strlen(key)),
            RD_KAFKA_V_VALUE(z ? z : (char *)json, z ? zlen : len),
            RD_KAFKA_V_MSGFLAGS(z ? RD_KAFKA_MSG_F_FREE : RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_HEADER(NS_HEADER_ENCODING, compressed ? "zstd" : "json",
                              -1),
            RD_KAFKA_V_OPAQUE(tally), RD_KAFKA_V_END);
        if (e == RD_KAFKA_RESP_ERR_NO_ERROR)
            return NS_OK;
        if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            free(z);
            return ns_error_set(err, NS_ERR_TRANSIENT, "produce to %s: %s",
                                topic, rd_kafka_err2str(e));
        }
        rd_kafka_poll(p->rk, 100);
    }
}

/* Rows fetched from the run's cursor at a time: what the planner holds of
 * a run, whatever its size (plus librdkafka's queue, which it waits on
 * when full). */
#define EMIT_FETCH 20000

/* What every item message of one run shares. */
typedef struct emit_run {
    char topic[NS_TOPIC_MAX];
    char *job_json; /* the job name as a JSON string */
    int64_t run_id;
    bool dry_run;
    ns_buf_t envelope; /* reused for each item */
    emit_tally_t tally;
} emit_run_t;

/* Where a result's rows keep what an item message needs. */
typedef struct row_cols {
    int kafka_key, item_key, attempt, payload; /* attempt < 0: the first */
} row_cols_t;

/* The items cursor (produce_items) and the source's (emit_streamed). */
static const row_cols_t ITEM_ROWS = {0, 1, 2, 3};
static const row_cols_t SOURCE_ROWS = {1, 0, -1, 2};

/* Produces the rows of one FETCH. */
static ns_err_t produce_rows(ns_planner_t *p, emit_run_t *run,
                             const PGresult *res, const row_cols_t *c,
                             ns_error_t *err)
{
    int rows = PQntuples(res);
    for (int r = 0; r < rows; r++) {
        int attempt =
            c->attempt < 0
                ? 1
                : (int)strtol(PQgetvalue(res, r, c->attempt), NULL, 10);
        if (ns_envelope_format(&run->envelope, run->job_json, run->run_id,
                               PQgetvalue(res, r, c->item_key), attempt,
                               run->dry_run, PQgetvalue(res, r, c->payload),
                               (size_t)PQgetlength(res, r, c->payload)) !=
            NS_OK)
            return ns_error_set(err, NS_ERR_NOMEM, "out of memory");
        if (produce_one(p, run->topic, PQgetvalue(res, r, c->kafka_key),
                        run->envelope.data, run->envelope.len, &run->tally,
                        err) != NS_OK)
            return err->code;
        if ((r & 255) == 0)
            rd_kafka_poll(p->rk, 0);
    }
    return NS_OK;
}

#define EMIT_FETCH_SQL "FETCH " NS_STR(EMIT_FETCH) " FROM ns_emit"

/* The result of a query sent with PQsendQuery (every result read, so the
 * connection is ready again), or NULL with err set (when err is not NULL). */
static PGresult *fetch_result(PGconn *pg, ns_error_t *err)
{
    PGresult *last = NULL, *r;
    while ((r = PQgetResult(pg)) != NULL) {
        PQclear(last);
        last = r;
    }
    if (last != NULL && PQresultStatus(last) == PGRES_TUPLES_OK)
        return last;
    if (err != NULL)
        ns_error_set(err, NS_ERR_TRANSIENT, "postgres: %s",
                     last != NULL ? PQresultErrorMessage(last)
                                  : PQerrorMessage(pg));
    PQclear(last);
    return NULL;
}

/* What every message of the run's emission shares (job_json NULL when out
 * of memory). The envelope buffer is unbounded: an oversized item is
 * produced as any and dead-lettered by the worker with its reason (or
 * refused by the broker). */
static void emit_begin(emit_run_t *run, const ns_job_t *job, int64_t run_id,
                       bool dry_run)
{
    *run = (emit_run_t){.job_json = ns_envelope_json_string(job->name),
                        .run_id = run_id,
                        .dry_run = dry_run};
    ns_topic_items(job->name, run->topic);
    ns_buf_init(&run->envelope, SIZE_MAX / 2);
}

/* Ends an emission: its cursor's transaction on pg (committed when rc is
 * NS_OK), then the deliveries of what it produced (their reports counted
 * into run->tally by the flush), which must all have succeeded. Frees
 * run's buffers. */
static ns_err_t emit_end(ns_planner_t *p, PGconn *pg, emit_run_t *run,
                         const char *id, ns_err_t rc, ns_error_t *err)
{
    free(run->job_json);
    run->job_json = NULL;
    ns_buf_free(&run->envelope);
    if (rc == NS_OK)
        rc = ns_pg_exec(pg, "COMMIT", 0, NULL, err);
    else
        ns_pg_rollback(pg);
    if (rd_kafka_flush(p->rk, 60000) != RD_KAFKA_RESP_ERR_NO_ERROR &&
        rc == NS_OK)
        rc = ns_error_set(err, NS_ERR_TRANSIENT,
                          "run %s: items not delivered within 60 s", id);
    if (rc == NS_OK && run->tally.failed > 0)
        rc = ns_error_set(err, NS_ERR_TRANSIENT,
                          "run %s: %ld items not delivered: %s", id,
                          run->tally.failed, run->tally.last_error);
    return rc;
}

/* Produces every pending item of the run, then waits for all deliveries.
 * The items come through a cursor, EMIT_FETCH at a time, so a run of
 * millions is never all in memory. */
static ns_err_t produce_items(ns_planner_t *p, const ns_job_t *job,
                              const char *id, int64_t run_id, bool dry_run,
                              ns_error_t *err)
{
    emit_run_t run;
    emit_begin(&run, job, run_id, dry_run);
    const char *params[] = {id, job->source.order_column};
    if (run.job_json == NULL) {
        ns_buf_free(&run.envelope);
        return ns_error_set(err, NS_ERR_NOMEM, "out of memory");
    }
    ns_err_t rc = ns_pg_exec(p->pg, "BEGIN", 0, NULL, err);
    /* Postgres gives the payloads as text, the envelope is written around
     * them here (schemas/json/item-envelope.v1.json): no parse and re-print
     * of any payload. The Kafka key is the order key's value
     * (source.order_key), else the item key. */
    if (rc == NS_OK)
        rc = ns_pg_exec(p->pg,
                        "DECLARE ns_emit NO SCROLL CURSOR FOR "
                        "SELECT coalesce(payload->>$2::text, item_key), "
                        "item_key, attempts + 1, payload::text FROM items "
                        "WHERE run_id = $1::bigint AND status = 'pending'",
                        2, params, err);
    int64_t produced = 0;
    PGresult *res =
        rc == NS_OK ? ns_pg_query(p->pg, EMIT_FETCH_SQL, 0, NULL, err) : NULL;
    if (rc == NS_OK && res == NULL)
        rc = err->code;
    while (res != NULL) {
        /* The next FETCH is computed by Postgres while these rows are
         * produced. */
        int rows = PQntuples(res);
        bool more =
            rows == EMIT_FETCH && PQsendQuery(p->pg, EMIT_FETCH_SQL) == 1;
        if (rows == EMIT_FETCH && !more)
            rc = ns_error_set(err, NS_ERR_TRANSIENT, "postgres: %s",
                              PQerrorMessage(p->pg));
        if (rc == NS_OK)
            rc = produce_rows(p, &run, res, &ITEM_ROWS, err);
        PQclear(res);
        produced += rows;
        res = more ? fetch_result(p->pg, rc == NS_OK ? err : NULL) : NULL;
        if (more && res == NULL && rc == NS_OK)
            rc = err->code;
        if (rc != NS_OK) {
            PQclear(res);
            res = NULL;
        }
    }
    rc = emit_end(p, p->pg, &run, id, rc, err);
    if (rc == NS_OK)
        rc = ns_pg_exec(p->pg,
                        "UPDATE runs SET emitted_at = now() "
                        "WHERE run_id = $1::bigint",
                        1, params, err);
    if (rc == NS_OK) {
        char labels[256];
        snprintf(labels, sizeof(labels), "job=\"%s\"", job->name);
        ns_metrics_counter_add("nightshift_items_emitted_total",
                               "Item messages produced to Kafka.", labels,
                               (double)produced);
    }
    return rc;
}

/* ---- streamed emission ----------------------------------------------------
 * An sql source's items are recorded and produced in chunks as the source
 * is read: workers start on the first chunk while the rest is still being
 * inserted, and the produce of one chunk hides behind the insert of the
 * next. The source is read through a cursor on the planner's connection;
 * each chunk is COPYed into items and committed on a second connection
 * (the first also marks the run running), then produced. The run's total
 * and emitted_at are set at the end, together: a run cannot be claimed
 * complete before (finalize.c), and one that stops half-way (a crash, a
 * lost connection) has no total, which is how a resuming producer knows
 * to read the source again (enumerate, resumed) before producing what is
 * pending. Anything but the plain case goes to the one-transaction path:
 * a row without a key or a repeated key (the careful path names the rows
 * or keeps one of each; when it fails the run, items of chunks already
 * recorded that are still pending fail with it, those done stay done),
 * and a source query that fails (it fails the same way there). */

/* The first chunk is small so that the workers start at once. */
#define STREAM_FIRST 2000
#define STREAM_FETCH 20000
#define STREAM_FETCH_SQL "FETCH " NS_STR(STREAM_FETCH) " FROM ns_src"

/* COPYs one chunk (cursor rows: item key, Kafka key, payload) into items
 * and commits it; the first marks the run running. NS_ERR_DEFERRED: a row
 * has no key or a key is there already (nothing of the chunk written). */
static ns_err_t stream_record(PGconn *w, const char *id, const PGresult *rows,
                              bool first, ns_error_t *err)
{
    int n = PQntuples(rows);
    for (int r = 0; r < n; r++)
        if (PQgetisnull(rows, r, 0))
            return NS_ERR_DEFERRED;
    if (ns_pg_exec(w, "BEGIN", 0, NULL, err) != NS_OK)
        return err->code;
    ns_err_t rc = NS_OK;
    PGresult *res = PQexec(w, "COPY items (run_id, item_key, payload) FROM "
                              "STDIN");
    if (PQresultStatus(res) != PGRES_COPY_IN)
        rc = ns_error_set(err, NS_ERR_TRANSIENT, "postgres: %s",
                          PQerrorMessage(w));
    PQclear(res);
    ns_buf_t line;
    ns_buf_init(&line, SIZE_MAX / 2);
    bool sent = rc == NS_OK;
    for (int r = 0; rc == NS_OK && sent && r < n; r++) {
        if (ns_buf_adds(&line, id) != NS_OK ||
            ns_buf_add(&line, "\t", 1) != NS_OK ||
            ns_pg_copy_field(&line, PQgetvalue(rows, r, 0),
                             (size_t)PQgetlength(rows, r, 0)) != NS_OK ||
            ns_buf_add(&line, "\t", 1) != NS_OK ||
            ns_pg_copy_field(&line, PQgetvalue(rows, r, 2),
                             (size_t)PQgetlength(rows, r, 2)) != NS_OK ||
            ns_buf_add(&line, "\n", 1) != NS_OK)
            rc = ns_error_set(err, NS_ERR_NOMEM, "out of memory");
        if (rc == NS_OK && (line.len >= (1 << 18) || r == n - 1)) {
            sent = PQputCopyData(w, line.data, (int)line.len) == 1;
            ns_buf_reset(&line);
        }
    }
    ns_buf_free(&line);
    if (rc == NS_OK && !sent)
        rc = ns_error_set(err, NS_ERR_TRANSIENT, "postgres: %s",
                          PQerrorMessage(w));
    if (PQputCopyEnd(w, rc == NS_OK ? NULL : "nightshift: chunk abandoned") ==
        1) {
        PGresult *last = PQgetResult(w);
        const char *state =
            last ? PQresultErrorField(last, PG_DIAG_SQLSTATE) : NULL;
        if (rc == NS_OK && PQresultStatus(last) != PGRES_COMMAND_OK)
            rc = state != NULL && strcmp(state, "23505") == 0
                     ? NS_ERR_DEFERRED /* a repeated key */
                     : ns_error_set(err, NS_ERR_TRANSIENT, "postgres: %s",
                                    PQresultErrorMessage(last));
        PQclear(last);
        while ((last = PQgetResult(w)) != NULL)
            PQclear(last);
    }
    const char *params[] = {id};
    if (rc == NS_OK && first)
        rc = ns_pg_exec(w,
                        "UPDATE runs SET status = 'running', started_at = "
                        "now() WHERE run_id = $1::bigint AND status = "
                        "'pending'",
                        1, params, err);
    if (rc == NS_OK)
        rc = ns_pg_exec(w, "COMMIT", 0, NULL, err);
    if (rc != NS_OK)
        ns_pg_rollback(w);
    return rc;
}

/* Records and produces a pending run's items in chunks. NS_OK: recorded,
 * produced, total and emitted_at set. NS_ERR_DEFERRED: take the
 * one-transaction path (enumerate, resumed; then produce_items). Other
 * errors: transient, the run is resumed later. */
static ns_err_t emit_streamed(ns_planner_t *p, const ns_job_t *job,
                              const char *id, int64_t run_id, bool dry_run,
                              ns_error_t *err)
{
    if (ns_pg_ensure(&p->wpg, p->cfg->pg_dsn, err) != NS_OK)
        return err->code;
    PGconn *a = p->pg, *w = p->wpg;
    if (ns_pg_exec(a, "BEGIN", 0, NULL, err) != NS_OK)
        return err->code;
    if (ns_source_sql_declare(a, job, run_id, "ns_src", err) != NS_OK) {
        ns_pg_rollback(a);
        /* A broken query: the other path fails the run with its reason. */
        return err->code == NS_ERR_PERMANENT ? NS_ERR_DEFERRED : err->code;
    }
    emit_run_t run;
    emit_begin(&run, job, run_id, dry_run);
    ns_err_t rc = run.job_json != NULL
                      ? NS_OK
                      : ns_error_set(err, NS_ERR_NOMEM, "out of memory");
    int64_t count = 0;
    int want = STREAM_FIRST;
    PGresult *res = NULL;
    if (rc == NS_OK) {
        res = ns_pg_query(a, "FETCH " NS_STR(STREAM_FIRST) " FROM ns_src", 0,
                          NULL, err);
        if (res == NULL)
            rc = err->code == NS_ERR_PERMANENT ? NS_ERR_DEFERRED : err->code;
    }
    while (res != NULL) {
        int rows = PQntuples(res);
        /* The next rows are read while these are recorded and produced. */
        bool more = rows == want && PQsendQuery(a, STREAM_FETCH_SQL) == 1;
        if (rows == want && !more)
            rc = ns_error_set(err, NS_ERR_TRANSIENT, "postgres: %s",
                              PQerrorMessage(a));
        want = STREAM_FETCH;
        if (rc == NS_OK && rows > 0)
            rc = stream_record(w, id, res, count == 0, err);
        if (rc == NS_OK && count == 0 && rows > 0) {
            refresh_stats(w, rows); /* before the first item goes out */
            NS_INFO(&(ns_log_ctx_t){.job = job->name, .run_id = run_id},
                    "run started with its first %d items (the rest recorded "
                    "and produced as the source is read)",
                    rows);
        }
        if (rc == NS_OK)
            rc = produce_rows(p, &run, res, &SOURCE_ROWS, err);
        PQclear(res);
        count += rows;
        ns_error_t ferr;
        res = more ? fetch_result(a, &ferr) : NULL;
        if (more && res == NULL && rc == NS_OK)
            rc = ferr.code == NS_ERR_PERMANENT
                     ? NS_ERR_DEFERRED
                     : ns_error_set(err, ferr.code, "%s", ferr.msg);
        if (rc != NS_OK) {
            PQclear(res);
            res = NULL;
        }
    }
    rc = emit_end(p, a, &run, id, rc, err);
    if (rc != NS_OK)
        return rc;
    char n[24];
    ns_pg_i64str(count, n);
    const char *params[] = {id, n};
    /* (A source without rows: the run is marked running here.) */
    if (ns_pg_exec(w,
                   "UPDATE runs SET status = CASE WHEN status = 'pending' "
                   "THEN 'running' ELSE status END, started_at = "
                   "coalesce(started_at, now()), items_total = $2, "
                   "emitted_at = now() WHERE run_id = $1::bigint",
                   2, params, err) != NS_OK)
        return err->code;
    NS_INFO(&(ns_log_ctx_t){.job = job->name, .run_id = run_id},
            "run emitted: %lld items recorded and produced", (long long)count);
    char labels[256];
    snprintf(labels, sizeof(labels), "job=\"%s\"", job->name);
    ns_metrics_counter_add("nightshift_items_emitted_total",
                           "Item messages produced to Kafka.", labels,
                           (double)count);
    /* For the next runs' statements (this one's were planned after the
     * first chunk). */
    refresh_stats(w, count);
    return NS_OK;
}

ns_err_t ns_planner_emit(ns_planner_t *p, int64_t run_id, ns_error_t *err)
{
    if (ns_pg_ensure(&p->pg, p->cfg->pg_dsn, err) != NS_OK)
        return err->code;
    char id[24];
    ns_pg_i64str(run_id, id);
    const char *params[] = {id};
    /* Whoever holds this session lock owns the run's emission; it is
     * released when that process dies, so a peer can take over. */
    PGresult *res = ns_pg_query(
        p->pg, "SELECT pg_try_advisory_lock($1::bigint)", 1, params, err);
    if (res == NULL)
        return err->code;
    int mine = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    if (!mine)
        return NS_OK;

    ns_err_t rc = NS_OK;
    res = ns_pg_query(p->pg,
                      "SELECT job, status, dry_run, emitted_at IS NOT NULL, "
                      "items_total IS NULL FROM runs WHERE run_id = "
                      "$1::bigint",
                      1, params, err);
    if (res == NULL) {
        rc = err->code;
        goto unlock;
    }
    if (PQntuples(res) == 0) {
        PQclear(res);
        rc = ns_error_set(err, NS_ERR_NOT_FOUND, "run %s not found", id);
        goto unlock;
    }
    const ns_job_t *job = ns_config_job(p->cfg, PQgetvalue(res, 0, 0));
    char status[16];
    snprintf(status, sizeof(status), "%s", PQgetvalue(res, 0, 1));
    bool dry_run = strcmp(PQgetvalue(res, 0, 2), "t") == 0;
    bool emitted = strcmp(PQgetvalue(res, 0, 3), "t") == 0;
    bool no_total = strcmp(PQgetvalue(res, 0, 4), "t") == 0;
    if (job == NULL) {
        rc = ns_error_set(err, NS_ERR_PERMANENT,
                          "run %s: job \"%s\" is not in the config", id,
                          PQgetvalue(res, 0, 0));
        PQclear(res);
        goto unlock;
    }
    PQclear(res);
    bool running =
        strcmp(status, "running") == 0 || strcmp(status, "finalizing") == 0;
    bool resumed = false;
    if (strcmp(status, "pending") == 0 && job->source.kind == NS_SOURCE_SQL) {
        rc = emit_streamed(p, job, id, run_id, dry_run, err);
        if (rc == NS_OK) {
            emitted = true;
            snprintf(status, sizeof(status), "running");
        }
        resumed = rc == NS_ERR_DEFERRED; /* chunks may be recorded */
        if (resumed)
            rc = NS_OK;
    }
    if (rc == NS_OK && !emitted &&
        (strcmp(status, "pending") == 0 || resumed || (running && no_total))) {
        /* Not streamed, or a streamed enumeration that stopped half-way. */
        rc = enumerate(p, job, id, run_id, resumed || running, err);
        if (rc == NS_OK)
            snprintf(status, sizeof(status), "running");
    }
    if (rc == NS_OK && !emitted &&
        (strcmp(status, "running") == 0 || strcmp(status, "finalizing") == 0))
        rc = produce_items(p, job, id, run_id, dry_run, err);
unlock:
    ns_pg_exec(p->pg, "SELECT pg_advisory_unlock($1::bigint)", 1, params, NULL);
    return rc;
}

int ns_planner_recover(ns_planner_t *p, int grace_s, ns_error_t *err)
{
    if (ns_pg_ensure(&p->pg, p->cfg->pg_dsn, err) != NS_OK)
        return -1;
    char grace[24];
    ns_pg_i64str(grace_s, grace);
    const char *params[] = {grace};
    PGresult *res = ns_pg_query(
        p->pg,
        "SELECT run_id FROM runs WHERE created_at < now() - "
        "make_interval(secs => $1::int) AND (status = 'pending' OR "
        "(status IN ('running', 'finalizing') AND emitted_at IS NULL)) "
        "ORDER BY run_id LIMIT 100",
        1, params, err);
    if (res == NULL)
        return -1;
    int resumed = 0;
    for (int r = 0; r < PQntuples(res); r++) {
        int64_t run_id = ns_pg_int64(res, r, 0);
        ns_error_t e;
        ns_error_clear(&e);
        if (ns_planner_emit(p, run_id, &e) == NS_OK)
            resumed++;
        else
            NS_WARN(&(ns_log_ctx_t){.run_id = run_id},
                    "resuming run failed: %s", e.msg);
    }
    PQclear(res);
    return resumed;
}
