"""The producer's schedule on the real stack, driven by an injectable
clock (NS_TEST_CLOCK_FILE): firing in the job's time zone, two producers
firing a slot once, catch-up after downtime within the starting deadline,
Forbid, and DST days."""
import calendar
import os
import signal
import re
import time
import unittest
import urllib.request

import harness


def epoch(text):
    return calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ"))


class SchedulerTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.env = harness.Env("scheduler")

    @classmethod
    def tearDownClass(cls):
        cls.env.close()

    def clock(self, name):
        path = os.path.join(self.env.tmp, name + ".clock")
        env = dict(self.env.env, NS_TEST_CLOCK_FILE=path)
        return path, env

    def set_clock(self, path, when):
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            f.write("%s\n" % (epoch(when) if isinstance(when, str) else when))
        os.replace(tmp, path)

    def config(self, job, schedule, tz, policy="Allow", deadline=600):
        return self.env.config(
            "jobs:\n  - name: %s\n    schedule: \"%s\"\n    timezone: %s\n"
            "    concurrency_policy: %s\n    starting_deadline_seconds: %d\n"
            "    source: {type: one}\n    handler: analyzer.project\n"
            % (job, schedule, tz, policy, deadline), name=job + ".yaml")

    def slots(self, job):
        return [r[0] for r in self.env.sql(
            "SELECT to_char(scheduled_for AT TIME ZONE 'UTC', "
            "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') FROM runs WHERE job = %s "
            "ORDER BY scheduled_for", (job,))]

    def start_producer(self, cfg, env, log):
        p = self.env.start("producer", "-c", cfg, log=log, env=env)
        harness.wait_for(lambda: "producer started" in self.env.log_tail(p),
                         30, "producer start")
        return p

    def wait_tick(self, producer, when):
        """Waits until the producer has completed a tick at clock `when`
        (its last-tick gauge), so "nothing fired" is an observation."""
        port = int(harness.wait_for(lambda: re.search(
            r"metrics on port (\d+)", self.env.log_tail(producer, 200)),
            10, "metrics port").group(1))
        target = epoch(when)

        def ticked():
            body = urllib.request.urlopen(
                "http://127.0.0.1:%d/metrics" % port, timeout=5).read()
            m = re.search(rb"nightshift_producer_last_tick_timestamp_seconds"
                          rb" (\d+)", body)
            return m is not None and int(m.group(1)) >= target
        harness.wait_for(ticked, 10, "a producer tick at %s" % when)

    def wait_slots(self, job, n):
        return harness.wait_for(lambda: len(self.slots(job)) >= n and
                                self.slots(job), 30, "%d runs" % n)

    def test_1_fires_in_zone_once_with_two_producers_and_catches_up(self):
        job = self.env.job("tz")
        cfg = self.config(job, "30 2 * * *", "Europe/Berlin")
        clock, env = self.clock("a")
        self.set_clock(clock, "2026-06-01T00:29:50Z")
        a = self.start_producer(cfg, env, "producer-a")
        b = self.start_producer(cfg, env, "producer-b")
        self.set_clock(clock, "2026-06-01T00:30:01Z")
        # 02:30 in Berlin (CEST, UTC+2) is 00:30 UTC.
        self.assertEqual(self.wait_slots(job, 1), ["2026-06-01T00:30:00Z"])
        # Both producers keep ticking; still one run for the slot.
        self.set_clock(clock, "2026-06-01T00:30:03Z")
        harness.wait_for(lambda: self.env.scalar(
            "SELECT emitted_at IS NOT NULL FROM runs WHERE job = %s",
            (job,)), 30, "items emitted")
        self.assertEqual(self.env.scalar(
            "SELECT items_total FROM runs WHERE job = %s", (job,)), 1)
        self.assertEqual(len(self.slots(job)), 1)

        # Downtime: one producer crashes, the other stops cleanly.
        self.env.stop(a, signal.SIGKILL)
        self.assertEqual(self.env.stop(b), 0)
        # Two days later, 5 minutes after the 2026-06-03 slot: only the most
        # recent missed slot runs (06-02's is past the deadline).
        self.set_clock(clock, "2026-06-03T00:35:00Z")
        c = self.start_producer(cfg, env, "producer-c")
        self.assertEqual(self.wait_slots(job, 2),
                         ["2026-06-01T00:30:00Z", "2026-06-03T00:30:00Z"])
        harness.wait_for(lambda: "slot(s) missed" in self.env.log_tail(c),
                         10, "missed-slot warning")
        # 30 minutes late is beyond the 600 s deadline: nothing fires.
        self.set_clock(clock, "2026-06-04T01:00:00Z")
        self.wait_tick(c, "2026-06-04T01:00:00Z")
        self.assertEqual(len(self.slots(job)), 2)
        # Reported once per outage, not on every tick.
        self.set_clock(clock, "2026-06-04T01:00:30Z")
        self.wait_tick(c, "2026-06-04T01:00:30Z")
        self.assertEqual(self.env.log_tail(c, 1000).count("slot(s) missed"),
                         2)
        self.assertEqual(self.env.stop(c), 0)

    def test_2_spring_forward_fires_once_at_the_gap(self):
        job = self.env.job("spring")
        cfg = self.config(job, "30 2 * * *", "Europe/Berlin")
        clock, env = self.clock("spring")
        # 2027-03-28: 02:00 CET jumps to 03:00 CEST at 01:00 UTC; 02:30 does
        # not exist that day, so the job fires at the gap (01:00 UTC).
        self.set_clock(clock, "2027-03-28T00:59:00Z")
        p = self.start_producer(cfg, env, "producer-spring")
        self.set_clock(clock, "2027-03-28T01:00:02Z")
        self.assertEqual(self.wait_slots(job, 1), ["2027-03-28T01:00:00Z"])
        self.set_clock(clock, "2027-03-28T02:30:05Z")
        self.wait_tick(p, "2027-03-28T02:30:05Z")
        self.assertEqual(len(self.slots(job)), 1)
        self.env.stop(p)

    def test_3_fall_back_fires_once(self):
        job = self.env.job("fall")
        cfg = self.config(job, "30 2 * * *", "Europe/Berlin")
        clock, env = self.clock("fall")
        # 2026-10-25: 03:00 CEST falls back to 02:00 CET at 01:00 UTC; 02:30
        # happens at 00:30 UTC and again at 01:30 UTC. It fires once.
        self.set_clock(clock, "2026-10-25T00:29:00Z")
        p = self.start_producer(cfg, env, "producer-fall")
        self.set_clock(clock, "2026-10-25T00:30:02Z")
        self.assertEqual(self.wait_slots(job, 1), ["2026-10-25T00:30:00Z"])
        self.set_clock(clock, "2026-10-25T01:30:02Z")
        self.wait_tick(p, "2026-10-25T01:30:02Z")
        self.assertEqual(len(self.slots(job)), 1)
        self.env.stop(p)

    def test_4_forbid_skips_while_a_run_is_active(self):
        job = self.env.job("forbid")
        cfg = self.config(job, "*/5 * * * *", "UTC", policy="Forbid")
        clock, env = self.clock("forbid")
        self.set_clock(clock, "2026-06-01T00:04:50Z")
        p = self.start_producer(cfg, env, "producer-forbid")
        self.set_clock(clock, "2026-06-01T00:05:01Z")
        self.wait_slots(job, 1)
        # No worker runs: the first run stays active, so the next is skipped.
        self.set_clock(clock, "2026-06-01T00:10:01Z")
        self.wait_slots(job, 2)
        statuses = [r[0] for r in self.env.sql(
            "SELECT status FROM runs WHERE job = %s ORDER BY scheduled_for",
            (job,))]
        self.assertEqual(statuses, ["running", "skipped"])
        self.env.stop(p)


if __name__ == "__main__":
    harness.run(globals())
