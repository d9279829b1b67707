#include "ns/pg.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* SQLSTATE classes worth retrying: connection exceptions, serialization
 * failures, deadlocks, insufficient resources, operator intervention
 * (admin shutdown, crash shutdown, cannot connect now). */
static ns_err_t classify(PGconn *conn, const PGresult *res)
{
    if (conn == NULL || PQstatus(conn) != CONNECTION_OK)
        return NS_ERR_TRANSIENT;
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    if (state == NULL)
        return NS_ERR_TRANSIENT;
    if (strncmp(state, "08", 2) == 0 || strcmp(state, "40001") == 0 ||
        strcmp(state, "40P01") == 0 || strncmp(state, "53", 2) == 0 ||
        strncmp(state, "57", 2) == 0)
        return NS_ERR_TRANSIENT;
    return NS_ERR_PERMANENT;
}

static void trim_newline(char *msg)
{
    size_t n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
        msg[--n] = '\0';
}

static void ignore_notice(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

PGconn *ns_pg_connect(const char *dsn, ns_error_t *err)
{
    if (dsn == NULL || dsn[0] == '\0') {
        ns_error_set(err, NS_ERR_INVALID,
                     "postgres: no connection string (set NS_PG_DSN)");
        return NULL;
    }
    const char *keys[] = {"dbname", "application_name", "connect_timeout",
                          NULL};
    const char *values[] = {dsn, "nightshift", "10", NULL};
    PGconn *conn = PQconnectdbParams(keys, values, 1);
    if (conn == NULL || PQstatus(conn) != CONNECTION_OK) {
        ns_error_set(err, NS_ERR_TRANSIENT, "postgres: connect: %s",
                     conn ? PQerrorMessage(conn) : "out of memory");
        if (err)
            trim_newline(err->msg);
        PQfinish(conn);
        return NULL;
    }
    /* Notices (e.g. "relation already exists, skipping") are not errors. */
    PQsetNoticeProcessor(conn, ignore_notice, NULL);
    return conn;
}

ns_err_t ns_pg_ensure(PGconn **conn, const char *dsn, ns_error_t *err)
{
    if (*conn != NULL && PQstatus(*conn) == CONNECTION_OK)
        return NS_OK;
    PQfinish(*conn);
    *conn = ns_pg_connect(dsn, err);
    return *conn ? NS_OK : NS_ERR_TRANSIENT;
}

/* A statement failed: err says why, classified for retries; res freed. */
static PGresult *failed(PGconn *conn, PGresult *res, ns_error_t *err)
{
    ns_err_t code = classify(conn, res);
    ns_error_set(err, code, "postgres: %s",
                 res ? PQresultErrorMessage(res) : PQerrorMessage(conn));
    if (err)
        trim_newline(err->msg);
    PQclear(res);
    return NULL;
}

PGresult *ns_pg_query(PGconn *conn, const char *sql, int n_params,
                      const char *const *params, ns_error_t *err)
{
    return ns_pg_query_state(conn, sql, n_params, params, NULL, err);
}

static PGresult *query_as(PGconn *conn, const char *sql, int n_params,
                          const char *const *params, int result_format,
                          char state[6], ns_error_t *err)
{
    if (state != NULL)
        state[0] = '\0';
    if (conn == NULL) {
        ns_error_set(err, NS_ERR_TRANSIENT, "postgres: not connected");
        return NULL;
    }
    /* Without parameters, PQexec allows several statements in one call. */
    PGresult *res = n_params == 0 && result_format == 0
                        ? PQexec(conn, sql)
                        : PQexecParams(conn, sql, n_params, NULL, params, NULL,
                                       NULL, result_format);
    ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK ||
        st == PGRES_COPY_IN || st == PGRES_COPY_OUT)
        return res;
    const char *code = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    if (state != NULL && code != NULL)
        snprintf(state, 6, "%.5s", code);
    return failed(conn, res, err);
}

PGresult *ns_pg_query_state(PGconn *conn, const char *sql, int n_params,
                            const char *const *params, char state[6],
                            ns_error_t *err)
{
    return query_as(conn, sql, n_params, params, 0, state, err);
}

PGresult *ns_pg_query_binary(PGconn *conn, const char *sql, int n_params,
                             const char *const *params, ns_error_t *err)
{
    return query_as(conn, sql, n_params, params, 1, NULL, err);
}

static bool is_ok(const PGresult *res)
{
    ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    return st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
}

PGresult *ns_pg_query_prepared(PGconn *conn, const char *name, const char *sql,
                               int n_params, const char *const *params,
                               ns_error_t *err)
{
    if (conn == NULL) {
        ns_error_set(err, NS_ERR_TRANSIENT, "postgres: not connected");
        return NULL;
    }
    PGresult *res = PQexecPrepared(conn, name, n_params, params, NULL, NULL, 0);
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    if (!is_ok(res) && state != NULL &&
        strcmp(state, "26000") == 0) { /* invalid_sql_statement_name */
        PQclear(res);
        res = PQprepare(conn, name, sql, n_params, NULL);
        if (is_ok(res)) {
            PQclear(res);
            res = PQexecPrepared(conn, name, n_params, params, NULL, NULL, 0);
        }
    }
    if (is_ok(res))
        return res;
    return failed(conn, res, err);
}

ns_err_t ns_pg_exec(PGconn *conn, const char *sql, int n_params,
                    const char *const *params, ns_error_t *err)
{
    PGresult *res = ns_pg_query(conn, sql, n_params, params, err);
    if (res == NULL)
        return err ? err->code : NS_ERR_TRANSIENT;
    PQclear(res);
    return NS_OK;
}

ns_err_t ns_pg_array_add(ns_buf_t *b, const char *s)
{
    ns_err_t rc = ns_buf_add(b, b->len > 0 ? "," : "{", 1);
    if (s == NULL)
        return rc == NS_OK ? ns_buf_add(b, "NULL", 4) : rc;
    if (rc == NS_OK)
        rc = ns_buf_add(b, "\"", 1);
    for (const char *c = s; *c && rc == NS_OK; c++) {
        if (*c == '"' || *c == '\\')
            rc = ns_buf_add(b, "\\", 1);
        if (rc == NS_OK)
            rc = ns_buf_add(b, c, 1);
    }
    return rc == NS_OK ? ns_buf_add(b, "\"", 1) : rc;
}

ns_err_t ns_pg_array_end(ns_buf_t *b)
{
    return b->len > 0 ? ns_buf_add(b, "}", 1) : ns_buf_add(b, "{}", 2);
}

void ns_pg_rollback(PGconn *conn)
{
    if (conn == NULL || PQstatus(conn) != CONNECTION_OK)
        return;
    if (PQtransactionStatus(conn) == PQTRANS_IDLE)
        return;
    PGresult *res = PQexec(conn, "ROLLBACK");
    PQclear(res);
}

int64_t ns_pg_int64(const PGresult *res, int r, int c)
{
    if (PQgetisnull(res, r, c))
        return 0;
    return strtoll(PQgetvalue(res, r, c), NULL, 10);
}

void ns_pg_i64str(int64_t v, char out[24])
{
    snprintf(out, 24, "%" PRId64, v);
}

ns_err_t ns_pg_copy_field(ns_buf_t *b, const char *s, size_t len)
{
    size_t start = 0;
    for (size_t i = 0; i < len; i++) {
        const char *esc = NULL;
        switch (s[i]) {
        case '\\': esc = "\\\\"; break;
        case '\t': esc = "\\t"; break;
        case '\n': esc = "\\n"; break;
        case '\r': esc = "\\r"; break;
        default: continue;
        }
        if (ns_buf_add(b, s + start, i - start) != NS_OK ||
            ns_buf_add(b, esc, 2) != NS_OK)
            return NS_ERR_NOMEM;
        start = i + 1;
    }
    return ns_buf_add(b, s + start, len - start);
}

/* Reads what the server sent and frees the notifications received:
 * how many, -1 when the connection is unusable. */
static int drain_notifies(PGconn *conn)
{
    if (PQconsumeInput(conn) == 0)
        return -1;
    int got = 0;
    PGnotify *n;
    while ((n = PQnotifies(conn)) != NULL) {
        PQfreemem(n);
        got++;
    }
    return got;
}

int ns_pg_wait_notify(PGconn *conn, int timeout_ms)
{
    if (conn == NULL || PQstatus(conn) != CONNECTION_OK)
        return -1;
    /* Some may have come in with an earlier result. */
    int got = drain_notifies(conn);
    if (got != 0)
        return got;
    struct pollfd pfd = {.fd = PQsocket(conn), .events = POLLIN};
    if (pfd.fd < 0)
        return -1;
    int rc = poll(&pfd, 1, timeout_ms);
    if (rc < 0)
        return errno == EINTR ? 0 : -1;
    return rc == 0 ? 0 : drain_notifies(conn);
}
