"""Recording a run's items from a sql source, on the real stack: the one-
pass insert for the common case, the careful path when a key is missing
(the run fails, naming how many rows) or repeated (recorded once), runs
larger than one fetch of the planner's cursor (every item produced and
processed, at and across the fetch boundary), and the run's items deleted
with the run (the trigger that replaced the foreign key)."""
import re
import unittest

import harness

FETCH = 20000  # producer/planner.c EMIT_FETCH


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
                        % (2 * FETCH + 1))):
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
