#include <stdio.h>
#include <string.h>

#include "ns/log.h"
#include "ns/migrations.h"
#include "ns/pg.h"

/* Any constant shared by every nightshift process works as the lock id. */
#define NS_MIGRATE_LOCK "7233850194425911"

static ns_err_t apply_one(PGconn *conn, const ns_migration_t *m, int *applied,
                          ns_error_t *err)
{
    const char *name[] = {m->name};
    if (ns_pg_exec(conn, "BEGIN", 0, NULL, err) != NS_OK)
        return err->code;
    /* Serialises concurrent migrators; released at COMMIT/ROLLBACK. */
    if (ns_pg_exec(conn, "SELECT pg_advisory_xact_lock(" NS_MIGRATE_LOCK ")", 0,
                   NULL, err) != NS_OK)
        goto fail;
    PGresult *res = ns_pg_query(
        conn, "SELECT 1 FROM schema_migrations WHERE name = $1", 1, name, err);
    if (res == NULL)
        goto fail;
    int done = PQntuples(res) > 0;
    PQclear(res);
    if (!done) {
        PGresult *r = PQexec(conn, m->data);
        if (PQresultStatus(r) != PGRES_COMMAND_OK &&
            PQresultStatus(r) != PGRES_TUPLES_OK) {
            ns_error_set(err, NS_ERR_PERMANENT, "migration %s: %s", m->name,
                         PQresultErrorMessage(r));
            PQclear(r);
            goto fail;
        }
        PQclear(r);
        if (ns_pg_exec(conn, "INSERT INTO schema_migrations (name) VALUES ($1)",
                       1, name, err) != NS_OK)
            goto fail;
    }
    if (ns_pg_exec(conn, "COMMIT", 0, NULL, err) != NS_OK)
        goto fail;
    if (!done) {
        (*applied)++;
        NS_INFO(NULL, "applied migration %s", m->name);
    }
    return NS_OK;
fail:
    ns_pg_rollback(conn);
    return err->code;
}

#define WHO_MIGRATES                                                           \
    "migrations run as the DDL role (NS_PG_DDL_DSN, and NS_PG_DDL_ROLE "       \
    "when that login must SET ROLE to it), not as the daemons' role"

/* A role that may not create objects here (the daemons' role, say) is
 * refused at once, with the way out, whether or not a migration is due
 * (with nothing to apply it would otherwise "succeed"). */
static ns_err_t check_can_create(PGconn *conn, ns_error_t *err)
{
    PGresult *r = ns_pg_query(
        conn,
        "SELECT current_user, current_schema(), "
        "coalesce(has_schema_privilege(current_schema(), 'CREATE'), false), "
        "current_setting('search_path')",
        0, NULL, err);
    if (r == NULL)
        return err->code;
    ns_err_t rc = NS_OK;
    if (PQgetisnull(r, 0, 1))
        rc = ns_error_set(err, NS_ERR_PERMANENT,
                          "role \"%s\" may use no schema of its search_path "
                          "(%s): " WHO_MIGRATES,
                          PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 3));
    else if (strcmp(PQgetvalue(r, 0, 2), "t") != 0)
        rc = ns_error_set(err, NS_ERR_PERMANENT,
                          "role \"%s\" may not create objects in schema "
                          "\"%s\": " WHO_MIGRATES,
                          PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 1));
    PQclear(r);
    return rc;
}

ns_err_t ns_migrate(PGconn *conn, int *applied, ns_error_t *err)
{
    int count = 0;
    if (applied)
        *applied = 0;
    if (check_can_create(conn, err) != NS_OK)
        return err->code;
    /* One transaction: the transaction-level lock is held until the table
     * is committed, so a concurrent migrator sees it (a session lock
     * released before COMMIT would not guarantee that). */
    ns_err_t rc =
        ns_pg_exec(conn,
                   "BEGIN;"
                   "SELECT pg_advisory_xact_lock(" NS_MIGRATE_LOCK ");"
                   "CREATE TABLE IF NOT EXISTS schema_migrations ("
                   " name text PRIMARY KEY,"
                   " applied_at timestamptz NOT NULL DEFAULT now());"
                   "COMMIT",
                   0, NULL, err);
    if (rc != NS_OK)
        ns_pg_rollback(conn);
    for (int i = 0; rc == NS_OK && i < ns_migrations_count; i++)
        rc = apply_one(conn, &ns_migrations[i], &count, err);
    if (applied)
        *applied = count;
    return rc;
}

/* err->msg becomes 'what "role": err->msg'. */
static ns_err_t prefix_error(ns_error_t *err, const char *what,
                             const char *role)
{
    char cause[sizeof(err->msg)];
    snprintf(cause, sizeof(cause), "%s", err->msg);
    return ns_error_set(err, err->code, "%s \"%.64s\": %s", what, role, cause);
}

ns_err_t ns_migrate_set_role(PGconn *conn, const char *role, ns_error_t *err)
{
    const char *params[] = {role};
    /* set_config('role') is SET ROLE with the name as a parameter. */
    if (ns_pg_exec(conn, "SELECT set_config('role', $1, false)", 1, params,
                   err) != NS_OK)
        return prefix_error(err, "SET ROLE", role);
    return NS_OK;
}

ns_err_t ns_migrate_grant_runtime(PGconn *conn, const char *role,
                                  ns_error_t *err)
{
    const char *params[] = {role};
    /* In the migrators' lock: two GRANTs on one object at once fail
     * ("tuple concurrently updated"). */
    ns_err_t rc = ns_pg_exec(
        conn, "BEGIN; SELECT pg_advisory_xact_lock(" NS_MIGRATE_LOCK ")", 0,
        NULL, err);
    if (rc == NS_OK)
        rc = ns_pg_exec(conn, "SELECT ns_grant_runtime_role($1)", 1, params,
                        err);
    if (rc == NS_OK)
        rc = ns_pg_exec(conn, "COMMIT", 0, NULL, err);
    if (rc != NS_OK) {
        ns_pg_rollback(conn);
        return prefix_error(err, "runtime role", role);
    }
    return NS_OK;
}
