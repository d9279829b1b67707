"""Alerts on a job itself (jobs.yaml `alerts:`), on the real stack: after
three failed runs in a row the producer queues one Teams alert (a fourth
failure extends the streak and sends nothing new; the streak is on
/metrics); when no run succeeded for stale_minutes (the producer's
injectable clock moved on) one more alert goes out."""
import os
import re
import time
import unittest
import urllib.request

import harness


class HealthTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.env = env = harness.Env("health")
        cls.teams = harness.Fake(env, "fake_teams.py", "--rate-limit", "100")
        cls.hook = harness.Fake(env, "fake_webhook.py")
        cls.job = env.job("hooked")
        cls.cfg = env.config(
            "teams:\n  webhooks: {ops: \"%s/webhookb2/ops\"}\n"
            "jobs:\n"
            "  - name: %s\n"
            "    source: {type: one}\n"
            "    handler: webhook.post\n"
            "    retry: {max_attempts: 1}\n"
            "    params: {url: \"%s/hook\"}\n"
            "    notify: {teams: {webhook: ops}}\n"
            "    alerts: {failed_runs: 3, stale_minutes: 60}\n"
            % (cls.teams.url, cls.job, cls.hook.url))
        cls.clock = os.path.join(env.tmp, "clock")
        cls.now = time.time()
        cls.set_clock(cls.now)
        cls.worker = env.start("worker", "-c", cls.cfg, log="worker")
        env.wait_log(cls.worker, "assigned", timeout=60)
        cls.producer = env.start("producer", "-c", cls.cfg, log="producer",
                                 env=dict(env.env,
                                          NS_TEST_CLOCK_FILE=cls.clock))
        env.wait_log(cls.producer, "producer started", timeout=30)

    @classmethod
    def tearDownClass(cls):
        cls.env.close()

    @classmethod
    def set_clock(cls, t):
        harness.set_clock(cls.clock, t)

    def tick(self, seconds=10):
        """Moves the producer's clock on, so its periodic checks run."""
        type(self).now += seconds
        self.set_clock(self.now)

    def run_job(self, ok):
        self.hook.control("config", {"status": 200 if ok else 400})
        res = self.env.nightshift("run", self.job, "--wait", "--timeout",
                                  "60", "-c", self.cfg, check=False)
        self.assertEqual(res.returncode, 0 if ok else 1, res.stdout)

    def streak(self):
        port = None
        for line in open(self.producer.log_path, errors="replace"):
            m = re.search(r"metrics on port (\d+)", line)
            if m:
                port = int(m.group(1))
        body = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port,
                                      timeout=5).read().decode()
        m = re.search(r'nightshift_job_failed_runs_in_a_row\{job="%s"\} (\S+)'
                      % re.escape(self.job), body)
        return float(m.group(1)) if m else None

    def wait_streak(self, n):
        def seen():
            self.tick()
            return self.streak() == n
        harness.wait_for(seen, 60, "the producer to see %d failures" % n,
                         interval=0.5)

    def test_1_three_failures_alert_once(self):
        self.run_job(True)
        for _ in range(3):
            self.run_job(False)
        self.wait_streak(3)
        cards = harness.wait_for(lambda: self.teams.control("cards"), 60,
                                 "the alert delivered")
        self.assertEqual(len(cards), 1)
        self.assertIn("failed 3 times in a row", cards[0]["texts"][0])
        self.run_job(False)
        self.wait_streak(4)
        self.assertEqual(self.env.scalar(
            "SELECT count(*) FROM outbox WHERE idempotency_key LIKE "
            "'health:%%:failed:%%'"), 1, "one alert per streak")

    def test_2_no_success_for_too_long(self):
        self.tick(61 * 60)

        def stale_alert():
            self.tick()
            return self.env.scalar(
                "SELECT count(*) FROM outbox WHERE idempotency_key LIKE "
                "'health:%%:stale:%%'") == 1
        harness.wait_for(stale_alert, 60, "the stale alert", interval=0.5)
        cards = harness.wait_for(
            lambda: (lambda c: c if len(c) >= 2 else None)(
                self.teams.control("cards")), 60, "two alerts delivered")
        self.assertIn("no successful run for", cards[1]["texts"][0])
        self.run_job(True)
        self.wait_streak(0)


if __name__ == "__main__":
    harness.run(globals())
