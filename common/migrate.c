#include <stdio.h>

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

ns_err_t ns_migrate(PGconn *conn, int *applied, ns_error_t *err)
{
    int count = 0;
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
