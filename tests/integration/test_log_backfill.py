"""The log analyzer's daily backfill on the real stack: yesterday's lines
are laid down on a log topic with their own Kafka timestamps; a run of the
backfill job fans out every window of that day (align: day), counts them,
and its finalizer publishes the day through the outbox: a Teams card with
the top issues, errors_table_latest.csv and peaks_table_latest.csv (UTF-8
with BOM, formula-safe) attached to their Confluence pages, and the daily
report page, at version + 1, every string escaped. A page Confluence
refuses fails alone and shows in `nightshift status`; the run succeeds.
Re-running the day changes nothing and publishes nothing twice."""
import base64
import csv
import io
import json
import time
import unittest

import harness

WINDOW = 3600  # 24 windows a day keep the test short; production uses 900
TOKEN = "pat-backfill-123"
HOSTILE = "=cmd|' /C calc'!A0 <script>alert(1)</script> \"quoted\", comma"


iso = harness.iso


class LogBackfillTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.env = env = harness.Env("logbackfill")
        cls.teams = harness.Fake(env, "fake_teams.py", "--rate-limit", "100")
        cls.conf = harness.Fake(env, "fake_confluence.py", "--token", TOKEN)
        for pid in ("101", "102"):
            cls.conf.control("pages", {"id": pid, "title": "Page " + pid,
                                       "version": 3})
        cls.conf.control("pages", {"id": "103", "forbidden": True})
        cls.job = env.job("backfill")
        cls.topic = "logs.raw.%s" % env.tag
        cls.cfg = env.config(
            "teams:\n  webhooks: {ops: \"%s/workflows/ops\"}\n"
            "confluence: {base_url: \"%s\","
            " auth: bearer, timeout_seconds: 10}\n"
            "jobs:\n"
            "  - name: %s\n"
            "    schedule: \"0 9 * * *\"\n"
            "    source: {type: windows, window_seconds: %d, align: day}\n"
            "    handler: logs.window\n"
            "    finalizer: logs.daily_report\n"
            "    params: {topic: \"%s\", detect: false, grace_seconds: 30,"
            " skew_seconds: 0, pages: {daily_report: \"101\","
            " known_errors: \"102\", known_peaks: \"103\"}}\n"
            "    notify: {teams: {webhook: ops}}\n"
            % (cls.teams.url, cls.conf.url, cls.job, WINDOW, cls.topic))
        # The day before yesterday: its run's slot (09:00 the day after it)
        # is in the past at any time of day, so `backfill` takes it (a slot
        # still to come is the scheduler's). With yesterday, test 3 failed
        # whenever the suite ran before 09:00 UTC.
        cls.day = int(time.time() // 86400) * 86400 - 2 * 86400
        cls.produce()
        cls.wenv = dict(env.env, NS_CONFLUENCE_TOKEN=TOKEN)
        cls.worker = env.start("worker", "-c", cls.cfg, log="worker",
                               env=cls.wenv)
        env.wait_log(cls.worker, "assigned", timeout=60)

    @classmethod
    def tearDownClass(cls):
        cls.env.close()

    @classmethod
    def produce(cls):
        rows = []
        for h in range(0, 24, 3):
            base = cls.day + h * 3600 + 60
            for i in range(40 + h):
                t = base + i
                rows.append(("pay", t, json.dumps({
                    "timestamp": iso(t), "service": "pay", "level": "error",
                    "message": "card declined for order %d" % (1000 + i)})))
            for i in range(5):
                t = base + 100 + i
                rows.append(("web", t, json.dumps({
                    "timestamp": iso(t), "service": "web", "level": "error",
                    "message": HOSTILE})))
            for i in range(30):
                t = base + 200 + i
                rows.append(("web", t, json.dumps({
                    "timestamp": iso(t), "service": "web", "level": "info",
                    "message": "GET /index %d ms" % i})))
        harness.produce_timed(cls.topic, rows)

    def run_day(self):
        slot = iso(self.day + 86400 + 9 * 3600)[:16] + "Z"
        res = self.env.nightshift("run", self.job, "--slot", slot, "--wait",
                                  "--timeout", "300", "-c", self.cfg,
                                  env=self.wenv)
        self.assertIn("succeeded", res.stdout, res.stdout + res.stderr)
        return int(res.stdout.split("run ")[1].split(" ")[0])

    def delivered(self, run_id):
        return self.env.scalar(
            "SELECT delivered_at IS NOT NULL FROM runs WHERE run_id = %s",
            (run_id,))

    def test_1_the_day_is_counted_and_published(self):
        env = self.env
        run_id = self.run_day()
        self.assertEqual(env.scalar(
            "SELECT count(*) FROM log_windows WHERE run_id = %s", (run_id,)),
            24)
        self.assertEqual(env.scalar(
            "SELECT sum(lines) FROM log_windows WHERE run_id = %s",
            (run_id,)), sum(40 + h + 5 + 30 for h in range(0, 24, 3)))
        harness.wait_for(lambda: self.delivered(run_id), 90,
                         "the day's messages delivered or failed")
        card = self.teams.control("cards")
        self.assertEqual(len(card), 1)
        texts = card[0]["texts"]
        self.assertIn("Daily log report", texts[0])
        self.assertTrue(any("card declined" in t for t in texts), texts)
        pages = self.conf.control("pages")
        self.assertEqual(pages["101"]["version"], 4)
        self.assertEqual(pages["102"]["version"], 4)
        body = pages["101"]["body"]
        self.assertIn("Top issues", body)
        self.assertIn("&lt;script&gt;", body)
        self.assertNotIn("<script>", body)
        att = pages["102"]["attachments"]["errors_table_latest.csv"]
        raw = base64.b64decode(att["content_b64"])
        self.assertTrue(raw.startswith(b"\xef\xbb\xbf"), raw[:20])
        rows = list(csv.reader(io.StringIO(raw[3:].decode("utf-8"),
                                           newline="")))
        self.assertEqual(rows[0][:3], ["template_id", "template", "level"])
        templates = [r[1] for r in rows[1:]]
        # The formula is neutralised, the text otherwise literal.
        hostile = [t for t in templates if "<script>" in t]
        self.assertEqual(len(hostile), 1, templates)
        self.assertTrue(hostile[0].startswith("'=cmd|'"), hostile)
        self.assertFalse(any(t.startswith("=") for t in templates))
        # The forbidden page failed alone; status shows it.
        self.assertEqual(env.scalar(
            "SELECT count(*) FROM outbox WHERE run_id = %s AND status = "
            "'failed' AND target = '103'", (run_id,)), 1)
        st = json.loads(env.nightshift("status", str(run_id), "--json",
                                       "-c", self.cfg).stdout)["runs"][0]
        self.assertEqual(st["status"], "succeeded")
        self.assertEqual(st["delivery"]["failed"], 1)
        self.assertEqual(st["delivery"]["sent"], 3)

    def test_2_rerunning_the_day_changes_nothing(self):
        env = self.env
        before = env.sql("SELECT service, template_id, lines FROM "
                         "log_window_counts WHERE job = %s ORDER BY 1, 2, "
                         "window_start", (self.job,))
        outbox = env.scalar("SELECT count(*) FROM outbox")
        self.run_day()
        after = env.sql("SELECT service, template_id, lines FROM "
                        "log_window_counts WHERE job = %s ORDER BY 1, 2, "
                        "window_start", (self.job,))
        self.assertEqual(after, before)
        self.assertEqual(env.scalar("SELECT count(*) FROM outbox"), outbox)
        self.assertEqual(self.conf.control("pages")["101"]["version"], 4)

    def test_3_backfill_verb_skips_what_succeeded(self):
        env = self.env
        day = time.strftime("%Y-%m-%d", time.gmtime(self.day))
        before = time.strftime("%Y-%m-%d", time.gmtime(self.day - 86400))
        res = env.nightshift("backfill", self.job, "--from", day, "--to", day,
                             "-c", self.cfg, env=self.wenv)
        self.assertIn("succeeded already, skipped", res.stdout)
        self.assertIn("0 runs, 0 failed, 1 skipped", res.stdout)
        # The day before: one backfill run of its own (an empty day), and
        # this time every page may be edited: all three are published.
        self.conf.control("pages", {"id": "103", "title": "Known peaks",
                                    "version": 1})
        res = env.nightshift("backfill", self.job, "--from", before, "--to",
                             day, "--max-concurrent", "2", "-c", self.cfg,
                             env=self.wenv)
        self.assertIn("1 run, 0 failed, 1 skipped", res.stdout, res.stdout)
        run_id = env.scalar("SELECT max(run_id) FROM runs WHERE kind = "
                            "'backfill'")
        harness.wait_for(lambda: self.delivered(run_id), 90,
                         "the day before published")
        pages = self.conf.control("pages")
        self.assertEqual([pages[p]["version"] for p in ("101", "102", "103")],
                         [5, 5, 2])
        self.assertIn("peaks_table_latest.csv", pages["103"]["attachments"])
        self.assertIn("errors_table_latest.csv", pages["102"]["attachments"])
        self.assertIn("No warnings or errors", pages["101"]["body"])
        self.assertEqual(env.scalar(
            "SELECT count(*) FROM runs WHERE job = %s AND kind = 'backfill' "
            "AND status = 'succeeded'", (self.job,)), 1)
        self.assertEqual(env.scalar(
            "SELECT count(*) FROM log_windows w JOIN runs r USING (run_id) "
            "WHERE r.kind = 'backfill'"), 24)
        # A day whose run is still to come (today's, at 09:00 tomorrow) is
        # left to the scheduler, and said so.
        today = time.strftime("%Y-%m-%d", time.gmtime(time.time()))
        res = env.nightshift("backfill", self.job, "--from", today, "--to",
                             today, "-c", self.cfg, env=self.wenv)
        self.assertIn("0 slots", res.stdout)
        self.assertIn("1 slot from %sT09:00" % time.strftime(
            "%Y-%m-%d", time.gmtime(time.time() + 86400)), res.stdout)
        self.assertIn("still to come: left to the scheduler", res.stdout)
        bad = env.nightshift("backfill", self.job, "--from", day, "-c",
                             self.cfg, check=False, env=self.wenv)
        self.assertEqual(bad.returncode, 2)
        self.assertIn("--from and --to are needed", bad.stderr)


if __name__ == "__main__":
    harness.run(globals())
