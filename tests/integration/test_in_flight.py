"""Per-job max_in_flight, end to end: a `webhook.post` job limited to 3
items at once never has more than 3 calls open at its API (the fake holds
every call until released, so "3 at once" is reached and observed on
conditions, not timing), while another job of the same worker, limited only
by the worker's 16 threads, runs to its end meanwhile: a job at its limit
does not hold up the others. The batched bookkeeping records every item
once."""
import re
import unittest

import harness

N_SLOW = 20
N_FAST = 40


class InFlightTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        env = cls.env = harness.Env("inflight")
        cls.slow_api = harness.Fake(env, "fake_webhook.py")
        cls.fast_api = harness.Fake(env, "fake_webhook.py")
        cls.slow = env.job("slow")
        cls.fast = env.job("fast")
        jobs = "jobs:\n"
        for name, n, url, extra in (
                (cls.slow, N_SLOW, cls.slow_api.url, "    max_in_flight: 3\n"),
                (cls.fast, N_FAST, cls.fast_api.url, "")):
            jobs += (
                "  - name: %s\n    source: {type: sql, query: \"SELECT g AS "
                "id, 'x' || g AS name FROM generate_series(1, %d) g\", "
                "key: id}\n    handler: webhook.post\n    params: {url: "
                "\"%s/hook\", timeout_seconds: 60}\n    max_parallelism: 8\n"
                "%s" % (name, n, url, extra))
        cls.cfg = env.config(jobs, worker="max_in_flight: 16")

    @classmethod
    def tearDownClass(cls):
        cls.env.close()

    def run_job(self, job):
        res = self.env.nightshift("run", job, "-c", self.cfg)
        return int(re.search(r"run (\d+) of", res.stdout).group(1))

    def run_status(self, run_id):
        return self.env.scalar(
            "SELECT status FROM runs WHERE run_id = %s AND status IN "
            "('succeeded', 'failed')", (run_id,))

    def test_a_job_at_its_limit_waits_alone(self):
        env = self.env
        self.slow_api.control("config", {"hold": True})
        w = env.start("worker", "-c", self.cfg, log="w")
        env.wait_log(w, "assigned")
        slow_run = self.run_job(self.slow)
        harness.wait_for(
            lambda: self.slow_api.control("stats")["in_flight"] == 3, 60,
            "3 calls of the slow job held")
        # The other job goes through while the slow one is at its limit.
        fast_run = self.run_job(self.fast)
        self.assertEqual(harness.wait_for(lambda: self.run_status(fast_run),
                                          120, "the fast run's end"),
                         "succeeded")
        self.assertEqual(self.slow_api.control("stats")["in_flight"], 3)
        self.assertEqual(env.scalar(
            "SELECT count(*) FROM items WHERE run_id = %s AND status = "
            "'done'", (slow_run,)), 0)
        self.slow_api.control("config", {"hold": False})
        self.assertEqual(harness.wait_for(lambda: self.run_status(slow_run),
                                          120, "the slow run's end"),
                         "succeeded")
        self.assertEqual(self.slow_api.control("stats")["peak_in_flight"], 3)
        self.assertEqual(len(self.slow_api.requests()), N_SLOW)
        self.assertEqual(len(self.fast_api.requests()), N_FAST)
        for run_id, n in ((slow_run, N_SLOW), (fast_run, N_FAST)):
            self.assertEqual(env.sql(
                "SELECT count(*), sum(attempts), count(started_at), "
                "count(finished_at) FROM items WHERE run_id = %s AND status "
                "= 'done'", (run_id,))[0], (n, n, n, n))
        self.assertEqual(env.stop(w), 0)


if __name__ == "__main__":
    harness.run(globals())
