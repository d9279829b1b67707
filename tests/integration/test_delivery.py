"""Reports to chats at scale, on the real stack: a run's reports are held
back (workers with worker.outbox: false), then one delivering worker sends
them to a fake that enforces Telegram's flood limits (time-compressed ten
times, and the outbox paced to match): packed into digests of at most 4096
UTF-16 units, split only between reports, every project exactly once, the
run's summary last; the run records when all was delivered; status shows
delivery apart from items; /metrics has the outbox lag. A per_project job
sends one message per report. Global options go before the verb."""
import json
import os
import re
import sys
import unittest
import urllib.request

import harness

sys.path.insert(0, os.path.join(harness.SRC, "tests", "fakes"))
from fake_telegram import parse_html  # noqa: E402

N_DIGEST = 120
N_SINGLE = 5
SCALE = 10  # the fake's limits and ours, ten times Telegram's rates


def width(html):
    """Visible UTF-16 code units, as Telegram counts a message."""
    return len(parse_html(html).encode("utf-16-le")) // 2


def reports_in(text):
    """Project names of the reports in one message, in order."""
    return re.findall(r"<b>Project:</b> (.*)\n", text)


class DeliveryTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.env = env = harness.Env("delivery")
        cls.llm = harness.Fake(env, "fake_llm.py", "--api-key",
                               env.env["NS_LLM_API_KEY"])
        cls.tg = harness.Fake(env, "fake_telegram.py", "--token",
                              env.env["NS_TELEGRAM_BOT_TOKEN"], "--limits",
                              "--limit-scale", str(SCALE))
        cls.digest_job = env.job("digest")
        cls.single_job = env.job("single")
        cls.refused_job = env.job("refused")
        body = (
            "jobs:\n"
            "  - name: %s\n"
            "    source: {type: sql, key: id, query: \"SELECT id, name, "
            "description, status, progress FROM projects ORDER BY id\"}\n"
            "    handler: analyzer.project\n"
            "    finalizer: analyzer.summary\n"
            "    notify: {telegram: {chat_id: \"4242\"}}\n"
            "  - name: %s\n"
            "    source: {type: sql, key: id, query: \"SELECT id, name, "
            "description, status, progress FROM projects WHERE id <= %d "
            "ORDER BY id\"}\n"
            "    handler: analyzer.project\n"
            "    finalizer: analyzer.summary\n"
            "    notify: {telegram: {chat_id: \"4343\", mode: per_project}}\n"
            "  - name: %s\n"
            "    source: {type: sql, key: id, query: \"SELECT id, name, "
            "description, status, progress FROM projects WHERE id <= 30 "
            "ORDER BY id\"}\n"
            "    handler: analyzer.project\n"
            "    finalizer: analyzer.summary\n"
            "    notify: {telegram: {chat_id: \"4444\", mode: digest}}\n"
            % (cls.digest_job, cls.single_job, N_SINGLE, cls.refused_job))
        pacing = ("rate_limits:\n"
                  "  telegram: \"%d/s\"\n"
                  "  telegram.chat: \"%d/s burst 1\"\n"
                  "  telegram.group: \"%d/min burst 1\"\n"
                  % (30 * SCALE, SCALE, 20 * SCALE))
        cls.hold_cfg = env.config(body, name="hold.yaml", llm=cls.llm,
                                  telegram=cls.tg, extra=pacing, pacing=True,
                                  worker="max_in_flight: 16, outbox: false")
        cls.cfg = env.config(body, llm=cls.llm, telegram=cls.tg,
                             extra=pacing, pacing=True)
        for i in range(N_DIGEST):
            # Hostile and wide names: Markdown, HTML, emoji (2 units each).
            env.sql("INSERT INTO projects (name, description, status, "
                    "progress) VALUES (%s, 'd', 'active', %s)",
                    ("p%03d <b>*_x_*</b> & 🚀" % i, i % 100))
        cls.holders = [env.start("worker", "-c", cls.hold_cfg,
                                 log="hold%d" % i) for i in (1, 2)]
        cls.sender = None

    @classmethod
    def tearDownClass(cls):
        cls.env.close()

    def run_job(self, job, cfg):
        # Global options before the verb, as with git and kubectl.
        res = self.env.nightshift("-c", cfg, "run", job, "--wait",
                                  "--timeout", "300")
        m = re.search(r"run (\d+) of", res.stdout)
        self.assertIsNotNone(m, res.stdout + res.stderr)
        self.assertIn("succeeded", res.stdout)
        return int(m.group(1))

    def status(self, run_id):
        res = self.env.nightshift("--config", self.cfg, "status",
                                  str(run_id), "--json")
        return json.loads(res.stdout)["runs"][0]

    def start_sender(self):
        if self.sender is None:
            type(self).sender = self.env.start("worker", "-c", self.cfg,
                                               log="sender")

    def sent_to(self, chat):
        return [m["json"]["text"] for m in self.tg.delivered("sendMessage")
                if str(m["json"]["chat_id"]) == chat]

    def test_1_digests_after_the_run(self):
        env = self.env
        run_id = self.run_job(self.digest_job, self.hold_cfg)
        # Held back: the run is done, none of its messages went out.
        self.assertEqual(env.scalar(
            "SELECT count(*) FROM outbox WHERE run_id = %s AND status = "
            "'pending'", (run_id,)), N_DIGEST + 1)
        st = self.status(run_id)
        self.assertEqual(st["items_done"], N_DIGEST)
        self.assertEqual(st["delivery"]["pending"], N_DIGEST + 1)
        self.assertNotIn("delivered_at", st["delivery"])
        table = env.nightshift("-c", self.cfg, "status", str(run_id)).stdout
        self.assertIn("delivery: 0 sent in 0 messages, %d pending"
                      % (N_DIGEST + 1), table)

        self.start_sender()
        harness.wait_for(lambda: env.scalar(
            "SELECT delivered_at IS NOT NULL FROM runs WHERE run_id = %s",
            (run_id,)), 240, "the run's reports all delivered", interval=0.5)

        texts = self.sent_to("4242")
        self.assertIn("Batch Analysis Complete", texts[-1],
                      "the summary goes last")
        self.assertEqual(sum("Batch Analysis Complete" in t for t in texts),
                         1)
        digests = texts[:-1]
        names = [n for t in digests for n in reports_in(t)]
        expected = ["p%03d &lt;b&gt;*_x_*&lt;/b&gt; &amp; 🚀" % i
                    for i in range(N_DIGEST)]
        # Items finish in any order; the chat gets them in queue order.
        self.assertEqual(sorted(names), expected, "every project once")
        self.assertLess(len(digests), N_DIGEST // 4, "reports were packed")
        for i, t in enumerate(digests):
            self.assertLessEqual(width(t), 4096)
            # Split only between reports: each starts with a header.
            self.assertTrue(t.startswith("📊 <b>Batch Analysis Report</b>"))
            self.assertEqual(t.count("📊 <b>Batch Analysis Report</b>"),
                             len(reports_in(t)))
            if i + 1 < len(digests):
                first_next = digests[i + 1].split("\n\n📊")[0]
                self.assertGreater(width(t) + 2 + width(first_next), 4096,
                                   "a digest holds as many as fit")
        # Every row carried, by fewer messages than rows.
        rows = env.sql("SELECT status, count(*), count(DISTINCT sent_with) "
                       "FROM outbox WHERE run_id = %s GROUP BY status",
                       (run_id,))
        self.assertEqual(rows, [("sent", N_DIGEST + 1, len(digests) + 1)])
        last_sent, delivered = env.sql(
            "SELECT max(o.sent_at), r.delivered_at FROM outbox o JOIN runs r "
            "USING (run_id) WHERE run_id = %s GROUP BY r.delivered_at",
            (run_id,))[0]
        self.assertGreaterEqual(delivered, last_sent)

        st = self.status(run_id)["delivery"]
        self.assertEqual((st["sent"], st["messages"], st["pending"],
                          st["failed"]),
                         (N_DIGEST + 1, len(digests) + 1, 0, 0))
        self.assertIn("delivered_at", st)
        stats = self.tg.control("stats")
        print("digest run: %d reports in %d messages, %d answered 429"
              % (N_DIGEST, len(digests) + 1, stats["refused_429"]))

    def test_2_per_project_mode_and_metrics(self):
        self.start_sender()
        run_id = self.run_job(self.single_job, self.cfg)
        harness.wait_for(lambda: self.env.scalar(
            "SELECT delivered_at IS NOT NULL FROM runs WHERE run_id = %s",
            (run_id,)), 120, "the per-project run delivered", interval=0.5)
        texts = self.sent_to("4343")
        self.assertEqual(len(texts), N_SINGLE + 1)
        self.assertEqual([len(reports_in(t)) for t in texts[:-1]],
                         [1] * N_SINGLE)
        self.assertIn("Batch Analysis Complete", texts[-1])

        port = None

        def metrics():
            nonlocal port
            if port is None:
                for line in open(self.sender.log_path, errors="replace"):
                    m = re.search(r"metrics on port (\d+)", line)
                    if m:
                        port = int(m.group(1))
            if port is None:
                return None
            body = urllib.request.urlopen(
                "http://127.0.0.1:%d/metrics" % port, timeout=5).read()
            body = body.decode()
            return body if 'nightshift_outbox_lag_seconds{channel="telegram"}' \
                in body else None
        body = harness.wait_for(metrics, 30, "outbox lag on /metrics",
                                interval=0.5)
        self.assertIn('nightshift_outbox_pending{channel="email"}', body)
        self.assertRegex(body, r'nightshift_outbox_deliveries_total\{channel='
                         r'"telegram",outcome="sent"\} \d+')

    def test_3_a_refused_digest_goes_report_by_report(self):
        env = self.env
        if self.sender is not None:
            env.stop(self.sender)
            type(self).sender = None
        run_id = self.run_job(self.refused_job, self.hold_cfg)
        # Telegram refuses the first digest (as it would one bad report in
        # it): its first report is sent alone, then the rest packed again.
        self.tg.faults({"kind": "status", "status": 400, "description":
                        "Bad Request: can't parse entities: test"})
        self.start_sender()
        harness.wait_for(lambda: env.scalar(
            "SELECT delivered_at IS NOT NULL FROM runs WHERE run_id = %s",
            (run_id,)), 120, "the refused run delivered", interval=0.5)
        calls = [r for r in self.tg.requests()
                 if r["path"].endswith("/sendMessage") and
                 str(r["json"]["chat_id"]) == "4444"]
        self.assertEqual(calls[0]["status"], 400)
        self.assertGreater(len(reports_in(calls[0]["json"]["text"])), 1)
        self.assertEqual(len(reports_in(calls[1]["json"]["text"])), 1)
        self.assertEqual(reports_in(calls[1]["json"]["text"])[0],
                         reports_in(calls[0]["json"]["text"])[0])
        texts = self.sent_to("4444")
        names = [n for t in texts[:-1] for n in reports_in(t)]
        self.assertEqual(len(names), 30)
        self.assertEqual(len(set(names)), 30)
        self.assertIn("Batch Analysis Complete", texts[-1])
        self.assertEqual(env.scalar(
            "SELECT count(*) FROM outbox WHERE run_id = %s AND status = "
            "'sent'", (run_id,)), 31)

    def test_4_global_option_errors_name_the_usage(self):
        res = self.env.nightshift("--bogus", "status", check=False)
        self.assertEqual(res.returncode, 2)
        self.assertIn("unknown option --bogus", res.stderr)
        res = self.env.nightshift("-c", check=False)
        self.assertEqual(res.returncode, 2)
        self.assertIn("-c needs a file", res.stderr)


if __name__ == "__main__":
    harness.run(globals())
