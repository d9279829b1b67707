"""Fast handlers are processed in batches (one query checks many items,
one marks them done): a noop job end to end across two workers, a kill -9
mid-run, and a batch mixing items that are no longer pending."""
import re
import signal
import unittest

import harness

N = 20000


class BatchTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        env = cls.env = harness.Env("batch")
        cls.job = env.job("noop")
        cls.cfg = env.config(
            "jobs:\n  - name: %s\n    source: {type: sql, query: \"SELECT g "
            "AS id FROM generate_series(1, %d) g\", key: id}\n"
            "    handler: noop\n    max_parallelism: 8\n" % (cls.job, N),
            worker="max_in_flight: 8")

    @classmethod
    def tearDownClass(cls):
        cls.env.close()

    def run_once(self, kill=False):
        env = self.env
        workers = [env.start("worker", "-c", self.cfg, log="w%d" % i)
                   for i in range(2)]
        for w in workers:
            env.wait_log(w, "assigned")
        res = env.nightshift("run", self.job, "-c", self.cfg)
        run_id = int(re.search(r"run (\d+) of", res.stdout).group(1))
        if kill:
            harness.wait_for(lambda: env.scalar(
                "SELECT count(*) FROM items WHERE run_id = %s AND status = "
                "'done'", (run_id,)) >= N // 10, 120, "progress")
            workers[0].send_signal(signal.SIGKILL)
            workers[0].wait(10)
        status = harness.wait_for(lambda: env.scalar(
            "SELECT status FROM runs WHERE run_id = %s AND status IN "
            "('succeeded', 'failed')", (run_id,)), 300, "run end")
        self.assertEqual(status, "succeeded")
        self.assertEqual(env.scalar(
            "SELECT count(*) FROM items WHERE run_id = %s AND status = "
            "'done'", (run_id,)), N)
        self.assertEqual(env.scalar(
            "SELECT items_done FROM runs WHERE run_id = %s", (run_id,)), N)
        for w in workers[1 if kill else 0:]:
            self.assertEqual(env.stop(w), 0)
        return run_id

    def test_1_noop_run_in_batches(self):
        run_id = self.run_once()
        # Most items went through the batch path: one attempt each.
        self.assertEqual(self.env.scalar(
            "SELECT max(attempts) FROM items WHERE run_id = %s", (run_id,)),
            1)

    def test_2_kill_9_mid_batch(self):
        self.run_once(kill=True)


if __name__ == "__main__":
    harness.run(globals())
