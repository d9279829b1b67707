/* pg.h: PostgreSQL through libpq, with errors classified for retries.
 * Lost connections and serialization failures are transient; constraint and
 * syntax errors are permanent. Every query is parameterised. */
#ifndef NS_PG_H
#define NS_PG_H

#include <libpq-fe.h>
#include <stdint.h>

#include "ns/buf.h"
#include "ns/err.h"

/** @brief Connects (application_name=nightshift-<component>, 10 s timeout).
 *  @returns NULL with err set (transient) on failure. */
PGconn *ns_pg_connect(const char *dsn, ns_error_t *err);

/** @brief Reconnects *conn if its connection is bad. @returns NS_OK when
 *  usable. */
ns_err_t ns_pg_ensure(PGconn **conn, const char *dsn, ns_error_t *err);

/** @brief Runs a parameterised statement (text parameters; NULL = SQL
 *  NULL). @returns the result (caller PQclear) for COMMAND_OK / TUPLES_OK
 *  / COPY_*, or NULL with err set and classified. */
PGresult *ns_pg_query(PGconn *conn, const char *sql, int n_params,
                      const char *const *params, ns_error_t *err);

/** @brief ns_pg_query that also gives the SQLSTATE of a failure in state
 *  ("23505"; "" when it has none, e.g. a lost connection), so a caller can
 *  take another path for one kind of error. */
PGresult *ns_pg_query_state(PGconn *conn, const char *sql, int n_params,
                            const char *const *params, char state[6],
                            ns_error_t *err);

/** @brief ns_pg_query with every column of the result in binary format:
 *  a bytea arrives as its bytes (PQgetlength long), not as hex text of
 *  twice the size to unescape; text columns as their bytes. */
PGresult *ns_pg_query_binary(PGconn *conn, const char *sql, int n_params,
                             const char *const *params, ns_error_t *err);

/** @brief ns_pg_query through a named prepared statement (parsed and
 *  planned once per connection): prepared on first use, and again on a
 *  new connection. For statements run very often. */
PGresult *ns_pg_query_prepared(PGconn *conn, const char *name, const char *sql,
                               int n_params, const char *const *params,
                               ns_error_t *err);

/** @brief ns_pg_query for statements whose result is not needed. */
ns_err_t ns_pg_exec(PGconn *conn, const char *sql, int n_params,
                    const char *const *params, ns_error_t *err);

/** @brief Waits up to timeout_ms for notifications of the channels conn
 *  LISTENs to (outside a transaction). @returns how many arrived (0 on
 *  the timeout or a signal), -1 when the connection is unusable. */
int ns_pg_wait_notify(PGconn *conn, int timeout_ms);

/** @brief Rolls back if a transaction is open or failed; never fails. */
void ns_pg_rollback(PGconn *conn);

/** @brief Value of row r column c as int64 (0 if NULL). */
int64_t ns_pg_int64(const PGresult *res, int r, int c);

/** @brief Appends s (len bytes) to b as one field of COPY's text format
 *  (backslash, tab, newline and carriage return escaped). */
ns_err_t ns_pg_copy_field(ns_buf_t *b, const char *s, size_t len);

/** @brief Formats an int64 for use as a text parameter. */
void ns_pg_i64str(int64_t v, char out[24]);
/** Bound for an array parameter built with ns_pg_array_add (keys are at
 *  most a few KiB, batches a few hundred). */
#define NS_PG_ARRAY_MAX ((size_t)64 << 20)
/** @brief Appends s (NULL: SQL NULL) as one quoted element to the array
 *  literal being built in b (empty at first; ns_pg_array_end closes it):
 *  a text[] (or bigint[]) parameter. */
ns_err_t ns_pg_array_add(ns_buf_t *b, const char *s);
/** @brief Closes the array literal in b ("{}" when nothing was added). */
ns_err_t ns_pg_array_end(ns_buf_t *b);

#endif
