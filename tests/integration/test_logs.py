"""The log analyzer's regular phase on the real stack: log lines in the
shapes Fluent Bit, Vector and syslog send are produced to a log topic;
a `windows` job's run for one 15-minute slot reads that window back from
Kafka by timestamp (after its grace, on the worker's injectable clock),
groups the lines into templates and writes per-window counts; lines of
another window are read but not counted; bad lines are counted and kept
in dead_letters with their reason; running the same slot again changes
nothing and keeps the template ids."""
import json
import os
import re
import subprocess
import time
import unittest

import harness

WINDOW = 900
GRACE = 60


iso = harness.iso


class LogsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.env = env = harness.Env("logs")
        cls.job = env.job("logs")
        cls.topic = "logs.raw.%s" % env.tag
        cls.cfg = env.config(
            "jobs:\n"
            "  - name: %s\n"
            "    source: {type: windows, window_seconds: %d, windows: 1}\n"
            "    handler: logs.window\n"
            "    retry: {max_attempts: 3, backoff_seconds: 0.2, "
            "backoff_max_seconds: 1}\n"
            "    params: {topic: \"%s\", grace_seconds: %d, skew_seconds: 60,"
            " max_line_bytes: 4096, bad_line_samples: 10}\n"
            % (cls.job, WINDOW, cls.topic, GRACE))
        now = time.time()
        cls.start = int(now // WINDOW) * WINDOW
        cls.end = cls.start + WINDOW
        cls.clock = os.path.join(env.tmp, "clock")
        cls.set_clock(cls.end + GRACE - 2)  # the grace not over yet
        cls.produce(cls.lines(now))
        wenv = dict(env.env, NS_TEST_CLOCK_FILE=cls.clock)
        cls.worker = env.start("worker", "-c", cls.cfg, log="worker",
                               env=wenv)
        env.wait_log(cls.worker, "assigned", timeout=60)

    @classmethod
    def tearDownClass(cls):
        cls.env.close()

    @classmethod
    def set_clock(cls, t):
        harness.set_clock(cls.clock, t)

    @classmethod
    def lines(cls, now):
        """(key, value bytes) pairs: 65 lines of this window in four
        shapes, 7 of the window before, 4 bad ones."""
        out = []
        t = max(now, cls.start + 1)
        for i in range(30):  # Vector's json codec
            out.append(("api", json.dumps({
                "timestamp": iso(t), "message": "Connection from 10.0.0.%d "
                "port %d closed" % (i, 5000 + i), "host": "web-1",
                "level": "info", "source_type": "file"})))
        for i in range(10):
            out.append(("api", json.dumps({
                "timestamp": iso(t), "message": "User u%d logged in after "
                "%dms" % (i, 10 + i), "host": "web-1", "level": "info"})))
        for i in range(20):  # Fluent Bit with its Kubernetes filter
            out.append(("db", json.dumps({
                "@timestamp": t, "log": "ERROR query timeout after %ds on "
                "table orders" % (i + 1), "stream": "stderr",
                "kubernetes": {"host": "node-2", "container_name": "pg",
                               "labels": {"app": "db"}}})))
        stamp = time.strftime("%b %d %H:%M:%S", time.gmtime(t))
        stamp = stamp[:4] + ("%2d" % int(stamp[4:6])) + stamp[6:]
        for i in range(5):  # RFC 3164, severity 3 (error)
            out.append(("cron", "<11>%s host-3 cron[%d]: job %d failed with "
                        "code %d" % (stamp, 100 + i, i, i)))
        for i in range(7):  # the window before: read, not counted
            out.append(("api", json.dumps({
                "timestamp": iso(cls.start - 300), "message": "Connection "
                "from 10.0.1.%d port 1 closed" % i})))
        out.append(("api", "not a log line at all"))
        out.append(("api", b"Dec  3 10:00:00 h x: \xff\xfe broken"))
        out.append(("api", json.dumps({"message": "no time"})))
        out.append(("api", json.dumps({"timestamp": iso(t),
                                       "message": "x" * 5000})))
        return out

    @classmethod
    def produce(cls, pairs):
        data = b"".join(k.encode() + b"\t" +
                        (v if isinstance(v, bytes) else v.encode()) + b"\n"
                        for k, v in pairs)
        subprocess.run(["kcat", "-P", "-b", os.environ["NS_KAFKA_BROKERS"],
                        "-t", cls.topic, "-K", "\t"], input=data, check=True,
                       timeout=60)

    def slot(self):
        return time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime(self.end))

    def counts(self):
        return self.env.sql(
            "SELECT service, template_id, lines, level FROM "
            "log_window_counts WHERE job = %s AND window_start = "
            "to_timestamp(%s) ORDER BY service, template_id",
            (self.job, self.start))

    def test_1_window_counted_after_its_grace(self):
        env = self.env
        run = env.start("run", self.job, "--slot", self.slot(), "--wait",
                        "--timeout", "120", "-c", self.cfg, log="run1")
        # Lines may still arrive until end + grace: the item waits.
        env.wait_log(self.worker, "still open for late lines", timeout=60)
        self.assertEqual(env.scalar("SELECT count(*) FROM log_windows"), 0)
        self.set_clock(self.end + GRACE + 5)
        self.assertEqual(run.wait(120), 0, env.log_tail(run))

        lines, bad, outside, templates = env.sql(
            "SELECT lines, bad_lines, outside_lines, templates FROM "
            "log_windows WHERE job = %s", (self.job,))[0]
        self.assertEqual((lines, bad, outside), (65, 4, 7))
        rows = self.counts()
        per_service = {}
        for service, _, n, _ in rows:
            per_service.setdefault(service, []).append(n)
        self.assertEqual(per_service, {"api": [30, 10] if rows[0][2] == 30
                                       else [10, 30], "cron": [5],
                                       "db": [20]})
        self.assertEqual(templates, len(rows))
        levels = {s: lv for s, _, _, lv in rows}
        self.assertEqual(levels["db"], "error")   # sniffed "ERROR"
        self.assertEqual(levels["cron"], "error")  # PRI 11
        texts = dict(env.sql("SELECT template_id, template FROM "
                             "log_templates"))
        api = [texts[t] for s, t, _, _ in rows if s == "api"]
        self.assertTrue(any("<IP>" in t for t in api), api)
        reasons = [r for (r,) in env.sql(
            "SELECT reason FROM dead_letters WHERE job = %s ORDER BY "
            "\"offset\"", (self.job,))]
        self.assertEqual(len(reasons), 4, reasons)
        for want in ("not JSON and not syslog", "invalid UTF-8",
                     "no timestamp", "over the limit"):
            self.assertTrue(any(want in r for r in reasons), (want, reasons))

    def test_2_rerun_of_the_slot_changes_nothing(self):
        before = self.counts()
        n_templates = self.env.scalar("SELECT count(*) FROM log_templates")
        res = self.env.nightshift("run", self.job, "--slot", self.slot(),
                                  "--wait", "--timeout", "120", "-c",
                                  self.cfg)
        self.assertIn("succeeded", res.stdout)
        self.assertEqual(self.counts(), before, "same rows, same ids")
        self.assertEqual(self.env.scalar(
            "SELECT count(*) FROM log_templates"), n_templates)
        self.assertEqual(self.env.scalar(
            "SELECT count(*) FROM dead_letters WHERE job = %s", (self.job,)),
            4)

    def test_3_dry_run_writes_nothing(self):
        before = self.counts()
        res = self.env.nightshift("run", self.job, "--slot", self.slot(),
                                  "--dry-run", "--wait", "--timeout", "120",
                                  "-c", self.cfg)
        self.assertIn("succeeded", res.stdout)
        self.assertRegex(res.stdout + res.stderr,
                         r"replace log_window_counts|lines")
        self.assertEqual(self.counts(), before)

    def test_4_bad_source_settings_are_refused(self):
        bad = self.env.config(
            "jobs:\n  - name: x\n    source: {type: windows, query: "
            "\"SELECT 1\"}\n    handler: logs.window\n", name="bad.yaml")
        res = self.env.nightshift("config", "check", bad, check=False)
        self.assertEqual(res.returncode, 2)
        self.assertIn("\"windows\" takes window_seconds", res.stderr)
        self.assertTrue(re.search(r"bad\.yaml:\d+:", res.stderr))


if __name__ == "__main__":
    harness.run(globals())
