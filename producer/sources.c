#include "sources.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ns/buf.h"
#include "ns/pg.h"

/* sql: one item per row; the payload is the row as JSON (typed by
 * row_to_json), the key the configured column. Rows whose key is NULL are
 * refused rather than silently dropped. */
static ns_err_t enumerate_sql(PGconn *conn, const ns_job_t *job,
                              const char *run_id, int64_t *count,
                              ns_error_t *err)
{
    ns_buf_t sql;
    ns_buf_init(&sql, 1 << 20);
    ns_buf_addf(&sql,
                "WITH src AS (SELECT row_to_json(q)::jsonb AS payload "
                "FROM (%s) q) "
                "SELECT count(*) FILTER (WHERE payload->>$1 IS NULL), "
                "count(*) FROM src",
                job->source.query);
    const char *params[] = {run_id, job->source.key_column};
    PGresult *res = ns_pg_query(conn, sql.data, 1, params + 1, err);
    ns_buf_reset(&sql);
    if (res == NULL) {
        ns_buf_free(&sql);
        return err->code;
    }
    int64_t null_keys = ns_pg_int64(res, 0, 0);
    PQclear(res);
    if (null_keys > 0) {
        ns_buf_free(&sql);
        return ns_error_set(err, NS_ERR_PERMANENT,
                            "source of job %s: %lld rows have no value in "
                            "key column \"%s\"",
                            job->name, (long long)null_keys,
                            job->source.key_column);
    }
    ns_buf_addf(&sql,
                "INSERT INTO items (run_id, item_key, payload) "
                "SELECT $1::bigint, payload->>$2, payload "
                "FROM (SELECT row_to_json(q)::jsonb AS payload FROM (%s) q) s "
                "ON CONFLICT DO NOTHING",
                job->source.query);
    res = ns_pg_query(conn, sql.data, 2, params, err);
    ns_buf_free(&sql);
    if (res == NULL)
        return err->code;
    *count = strtoll(PQcmdTuples(res), NULL, 10);
    PQclear(res);
    return NS_OK;
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

ns_err_t ns_source_enumerate(PGconn *conn, const ns_job_t *job, int64_t run_id,
                             int64_t *count, ns_error_t *err)
{
    char id[24];
    ns_pg_i64str(run_id, id);
    switch (job->source.kind) {
    case NS_SOURCE_SQL: return enumerate_sql(conn, job, id, count, err);
    case NS_SOURCE_ONE: return enumerate_one(conn, id, count, err);
    }
    return ns_error_set(err, NS_ERR_INVALID, "job %s: unknown source",
                        job->name);
}
