/* test_bookkeeper.c: the worker's batched bookkeeping (worker/bookkeeper.c)
 * against the real Postgres of tests/stack.sh (NS_PG_DSN): the answers of
 * its batched statements, and that requests queued while a batch is in the
 * database go together in the next one (made certain with a row lock, not
 * with timing). Exits 77 (skipped) when NS_PG_DSN is unset. */
#include "nstest.h"

#include <libpq-fe.h>
#include <pthread.h>
#include <time.h>

#include "bookkeeper.h"
#include "ns/migrations.h"
#include "ns/pg.h"

static volatile sig_atomic_t running = 1;

static PGconn *db(void)
{
    ns_error_t err;
    ns_error_clear(&err);
    PGconn *pg = ns_pg_connect(getenv("NS_PG_DSN"), &err);
    if (pg == NULL)
        NSTEST_FAIL("connect: %s", err.msg);
    return pg;
}

static void sql(PGconn *pg, const char *q)
{
    ns_error_t err;
    ns_error_clear(&err);
    if (ns_pg_exec(pg, q, 0, NULL, &err) != NS_OK)
        NSTEST_FAIL("%s: %s", q, err.msg);
}

static char *value(PGconn *pg, const char *q)
{
    ns_error_t err;
    ns_error_clear(&err);
    PGresult *r = ns_pg_query(pg, q, 0, NULL, &err);
    if (r == NULL || PQntuples(r) != 1)
        NSTEST_FAIL("%s: %s", q, r ? "not one row" : err.msg);
    char *out = strdup(PQgetvalue(r, 0, 0));
    PQclear(r);
    return out;
}

/* A run of this process with n pending items "k000".. in the given status;
 * returns its id. */
static int64_t new_run(PGconn *pg, const char *status, int n)
{
    char q[512];
    snprintf(q, sizeof(q),
             "INSERT INTO runs (job, kind, status, items_total, emitted_at) "
             "VALUES ('bk-%ld', 'manual', '%s', %d, now()) RETURNING run_id",
             (long)getpid(), status, n);
    char *id = value(pg, q);
    int64_t run = strtoll(id, NULL, 10);
    free(id);
    snprintf(q, sizeof(q),
             "INSERT INTO items (run_id, item_key, payload) SELECT %lld, "
             "'k' || lpad(g::text, 3, '0'), '{}' FROM generate_series(0, %d) "
             "g",
             (long long)run, n - 1);
    sql(pg, q);
    return run;
}

static ns_bookkeeper_t *bookkeeper(void)
{
    ns_error_t err;
    ns_error_clear(&err);
    ns_bookkeeper_t *bk =
        ns_bookkeeper_new(getenv("NS_PG_DSN"), 1, &running, &err);
    if (bk == NULL)
        NSTEST_FAIL("ns_bookkeeper_new: %s", err.msg);
    return bk;
}

TEST(start_answers_like_the_one_item_precheck)
{
    PGconn *pg = db();
    int64_t run = new_run(pg, "running", 3);
    int64_t gone = new_run(pg, "cancelled", 1);
    char q[256];
    snprintf(q, sizeof(q),
             "UPDATE items SET status = 'done', attempts = 3 WHERE run_id = "
             "%lld AND "
             "item_key = 'k002'",
             (long long)run);
    sql(pg, q);
    ns_bookkeeper_t *bk = bookkeeper();
    int attempt = -1;
    ASSERT_EQ(ns_bookkeeper_start(bk, run, "k000", &attempt), NS_BK_OK);
    ASSERT_EQ(attempt, 1);
    ASSERT_EQ(ns_bookkeeper_start(bk, run, "k000", &attempt), NS_BK_OK);
    ASSERT_EQ(attempt, 2);
    ASSERT_EQ(ns_bookkeeper_start(bk, run, "k002", &attempt), NS_BK_TERMINAL);
    ASSERT_EQ(attempt, 3);
    ASSERT_EQ(ns_bookkeeper_start(bk, run, "nope", &attempt), NS_BK_UNKNOWN);
    ASSERT_EQ(ns_bookkeeper_start(bk, gone, "k000", &attempt), NS_BK_CANCELLED);
    /* Keys are data, whatever they hold. */
    static const char hostile[] = "a\"b\\c,{d} 'e'); DROP TABLE items; --";
    snprintf(q, sizeof(q),
             "INSERT INTO items (run_id, item_key) VALUES (%lld, $$%s$$)",
             (long long)run, hostile);
    sql(pg, q);
    ASSERT_EQ(ns_bookkeeper_start(bk, run, hostile, &attempt), NS_BK_OK);
    ASSERT_EQ(attempt, 1);
    bool maybe = true;
    ASSERT_EQ(ns_bookkeeper_done(bk, run, hostile, "{\"k\": \"\\\"\"}", &maybe),
              NS_BK_OK);
    ASSERT(!maybe);
    snprintf(q, sizeof(q),
             "SELECT status || ' ' || report::text FROM items WHERE run_id = "
             "%lld AND item_key = $$%s$$",
             (long long)run, hostile);
    char *h = value(pg, q);
    ASSERT_STREQ(h, "done {\"k\": \"\\\"\"}");
    free(h);
    ASSERT_EQ(ns_bookkeeper_start(bk, 1LL << 50, "k000", &attempt),
              NS_BK_UNKNOWN);
    snprintf(q, sizeof(q),
             "SELECT attempts || ' ' || (started_at IS NOT NULL) FROM items "
             "WHERE run_id = %lld AND item_key = 'k000'",
             (long long)run);
    char *v = value(pg, q);
    ASSERT_STREQ(v, "2 true");
    free(v);
    ns_bookkeeper_destroy(bk);
    PQfinish(pg);
}

TEST(done_records_the_report_and_tells_the_last_item)
{
    PGconn *pg = db();
    int64_t run = new_run(pg, "running", 3);
    ns_bookkeeper_t *bk = bookkeeper();
    bool maybe = true;
    ASSERT_EQ(ns_bookkeeper_done(bk, run, "k000", "{\"score\": 7}", &maybe),
              NS_BK_OK);
    ASSERT(!maybe);
    ASSERT_EQ(ns_bookkeeper_done(bk, run, "k001", NULL, &maybe), NS_BK_OK);
    ASSERT(!maybe);
    ASSERT_EQ(ns_bookkeeper_check(bk, run, &maybe), NS_BK_OK);
    ASSERT(!maybe);
    ASSERT_EQ(ns_bookkeeper_done(bk, run, "k002", "\"it's <b>\"", &maybe),
              NS_BK_OK);
    ASSERT(maybe);
    /* A second "done" (another delivery finished it first) is no error
     * and changes nothing. */
    ASSERT_EQ(ns_bookkeeper_done(bk, run, "k000", "{\"score\": 1}", &maybe),
              NS_BK_OK);
    ASSERT_EQ(ns_bookkeeper_check(bk, run, &maybe), NS_BK_OK);
    ASSERT(maybe);
    char q[256];
    snprintf(q, sizeof(q),
             "SELECT string_agg(item_key || '=' || status || ':' || "
             "coalesce(report::text, '-'), ' ' ORDER BY item_key) FROM items "
             "WHERE run_id = %lld AND finished_at IS NOT NULL",
             (long long)run);
    char *v = value(pg, q);
    ASSERT_STREQ(v, "k000=done:{\"score\": 7} k001=done:- "
                    "k002=done:\"it's <b>\"");
    free(v);
    ns_bookkeeper_destroy(bk);
    PQfinish(pg);
}

typedef struct starter {
    ns_bookkeeper_t *bk;
    int64_t run;
    char key[8];
    ns_bk_result_t result;
    int attempt;
    pthread_t thread;
} starter_t;

static void *start_one(void *arg)
{
    starter_t *s = arg;
    s->result = ns_bookkeeper_start(s->bk, s->run, s->key, &s->attempt);
    return NULL;
}

static void wait_stats(ns_bookkeeper_t *bk, uint64_t taken, uint64_t queued)
{
    for (int i = 0; i < 30000; i++) {
        ns_bk_stats_t s = ns_bookkeeper_stats(bk);
        if (s.taken == taken && s.queued == queued)
            return;
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    NSTEST_FAIL("bookkeeper never had %llu taken, %llu queued",
                (unsigned long long)taken, (unsigned long long)queued);
}

TEST(requests_queued_during_a_batch_go_in_one_statement)
{
    enum { N = 50 };
    PGconn *pg = db();
    int64_t run = new_run(pg, "running", N);
    ns_bookkeeper_t *bk = bookkeeper();
    /* Hold item k000 so that the first batch waits in the database. */
    PGconn *locker = db();
    sql(locker, "BEGIN");
    char q[256];
    snprintf(q, sizeof(q),
             "SELECT 1 FROM items WHERE run_id = %lld AND item_key = 'k000' "
             "FOR UPDATE",
             (long long)run);
    sql(locker, q);
    starter_t s[N];
    for (int i = 0; i < N; i++) {
        s[i] = (starter_t){.bk = bk, .run = run};
        snprintf(s[i].key, sizeof(s[i].key), "k%03d", i);
        if (i == 0) {
            pthread_create(&s[0].thread, NULL, start_one, &s[0]);
            wait_stats(bk, 1, 0);
        } else {
            pthread_create(&s[i].thread, NULL, start_one, &s[i]);
        }
    }
    wait_stats(bk, 1, N - 1);
    sql(locker, "COMMIT");
    for (int i = 0; i < N; i++) {
        pthread_join(s[i].thread, NULL);
        ASSERT_EQ(s[i].result, NS_BK_OK);
        ASSERT_EQ(s[i].attempt, 1);
    }
    ns_bk_stats_t st = ns_bookkeeper_stats(bk);
    ASSERT_EQ(st.batches, 2);
    ASSERT_EQ(st.statements, 2);
    ASSERT_EQ(st.served, N);
    snprintf(q, sizeof(q),
             "SELECT sum(attempts) FROM items WHERE run_id = %lld "
             "AND started_at IS NOT NULL",
             (long long)run);
    char *v = value(pg, q);
    ASSERT_STREQ(v, "50");
    free(v);
    ns_bookkeeper_destroy(bk);
    PQfinish(locker);
    PQfinish(pg);
}

TEST(a_lost_connection_is_replaced_and_its_statements_prepared_again)
{
    PGconn *pg = db();
    int64_t run = new_run(pg, "running", 2);
    ns_bookkeeper_t *bk = bookkeeper();
    int attempt = 0;
    ASSERT_EQ(ns_bookkeeper_start(bk, run, "k000", &attempt), NS_BK_OK);
    char *killed = value(pg, "SELECT count(pg_terminate_backend(pid)) FROM "
                             "pg_stat_activity WHERE datname = "
                             "current_database() AND pid <> pg_backend_pid() "
                             "AND application_name = "
                             "'nightshift-bookkeeper'");
    ASSERT_STREQ(killed, "1");
    free(killed);
    ASSERT_EQ(ns_bookkeeper_start(bk, run, "k001", &attempt), NS_BK_OK);
    ASSERT_EQ(attempt, 1);
    bool maybe = false;
    ASSERT_EQ(ns_bookkeeper_done(bk, run, "k000", NULL, &maybe), NS_BK_OK);
    ASSERT_EQ(ns_bookkeeper_done(bk, run, "k001", NULL, &maybe), NS_BK_OK);
    ASSERT(maybe);
    ns_bookkeeper_destroy(bk);
    PQfinish(pg);
}

TEST(while_stopping_an_unreachable_postgres_answers_stopping)
{
    running = 0;
    ns_error_t err;
    ns_error_clear(&err);
    ns_bookkeeper_t *bk = ns_bookkeeper_new(
        "host=127.0.0.1 port=1 dbname=x connect_timeout=2", 2, &running, &err);
    ASSERT(bk != NULL);
    int attempt = 0;
    bool maybe = false;
    ASSERT_EQ(ns_bookkeeper_start(bk, 1, "k", &attempt), NS_BK_STOPPING);
    ASSERT_EQ(ns_bookkeeper_done(bk, 1, "k", NULL, &maybe), NS_BK_STOPPING);
    ns_bookkeeper_destroy(bk);
}

int main(int argc, char **argv)
{
    if (getenv("NS_PG_DSN") == NULL || getenv("NS_PG_DSN")[0] == '\0') {
        printf("skipped: NS_PG_DSN is not set (use scripts/test.sh)\n");
        return 77;
    }
    PGconn *pg = db();
    ns_error_t err;
    ns_error_clear(&err);
    int applied = 0;
    if (ns_migrate(pg, &applied, &err) != NS_OK) {
        fprintf(stderr, "migrate: %s\n", err.msg);
        return 1;
    }
    PQfinish(pg);
    return nstest_main(argc, argv);
}
