"""`nightshift migrate` on a fresh database: idempotent, and safe when
several processes start at once (advisory lock)."""
import hashlib
import os
import subprocess
import unittest

import harness


class MigrateTest(unittest.TestCase):
    def test_concurrent_migrations(self):
        env = harness.Env("migrate")  # Env already migrated its database
        try:
            env.sql("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
            procs = [subprocess.Popen([harness.BIN, "migrate"], env=env.env,
                                      stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True)
                     for _ in range(4)]
            outs = [p.communicate(timeout=60) for p in procs]
            for p, (out, err) in zip(procs, outs):
                self.assertEqual(p.returncode, 0, err)
            applied = [int(out.split()[1]) for out, _ in outs]
            self.assertEqual(sum(applied), env.scalar(
                "SELECT count(*) FROM schema_migrations"))
            again = env.nightshift("migrate")
            self.assertIn("0 applied", again.stdout)
        finally:
            env.close()

    def test_stopword_terms_become_partitions_keeping_their_rows(self):
        """007 turns stopword_terms into one partition per job; the rows a
        006 database held stay, whatever the job's name."""
        env = harness.Env("migrate7")
        try:
            env.sql("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
            sql_dir = os.path.join(harness.SRC, "schemas", "sql")
            env.sql("CREATE TABLE schema_migrations (name text PRIMARY KEY, "
                    "applied_at timestamptz NOT NULL DEFAULT now())")
            for name in sorted(os.listdir(sql_dir)):
                if name < "007":
                    with open(os.path.join(sql_dir, name)) as f:
                        env.sql(f.read())
                    env.sql("INSERT INTO schema_migrations (name) VALUES "
                            "(%s)", (name,))
            rows = [("job-a", "en", "the", 5, 9, 100),
                    ("job-a", "fr", "le", 3, 3, 0),
                    ("job'b\"; DROP TABLE runs; --", "en", "the", 1, 1, 0)]
            for r in rows:
                env.sql("INSERT INTO stopword_terms VALUES "
                        "(%s, %s, %s, %s, %s, %s)", r)
            self.assertRegex(env.nightshift("migrate").stdout,
                             r"migrations: \d+ applied")
            self.assertEqual(env.scalar(
                "SELECT count(*) FROM schema_migrations WHERE name LIKE "
                "'007%%'"), 1)
            self.assertEqual(sorted(env.sql(
                "SELECT job, lang, term, df, count, nlogn FROM "
                "stopword_terms")), sorted(rows))
            self.assertEqual(env.scalar(
                "SELECT count(*) FROM pg_inherits WHERE inhparent = "
                "'stopword_terms'::regclass"), 2)
            self.assertEqual(env.scalar(
                "SELECT tableoid::regclass::text FROM stopword_terms WHERE "
                "job = 'job-a' LIMIT 1"),
                "stopword_terms_" + hashlib.md5(b"job-a").hexdigest()[:16])
        finally:
            env.close()


if __name__ == "__main__":
    harness.run(globals())
