#include "sources.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ns/buf.h"
#include "ns/pg.h"

/* sql: one item per row; the payload is the row as JSON (typed by
 * row_to_json), the key the configured column. Rows whose key is NULL are
 * refused rather than silently dropped. */
/* A `run --reprocess` (runs.args): the job's reprocess_query, with its
 * $1 (since) and $2 (type) from the run's arguments. */
static ns_err_t run_args(PGconn *conn, const char *run_id, bool *reprocess,
                         char **since, char **type, ns_error_t *err)
{
    const char *params[] = {run_id};
    PGresult *res = ns_pg_query(
        conn,
        "SELECT coalesce((args->>'reprocess')::boolean, false), "
        "args->>'since', args->>'type' FROM runs WHERE run_id = $1::bigint",
        1, params, err);
    if (res == NULL)
        return err->code;
    *reprocess = PQntuples(res) == 1 && PQgetvalue(res, 0, 0)[0] == 't';
    *since = *reprocess && !PQgetisnull(res, 0, 1)
                 ? strdup(PQgetvalue(res, 0, 1))
                 : NULL;
    *type = *reprocess && !PQgetisnull(res, 0, 2)
                ? strdup(PQgetvalue(res, 0, 2))
                : NULL;
    PQclear(res);
    return NS_OK;
}

/* The statement that records a sql source's rows as items. */
static void insert_statement(ns_buf_t *sql, const char *query, int base,
                             bool on_conflict)
{
    ns_buf_addf(sql,
                "INSERT INTO items (run_id, item_key, payload) "
                "SELECT $%d::bigint, payload->>$%d, payload "
                "FROM (SELECT row_to_json(q)::jsonb AS payload FROM (%s) "
                "q) s%s",
                base + 1, base + 2, query,
                on_conflict ? " ON CONFLICT DO NOTHING" : "");
}

/* The common case in one pass over the source: every row has a key and no
 * key comes twice. Without ON CONFLICT each row is one plain insert (no
 * speculative insertion), and the query runs once. A NULL or repeated key
 * rolls back to the savepoint and returns NS_ERR_DEFERRED: the careful path
 * then names the problem or drops the repeats. */
static ns_err_t insert_fast(PGconn *conn, const char *query, int base,
                            const char *const *p, int64_t *count,
                            ns_error_t *err)
{
    if (ns_pg_exec(conn, "SAVEPOINT ns_enumerate", 0, NULL, err) != NS_OK)
        return err->code;
    ns_buf_t sql;
    ns_buf_init(&sql, 1 << 20);
    insert_statement(&sql, query, base, false);
    char state[6];
    PGresult *res = ns_pg_query_state(conn, sql.data, base + 2, p, state, err);
    ns_buf_free(&sql);
    if (res != NULL) {
        *count = strtoll(PQcmdTuples(res), NULL, 10);
        PQclear(res);
        return ns_pg_exec(conn, "RELEASE SAVEPOINT ns_enumerate", 0, NULL, err);
    }
    /* not_null_violation, unique_violation */
    if (strcmp(state, "23502") != 0 && strcmp(state, "23505") != 0)
        return err->code;
    if (ns_pg_exec(conn, "ROLLBACK TO SAVEPOINT ns_enumerate", 0, NULL, err) !=
        NS_OK)
        return err->code;
    return NS_ERR_DEFERRED;
}

/* Rows without a key are refused with their count rather than silently
 * dropped; a key that comes twice is recorded once. */
static ns_err_t insert_careful(PGconn *conn, const ns_job_t *job,
                               const char *query, int base,
                               const char *const *p, const char *since,
                               const char *type, int64_t *count,
                               ns_error_t *err)
{
    ns_buf_t sql;
    ns_buf_init(&sql, 1 << 20);
    ns_buf_addf(&sql,
                "WITH src AS (SELECT row_to_json(q)::jsonb AS payload "
                "FROM (%s) q) "
                "SELECT count(*) FILTER (WHERE payload->>$%d IS NULL), "
                "count(*) FROM src",
                query, base + 1);
    const char *count_params[] = {since, type, job->source.key_column};
    PGresult *res = ns_pg_query(conn, sql.data, base + 1,
                                base ? count_params : count_params + 2, err);
    ns_buf_reset(&sql);
    ns_err_t rc = res != NULL ? NS_OK : err->code;
    int64_t null_keys = res != NULL ? ns_pg_int64(res, 0, 0) : 0;
    PQclear(res);
    if (rc == NS_OK && null_keys > 0)
        rc = ns_error_set(err, NS_ERR_PERMANENT,
                          "source of job %s: %lld rows have no value in "
                          "key column \"%s\"",
                          job->name, (long long)null_keys,
                          job->source.key_column);
    if (rc == NS_OK) {
        insert_statement(&sql, query, base, true);
        res = ns_pg_query(conn, sql.data, base + 2, p, err);
        rc = res != NULL ? NS_OK : err->code;
        if (res != NULL)
            *count = strtoll(PQcmdTuples(res), NULL, 10);
        PQclear(res);
    }
    ns_buf_free(&sql);
    return rc;
}

/* The run's query (the source's, or its reprocess_query with $1 since and
 * $2 type from the run's arguments, base 2: the query's own parameters
 * come first). *since and *type are the caller's to free. */
static ns_err_t run_query(PGconn *conn, const ns_job_t *job, const char *run_id,
                          const char **query, int *base, char **since,
                          char **type, ns_error_t *err)
{
    bool reprocess = false;
    *since = *type = NULL;
    if (run_args(conn, run_id, &reprocess, since, type, err) != NS_OK)
        return err->code;
    if (reprocess && job->source.reprocess_query == NULL)
        return ns_error_set(err, NS_ERR_PERMANENT,
                            "job %s: a reprocess run without "
                            "source.reprocess_query",
                            job->name);
    *query = reprocess ? job->source.reprocess_query : job->source.query;
    *base = reprocess ? 2 : 0;
    return NS_OK;
}

static ns_err_t enumerate_sql(PGconn *conn, const ns_job_t *job,
                              const char *run_id, int64_t *count,
                              ns_error_t *err)
{
    const char *query = NULL;
    int base = 0;
    char *since = NULL, *type = NULL;
    ns_err_t rc =
        run_query(conn, job, run_id, &query, &base, &since, &type, err);
    const char *params[] = {since, type, run_id, job->source.key_column};
    const char *const *p = base ? params : params + 2;
    if (rc == NS_OK)
        rc = insert_fast(conn, query, base, p, count, err);
    if (rc == NS_ERR_DEFERRED)
        rc = insert_careful(conn, job, query, base, p, since, type, count, err);
    free(since);
    free(type);
    return rc;
}

ns_err_t ns_source_sql_declare(PGconn *conn, const ns_job_t *job,
                               int64_t run_id, const char *cursor,
                               ns_error_t *err)
{
    if (job->source.kind != NS_SOURCE_SQL)
        return ns_error_set(err, NS_ERR_INVALID, "job %s: not an sql source",
                            job->name);
    char id[24];
    ns_pg_i64str(run_id, id);
    const char *query = NULL;
    int base = 0;
    char *since = NULL, *type = NULL;
    ns_err_t rc = run_query(conn, job, id, &query, &base, &since, &type, err);
    const char *params[] = {since, type, job->source.key_column,
                            job->source.order_column};
    ns_buf_t sql;
    ns_buf_init(&sql, 1 << 20);
    if (rc == NS_OK)
        ns_buf_addf(&sql,
                    "DECLARE %s NO SCROLL CURSOR FOR SELECT payload->>$%d, "
                    "coalesce(payload->>$%d::text, payload->>$%d), "
                    "payload::text FROM (SELECT row_to_json(q)::jsonb AS "
                    "payload FROM (%s) q) s",
                    cursor, base + 1, base + 2, base + 1, query);
    if (rc == NS_OK)
        rc = ns_pg_exec(conn, sql.data, base + 2, base ? params : params + 2,
                        err);
    ns_buf_free(&sql);
    free(since);
    free(type);
    return rc;
}

static ns_err_t enumerate_one(PGconn *conn, const char *run_id, int64_t *count,
                              ns_error_t *err)
{
    const char *params[] = {run_id};
    ns_err_t rc = ns_pg_exec(conn,
                             "INSERT INTO items (run_id, item_key) "
                             "VALUES ($1, 'one') ON CONFLICT DO NOTHING",
                             1, params, err);
    *count = 1;
    return rc;
}

/* shards: one item per id range [k * size, (k+1) * size) of the table with
 * rows in it; once the job has a watermark (its last successful run's
 * start), only the ranges with rows changed since then. The run records
 * its own start as the next watermark. An overlap (default ten minutes)
 * covers rows whose transaction started before the watermark and
 * committed after it (counting a shard again is exact, missing one is
 * not). */
static ns_err_t enumerate_shards(PGconn *conn, const ns_job_t *job,
                                 const char *run_id, int64_t *count,
                                 ns_error_t *err)
{
    const char *table = ns_source_table(&job->source);
    char *ident = PQescapeIdentifier(conn, table, strlen(table));
    if (ident == NULL)
        return ns_error_set(err, NS_ERR_PERMANENT, "shards source: table %s",
                            PQerrorMessage(conn));
    char size[24];
    ns_pg_i64str(ns_source_shard_size(&job->source), size);
    /* A job's first run (no watermark) takes every range with rows: over
     * an index led by id that is one lookup per range (the next id at or
     * past the next range's start), not a scan of the whole table, whose
     * rows are the documents themselves (0.4 s for 1 M of them, 3 ms
     * this way). */
    const char *probe[] = {job->name, ident};
    PGresult *res = ns_pg_query(
        conn,
        "SELECT NOT EXISTS (SELECT 1 FROM shard_watermarks WHERE job = $1) "
        "AND EXISTS (SELECT 1 FROM pg_index i JOIN pg_attribute a ON "
        "a.attrelid = i.indrelid AND a.attnum = i.indkey[0] JOIN pg_class "
        "c ON c.oid = i.indexrelid JOIN pg_am am ON am.oid = c.relam WHERE "
        "i.indrelid = $2::regclass AND a.attname = 'id' AND am.amname = "
        "'btree' AND i.indpred IS NULL)",
        2, probe, err);
    if (res == NULL) {
        PQfreemem(ident);
        return err->code;
    }
    bool first_by_index = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    ns_buf_t sql;
    ns_buf_init(&sql, 1 << 16);
    if (first_by_index)
        /* The last step stops short of the range whose end would overflow
         * a bigint. */
        ns_buf_addf(&sql,
                    "WITH RECURSIVE r(s) AS (SELECT floor((SELECT min(id) "
                    "FROM %s)::numeric / $2::bigint)::bigint UNION ALL "
                    "SELECT floor((SELECT min(id) FROM %s WHERE id >= "
                    "(r.s + 1) * $2::bigint)::numeric / $2::bigint)::bigint "
                    "FROM r WHERE r.s IS NOT NULL AND r.s < "
                    "9223372036854775807 / $2::bigint - 1) "
                    "INSERT INTO items (run_id, item_key, payload) "
                    "SELECT $1::bigint, s::text, jsonb_build_object('shard', "
                    "s, 'first_id', s * $2::bigint, 'last_id', (s + 1) * "
                    "$2::bigint - 1) FROM r WHERE s IS NOT NULL "
                    "ON CONFLICT DO NOTHING",
                    ident, ident);
    else
        /* The range of an id is floor(id / size), in integers (numeric
         * division costs twice the scan). */
        ns_buf_addf(&sql,
                    "WITH since AS (SELECT coalesce((SELECT watermark - $4 * "
                    "interval '1 second' FROM shard_watermarks WHERE job = "
                    "$2), '-infinity') AS t) "
                    "INSERT INTO items (run_id, item_key, payload) "
                    "SELECT $1::bigint, s::text, jsonb_build_object('shard', "
                    "s, 'first_id', s * $3::bigint, 'last_id', (s + 1) * "
                    "$3::bigint - 1) FROM (SELECT DISTINCT id / $3::bigint - "
                    "(id %% $3::bigint < 0)::int AS s FROM %s, since WHERE "
                    "updated_at > since.t) q "
                    "ON CONFLICT DO NOTHING",
                    ident);
    PQfreemem(ident);
    char overlap[24];
    ns_pg_i64str(ns_source_overlap_s(&job->source), overlap);
    const char *params[] = {run_id, job->name, size, overlap};
    const char *first_params[] = {run_id, size};
    res = first_by_index ? ns_pg_query(conn, sql.data, 2, first_params, err)
                         : ns_pg_query(conn, sql.data, 4, params, err);
    ns_buf_free(&sql);
    if (res == NULL)
        return err->code;
    *count = strtoll(PQcmdTuples(res), NULL, 10);
    PQclear(res);
    return ns_pg_exec(conn,
                      "UPDATE runs SET watermark = now() WHERE run_id = "
                      "$1::bigint",
                      1, params, err);
}

/* windows: one item per time window [start, end) of window_seconds, from
 * the run's slot (scheduled_for; a manual run without --slot: its start,
 * aligned down to the window): the `windows` windows ending there, or
 * with align: day every window of the day before the slot's day in the
 * job's time zone (a DST day has 23 or 25 hours of them). With
 * services_query, one item per (service, window): key "service@start". */
static ns_err_t enumerate_windows(PGconn *conn, const ns_job_t *job,
                                  const char *run_id, int64_t *count,
                                  ns_error_t *err)
{
    const ns_source_t *src = &job->source;
    char width[24], n[24];
    ns_pg_i64str(ns_source_window_s(src), width);
    ns_pg_i64str(src->n_windows > 0 ? src->n_windows : 1, n);
    ns_buf_t svc, sql;
    ns_buf_init(&svc, 1 << 16);
    ns_buf_init(&sql, 1 << 16);
    /* The services' query goes in as written: it is the operator's, from
     * jobs.yaml, like an sql source's. */
    if (src->services_query != NULL)
        ns_buf_addf(&svc,
                    "SELECT DISTINCT service::text AS service FROM (%s) q "
                    "WHERE service IS NOT NULL",
                    src->services_query);
    else
        ns_buf_adds(&svc, "SELECT NULL::text AS service");
    ns_buf_addf(
        &sql,
        "WITH slot AS (SELECT coalesce(scheduled_for, created_at) AS t FROM "
        "runs WHERE run_id = $1::bigint), "
        "span AS (SELECT %s FROM slot), "
        "w AS (SELECT ws, ws + $2::int * interval '1 second' AS we FROM span, "
        "generate_series(span.s, span.e - $2::int * interval '1 second', "
        "$2::int * interval '1 second') ws), "
        "svc AS (%s) "
        "INSERT INTO items (run_id, item_key, payload) "
        "SELECT $1::bigint, coalesce(svc.service || '@', '') || "
        "to_char(ws AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "
        "jsonb_build_object('service', svc.service, 'window_start', "
        "to_char(ws AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "
        "'window_end', to_char(we AT TIME ZONE 'UTC', "
        "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), 'start_ms', "
        "(extract(epoch FROM ws) * 1000)::bigint, 'end_ms', "
        "(extract(epoch FROM we) * 1000)::bigint) FROM w, svc "
        "ON CONFLICT DO NOTHING",
        src->align_day
            ? "date_trunc('day', (t AT TIME ZONE $3) - interval '1 day') AT "
              "TIME ZONE $3 AS s, date_trunc('day', t AT TIME ZONE $3) AT "
              "TIME ZONE $3 AS e"
            : "to_timestamp(floor(extract(epoch FROM t) / $2::int) * "
              "$2::int) - $3::int * $2::int * interval '1 second' AS s, "
              "to_timestamp(floor(extract(epoch FROM t) / $2::int) * "
              "$2::int) AS e",
        svc.data);
    ns_buf_free(&svc);
    const char *params[] = {run_id, width, src->align_day ? job->timezone : n};
    int n_params = 3;
    PGresult *res = ns_pg_query(conn, sql.data, n_params, params, err);
    ns_buf_free(&sql);
    if (res == NULL)
        return err->code;
    *count = strtoll(PQcmdTuples(res), NULL, 10);
    PQclear(res);
    return NS_OK;
}

ns_err_t ns_source_enumerate(PGconn *conn, const ns_job_t *job, int64_t run_id,
                             int64_t *count, ns_error_t *err)
{
    char id[24];
    ns_pg_i64str(run_id, id);
    switch (job->source.kind) {
    case NS_SOURCE_SQL: return enumerate_sql(conn, job, id, count, err);
    case NS_SOURCE_ONE: return enumerate_one(conn, id, count, err);
    case NS_SOURCE_SHARDS: return enumerate_shards(conn, job, id, count, err);
    case NS_SOURCE_WINDOWS: return enumerate_windows(conn, job, id, count, err);
    case NS_SOURCE_STREAM:
        return ns_error_set(err, NS_ERR_INVALID,
                            "job %s is a stream: its items arrive on %s, "
                            "not in runs",
                            job->name, job->source.topic);
    }
    return ns_error_set(err, NS_ERR_INVALID, "job %s: unknown source",
                        job->name);
}
