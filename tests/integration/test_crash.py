"""Crash safety on the real stack: kill -9 one of two workers mid-run and
stop one with SIGTERM mid-run; every project is still analysed exactly
once and every message delivered (duplicates only inside the outbox's
sent-then-crashed window, which is reported)."""
import collections
import re
import signal
import unittest

import harness

N_PROJECTS = 200


class CrashTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        env = cls.env = harness.Env("crash")
        cls.llm = harness.Fake(env, "fake_llm.py", "--latency-ms", "40")
        cls.tg = harness.Fake(env, "fake_telegram.py")
        cls.job = env.job("batch")
        cls.cfg = env.config(
            "jobs:\n  - name: %s\n    source: {type: sql, query: \"SELECT id,"
            " name, description, status, progress FROM projects WHERE status"
            " = 'active' ORDER BY id\", key: id}\n"
            "    handler: analyzer.project\n    finalizer: analyzer.summary\n"
            "    max_parallelism: 4\n"
            "    notify: {telegram: {chat_id: \"${NS_TELEGRAM_CHAT_ID}\", mode: per_project}}\n"
            % cls.job, llm=cls.llm, telegram=cls.tg,
            worker="max_in_flight: 4")
        for i in range(N_PROJECTS):
            env.sql("INSERT INTO projects (name, description, progress) "
                    "VALUES (%s, %s, %s)",
                    ("project-%03d" % i, "desc %d" % i, i % 101))

    @classmethod
    def tearDownClass(cls):
        cls.env.close()

    def start_workers(self, n):
        ws = [self.env.start("worker", "-c", self.cfg, log="w%d" % i)
              for i in range(n)]
        for w in ws:
            self.env.wait_log(w, "assigned")
        return ws

    def start_run(self):
        res = self.env.nightshift("run", self.job, "-c", self.cfg)
        return int(re.search(r"run (\d+) of", res.stdout).group(1))

    def wait_run(self, run_id, timeout=180):
        return harness.wait_for(lambda: self.env.scalar(
            "SELECT status FROM runs WHERE run_id = %s AND status IN "
            "('succeeded', 'failed')", (run_id,)), timeout, "run end")

    def check_exactly_once(self, run_id):
        env = self.env
        self.assertEqual(self.wait_run(run_id), "succeeded")
        self.assertEqual(env.scalar(
            "SELECT count(DISTINCT project_id) FROM analyses WHERE run_id = "
            "%s", (run_id,)), N_PROJECTS)
        self.assertEqual(env.scalar(
            "SELECT count(*) FROM items WHERE run_id = %s AND status = "
            "'done'", (run_id,)), N_PROJECTS)
        harness.wait_for(lambda: env.scalar(
            "SELECT count(*) FROM outbox WHERE run_id = %s AND status = "
            "'sent'", (run_id,)) == N_PROJECTS + 1, 120, "outbox drained")
        texts = [m["json"]["text"] for m in self.tg.delivered("sendMessage")]
        per_project = collections.Counter(
            re.search(r"<b>Project:</b> (\S+)", t).group(1)
            for t in texts if "Analysis Report" in t)
        self.assertEqual(len(per_project), N_PROJECTS)
        dups = sum(c - 1 for c in per_project.values())
        summaries = sum("Analysis Complete" in t for t in texts)
        print("\n  run %d: %d duplicate deliveries (outbox window), "
              "%d summary" % (run_id, dups, summaries))
        self.assertLessEqual(dups, 1)
        self.assertEqual(summaries, 1)

    def test_1_kill_9_one_of_two_workers(self):
        self.tg.reset()
        w1, w2 = self.start_workers(2)
        run_id = self.start_run()
        harness.wait_for(lambda: self.env.scalar(
            "SELECT count(*) FROM analyses WHERE run_id = %s",
            (run_id,)) >= 40, 120, "progress before the kill")
        w1.send_signal(signal.SIGKILL)
        w1.wait(10)
        self.check_exactly_once(run_id)
        self.assertIsNone(w2.poll())
        self.assertEqual(self.env.stop(w2), 0)

    def test_2_sigterm_mid_run_finishes_in_flight(self):
        self.tg.reset()
        w1, w2 = self.start_workers(2)
        run_id = self.start_run()
        harness.wait_for(lambda: self.env.scalar(
            "SELECT count(*) FROM analyses WHERE run_id = %s",
            (run_id,)) >= 40, 120, "progress before SIGTERM")
        self.assertEqual(self.env.stop(w1, signal.SIGTERM, timeout=30), 0)
        log = self.env.log_tail(w1, 50)
        self.assertIn("left the consumer group", log)
        self.check_exactly_once(run_id)
        self.assertEqual(self.env.stop(w2), 0)


if __name__ == "__main__":
    harness.run(globals())
