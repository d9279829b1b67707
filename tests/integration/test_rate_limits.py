"""Shared outbound rate limits on the real stack (Redis token buckets):
two workers together respect a per-chat Telegram limit and an LLM limit,
and waiting for the limiter never fails an item or costs it an attempt."""
import calendar
import re
import time
import unittest

import harness

N = 16


def seconds(iso):
    base, frac = iso.rstrip("Z").split(".") if "." in iso else (
        iso.rstrip("Z"), "0")
    return calendar.timegm(time.strptime(base, "%Y-%m-%dT%H:%M:%S")) + \
        float("0." + frac)


class RateLimitTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        env = cls.env = harness.Env("ratelimit")
        cls.llm = harness.Fake(env, "fake_llm.py")
        cls.tg = harness.Fake(env, "fake_telegram.py")
        cls.job = env.job("limited")
        # Two chats' worth of limits: 4 messages/s per chat (burst 1), LLM
        # at 8 calls/s (burst 2), shared by both workers through Redis.
        cls.cfg = env.config(
            "jobs:\n  - name: %s\n    source: {type: sql, query: \"SELECT id,"
            " name, description, status, progress FROM projects ORDER BY "
            "id\", key: id}\n    handler: analyzer.project\n"
            "    finalizer: analyzer.summary\n"
            "    retry: {max_attempts: 2, backoff_seconds: 0.2, "
            "backoff_max_seconds: 1}\n"
            "    notify: {telegram: {chat_id: \"${NS_TELEGRAM_CHAT_ID}\", mode: per_project}}\n"
            % cls.job, llm=cls.llm, telegram=cls.tg,
            extra="rate_limits:\n  telegram.chat: \"4/s burst 1\"\n"
                  "  llm: \"8/s burst 2\"\n")
        for i in range(N):
            env.sql("INSERT INTO projects (name, progress) VALUES (%s, %s)",
                    ("p%02d" % i, i))
        cls.workers = [env.start("worker", "-c", cls.cfg, log="w%d" % i)
                       for i in (1, 2)]
        for w in cls.workers:
            env.wait_log(w, "assigned")

    @classmethod
    def tearDownClass(cls):
        cls.env.close()

    def test_limits_hold_across_workers_without_failures(self):
        env = self.env
        res = env.nightshift("run", self.job, "--wait", "--timeout", "120",
                             "-c", self.cfg)
        run_id = int(re.search(r"run (\d+) of", res.stdout).group(1))
        self.assertIn("succeeded", res.stdout)
        # The limiter delayed calls but failed none and cost no attempt,
        # although max_attempts is only 2.
        self.assertEqual(env.scalar(
            "SELECT max(attempts) FROM items WHERE run_id = %s", (run_id,)),
            1)
        msgs = harness.wait_for(
            lambda: len(self.tg.delivered("sendMessage")) >= N + 1 and
            self.tg.delivered("sendMessage"), 120, "all messages")
        times = sorted(seconds(m["time"]) if isinstance(m["time"], str)
                       else float(m["time"]) for m in msgs)
        # N + 1 messages to one chat at 4/s with a burst of 1 need at least
        # N / 4 seconds: a lower bound, whatever the machine's speed.
        self.assertGreaterEqual(times[-1] - times[0], N / 4.0 - 0.3)
        calls = sorted(seconds(m["time"]) if isinstance(m["time"], str)
                       else float(m["time"]) for m in self.llm.delivered())
        self.assertGreaterEqual(len(calls), N)
        self.assertGreaterEqual(calls[-1] - calls[0], (N - 2) / 8.0 - 0.3)


if __name__ == "__main__":
    harness.run(globals())
