"""Items whose attempt is one HTTP request (`webhook.post`), end to end: their
calls wait on the worker's HTTP loop, not on a thread each (calls.h).

1. 200 calls are open at the API at once, never more (the fake holds them:
   reached and observed on conditions, not timing), while the worker has 16
   pool threads; 200 more items are begun behind them (their starts
   recorded, so that each goes out the moment a call is answered). The
   worker is killed -9 with all of them open; a new worker does every
   item, each exactly once in the database: the 400 begun with their second
   attempt counted, the rest with one, and every item's call made under its
   own idempotency key.
2. Failures from the loop take the one-item path: 30 calls answered 500
   are retried through the retry tiers and done; one answered 400 is
   dead-lettered with its reason, and the run fails with every other item
   done.
3. The worker that claims a complete run finalizes it even when the run's
   row is locked for a moment when it gets there (a concurrent claim
   attempt does that): it waits for the row instead of skipping it, which
   left the run to the sweeper 30 s later (seen at 1,024 calls in flight).
   Judged on the run's own timestamps, not on timing.
"""
import re
import signal
import unittest

import harness

N = 600
IN_FLIGHT = 200


class CallsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        env = cls.env = harness.Env("calls")
        cls.api = harness.Fake(env, "fake_webhook.py")
        cls.job = env.job("calls")
        cls.cfg = env.config(
            "jobs:\n"
            "  - name: %s\n    source: {type: sql, query: \"SELECT g AS id, "
            "'x' || g AS name FROM generate_series(1, %d) g\", key: id}\n"
            "    handler: webhook.post\n    params: {url: \"%s/hook\", "
            "timeout_seconds: 60}\n    max_parallelism: 8\n"
            "    max_in_flight: %d\n"
            "    retry: {max_attempts: 5, backoff_seconds: 0.2}\n"
            % (cls.job, N, cls.api.url, IN_FLIGHT))

    @classmethod
    def tearDownClass(cls):
        cls.env.close()

    def run_job(self):
        res = self.env.nightshift("run", self.job, "-c", self.cfg)
        return int(re.search(r"run (\d+) of", res.stdout).group(1))

    def run_end(self, run_id):
        return harness.wait_for(lambda: self.env.scalar(
            "SELECT status FROM runs WHERE run_id = %s AND status IN "
            "('succeeded', 'failed')", (run_id,)), 180, "the run's end")

    def keys_posted(self, run_id):
        """Idempotency keys of the calls the API saw for the run."""
        prefix = "%d:" % run_id
        return [r["headers"]["idempotency-key"] for r in self.api.requests()
                if r["headers"].get("idempotency-key", "").startswith(prefix)]

    def start_held(self, log):
        """A worker and a run whose first IN_FLIGHT calls the API holds."""
        self.api.reset()
        self.api.control("config", {"hold": True})
        w = self.env.start("worker", "-c", self.cfg, log=log)
        self.env.wait_log(w, "assigned")
        run_id = self.run_job()
        harness.wait_for(
            lambda: self.api.control("stats")["in_flight"] == IN_FLIGHT, 120,
            "%d calls held at once" % IN_FLIGHT)
        return w, run_id

    def test_1_calls_wait_together_and_survive_kill_9(self):
        env, api = self.env, self.api
        w1, run_id = self.start_held("w1")
        threads = int(re.search(r"worker started: (\d+) threads",
                                env.log_tail(w1, 400)).group(1))
        self.assertLessEqual(threads, 16)
        # Every open call had its start recorded first, and as many items
        # again are begun behind them.
        begun = 2 * IN_FLIGHT
        harness.wait_for(lambda: env.scalar(
            "SELECT count(started_at) FROM items WHERE run_id = %s AND "
            "attempts = 1 AND status = 'pending'", (run_id,)) == begun, 60,
            "%d items begun" % begun)
        self.assertEqual(api.control("stats")["in_flight"], IN_FLIGHT)
        self.assertEqual(env.stop(w1, signal.SIGKILL), -9)
        api.control("config", {"hold": False})

        w2 = env.start("worker", "-c", self.cfg, log="w2")
        self.assertEqual(self.run_end(run_id), "succeeded")
        rows = env.sql(
            "SELECT attempts, count(*) FROM items WHERE run_id = %s AND "
            "status = 'done' AND finished_at IS NOT NULL GROUP BY attempts "
            "ORDER BY attempts", (run_id,))
        self.assertEqual(rows, [(1, N - begun), (2, begun)])
        self.assertEqual(api.control("stats")["peak_in_flight"], IN_FLIGHT)
        keys = self.keys_posted(run_id)
        self.assertEqual(len(set(keys)), N)
        self.assertLessEqual(len(keys), N + IN_FLIGHT)
        self.assertEqual(env.stop(w2), 0)

    def test_2_failures_from_the_loop_take_the_one_item_path(self):
        env, api = self.env, self.api
        api.reset()
        api.faults(*([{"kind": "status", "status": 500}] * 30 +
                     [{"kind": "status", "status": 400}]))
        w = env.start("worker", "-c", self.cfg, log="w3")
        env.wait_log(w, "assigned")
        run_id = self.run_job()
        self.assertEqual(self.run_end(run_id), "failed")
        statuses = dict(env.sql(
            "SELECT status, count(*) FROM items WHERE run_id = %s GROUP BY "
            "status", (run_id,)))
        self.assertEqual(statuses, {"done": N - 1, "failed": 1})
        self.assertEqual(env.scalar(
            "SELECT sum(attempts) FROM items WHERE run_id = %s", (run_id,)),
            N + 30)
        error = env.scalar("SELECT error FROM items WHERE run_id = %s AND "
                           "status = 'failed'", (run_id,))
        self.assertIn("webhook.post: HTTP 400 (after 1 attempt)", error)
        self.assertEqual(env.scalar(
            "SELECT count(*) FROM dead_letters WHERE run_id = %s", (run_id,)),
            1)
        self.assertEqual(len(self.keys_posted(run_id)), N + 30)
        self.assertEqual(env.stop(w), 0)

    def test_3_a_claimed_run_waits_for_its_locked_row(self):
        import psycopg2
        env, api = self.env, self.api
        w, run_id = self.start_held("w4")
        # A lock on the run's row that conflicts with FOR UPDATE, held
        # until the run has been claimed.
        locker = psycopg2.connect(env.dsn)
        locker.cursor().execute(
            "SELECT 1 FROM runs WHERE run_id = %s FOR KEY SHARE", (run_id,))
        try:
            api.control("config", {"hold": False})
            harness.wait_for(lambda: env.scalar(
                "SELECT status FROM runs WHERE run_id = %s",
                (run_id,)) != "running", 120, "the run claimed")
        finally:
            locker.commit()
            locker.close()
        self.assertEqual(self.run_end(run_id), "succeeded")
        # Finalized by its claimer, not by a sweeper after the grace.
        self.assertTrue(env.scalar(
            "SELECT finished_at < finalize_after FROM runs WHERE run_id = %s",
            (run_id,)))
        self.assertEqual(env.stop(w), 0)


if __name__ == "__main__":
    harness.run(globals())
