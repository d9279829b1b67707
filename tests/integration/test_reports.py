"""The hourly report (seed 001) on the real stack: `reports.hourly` builds
the workbook of the hour that ended at the run's slot and the outbox sends
it by email (the stack's real SMTP server, STARTTLS with verification and
a login) and by Telegram (sendDocument to the fake), once per hour.

Cases: a normal hour (runs of several jobs, analyses, a hostile project
name), an empty hour (sent, or skipped with send_empty off), a re-run of
the same slot (nothing sent twice), SMTP down (Telegram still delivered;
the email retried and delivered once when the server is back), a dry run
(the workbook left on disk, nothing queued) and the error alert of a
failed run."""
import email
import email.policy
import glob
import hashlib
import io
import json
import os
import re
import subprocess
import unittest

import harness

try:
    import openpyxl
except ImportError:  # scripts/test.sh installs python3-openpyxl
    openpyxl = None

STACK_SH = harness.STACK_SH
HOSTILE = '=HYPERLINK("http://evil.example/x","click")'
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def maildir():
    return os.environ.get("NS_SMTP_MAILDIR", "")


def mails_to(address):
    """The stored messages whose envelope has address, oldest first."""
    out = []
    for meta in sorted(glob.glob(os.path.join(maildir(), "*.json"))):
        with open(meta) as f:
            env = json.load(f)
        if address in env["rcpt_tos"]:
            eml = meta[:-5] + ".eml"
            if os.path.exists(eml):
                with open(eml, "rb") as f:
                    msg = email.message_from_bytes(
                        f.read(), policy=email.policy.default)
                out.append((env, msg))
    return out


def attachment(msg):
    parts = [p for p in msg.iter_attachments()]
    assert len(parts) == 1, parts
    return parts[0]


@unittest.skipIf(openpyxl is None, "python3-openpyxl is not installed")
@unittest.skipIf(not os.environ.get("NS_SMTP_URL"),
                 "the stack has no SMTP server (tests/stack.sh up)")
class ReportsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        env = cls.env = harness.Env("reports")
        cls.tg = harness.Fake(env, "fake_telegram.py")
        cls.job = env.job("reports")
        cls.quiet = env.job("quiet")
        cls.broken = env.job("broken")
        cls.ops = "ops-%s@example.com" % env.tag
        cls.team = "team-%s@example.com" % env.tag
        cls.dry_dir = os.path.join(env.tmp, "dry")
        os.mkdir(cls.dry_dir)
        job = ("  - name: %s\n"
               "    timezone: Europe/Berlin\n"
               "    source: {type: one}\n"
               "    handler: reports.hourly\n"
               "    finalizer: reports.alert\n"
               "    retry: {max_attempts: 2, backoff_seconds: 1,"
               " backoff_max_seconds: 1}\n"
               "    notify:\n"
               "      telegram: {chat_id: \"%s\"}\n"
               "      email: {to: \"%s, Team <%s>\"}\n"
               "    params: %s\n")
        cls.cfg = env.config(
            "jobs:\n" +
            job % (cls.job, "4242", cls.ops, cls.team,
                   "{dry_run_dir: \"%s\"}" % cls.dry_dir) +
            job % (cls.quiet, "4343", cls.ops, cls.team,
                   "{send_empty: false}") +
            job % (cls.broken, "4444", cls.ops, cls.team,
                   "{work_dir: /nonexistent/nightshift}"),
            telegram=cls.tg)
        cls.seed()
        cls.worker = env.start("worker", "-c", cls.cfg)
        env.wait_log(cls.worker, "assigned")

    @classmethod
    def tearDownClass(cls):
        cls.env.close()

    @classmethod
    def seed(cls):
        """The hour 2026-11-29 05:00-06:00 Europe/Berlin (04:00-05:00 UTC):
        three runs inside it, two just outside, three analyses."""
        env = cls.env
        runs = [  # job, started, seconds, status, done, failed, total
            ("batch-analyzer", "2026-11-29 04:00:05+00", 12.5, "succeeded",
             40, 0, 40),
            ("stopword-refresh", "2026-11-29 04:10:00+00", 63.25, "failed",
             7, 3, 10),
            ("webhook", "2026-11-29 04:45:00+00", None, "running", 0, 0, 5),
            ("before", "2026-11-29 03:59:59+00", 1, "succeeded", 1, 0, 1),
            ("after", "2026-11-29 05:00:00+00", 1, "succeeded", 1, 0, 1),
        ]
        cls.run_ids = {}
        for job, started, secs, status, done, failed, total in runs:
            cls.run_ids[job] = env.scalar(
                "INSERT INTO runs (job, kind, status, items_total, "
                "items_done, items_failed, started_at, finished_at) VALUES "
                "(%s, 'scheduled', %s, %s, %s, %s, %s, %s::timestamptz + "
                "make_interval(secs => %s)) RETURNING run_id",
                (job, status, total, done, failed, started, started,
                 secs if secs is not None else 0))
            if secs is None:
                env.sql("UPDATE runs SET finished_at = NULL WHERE run_id = "
                        "%s", (cls.run_ids[job],))
        # The running one: its counts come from its items.
        rid = cls.run_ids["webhook"]
        for k, st in enumerate(["done", "done", "failed", "pending",
                                "pending"]):
            env.sql("INSERT INTO items (run_id, item_key, status) VALUES "
                    "(%s, %s, %s)", (rid, str(k), st))
        ba = cls.run_ids["batch-analyzer"]
        for name, at, tokens, content in [
                ("Apollo", "2026-11-29 04:01:00+00", 321,
                 "Line one\nLine two\nLine three\nLine four"),
                (HOSTILE, "2026-11-29 04:02:00+00", 100, "@SUM(A1:A9)"),
                ("Outside", "2026-11-29 05:00:00+00", 5, "not this hour")]:
            pid = env.scalar("INSERT INTO projects (name) VALUES (%s) "
                             "RETURNING id", (name,))
            env.sql("INSERT INTO analyses (project_id, run_id, content, "
                    "model, total_tokens, created_at) VALUES (%s, %s, %s, "
                    "'sonar-test', %s, %s)", (pid, ba, content, tokens, at))

    def run_job(self, job, *flags, ok=True):
        res = self.env.nightshift("run", job, "--wait", "--timeout", "120",
                                  "-c", self.cfg, *flags, check=ok)
        return int(re.search(r"run (\d+) of", res.stdout).group(1)), res

    def outbox(self, run_id):
        return {ch: (status, attempts, err) for ch, status, attempts, err in
                self.env.sql("SELECT channel, status, attempts, last_error "
                             "FROM outbox WHERE run_id = %s", (run_id,))}

    def wait_sent(self, run_id, channels=("email", "telegram")):
        def sent():
            box = self.outbox(run_id)
            return all(box.get(c, ("",))[0] == "sent" for c in channels) \
                and box
        return harness.wait_for(sent, 120, "the outbox of run %d" % run_id)

    def documents(self):
        return self.tg.control("files")

    def test_1_a_normal_hour_by_email_and_telegram(self):
        run_id, _ = self.run_job(self.job, "--slot", "2026-11-29T06:00")
        self.wait_sent(run_id)
        mails = mails_to(self.ops)
        self.assertEqual(len(mails), 1)
        envelope, msg = mails[0]
        self.assertEqual(sorted(envelope["rcpt_tos"]),
                         sorted([self.ops, self.team]))
        self.assertTrue(envelope["tls"])  # STARTTLS, verified
        self.assertEqual(envelope["auth_user"],
                         os.environ.get("NS_SMTP_USER"))
        self.assertEqual(str(msg["Subject"]), "nightshift hourly report "
                         "2026-11-29 05:00 – 06:00 (Europe/Berlin)")
        self.assertIn(self.team, str(msg["To"]))
        body = msg.get_body(("plain",)).get_content()
        self.assertIn("Job runs: 3 (1 failed, 1 still running)", body)
        self.assertIn("Items processed: 53 (4 failed)", body)
        self.assertIn("Analyses: 2 (421 tokens)", body)
        part = attachment(msg)
        self.assertEqual(part.get_filename(), "report_2026-11-29_0500.xlsx")
        self.assertEqual(part.get_content_type(), XLSX)
        data = part.get_content()
        book = openpyxl.load_workbook(io.BytesIO(data))
        self.assertEqual(book.sheetnames, ["Hourly Report", "Analyses"])
        ws = book["Hourly Report"]
        self.assertEqual(ws["A1"].value, "Job")
        self.assertEqual(ws["A1"].fill.fgColor.rgb[-6:], "4472C4")
        self.assertTrue(ws["A1"].font.b)
        self.assertEqual(ws.freeze_panes, "A2")
        rows = [[c.value for c in r] for r in ws.iter_rows(min_row=2)]
        self.assertEqual([r[0] for r in rows[:3]],
                         ["batch-analyzer", "stopword-refresh", "webhook"])
        self.assertEqual(rows[0][1], self.run_ids["batch-analyzer"])
        self.assertEqual(str(rows[0][2]), "2026-11-29 05:00:05")  # Berlin
        self.assertEqual(rows[1][4], 63.25)
        self.assertEqual((rows[2][5], rows[2][6]), (3, 1))  # from items
        self.assertIn("Total", str(rows[3][0]))
        an = book["Analyses"]
        names = [r[0].value for r in an.iter_rows(min_row=2)]
        self.assertEqual(names[:2], ["Apollo", HOSTILE])
        hostile = an.cell(row=3, column=1)
        self.assertEqual(hostile.data_type, "s")  # text, never a formula
        self.assertEqual(an.cell(row=3, column=5).data_type, "s")
        # The same workbook went to Telegram, as a document with a caption.
        docs = [d for d in self.documents()
                if d.get("file_name") == "report_2026-11-29_0500.xlsx"]
        self.assertEqual(len(docs), 1)
        self.assertEqual(docs[0]["sha256"], hashlib.sha256(data).hexdigest())
        sent = self.tg.delivered("sendDocument")
        self.assertEqual(len(sent), 1)

    def test_2_a_rerun_of_the_slot_sends_nothing_twice(self):
        before = len(self.tg.delivered("sendDocument"))
        run_id, _ = self.run_job(self.job, "--slot", "2026-11-29T06:00")
        self.assertEqual(self.outbox(run_id), {})
        # The first run's deliveries are all there is.
        self.assertEqual(self.env.scalar(
            "SELECT count(*) FROM outbox WHERE idempotency_key LIKE %s",
            ("report:%s:%%" % self.job,)), 2)
        self.assertEqual(len(mails_to(self.ops)), 1)
        self.assertEqual(len(self.tg.delivered("sendDocument")), before)

    def test_3_an_empty_hour(self):
        run_id, _ = self.run_job(self.job, "--slot", "2026-11-28T06:00Z")
        self.wait_sent(run_id)
        msg = [m for _, m in mails_to(self.ops)
               if "2026-11-28 06:00" in str(m["Subject"])]
        self.assertEqual(len(msg), 1)
        book = openpyxl.load_workbook(io.BytesIO(
            attachment(msg[0]).get_content()))
        self.assertEqual(book.sheetnames, ["No activity"])
        # send_empty off: nothing queued, said so in the report.
        run_id, res = self.run_job(self.quiet, "--slot", "2026-11-28T06:00Z")
        self.assertEqual(self.outbox(run_id), {})
        self.assertIn("no activity", res.stdout)

    def test_4_smtp_down_telegram_still_goes_email_follows_once(self):
        if not harness.stack_matches("NS_SMTP_URL"):
            self.skipTest("needs NS_STACK_DIR of the stack in use")
        subprocess.run(["bash", STACK_SH, "stop", "smtp"], check=True,
                       capture_output=True, timeout=120)
        try:
            run_id, _ = self.run_job(self.job, "--slot", "2026-11-27T06:00Z")
            self.wait_sent(run_id, ("telegram",))
            harness.wait_for(lambda: self.outbox(run_id)["email"][1] >= 1,
                             60, "a failed email attempt")
            status, attempts, error = self.outbox(run_id)["email"]
            self.assertEqual(status, "pending")
            self.assertTrue(error)
        finally:
            subprocess.run(["bash", STACK_SH, "start", "smtp"], check=True,
                           capture_output=True, timeout=120)
        self.wait_sent(run_id)
        msgs = [m for _, m in mails_to(self.ops)
                if "2026-11-27 06:00 – 07:00" in str(m["Subject"])]
        self.assertEqual(len(msgs), 1)

    def test_5_dry_run_leaves_the_workbook_and_queues_nothing(self):
        run_id, res = self.run_job(self.job, "--dry-run", "--slot",
                                   "2026-11-29T06:00")
        self.assertEqual(self.outbox(run_id), {})
        path = os.path.join(self.dry_dir, "report_2026-11-29_0500.xlsx")
        self.assertTrue(os.path.exists(path))
        self.assertEqual(openpyxl.load_workbook(path).sheetnames,
                         ["Hourly Report", "Analyses"])
        self.assertIn(path, res.stdout)
        self.assertIn(self.team, res.stdout)  # where it would have gone
        self.assertIn('"4242"', res.stdout)

    def test_6_a_failed_run_alerts_on_telegram(self):
        run_id, res = self.run_job(self.broken, "--slot", "2026-11-29T06:00",
                                   ok=False)
        self.assertEqual(self.env.scalar(
            "SELECT status FROM runs WHERE run_id = %s", (run_id,)), "failed")
        self.wait_sent(run_id, ("telegram",))
        alerts = [r for r in self.tg.delivered("sendMessage")
                  if "ERROR in Reports Generator" in json.dumps(r)]
        self.assertEqual(len(alerts), 1)
        self.assertIn("/nonexistent/nightshift", json.dumps(alerts[0]))


if __name__ == "__main__":
    harness.run(globals())
