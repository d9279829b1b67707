"""Delivery under faults, on the real stack.

Each case runs one batch-analyzer run of 5,000 projects (handler
analyzer.project, finalizer analyzer.summary, the LLM and Telegram fakes)
through two or more workers (max_in_flight 16) while one kind of fault is
injected, then checks from Postgres and from the fakes' request logs that

  - every item is `done` exactly once (the poison messages of case 5 are in
    dead_letters with their reasons instead),
  - `analyses` has one row per project for the run,
  - the outbox has one `sent` row per project plus the summary,
  - Telegram saw every report delivered, duplicates only inside the
    outbox's documented window (sent, then crashed before recording) and
    never more of them than crashes were injected; the summary exactly once
    and last.

and prints one line per case:
  case 1: 5000 items, N duplicate deliveries, M redelivered messages, T s

"Redelivered messages" are item messages a worker received again after a
crash, rebalance or re-emission: the ones ignored because the item was
already finished (workers log them at debug level) plus extra processing
starts of unfinished items that were not retries of a failed attempt.

The moments of injection are random (NS_FAULTS_SEED fixes them; the seed is
printed); correctness is always judged on conditions, never on sleeps.
Cases 2 and 3 restart the broker / Postgres of the stack the test runs
against with tests/stack.sh (NS_STACK_DIR from the environment).
"""
import collections
import os
import random
import re
import signal
import subprocess
import threading
import time
import unittest

import harness

N = 5000
STACK_SH = os.path.join(harness.SRC, "tests", "stack.sh")
SEED = int(os.environ.get("NS_FAULTS_SEED") or time.time_ns() % 1000000007)
# Poison messages of case 5: key, bytes (a function of job and run), reason.
POISON_GHOST_RUN = 10 ** 9
REPORT_RE = re.compile(r"<b>Project:</b> (\S+)")


def stack_matches():
    """True when tests/stack.sh's NS_STACK_DIR is the stack we talk to."""
    if not os.environ.get("NS_STACK_DIR"):
        return False
    res = subprocess.run(["bash", STACK_SH, "env"], capture_output=True,
                         text=True, timeout=60)
    m = re.search(r"NS_KAFKA_BROKERS='([^']*)'", res.stdout)
    return (res.returncode == 0 and m is not None and
            m.group(1) == os.environ.get("NS_KAFKA_BROKERS"))


class Case:
    """One case's world: job, config, workers, counters."""

    def __init__(self, test, number, crashes=0):
        self.test = test
        self.number = number
        self.job = test.env.job("f%d" % number)
        self.topic = "ns.items." + self.job
        self.crashes = crashes
        self.workers = []      # every worker started (logs are counted)
        self.producers = []
        self.run_id = None
        self.t0 = None
        self.extra = []        # notes for the report line


class FaultsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        env = cls.env = harness.Env("faults")
        cls.llm = harness.Fake(env, "fake_llm.py", "--api-key",
                               env.env["NS_LLM_API_KEY"])
        cls.tg = harness.Fake(env, "fake_telegram.py", "--token",
                              env.env["NS_TELEGRAM_BOT_TOKEN"])
        env.sql("INSERT INTO projects (name, description, progress) "
                "SELECT 'project-' || lpad(g::text, 5, '0'), 'desc ' || g, "
                "g %% 101 FROM generate_series(1, %s) g", (N,))
        cls.rng = random.Random(SEED)
        print("\n  NS_FAULTS_SEED=%d" % SEED, flush=True)

    @classmethod
    def tearDownClass(cls):
        cls.env.close()

    def setUp(self):
        self.case = None
        self.llm.reset()
        self.tg.reset()

    def tearDown(self):
        # Whatever happened, nothing of this case keeps running into the next.
        c = self.case
        if c is None:
            return
        for p in c.workers + c.producers:
            if p.poll() is None:
                p.kill()
                p.wait(30)

    # -- database, robust against a Postgres restart ----------------------
    def sql(self, query, params=(), timeout=90):
        import psycopg2
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.env.sql(query, params)
            except (psycopg2.OperationalError, psycopg2.InterfaceError):
                if self.env._pg is not None:
                    try:
                        self.env._pg.close()
                    except Exception:
                        pass
                    self.env._pg = None
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def scalar(self, query, params=()):
        rows = self.sql(query, params)
        return rows[0][0] if rows else None

    # -- set-up -------------------------------------------------------------
    def config(self, c, llm_timeout=5, tg_timeout=5, schedule=None):
        sched = ""
        if schedule:
            sched = ("    schedule: \"%s\"\n    timezone: UTC\n"
                     "    concurrency_policy: Allow\n"
                     "    starting_deadline_seconds: 600\n" % schedule)
        text = (
            "version: 1\n"
            "kafka:\n"
            "  group.id: \"nightshift-%s-c%d\"\n"
            "worker: {metrics_port: 0, max_in_flight: 16}\n"
            "producer: {metrics_port: 0, tick_ms: 100}\n"
            "llm: {base_url: \"%s\", api_key: \"${NS_LLM_API_KEY}\", "
            "timeout_seconds: %d}\n"
            "telegram: {api_url: \"%s\", bot_token: "
            "\"${NS_TELEGRAM_BOT_TOKEN}\", timeout_seconds: %d}\n"
            "jobs:\n"
            "  - name: %s\n%s"
            "    source: {type: sql, query: \"SELECT id, name, description, "
            "status, progress FROM projects WHERE status = 'active' ORDER BY "
            "id\", key: id}\n"
            "    handler: analyzer.project\n"
            "    finalizer: analyzer.summary\n"
            "    retry: {max_attempts: 10, backoff_seconds: 0.5, "
            "backoff_max_seconds: 2}\n"
            "    max_parallelism: 8\n"
            "    notify: {telegram: {chat_id: \"${NS_TELEGRAM_CHAT_ID}\"}}\n"
            % (self.env.tag, c.number, self.llm.url, llm_timeout,
               self.tg.url, tg_timeout, c.job, sched))
        c.cfg = os.path.join(self.env.tmp, "case%d.yaml" % c.number)
        with open(c.cfg, "w") as f:
            f.write(text)
        return c.cfg

    def new_case(self, number, crashes=0, **cfg):
        c = self.case = Case(self, number, crashes)
        self.config(c, **cfg)
        return c

    def start_worker(self, c, wait=True):
        env = dict(self.env.env, NS_LOG_LEVEL="debug")
        w = self.env.start("worker", "-c", c.cfg,
                           log="c%d-w%d" % (c.number, len(c.workers) + 1),
                           env=env)
        c.workers.append(w)
        if wait:
            self.env.wait_log(w, "assigned", timeout=90)
        return w

    def alive(self, c):
        return [w for w in c.workers if w.poll() is None]

    def start_run(self, c):
        c.t0 = time.monotonic()
        res = self.env.nightshift("run", c.job, "-c", c.cfg)
        c.run_id = int(re.search(r"run (\d+) of", res.stdout).group(1))
        return c.run_id

    def finished(self, c):
        return self.scalar("SELECT count(*) FROM items WHERE run_id = %s AND "
                           "status <> 'pending'", (c.run_id,)) or 0

    def wait_progress(self, c, fraction, timeout=120):
        """Waits until `fraction` of the run's items are finished."""
        target = int(N * fraction)
        harness.wait_for(lambda: self.finished(c) >= target, timeout,
                         "%d of %d items finished" % (target, N), 0.05)

    def stack(self, verb, service):
        t = time.monotonic()
        res = subprocess.run(["bash", STACK_SH, verb, service],
                             capture_output=True, text=True, timeout=300)
        self.assertEqual(res.returncode, 0, res.stderr[-3000:])
        return time.monotonic() - t

    # -- the verdict --------------------------------------------------------
    def logs(self, c):
        text = []
        for p in c.workers:
            with open(p.log_path, errors="replace") as f:
                text.append(f.read())
        return "".join(text)

    def verify(self, c, poison=()):
        """Exactly once, from Postgres and the fakes; prints the case line."""
        run = (c.run_id,)
        status = harness.wait_for(lambda: self.scalar(
            "SELECT status FROM runs WHERE run_id = %s AND status IN "
            "('succeeded', 'failed', 'cancelled')", run), 240, "run end", 0.2)
        items = self.sql(
            "SELECT count(*), count(*) FILTER (WHERE status = 'done'), "
            "coalesce(sum(attempts), 0), string_agg(item_key || ': ' || "
            "coalesce(error, ''), '; ') FILTER (WHERE status <> 'done') "
            "FROM items WHERE run_id = %s", run)[0]
        self.assertEqual(items[0], N, "items of the run")
        self.assertEqual(items[1], N, "items not done: %s" % items[3])
        self.assertEqual(status, "succeeded")
        self.assertEqual(self.scalar(
            "SELECT items_total FROM runs WHERE run_id = %s", run), N)
        self.assertEqual(self.sql(
            "SELECT count(*), count(DISTINCT a.project_id) FROM analyses a "
            "JOIN projects p ON p.id = a.project_id WHERE a.run_id = %s",
            run)[0], (N, N))
        # The run's own items never reached the dead letters.
        ghost = [k for k, _, _ in poison]
        self.assertEqual(self.scalar(
            "SELECT count(*) FROM dead_letters WHERE run_id = %s AND "
            "item_key <> ALL(%s)", (c.run_id, ghost)), 0)
        for key, value, reason in poison:
            rows = self.sql("SELECT reason, length(payload) FROM dead_letters"
                            " WHERE msg_key = %s::bytea", (key.encode(),))
            self.assertEqual(len(rows), 1, key)
            self.assertIn(reason, rows[0][0], key)
            self.assertEqual(rows[0][1], len(value), key)
        # The outbox drains: one sent message per project plus the summary.
        harness.wait_for(lambda: self.scalar(
            "SELECT count(*) FROM outbox WHERE run_id = %s AND status = "
            "'sent'", run) == N + 1, 240, "outbox drained", 0.2)
        self.assertEqual(self.sql(
            "SELECT count(*), count(DISTINCT idempotency_key) FROM outbox "
            "WHERE run_id = %s", run)[0], (N + 1, N + 1))
        elapsed = time.monotonic() - c.t0
        texts = [m["json"]["text"] for m in self.tg.delivered("sendMessage")]
        per_project = collections.Counter(
            REPORT_RE.search(t).group(1) for t in texts
            if "Batch Analysis Report" in t)
        self.assertEqual(len(per_project), N, "projects reported")
        summaries = [t for t in texts if "Batch Analysis Complete" in t]
        self.assertEqual(len(summaries), 1, "summary deliveries")
        self.assertIn("- Projects processed: %d\n- Errors: 0\n" % N,
                      summaries[0])
        self.assertIn("Batch Analysis Complete", texts[-1],
                      "the summary comes last")
        dups = sum(n - 1 for n in per_project.values())
        logs = self.logs(c)
        ignored = logs.count("already finished; redelivery ignored")
        retries = len(re.findall(r"attempt \d+ failed \(", logs))
        redelivered = ignored + max(0, items[2] - N - retries)
        extra = ["%d retries" % retries] + c.extra
        print("\n  case %d: %d items, %d duplicate deliveries, %d redelivered"
              " messages, %.1f s (%s)" % (c.number, N, dups, redelivered,
                                          elapsed, ", ".join(extra)),
              flush=True)
        self.assertLessEqual(dups, c.crashes,
                             "duplicate deliveries beyond the outbox window: "
                             "%s" % [k for k, n in per_project.items()
                                     if n > 1])

    def stop_workers(self, c):
        """Survivors were never down and leave cleanly."""
        for w in self.alive(c):
            self.assertEqual(self.env.stop(w, timeout=60), 0,
                             self.env.log_tail(w))

    def assert_survived(self, c, killed=()):
        for w in c.workers:
            if w not in killed:
                self.assertIsNone(w.poll(), "worker exited:\n" +
                                  self.env.log_tail(w))

    # -- the cases ------------------------------------------------------------
    def test_1_kill_9_workers_at_random_moments(self):
        kills = 3
        c = self.new_case(1, crashes=kills)
        for _ in range(3):
            self.start_worker(c)
        self.start_run(c)
        moments = sorted(self.rng.uniform(0.05, 0.85) for _ in range(kills))
        killed = []
        for at in moments:
            self.wait_progress(c, at)
            time.sleep(self.rng.uniform(0, 0.5))
            victim = self.rng.choice(self.alive(c))
            victim.send_signal(signal.SIGKILL)
            victim.wait(10)
            killed.append(victim)
            # A replacement, so that two or more stay alive.
            self.start_worker(c, wait=False)
            self.assertGreaterEqual(len(self.alive(c)), 2)
        c.extra.append("kill -9 at %s of the items" % ", ".join(
            "%d%%" % (m * 100) for m in moments))
        self.verify(c)
        self.assert_survived(c, killed)
        self.stop_workers(c)

    @unittest.skipUnless(stack_matches(), "needs NS_STACK_DIR of this stack")
    def test_2_kafka_broker_restart(self):
        c = self.new_case(2, crashes=1)
        for _ in range(2):
            self.start_worker(c)
        self.start_run(c)
        at = self.rng.uniform(0.15, 0.6)
        self.wait_progress(c, at)
        took = self.stack("restart", "kafka")
        c.extra.append("broker restarted at %d%%, down %.1f s"
                       % (at * 100, took))
        self.verify(c)
        self.assert_survived(c)
        self.stop_workers(c)

    @unittest.skipUnless(stack_matches(), "needs NS_STACK_DIR of this stack")
    def test_3_postgres_restart(self):
        c = self.new_case(3, crashes=1)
        for _ in range(2):
            self.start_worker(c)
        self.start_run(c)
        at = self.rng.uniform(0.15, 0.6)
        self.wait_progress(c, at)
        took = self.stack("restart", "postgres")
        c.extra.append("postgres restarted at %d%%, down %.1f s"
                       % (at * 100, took))
        self.verify(c)
        self.assert_survived(c)
        self.stop_workers(c)

    def test_4_fake_apis_fail_20_percent(self):
        c = self.new_case(4, llm_timeout=3, tg_timeout=3)
        faults = {"fail_rate": 0.2, "timeout_seconds": 2, "retry_after": 1}
        self.llm.control("config", dict(faults, seed=SEED))
        self.tg.control("config", dict(faults, seed=SEED + 1))
        for _ in range(2):
            self.start_worker(c)
        self.start_run(c)
        self.verify(c)
        llm = self.llm.requests()
        tg = self.tg.requests()
        kinds = collections.Counter(r["fault"] for r in llm + tg
                                    if r["fault"])
        c.extra.append("faults: %d of %d LLM calls, %d of %d Telegram calls"
                       " %s" % (sum(1 for r in llm if r["fault"]), len(llm),
                                sum(1 for r in tg if r["fault"]), len(tg),
                                dict(kinds)))
        print("  " + c.extra[-1], flush=True)
        self.assert_survived(c)
        self.stop_workers(c)


if __name__ == "__main__":
    harness.run(globals())
