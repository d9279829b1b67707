"""batch-analyzer end to end on the real stack: producer-side run, two
workers, the fake LLM and Telegram APIs; exact messages and rows."""
import hashlib
import re
import unittest

import harness

PROJECTS = [
    ("Alpha", "First project", "active", 10),
    ("*_[evil](x) <b>bold</b> & '; DROP TABLE projects; --", "hostile",
     "active", 50),
    ("Гамма 🚀", "Unicode name", "active", 90),
    ("Dormant", "inactive, not analysed", "paused", 0),
]


def prompt(name, desc, status, progress):
    return ("Analyze this project:\n- Name: %s\n- Description: %s\n"
            "- Status: %s\n- Progress: %d%%\n\nProvide:\n"
            "1. Quick assessment\n2. Risks identified\n3. Next steps\n"
            % (name, desc, status, progress))


def expected_analysis(name, desc, status, progress):
    digest = hashlib.sha256(
        prompt(name, desc, status, progress).encode()).hexdigest()[:12]
    return ("ANALYSIS(%s)\n1. Assessment: ok\n2. Risks: none\n"
            "3. Next steps: continue" % digest)


def html_escape(s):
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class AnalyzerTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.env = harness.Env("analyzer")
        env = cls.env
        cls.llm = harness.Fake(env, "fake_llm.py", "--api-key",
                               env.env["NS_LLM_API_KEY"])
        cls.tg = harness.Fake(env, "fake_telegram.py", "--token",
                              env.env["NS_TELEGRAM_BOT_TOKEN"])
        cls.job = env.job("batch")
        cls.cfg = env.config(
            "jobs:\n"
            "  - name: %s\n"
            "    source:\n"
            "      type: sql\n"
            "      query: SELECT id, name, description, status, progress "
            "FROM projects WHERE status = 'active' ORDER BY id\n"
            "      key: id\n"
            "    handler: analyzer.project\n"
            "    finalizer: analyzer.summary\n"
            "    retry: {max_attempts: 3, backoff_seconds: 0.2, "
            "backoff_max_seconds: 1}\n"
            "    notify: {telegram: {chat_id: \"${NS_TELEGRAM_CHAT_ID}\"}}\n"
            % cls.job, llm=cls.llm, telegram=cls.tg)
        for p in PROJECTS:
            env.sql("INSERT INTO projects (name, description, status, "
                    "progress) VALUES (%s, %s, %s, %s)", p)
        cls.workers = [env.start("worker", "-c", cls.cfg, log="worker%d" % i)
                       for i in (1, 2)]

    @classmethod
    def tearDownClass(cls):
        cls.env.close()

    def setUp(self):
        # Let the previous test's messages go out before counting anew.
        harness.wait_for(lambda: self.env.scalar(
            "SELECT count(*) FROM outbox WHERE status = 'pending'") == 0,
            60, "an empty outbox")
        self.llm.reset()
        self.tg.reset()

    def run_job(self, *extra, check=True):
        res = self.env.nightshift("run", self.job, "--wait", "--timeout",
                                  "120", "-c", self.cfg, *extra, check=check)
        m = re.search(r"run (\d+) of", res.stdout)
        self.assertIsNotNone(m, res.stdout + res.stderr)
        return int(m.group(1)), res

    def wait_sent(self, n):
        return harness.wait_for(
            lambda: len(self.tg.delivered("sendMessage")) >= n and
            self.tg.delivered("sendMessage"), 60, "%d telegram messages" % n)

    def test_1_end_to_end(self):
        run_id, res = self.run_job()
        self.assertIn("succeeded", res.stdout)
        env = self.env
        rows = env.sql("SELECT p.name, p.description, p.status, p.progress, "
                       "a.content, a.model, a.total_tokens FROM analyses a "
                       "JOIN projects p ON p.id = a.project_id "
                       "WHERE a.run_id = %s ORDER BY p.id", (run_id,))
        active = [p for p in PROJECTS if p[2] == "active"]
        self.assertEqual(len(rows), len(active))
        for row, p in zip(rows, active):
            self.assertEqual(row[4], expected_analysis(*p))
            self.assertEqual(row[5], "sonar-reasoning-pro")
            self.assertGreater(row[6], 0)
        msgs = self.wait_sent(len(active) + 1)
        # Every delivered message passed the fake's HTML validation; now
        # check the text: the hostile name arrives literally.
        texts = [m["json"]["text"] for m in msgs]
        reports = [t for t in texts if "Batch Analysis Report" in t]
        self.assertEqual(len(reports), len(active))
        for p in active:
            body = ("📊 <b>Batch Analysis Report</b>\n\n<b>Project:</b> %s\n"
                    "<b>Progress:</b> %d%%\n\n<b>AI Analysis:</b>\n%s\n\n"
                    "⏰ Generated: " % (html_escape(p[0]), p[3],
                                       html_escape(expected_analysis(*p))))
            self.assertEqual(sum(t.startswith(body) for t in reports), 1, p)
        for m in msgs:
            self.assertEqual(str(m["json"]["chat_id"]), "4242")
            self.assertEqual(m["json"]["parse_mode"], "HTML")
        summaries = [t for t in texts if "Batch Analysis Complete" in t]
        self.assertEqual(len(summaries), 1)
        self.assertIn("- Projects processed: 3\n- Errors: 0\n",
                      summaries[0])
        # The summary comes after the reports (per-chat order).
        self.assertIn("Batch Analysis Complete", texts[-1])
        self.assertEqual(env.scalar("SELECT status FROM runs WHERE "
                                    "run_id = %s", (run_id,)), "succeeded")
        # Nothing more is sent later (the summary exactly once).
        self.assertEqual(env.scalar(
            "SELECT count(*) FROM outbox WHERE run_id = %s", (run_id,)), 4)

    def test_2_dry_run_writes_and_sends_nothing(self):
        env = self.env
        before = env.scalar("SELECT count(*) FROM analyses")
        run_id, res = self.run_job("--dry-run")
        self.assertIn("succeeded*", res.stdout)
        self.assertIn("would:", res.stdout)
        self.assertIn("insert analyses", res.stdout)
        self.assertIn("telegram.sendMessage", res.stdout)
        self.assertEqual(env.scalar("SELECT count(*) FROM analyses"), before)
        self.assertEqual(env.scalar(
            "SELECT count(*) FROM outbox WHERE run_id = %s", (run_id,)), 0)
        # The LLM was asked (reads and computation happen), Telegram not.
        self.assertEqual(len(self.llm.delivered()), 3)
        report = env.scalar("SELECT report::text FROM runs WHERE run_id = %s",
                            (run_id,))
        self.assertIn("Batch Analysis Complete", report)
        self.assertEqual(self.tg.requests(), [])

    def test_3_transient_llm_errors_are_retried(self):
        self.llm.faults({"kind": "status", "status": 429, "retry_after": 1},
                        {"kind": "status", "status": 500},
                        {"kind": "malformed"})
        run_id, res = self.run_job()
        self.assertIn("succeeded", res.stdout)
        self.assertEqual(self.env.scalar(
            "SELECT count(*) FROM analyses WHERE run_id = %s", (run_id,)), 3)
        self.assertGreaterEqual(self.env.scalar(
            "SELECT sum(attempts) FROM items WHERE run_id = %s",
            (run_id,)), 6)
        # The retries went through the retry-tier topics, not sleeps.
        logs = "".join(open(w.log_path, errors="replace").read()
                       for w in self.workers)
        self.assertGreaterEqual(logs.count('"run_id":%d' % run_id) and
                                logs.count("via retry topic"), 3)

    def test_4_permanent_llm_error_fails_the_item(self):
        self.llm.faults({"kind": "status", "status": 400})
        run_id, res = self.run_job(check=False)
        self.assertEqual(res.returncode, 1, res.stdout + res.stderr)
        env = self.env
        failed = env.sql("SELECT error, attempts FROM items WHERE run_id = %s "
                         "AND status = 'failed'", (run_id,))
        self.assertEqual(len(failed), 1)
        self.assertIn("LLM API 400", failed[0][0])
        # Permanent: not retried. (The attempts column may still count a
        # redelivery after a rebalance; the failing delivery's own count is
        # in the reason.)
        self.assertIn("(after 1 attempt)", failed[0][0])
        # No "Analysis failed" text is ever stored.
        self.assertEqual(env.scalar(
            "SELECT count(*) FROM analyses WHERE run_id = %s", (run_id,)), 2)
        msgs = self.wait_sent(3)
        summary = [m["json"]["text"] for m in msgs
                   if "Complete" in m["json"]["text"]]
        self.assertEqual(len(summary), 1)
        self.assertIn("- Projects processed: 2\n- Errors: 1\n", summary[0])
        self.assertEqual(env.scalar(
            "SELECT count(*) FROM dead_letters WHERE run_id = %s",
            (run_id,)), 1)
        # ... and on the ns.dlq topic, with its cause and origin in headers.
        import os
        import subprocess
        out = subprocess.run(
            ["kcat", "-C", "-b", os.environ["NS_KAFKA_BROKERS"], "-t",
             "ns.dlq", "-o", "beginning", "-e", "-q", "-f", "%h\n"],
            capture_output=True, text=True, timeout=60).stdout
        mine = [l for l in out.splitlines()
                if "ns-run-id=%d," % run_id in l + "," and
                "ns-job=%s," % self.job in l]
        self.assertEqual(len(mine), 1, out[-2000:])
        self.assertIn("ns-error=LLM API 400", mine[0])
        self.assertIn("ns-handler=analyzer.project", mine[0])
        self.assertIn("ns-origin-topic=ns.items." + self.job, mine[0])

    def test_5_telegram_rate_limit_is_honoured(self):
        self.tg.faults({"kind": "status", "status": 429, "retry_after": 1})
        run_id, _ = self.run_job()
        msgs = self.wait_sent(4)
        self.assertEqual(len(msgs), 4)
        attempts = self.env.sql("SELECT max(attempts) FROM outbox WHERE "
                                "run_id = %s", (run_id,))[0][0]
        self.assertEqual(attempts, 2)

    def test_6_status_and_metrics(self):
        res = self.env.nightshift("status", "--json", "-c", self.cfg)
        import json
        doc = json.loads(res.stdout)
        self.assertTrue(any(r["job"] == self.job for r in doc["runs"]))
        job = [j for j in doc["jobs"] if j["job"] == self.job][0]
        self.assertIn("last_success", job)
        import urllib.request
        ports = []
        for w in self.workers:
            port = None
            for line in open(w.log_path, errors="replace"):
                m = re.search(r"metrics on port (\d+)", line)
                if m:
                    port = int(m.group(1))
            self.assertIsNotNone(port)
            ports.append(port)
            ready = urllib.request.urlopen(
                "http://127.0.0.1:%d/readyz" % port, timeout=5)
            self.assertEqual(ready.status, 200)

        def scrape_with_lag():
            bodies = [urllib.request.urlopen(
                "http://127.0.0.1:%d/metrics" % p, timeout=5).read().decode()
                for p in ports]
            if any("nightshift_consumer_lag" in b for b in bodies):
                return bodies
            return None

        # The lag gauges are published every few seconds once a partition
        # has been consumed from: wait for them rather than race them.
        bodies = harness.wait_for(scrape_with_lag, timeout=30, interval=0.5,
                                  what="nightshift_consumer_lag on /metrics")
        # Which worker processed what depends on the partition assignment;
        # together they processed every item.
        done = sum(float(v) for b in bodies for v in re.findall(
            r'nightshift_items_processed_total\{[^}]*outcome="done"\} (\S+)',
            b))
        self.assertGreaterEqual(done, 3)
        self.assertTrue(any("nightshift_item_duration_seconds_bucket" in b
                            for b in bodies))

    def test_8_long_analysis_is_split_into_valid_messages(self):
        para = "Risk <high> & rising: " + "x" * 70 + "\n"
        long_text = para * 80  # ~7,500 characters, entities included
        self.llm.control("responses", {"responses": [
            {"contains": "- Name: Alpha", "content": long_text}]})
        try:
            run_id, _ = self.run_job()
        finally:
            self.llm.control("responses", {"responses": []})
        # Alpha's report in two or more parts, two reports, the summary.
        msgs = self.wait_sent(5)
        alpha = [m["json"]["text"] for m in msgs
                 if "Risk &lt;high&gt;" in m["json"]["text"]]
        # Split in two or more messages, each accepted by the (validating)
        # fake, so each is well-formed HTML within Telegram's limit.
        self.assertGreaterEqual(len(alpha), 2)
        import html as htmllib
        visible = "".join(htmllib.unescape(re.sub(r"<[^>]+>", "", t))
                          for t in alpha)
        self.assertIn(long_text.strip(), visible.replace("\n\n", "\n"))
        keys = [r[0] for r in self.env.sql(
            "SELECT idempotency_key FROM outbox WHERE run_id = %s AND "
            "idempotency_key LIKE 'analysis:%%#%%' ORDER BY id", (run_id,))]
        self.assertEqual(len(keys), len(alpha))

    def test_7_secrets_never_logged(self):
        for w in self.workers:
            text = open(w.log_path, errors="replace").read()
            self.assertNotIn(self.env.env["NS_TELEGRAM_BOT_TOKEN"], text)
            self.assertNotIn(self.env.env["NS_LLM_API_KEY"], text)


if __name__ == "__main__":
    harness.run(globals())
