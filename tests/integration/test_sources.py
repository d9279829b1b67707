"""Recording a run's items from a sql source, on the real stack: streamed
in chunks for the common case (recorded and produced as read), the careful
path when a key is missing (the run fails, naming how many rows) or
repeated (recorded once), also when that shows only in a later chunk
(chunks already recorded ran; a run that fails fails their pending items
with it, nothing stays pending), runs larger than one fetch of the
planner's cursor (every item produced and processed, at and across the
fetch boundary), and the run's items deleted with the run (the trigger
that replaced the foreign key)."""
import re
import unittest

import harness

FETCH = 20000  # producer/planner.c EMIT_FETCH, STREAM_FETCH
FIRST = 2000   # producer/planner.c STREAM_FIRST
LATE = FIRST + FETCH + 8000  # a row of the third chunk
# Keys with what COPY's text format and JSON escape (SQL expressions).
HOSTILE = ["'tab' || chr(9) || 'key'", "'new' || chr(10) || 'line'",
           "'back' || chr(92) || 'slash' || chr(92)", "'cr' || chr(13)",
           "'q' || chr(34) || 'uote' || chr(39)", "'emoji ' || chr(128512)",
           "chr(92) || 'N'", "'=cmd|'' /C calc''!A0'"]


class SourcesTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        env = cls.env = harness.Env("sources")
        cls.jobs = {}
        body = "jobs:\n"
        for name, query in (
                ("dup", "SELECT g % 5 AS id, g FROM generate_series(1, 50) g"),
                ("nokey", "SELECT CASE WHEN g IN (3, 7) THEN NULL ELSE g END "
                          "AS id FROM generate_series(1, 10) g"),
                ("even", "SELECT g AS id FROM generate_series(1, %d) g"
                         % (2 * FETCH)),
                ("odd", "SELECT g AS id FROM generate_series(1, %d) g"
                        % (2 * FETCH + 1)),
                ("latenull", "SELECT CASE WHEN g = %d THEN NULL ELSE g END "
                             "AS id FROM generate_series(1, %d) g"
                             % (LATE, 2 * FETCH)),
                ("latedup", "SELECT CASE WHEN g = %d THEN 5 ELSE g END "
                            "AS id FROM generate_series(1, %d) g"
                            % (LATE, 2 * FETCH)),
                ("hostile", " UNION ALL ".join(
                    "SELECT %s AS id, %s AS name" % (k, k) for k in HOSTILE))):
            cls.jobs[name] = env.job(name)
            body += ("  - name: %s\n"
                     "    source: {type: sql, query: \"%s\", key: id}\n"
                     "    handler: noop\n"
                     "    max_parallelism: 4\n" % (cls.jobs[name], query))
        cls.cfg = env.config(body, worker="max_in_flight: 16")
        cls.worker = env.start("worker", "-c", cls.cfg)
        env.wait_log(cls.worker, "assigned")

    @classmethod
    def tearDownClass(cls):
        cls.env.close()

    def run_job(self, name):
        res = self.env.nightshift("run", self.jobs[name], "--wait",
                                  "--timeout", "300", "-c", self.cfg,
                                  check=False)
        m = re.search(r"^run (\d+) ", res.stdout + res.stderr, re.M)
        self.assertIsNotNone(m, res.stdout + res.stderr)
        return int(m.group(1)), res

    def items(self, run_id, status=None):
        q = "SELECT count(*) FROM items WHERE run_id = %s"
        if status:
            q += " AND status = '%s'" % status
        return self.env.scalar(q, (run_id,))

    def test_repeated_keys_are_recorded_once(self):
        run_id, res = self.run_job("dup")
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
        self.assertEqual(self.env.scalar(
            "SELECT items_total FROM runs WHERE run_id = %s", (run_id,)), 5)
        self.assertEqual(sorted(r[0] for r in self.env.sql(
            "SELECT item_key FROM items WHERE run_id = %s", (run_id,))),
            ["0", "1", "2", "3", "4"])
        self.assertEqual(self.items(run_id, "done"), 5)

    def test_a_missing_key_fails_the_run_and_says_how_many(self):
        run_id, res = self.run_job("nokey")
        self.assertEqual(res.returncode, 1)
        status, error = self.env.sql(
            "SELECT status, error FROM runs WHERE run_id = %s", (run_id,))[0]
        self.assertEqual(status, "failed")
        self.assertIn('2 rows have no value in key column "id"', error)
        self.assertIn("run %d failed; fix the cause" % run_id, res.stderr)
        self.assertNotIn("resume", res.stderr)
        self.assertEqual(self.items(run_id), 0)  # nothing half-recorded

    def test_a_key_missing_in_a_later_chunk_fails_what_is_left(self):
        run_id, res = self.run_job("latenull")
        self.assertEqual(res.returncode, 1, res.stdout + res.stderr)
        status, error = self.env.sql(
            "SELECT status, error FROM runs WHERE run_id = %s", (run_id,))[0]
        self.assertEqual(status, "failed")
        self.assertIn('1 rows have no value in key column "id"', error)
        # The two chunks recorded before it: run or failed with the run,
        # none left pending; nothing of the chunk with the missing key.
        self.assertEqual(self.items(run_id), FIRST + FETCH)
        self.assertEqual(self.items(run_id, "pending"), 0)
        self.assertEqual(self.env.scalar(
            "SELECT count(*) FROM items WHERE run_id = %s AND status = "
            "'failed' AND error NOT LIKE %s", (run_id, "%no value in key%")),
            0)

    def test_a_key_repeated_in_a_later_chunk_is_recorded_once(self):
        run_id, res = self.run_job("latedup")
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
        n = 2 * FETCH - 1
        self.assertEqual(self.env.scalar(
            "SELECT items_total FROM runs WHERE run_id = %s", (run_id,)), n)
        # Every item once, those of the first chunks produced twice (by the
        # stream, then with the rest) and done once.
        self.assertEqual(self.env.sql(
            "SELECT count(*), sum(attempts) FROM items WHERE run_id = %s "
            "AND status = 'done'", (run_id,))[0], (n, n))

    def test_hostile_keys_are_recorded_as_they_are(self):
        run_id, res = self.run_job("hostile")
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
        want = sorted(r[0] for r in self.env.sql(
            " UNION ALL ".join("SELECT %s" % k for k in HOSTILE)))
        rows = self.env.sql(
            "SELECT item_key, payload->>'name', payload->>'id', status "
            "FROM items WHERE run_id = %s ORDER BY item_key", (run_id,))
        self.assertEqual([r[0] for r in rows], want)
        for key, name, pid, status in rows:
            self.assertEqual((name, pid, status), (key, key, "done"))

    def test_runs_larger_than_one_fetch(self):
        for name, n in (("even", 2 * FETCH), ("odd", 2 * FETCH + 1)):
            run_id, res = self.run_job(name)
            self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
            self.assertEqual(self.items(run_id, "done"), n, name)
            self.assertEqual(self.env.scalar(
                "SELECT items_total FROM runs WHERE run_id = %s", (run_id,)),
                n)

    def test_zz_deleting_a_run_deletes_its_items(self):
        run_id, res = self.run_job("dup")
        self.assertEqual(res.returncode, 0)
        self.assertEqual(self.items(run_id), 5)
        self.env.sql("DELETE FROM runs WHERE run_id = %s", (run_id,))
        self.assertEqual(self.items(run_id), 0)
        # Other runs' items stay.
        self.assertGreater(self.env.scalar("SELECT count(*) FROM items"), 0)


if __name__ == "__main__":
    harness.run(globals())
