"""Incident detection of the log analyzer on the real stack: eight past
15-minute windows are laid down on a log topic with their own Kafka
timestamps; a steady error template and a steady info template, then one
window where the error template spikes to 30 times its rate. Processing
the windows in order opens one critical spike incident and alerts Teams
once (through the outbox, the card escaped); the next, quiet window
resolves it with a second card; re-running the spike window afterwards
changes nothing; the registries (log_peaks, log_known_errors) show it."""
import json
import os
import time
import unittest

import harness

WINDOW = 900
N_WINDOWS = 8
SPIKE = 6  # the window index with the spike


iso = harness.iso


class IncidentsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.env = env = harness.Env("incidents")
        cls.teams = harness.Fake(env, "fake_teams.py", "--rate-limit", "100")
        cls.job = env.job("logs")
        cls.topic = "logs.raw.%s" % env.tag
        cls.cfg = env.config(
            "teams:\n  webhooks: {ops: \"%s/webhookb2/ops\"}\n"
            "jobs:\n"
            "  - name: %s\n"
            "    source: {type: windows, window_seconds: %d}\n"
            "    handler: logs.window\n"
            "    params: {topic: \"%s\", grace_seconds: 30, skew_seconds: 0,"
            " warmup_windows: 4}\n"
            "    notify: {teams: {webhook: ops}}\n"
            % (cls.teams.url, cls.job, WINDOW, cls.topic))
        now = time.time()
        # Eight windows ending an hour ago (well inside Kafka's retention).
        cls.first = int(now // WINDOW) * WINDOW - (N_WINDOWS + 4) * WINDOW
        cls.produce()
        clock = os.path.join(env.tmp, "clock")
        harness.set_clock(clock, now + 86400)  # every grace is over
        cls.worker = env.start("worker", "-c", cls.cfg, log="worker",
                               env=dict(env.env, NS_TEST_CLOCK_FILE=clock))
        env.wait_log(cls.worker, "assigned", timeout=60)

    @classmethod
    def tearDownClass(cls):
        cls.env.close()

    @classmethod
    def produce(cls):
        rows = []
        for w in range(N_WINDOWS):
            start = cls.first + w * WINDOW
            errors = 300 if w == SPIKE else 10 + w % 3
            for i in range(errors):
                t = start + 10 + i * 0.5
                rows.append(("db*prod", t, json.dumps({
                    "timestamp": iso(t), "service": "db*prod",
                    "level": "critical", "message": "query timeout after "
                    "%ds on table orders" % (1 + i % 9)})))
            for i in range(20):
                t = start + 20 + i
                rows.append(("api", t, json.dumps({
                    "timestamp": iso(t), "service": "api", "level": "info",
                    "message": "GET /health 200 in %dms" % (i + 1)})))
        harness.produce_timed(cls.topic, rows)

    def run_window(self, w):
        slot = iso(self.first + (w + 1) * WINDOW)[:16] + "Z"
        res = self.env.nightshift("run", self.job, "--slot", slot, "--wait",
                                  "--timeout", "120", "-c", self.cfg)
        self.assertIn("succeeded", res.stdout, res.stdout + res.stderr)

    def cards(self, n):
        return harness.wait_for(
            lambda: (lambda c: c if len(c) >= n else None)(
                self.teams.control("cards")), 60, "%d Teams cards" % n)

    def incidents(self):
        return self.env.sql(
            "SELECT service, kind, severity, status, peak_lines, alerted, "
            "opened_window = to_timestamp(%s), resolved_window FROM "
            "log_incidents WHERE job = %s ORDER BY id",
            (self.first + SPIKE * WINDOW, self.job))

    def test_1_spike_opens_alerts_once_and_resolves(self):
        for w in range(SPIKE):
            self.run_window(w)
        self.assertEqual(self.incidents(), [], "steady windows: nothing")
        self.run_window(SPIKE)
        inc = self.incidents()
        self.assertEqual(len(inc), 1, inc)
        self.assertEqual(inc[0][:6],
                         ("db*prod", "spike", "critical", "open", 300, True))
        self.assertTrue(inc[0][6])
        card = self.cards(1)[0]
        self.assertIn("Critical spike", card["texts"][0])
        # The service name arrives literally: escaped for the card.
        self.assertIn("service: db\\*prod", card["texts"])
        self.assertTrue(any("timeout" in t for t in card["texts"]), card)

        self.run_window(SPIKE + 1)
        inc = self.incidents()
        self.assertEqual(inc[0][3], "resolved")
        self.assertIsNotNone(inc[0][7])
        cards = self.cards(2)
        self.assertIn("Resolved", cards[1]["texts"][0])
        self.assertEqual(len(cards), 2)

    def test_2_rerunning_an_older_window_changes_nothing(self):
        before = self.incidents()
        self.run_window(SPIKE)
        self.assertEqual(self.incidents(), before)
        # Nothing new queued for Teams either.
        self.assertEqual(self.env.scalar(
            "SELECT count(*) FROM outbox WHERE channel = 'teams'"), 2)

    def test_3_registries(self):
        peaks = self.env.sql(
            "SELECT service, peak_lines, status FROM log_peaks WHERE job = %s",
            (self.job,))
        self.assertEqual(peaks, [("db*prod", 300, "resolved")])
        known = self.env.sql(
            "SELECT template, level, occurrences, status FROM "
            "log_known_errors")
        self.assertEqual(len(known), 1, known)
        template, level, occurrences, status = known[0]
        self.assertIn("timeout", template)
        self.assertEqual((level, status), ("critical", "known"))
        self.assertEqual(occurrences, sum(300 if w == SPIKE else 10 + w % 3
                                          for w in range(N_WINDOWS)))


if __name__ == "__main__":
    harness.run(globals())
