"""Least privilege in the database (issue 14): migrations run as a DDL
role, the daemons as a role that can only read and write rows.

deploy/postgres/roles.sql (the DBA's bootstrap, run twice with psql as
the stack's superuser) takes over a database and makes its three roles,
named for this test: the NOLOGIN owner, the DDL login (a member that must SET ROLE to it)
and the runtime login. `nightshift migrate` refuses the runtime role (and
the DDL login without NS_PG_DDL_ROLE), migrates as the owner with
NS_PG_DDL_DSN and NS_PG_DDL_ROLE in the same environment as the daemons'
NS_PG_DSN, and grants NS_PG_RUNTIME_ROLE its privileges, refusing a role
that could alter the schema. Then a producer (firing a scheduled run),
workers and the CLI run as the runtime role: two stopword refreshes (the
second replaces the job's partition through the owner's functions) and a
batch-analyzer run with its Telegram messages (sequences, the outbox).
Last, the runtime role cannot change the schema in any way we know of."""
import os
import re
import shutil
import subprocess
import time
import unittest

import harness


def psql_bin():
    found = shutil.which("psql")
    if found:
        return found
    return os.path.join(os.environ.get("NS_PG_BIN",
                                       "/usr/lib/postgresql/15/bin"), "psql")


# What the runtime role must not be able to do, each expected to fail with
# insufficient_privilege (42501). {part} is the job's stopword partition.
FORBIDDEN = [
    "CREATE TABLE intruder (id int)",
    "CREATE TEMP TABLE intruder (id int)",
    "CREATE UNLOGGED TABLE intruder (id int)",
    "CREATE VIEW intruder AS SELECT 1",
    "CREATE SEQUENCE intruder",
    "CREATE FUNCTION intruder() RETURNS int LANGUAGE sql AS 'SELECT 1'",
    "CREATE SCHEMA intruder",
    "ALTER TABLE runs ADD COLUMN intruder int",
    "ALTER TABLE runs DROP COLUMN error",
    "ALTER TABLE runs RENAME TO intruder",
    "ALTER TABLE runs OWNER TO CURRENT_USER",
    "DROP TABLE runs",
    "DROP TABLE stopword_terms CASCADE",
    "TRUNCATE runs",
    "TRUNCATE stopword_terms",
    "CREATE INDEX intruder ON runs (job)",
    "DROP INDEX items_open",
    "REINDEX TABLE runs",
    "CREATE TRIGGER intruder BEFORE INSERT ON runs FOR EACH ROW EXECUTE "
    "FUNCTION suppress_redundant_updates_trigger()",
    "ALTER TABLE stopword_terms ADD COLUMN intruder int",
    "ALTER TABLE stopword_terms DETACH PARTITION {part}",
    "ALTER TABLE {part} ADD COLUMN intruder int",
    "TRUNCATE {part}",
    "DROP TABLE {part}",
    "ALTER SEQUENCE runs_run_id_seq RESTART",
    "COMMENT ON TABLE runs IS 'intruder'",
    "ALTER FUNCTION ns_stopword_terms_stage(text) SECURITY INVOKER",
    "CREATE OR REPLACE FUNCTION ns_analyze_items() RETURNS void "
    "LANGUAGE sql AS 'SELECT'",
    "SELECT ns_grant_runtime_role(current_user)",
    "INSERT INTO schema_migrations (name) VALUES ('999_intruder.sql')",
    "DELETE FROM schema_migrations",
]


class DbRolesTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        import psycopg2
        env = cls.env = harness.Env("dbroles")
        suffix = env.tag.replace("-", "_")
        cls.db = "it_roles_" + suffix
        cls.owner = "it_ddl_" + suffix
        cls.migrator = "it_mig_" + suffix
        cls.app = "it_app_" + suffix
        cls.admin_dsn = os.environ["NS_PG_DSN"]
        admin = psycopg2.connect(cls.admin_dsn)
        admin.autocommit = True
        cur = admin.cursor()
        cur.execute("SELECT current_user")
        cls.superuser = cur.fetchone()[0]
        # The database exists already, the superuser's (as a managed
        # service or the postgres image makes it); the script takes it
        # over, and running it again changes nothing.
        cur.execute('CREATE DATABASE "%s"' % cls.db)
        admin.close()
        cls.bootstrap()
        cls.bootstrap()
        # In a libpq conninfo string the last setting of a keyword wins.
        cls.app_dsn = "%s dbname=%s user=%s password=unused-trust-auth" % (
            cls.admin_dsn, cls.db, cls.app)
        cls.ddl_dsn = "%s dbname=%s user=%s" % (cls.admin_dsn, cls.db,
                                                cls.migrator)
        cls.admin_db_dsn = "%s dbname=%s" % (cls.admin_dsn, cls.db)
        base = {k: v for k, v in env.env.items()
                if not k.startswith("NS_PG_")}
        # One environment for everything, as a deployment may have it.
        cls.app_env = dict(base, NS_PG_DSN=cls.app_dsn)
        cls.migrate_env = dict(cls.app_env, NS_PG_DDL_DSN=cls.ddl_dsn,
                               NS_PG_DDL_ROLE=cls.owner,
                               NS_PG_RUNTIME_ROLE=cls.app)

    @classmethod
    def bootstrap(cls):
        res = subprocess.run(
            [psql_bin(), cls.admin_dsn, "-X", "-q", "-v", "ON_ERROR_STOP=1",
             "-v", "db=" + cls.db, "-v", "ddl_role=" + cls.owner,
             "-v", "ddl_user=" + cls.migrator, "-v", "app_role=" + cls.app,
             "-v", "app_password=not-in-the-repo",
             "-f", os.path.join(harness.SRC, "deploy", "postgres",
                                "roles.sql")],
            capture_output=True, text=True, timeout=120)
        if res.returncode != 0:
            raise AssertionError("roles.sql: " + res.stdout + res.stderr)

    @classmethod
    def tearDownClass(cls):
        import psycopg2
        cls.env.close()
        admin = psycopg2.connect(cls.admin_dsn)
        admin.autocommit = True
        cur = admin.cursor()
        cur.execute('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % cls.db)
        for role in (cls.app, cls.migrator, cls.owner):
            cur.execute('DROP ROLE IF EXISTS "%s"' % role)
        admin.close()

    # -- helpers ----------------------------------------------------------
    def admin_sql(self, query, params=()):
        import psycopg2
        with psycopg2.connect(self.admin_db_dsn) as c:
            cur = c.cursor()
            cur.execute(query, params)
            return cur.fetchall() if cur.description else []

    def app_conn(self):
        import psycopg2
        c = psycopg2.connect(self.app_dsn)
        c.autocommit = True
        return c

    def migrate(self, env, check=True):
        return self.env.nightshift("migrate", env=env, check=check)

    def part(self, job):
        return self.admin_sql(
            "SELECT 'stopword_terms_' || left(md5(%s), 16)", (job,))[0][0]

    def partition_state(self, job):
        """(oid, owner, sorted ACL) of the job's partition, or None."""
        rows = self.admin_sql(
            "SELECT c.oid, c.relowner::regrole::text, c.relacl::text[] "
            "FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'stopword_terms'::regclass AND "
            "c.relname = %s", (self.part(job),))
        if not rows:
            return None
        oid, owner, acl = rows[0]
        return oid, owner, sorted(acl or [])

    def parent_acl(self):
        return sorted(self.admin_sql(
            "SELECT relacl::text[] FROM pg_class WHERE oid = "
            "'stopword_terms'::regclass")[0][0] or [])

    def frozen_pages(self, table):
        """(all-frozen pages, pages) of table, or None without
        pg_visibility (installed in a schema of its own, so the checks of
        public's functions are not disturbed)."""
        import psycopg2
        try:
            rows = self.admin_sql(
                "CREATE SCHEMA IF NOT EXISTS it_ext; CREATE EXTENSION IF "
                "NOT EXISTS pg_visibility SCHEMA it_ext; SELECT "
                "(it_ext.pg_visibility_map_summary(%s::regclass)).all_frozen,"
                " relpages FROM pg_class WHERE relname = %s",
                (table, table))
        except psycopg2.Error:
            return None
        return rows[0]

    @staticmethod
    def df(cur, job, term):
        cur.execute("SELECT df FROM stopword_terms WHERE job = %s AND "
                    "lang = 'en' AND term = %s", (job, term))
        row = cur.fetchone()
        return row[0] if row else None

    # -- tests ------------------------------------------------------------
    def test_1_migrate_refuses_roles_that_cannot_migrate(self):
        res = self.migrate(self.app_env, check=False)
        self.assertEqual(res.returncode, 1, res.stdout + res.stderr)
        self.assertIn('role "%s" may not create objects in schema "public"'
                      % self.app, res.stderr)
        self.assertIn("NS_PG_DDL_DSN", res.stderr)
        # The DDL login holds nothing of the owner's until it SETs ROLE.
        env = dict(self.migrate_env)
        del env["NS_PG_DDL_ROLE"]
        res = self.migrate(env, check=False)
        self.assertEqual(res.returncode, 1, res.stdout + res.stderr)
        self.assertIn('role "%s" may use no schema' % self.migrator,
                      res.stderr)
        self.assertIn("NS_PG_DDL_ROLE", res.stderr)
        # A role the login is not a member of.
        env = dict(self.migrate_env, NS_PG_DDL_ROLE=self.app)
        res = self.migrate(env, check=False)
        self.assertEqual(res.returncode, 1)
        self.assertIn('SET ROLE "%s"' % self.app, res.stderr)
        self.assertIn("permission denied", res.stderr)
        # Nothing was created.
        self.assertEqual(self.admin_sql(
            "SELECT count(*) FROM pg_class WHERE relnamespace = "
            "'public'::regnamespace")[0][0], 0)

    def test_2_migrate_as_the_ddl_role_grants_the_runtime_role(self):
        res = self.migrate(self.migrate_env)
        self.assertRegex(res.stdout, r"migrations: \d+ applied, (\d+) total")
        self.assertIn("runtime role %s: row privileges granted" % self.app,
                      res.stdout)
        total = int(re.search(r"(\d+) total", res.stdout).group(1))
        again = self.migrate(self.migrate_env)
        self.assertIn("migrations: 0 applied, %d total" % total, again.stdout)
        # Concurrent migrators grant in turn (two GRANTs on one object at
        # once would fail with "tuple concurrently updated").
        procs = [subprocess.Popen([harness.BIN, "migrate"],
                                  env=self.migrate_env, text=True,
                                  stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE) for _ in range(4)]
        for p in procs:
            out, err = p.communicate(timeout=120)
            self.assertEqual(p.returncode, 0, err)
            self.assertIn("row privileges granted", out)
        # Everything belongs to the owner role, not to the login.
        owners = self.admin_sql(
            "SELECT DISTINCT relowner::regrole::text FROM pg_class WHERE "
            "relnamespace = 'public'::regnamespace UNION SELECT DISTINCT "
            "proowner::regrole::text FROM pg_proc WHERE pronamespace = "
            "'public'::regnamespace")
        self.assertEqual(owners, [(self.owner,)])
        # Still refused once the schema exists (not "0 applied").
        res = self.migrate(self.app_env, check=False)
        self.assertEqual(res.returncode, 1)
        self.assertIn("may not create objects", res.stderr)
        # A runtime role that could alter the schema is refused, and so is
        # one that does not exist.
        for role, why in ((self.migrator, "can act as"),
                          (self.owner, "can act as"),
                          (self.superuser, "is a superuser"),
                          ("it_nobody_" + self.app, "does not exist")):
            res = self.migrate(dict(self.migrate_env,
                                    NS_PG_RUNTIME_ROLE=role), check=False)
            self.assertEqual(res.returncode, 1, role)
            self.assertIn('runtime role "%s"' % role, res.stderr)
            self.assertIn(why, res.stderr)

    def test_3_what_the_runtime_role_holds(self):
        app, db = self.app, self.db
        rows = self.admin_sql(
            "SELECT c.relname, c.relkind, "
            "has_table_privilege(%s, c.oid, 'SELECT'), "
            "has_table_privilege(%s, c.oid, 'INSERT'), "
            "has_table_privilege(%s, c.oid, 'TRUNCATE') OR "
            "has_table_privilege(%s, c.oid, 'REFERENCES') OR "
            "has_table_privilege(%s, c.oid, 'TRIGGER') "
            "FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace "
            "AND c.relkind IN ('r', 'p', 'v')", (app,) * 5)
        self.assertGreater(len(rows), 30)
        for name, kind, select, insert, more in rows:
            self.assertTrue(select, name)
            self.assertEqual(insert, kind != "v" and
                             name != "schema_migrations", name)
            self.assertFalse(more, name)
        self.assertEqual(self.admin_sql(
            "SELECT bool_and(has_sequence_privilege(%s, c.oid, 'USAGE')), "
            "bool_or(has_sequence_privilege(%s, c.oid, 'UPDATE')) FROM "
            "pg_class c WHERE c.relnamespace = 'public'::regnamespace AND "
            "c.relkind = 'S'", (app, app)), [(True, False)])
        self.assertEqual(self.admin_sql(
            "SELECT has_schema_privilege(%s, 'public', 'USAGE'), "
            "has_schema_privilege(%s, 'public', 'CREATE'), "
            "has_database_privilege(%s, %s, 'CONNECT'), "
            "has_database_privilege(%s, %s, 'CREATE'), "
            "has_database_privilege(%s, %s, 'TEMPORARY')",
            (app, app, app, db, app, db, app, db)),
            [(True, False, True, False, False)])
        # The owner's functions: pinned search_path, not PUBLIC's to call;
        # the runtime role may call the three it needs and not the grant.
        funcs = self.admin_sql(
            "SELECT proname, prosecdef, proconfig, "
            "coalesce(proacl::text, '') ~ '(^|[{,])=X', "
            "has_function_privilege(%s, oid, 'EXECUTE') FROM pg_proc "
            "WHERE pronamespace = 'public'::regnamespace ORDER BY 1", (app,))
        callable_by_app = {f[0]: f[4] for f in funcs}
        for name, may in (("ns_analyze_items", True),
                          ("ns_stopword_terms_publish", True),
                          ("ns_stopword_terms_stage", True),
                          ("ns_grant_runtime_role", False)):
            self.assertEqual(callable_by_app.get(name), may, name)
        definers = [f for f in funcs if f[1]]
        self.assertGreaterEqual(len(definers), 3)
        for name, _, config, public, _ in definers:
            self.assertFalse(public, name)
            self.assertIn("search_path=public, pg_temp", config or [], name)
        self.assertFalse([f for f in funcs if f[0] == "ns_grant_runtime_role"
                          and f[3]])

    def test_4_daemons_run_as_the_runtime_role(self):
        env = self.env
        llm = harness.Fake(env, "fake_llm.py", "--api-key",
                           env.env["NS_LLM_API_KEY"])
        tg = harness.Fake(env, "fake_telegram.py", "--token",
                          env.env["NS_TELEGRAM_BOT_TOKEN"])
        sw, batch = env.job("sw"), env.job("batch")
        cfg = env.config(
            "jobs:\n"
            "  - name: %s\n"
            "    schedule: \"* * * * *\"\n"
            "    starting_deadline_seconds: 600\n"
            "    concurrency_policy: Forbid\n"
            "    source: {type: shards, table: documents, shard_size: 50,"
            " watermark_overlap_seconds: 0}\n"
            "    handler: stopwords.count\n"
            "    finalizer: stopwords.merge\n"
            "    max_parallelism: 2\n"
            "    params: {redis_prefix: sw-%s, min_docs: 5}\n"
            "  - name: %s\n"
            "    source: {type: sql, query: \"SELECT id, name, description, "
            "status, progress FROM projects ORDER BY id\", key: id}\n"
            "    handler: analyzer.project\n"
            "    finalizer: analyzer.summary\n"
            "    notify: {telegram: {chat_id: \"${NS_TELEGRAM_CHAT_ID}\"}}\n"
            % (sw, env.tag, batch), llm=llm, telegram=tg)
        app = self.app_conn()
        cur = app.cursor()
        words = ["the", "quick", "brown", "fox", "jumps", "over", "lazy",
                 "dog", "and", "a", "of", "to", "in"]
        bodies = {i: " ".join(words[(i * k) % len(words)]
                              for k in range(1, 9)) for i in range(1, 201)}
        for i, body in bodies.items():
            cur.execute("INSERT INTO documents (id, lang, body) VALUES "
                        "(%s, 'en', %s)", (i, body))
        for name in ("Alpha", "Beta", "Gamma"):
            cur.execute("INSERT INTO projects (name, description, status, "
                        "progress) VALUES (%s, 'd', 'active', 10)", (name,))
        workers = [env.start("worker", "-c", cfg, log="w%d" % i,
                             env=self.app_env) for i in range(2)]
        for w in workers:
            env.wait_log(w, "assigned")
        # The producer fires the stopword job's slot once: its clock moves
        # from just before this minute to just after its start and stays.
        clock = os.path.join(env.tmp, "producer.clock")
        minute = (time.time() // 60) * 60
        harness.set_clock(clock, minute - 1)
        producer = env.start("producer", "-c", cfg, log="producer",
                             env=dict(self.app_env, NS_TEST_CLOCK_FILE=clock))
        env.wait_log(producer, "producer started")
        harness.set_clock(clock, minute + 1)

        def finished_runs():
            cur.execute("SELECT run_id, status FROM runs WHERE job = %s AND "
                        "status IN ('succeeded', 'failed') ORDER BY run_id",
                        (sw,))
            return cur.fetchall()
        first = harness.wait_for(finished_runs, 120, "the scheduled run")
        self.assertEqual(first[0][1], "succeeded", env.log_tail(workers[0]))
        cur.execute("SELECT kind FROM runs WHERE run_id = %s",
                    (first[0][0],))
        self.assertEqual(cur.fetchone()[0], "scheduled")
        state1 = self.partition_state(sw)
        self.assertIsNotNone(state1)
        has_the = {i for i, body in bodies.items()
                   if "the" in body.split()}
        self.assertEqual(self.df(cur, sw, "the"), len(has_the))

        # The second run (manual, the CLI as the runtime role) replaces
        # the partition the first one attached.
        cur.execute("UPDATE documents SET body = body || ' the end', "
                    "updated_at = now() WHERE id <= 20")
        res = env.nightshift("run", sw, "--wait", "--timeout", "120", "-c",
                             cfg, env=self.app_env)
        self.assertIn("succeeded", res.stdout)
        state2 = self.partition_state(sw)
        self.assertIsNotNone(state2)
        self.assertNotEqual(state2[0], state1[0])  # a new table
        # Owned by the owner role, with exactly the parent's privileges.
        self.assertEqual(state2[1], self.owner)
        self.assertEqual(state2[2], self.parent_acl())
        self.assertEqual(state1[2], self.parent_acl())
        self.assertEqual(self.admin_sql(
            "SELECT count(*) FROM pg_class WHERE relname LIKE "
            "'stopword\\_terms\\_%%\\_new'")[0][0], 0)
        # COPY ... WITH (FREEZE) still applied (the table was created in
        # the merge's own transaction, inside the owner's function): every
        # page is frozen. pg_visibility is a contrib module; without it
        # this one check is skipped.
        frozen = self.frozen_pages(self.part(sw))
        if frozen is not None:
            self.assertEqual(frozen[0], frozen[1])
            self.assertGreater(frozen[1], 0)
        # The incremental run counted the edited shard again.
        self.assertEqual(self.df(cur, sw, "end"), 20)
        self.assertEqual(self.df(cur, sw, "the"),
                         len(has_the | set(range(1, 21))))

        # batch-analyzer: analyses, the outbox, Telegram, as the runtime
        # role too.
        res = env.nightshift("run", batch, "--wait", "--timeout", "120",
                             "-c", cfg, env=self.app_env)
        self.assertIn("succeeded", res.stdout)
        harness.wait_for(lambda: len(tg.delivered("sendMessage")) >= 4, 60,
                         "the reports and the summary")
        cur.execute("SELECT count(*) FROM analyses")
        self.assertEqual(cur.fetchone()[0], 3)
        # The operator's read verbs.
        env.nightshift("status", "-c", cfg, env=self.app_env)
        env.nightshift("dlq", "list", "-c", cfg, env=self.app_env)
        # The planner's statistics refresh, through the owner's function.
        cur.execute("SELECT ns_analyze_items()")
        self.assertIsNotNone(self.admin_sql(
            "SELECT last_analyze FROM pg_stat_user_tables WHERE relname = "
            "'items'")[0][0])
        for p in workers + [producer]:
            self.assertEqual(env.stop(p), 0, env.log_tail(p))
            log = env.log_tail(p, 100000)
            self.assertNotIn("permission denied", log)
            self.assertNotIn("must be owner", log)
        app.close()

    def test_5_the_runtime_role_cannot_alter_the_schema(self):
        import psycopg2
        part = self.part(self.env.job("sw"))
        self.assertIsNotNone(self.partition_state(self.env.job("sw")))
        app = self.app_conn()
        app.autocommit = False
        allowed = []
        for stmt in FORBIDDEN:
            stmt = stmt.format(part=part)
            try:
                app.cursor().execute(stmt)
                allowed.append(stmt)
            except psycopg2.Error as e:
                self.assertEqual(e.pgcode, "42501", "%s: %s" % (stmt, e))
            app.rollback()
        self.assertEqual(allowed, [])
        # Without grant options a GRANT only warns; it grants nothing.
        app.cursor().execute("GRANT SELECT ON runs TO PUBLIC")
        app.commit()
        self.assertEqual(self.admin_sql(
            "SELECT has_table_privilege('public', 'runs', 'SELECT')"),
            [(False,)])
        # Migrating as the runtime role fails with the way out.
        res = self.migrate(self.app_env, check=False)
        self.assertEqual(res.returncode, 1)
        self.assertIn("migrations run as the DDL role", res.stderr)
        # The swap functions touch only tables named from md5(job): a
        # hostile job name is only a job name.
        cur = app.cursor()
        cur.execute("SELECT ns_stopword_terms_stage(%s)",
                    ("x'); DROP TABLE runs; --",))
        cur.execute("SELECT ns_stopword_terms_publish(%s)",
                    ("x'); DROP TABLE runs; --",))
        cur.execute("SELECT count(*) FROM stopword_terms WHERE job = %s",
                    ("x'); DROP TABLE runs; --",))
        self.assertEqual(cur.fetchone()[0], 0)
        app.rollback()
        cur.execute("SELECT count(*) FROM runs")
        self.assertGreater(cur.fetchone()[0], 0)
        app.close()


if __name__ == "__main__":
    harness.run(globals())
