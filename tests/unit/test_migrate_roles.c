/* Migrations and database roles without a server: which connection string
 * `nightshift migrate` uses, and that every SECURITY DEFINER function the
 * migrations create has its search_path pinned and EXECUTE revoked from
 * PUBLIC (tests/integration/test_db_roles.py checks the catalog too). */
#include <stdbool.h>

#include "ns/migrations.h"
#include "nstest.h"
#include "ops.h"

TEST(ddl_dsn_wins_over_the_daemons_dsn)
{
    setenv("NS_PG_DSN", "user=app", 1);
    setenv("NS_PG_DDL_DSN", "user=ddl", 1);
    ASSERT_STREQ(ns_ops_migrate_dsn(), "user=ddl");
}

TEST(empty_ddl_dsn_falls_back)
{
    setenv("NS_PG_DSN", "user=app", 1);
    setenv("NS_PG_DDL_DSN", "", 1);
    ASSERT_STREQ(ns_ops_migrate_dsn(), "user=app");
    unsetenv("NS_PG_DDL_DSN");
    ASSERT_STREQ(ns_ops_migrate_dsn(), "user=app");
}

TEST(ddl_dsn_alone)
{
    unsetenv("NS_PG_DSN");
    setenv("NS_PG_DDL_DSN", "user=ddl", 1);
    ASSERT_STREQ(ns_ops_migrate_dsn(), "user=ddl");
}

TEST(neither_means_the_config)
{
    setenv("NS_PG_DSN", "", 1);
    unsetenv("NS_PG_DDL_DSN");
    ASSERT(ns_ops_migrate_dsn() == NULL);
}

/* Whether some statement of sql starting with verb (up to its ';')
 * contains both a and b. */
static bool statement_has(const char *sql, const char *verb, const char *a,
                          const char *b)
{
    for (const char *s = strstr(sql, verb); s != NULL;
         s = strstr(s + 1, verb)) {
        const char *end = strchr(s, ';');
        size_t n = end ? (size_t)(end - s) : strlen(s);
        char stmt[2048];
        if (n >= sizeof(stmt))
            n = sizeof(stmt) - 1;
        memcpy(stmt, s, n);
        stmt[n] = '\0';
        if (strstr(stmt, a) != NULL && strstr(stmt, b) != NULL)
            return true;
    }
    return false;
}

static bool any_migration_has(const char *verb, const char *a, const char *b)
{
    for (int i = 0; i < ns_migrations_count; i++)
        if (statement_has(ns_migrations[i].data, verb, a, b))
            return true;
    return false;
}

/* Whether p is inside a -- comment of sql. */
static bool in_comment(const char *sql, const char *p)
{
    const char *line = p;
    while (line > sql && line[-1] != '\n')
        line--;
    for (const char *c = line; c + 1 < p; c++)
        if (c[0] == '-' && c[1] == '-')
            return true;
    return false;
}

TEST(security_definer_functions_are_locked_down)
{
    int definers = 0;
    for (int i = 0; i < ns_migrations_count; i++) {
        const char *sql = ns_migrations[i].data;
        for (const char *d = strstr(sql, "SECURITY DEFINER"); d != NULL;
             d = strstr(d + 1, "SECURITY DEFINER")) {
            if (in_comment(sql, d))
                continue;
            /* The function it belongs to: the last CREATE before it. */
            const char *create = NULL;
            for (const char *c = strstr(sql, "CREATE FUNCTION "); c && c < d;
                 c = strstr(c + 1, "CREATE FUNCTION "))
                create = c;
            ASSERT(create != NULL);
            char name[128];
            const char *start = create + strlen("CREATE FUNCTION ");
            size_t n = strcspn(start, "(");
            ASSERT(n > 0 && n < sizeof(name) - 1);
            memcpy(name, start, n);
            name[n] = '(';
            name[n + 1] = '\0';
            if (!any_migration_has("ALTER FUNCTION", name, "SET search_path"))
                NSTEST_FAIL("%s: %s) is SECURITY DEFINER without a pinned "
                            "search_path",
                            ns_migrations[i].name, name);
            if (!any_migration_has("REVOKE", name, "FROM PUBLIC"))
                NSTEST_FAIL("%s: %s) is SECURITY DEFINER and PUBLIC may "
                            "execute it",
                            ns_migrations[i].name, name);
            definers++;
        }
    }
    ASSERT(definers >= 3); /* 013: stage, publish, analyze */
}

int main(int argc, char **argv)
{
    return nstest_main(argc, argv);
}
