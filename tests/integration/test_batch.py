"""Fast handlers are processed in batches (one statement marks many items
done, their attempts counted): a noop job end to end across two workers, a
kill -9 mid-run, and batches mixing items that are not pending (finished,
unknown, of a cancelled run) with ones that are."""
import json
import os
import re
import signal
import subprocess
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

    def assert_run_done(self, run_id, n, timeout):
        """The run ends succeeded with its n items done."""
        env = self.env
        status = harness.wait_for(lambda: env.scalar(
            "SELECT status FROM runs WHERE run_id = %s AND status IN "
            "('succeeded', 'failed')", (run_id,)), timeout, "run end")
        self.assertEqual(status, "succeeded")
        self.assertEqual(env.scalar(
            "SELECT count(*) FROM items WHERE run_id = %s AND status = "
            "'done'", (run_id,)), n)

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
        self.assert_run_done(run_id, N, 300)
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
        run_id = self.run_once(kill=True)
        # Every item counts the attempt that finished it; a redelivered one
        # (the killed worker's uncommitted offsets) is not run again.
        self.assertEqual(self.env.scalar(
            "SELECT count(*) FROM items WHERE run_id = %s AND (attempts <> 1 "
            "OR started_at IS NULL OR finished_at < started_at)", (run_id,)),
            0)

    def test_4_dry_run_reports_each_item(self):
        # A dry run's reports go into the batch statement keyed by item:
        # each item gets its own.
        env = self.env
        workers = [env.start("worker", "-c", self.cfg, log="dry%d" % i)
                   for i in range(2)]
        for w in workers:
            env.wait_log(w, "assigned")
        res = env.nightshift("run", self.job, "-c", self.cfg, "--dry-run")
        run_id = int(re.search(r"run (\d+) of", res.stdout).group(1))
        self.assert_run_done(run_id, N, 300)
        self.assertEqual(env.scalar(
            "SELECT count(*) FROM items WHERE run_id = %s AND report = "
            "jsonb_build_array(jsonb_build_object('item_key', item_key, "
            "'action', 'noop'))", (run_id,)), N)
        for w in workers:
            self.assertEqual(env.stop(w), 0)

    def test_3_batches_mixing_items_not_pending(self):
        env = self.env
        finished = env.scalar("SELECT max(run_id) FROM runs WHERE status = "
                              "'succeeded'")
        # A cancelled run with pending items and a live run of 300.
        cancelled, live = (env.scalar(
            "INSERT INTO runs (job, kind, status, items_total, started_at, "
            "emitted_at) VALUES (%s, 'manual', %s, %s, now(), now()) "
            "RETURNING run_id", (self.job, status, n))
            for status, n in (("cancelled", 50), ("running", 300)))
        for run_id, n in ((cancelled, 50), (live, 300)):
            env.sql("INSERT INTO items (run_id, item_key) SELECT %s, g::text "
                    "FROM generate_series(1, %s) g", (run_id, n))

        def line(run_id, key):
            return "%s\t%s\n" % (key, json.dumps({
                "v": 1, "job": self.job, "run_id": run_id, "item_key": key,
                "attempt": 1, "dry_run": False, "payload": {}}))
        # Interleaved, all in the topic before a worker starts, so the
        # worker's batches mix them.
        lines = []
        for k in range(1, 301):
            lines.append(line(live, str(k)))
            if k <= 200:
                lines.append(line(finished, str(k)))  # done already
            if k <= 50:
                lines.append(line(cancelled, str(k)))
            if k % 60 == 0:
                lines.append(line(live, "ghost-%d" % k))  # no such item
        subprocess.run(["kcat", "-P", "-b", os.environ["NS_KAFKA_BROKERS"],
                        "-t", "ns.items." + self.job, "-K", "\t"],
                       input="".join(lines).encode(), check=True, timeout=60)
        worker = env.start("worker", "-c", self.cfg, log="mixed",
                           env=dict(env.env, NS_LOG_LEVEL="debug"))
        self.assert_run_done(live, 300, 120)
        self.assertEqual(env.scalar(
            "SELECT count(*) FROM items WHERE run_id = %s AND attempts = 1 "
            "AND started_at IS NOT NULL", (live,)), 300)
        # The finished run's items were not run again, and redeliveries of
        # finished items were told apart in the batches (one query per
        # run), not one by one (but for batches of one). (The worker may
        # also read the earlier tests' messages again from the topic: more
        # redeliveries, counted the same way.)
        self.assertEqual(env.scalar(
            "SELECT max(attempts) FROM items WHERE run_id = %s",
            (finished,)), 1)

        def told_apart():
            log = env.log_tail(worker, 1000000)
            in_batches = sum(int(n) for n in re.findall(
                r"(\d+) finished before", log))
            one_by_one = log.count("already finished; redelivery ignored")
            return (in_batches, one_by_one) if \
                in_batches + one_by_one >= 200 else None
        in_batches, one_by_one = harness.wait_for(
            told_apart, 60, "the finished run's 200 redeliveries seen")
        self.assertGreater(in_batches, one_by_one)
        # The cancelled run's items and the unknown keys are dead letters
        # with their reasons; the cancelled items are failed, not done.
        harness.wait_for(lambda: env.scalar(
            "SELECT count(*) FROM dead_letters WHERE run_id IN (%s, %s)",
            (cancelled, live)) >= 55, 60, "dead letters")
        reasons = dict(env.sql(
            "SELECT run_id, count(*) FROM dead_letters WHERE run_id IN "
            "(%s, %s) GROUP BY run_id", (cancelled, live)))
        self.assertEqual(reasons, {cancelled: 50, live: 5})
        self.assertEqual(env.scalar(
            "SELECT count(*) FROM dead_letters WHERE run_id = %s AND reason "
            "= %s", (cancelled, "run %d was cancelled" % cancelled)), 50)
        self.assertEqual(env.scalar(
            "SELECT count(*) FROM dead_letters WHERE run_id = %s AND reason "
            "LIKE 'bad input: run %s has no item \"ghost-%%'", (live, live)),
            5)
        self.assertEqual(env.scalar(
            "SELECT count(*) FROM items WHERE run_id = %s AND status = "
            "'failed'", (cancelled,)), 50)
        # The batch path ran, and sent what it could not take one by one.
        with open(worker.log_path, errors="replace") as f:
            mixed = [tuple(map(int, m.groups())) for m in re.finditer(
                r"batch of (\d+) items: (\d+) done in one statement, "
                r"(\d+) finished before, (\d+) one by one", f.read())]
        self.assertTrue(any(d > 0 and o > 0 for _, d, _, o in mixed), mixed)
        self.assertEqual(env.stop(worker), 0)


if __name__ == "__main__":
    harness.run(globals())
