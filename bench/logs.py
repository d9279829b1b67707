#!/usr/bin/python3
"""The log analyzer on the real stack (a benchmark: it prints figures, it
does not pass or fail on them).

--window: one 15-minute window of --lines log lines (JSON as Vector
  writes it, 40 kinds of message across 8 services, variables in every
  line) is laid down on a fresh topic with its own Kafka timestamps; a
  run of a logs.window job for that slot reads it back by timestamp,
  groups, counts and writes the window's counts: printed are lines/s from
  `nightshift run` to succeeded and the handler's own time.
--day: a synthetic day, 96 windows x 3 services with Poisson background
  traffic of steady templates, plus injected spikes (a steady template at
  --spike-factor x its rate for one window) and bursts (a new template at
  a high rate); every window is processed in order by the regular phase,
  and the incidents it opens are compared with what was injected:
  detection precision and recall.
--quick: a 20,000-line window and a 24-window day; exits 1 if the counts
  or the detection are wrong (never on a time).

Usage (from the repository root; NS_* from `tests/stack.sh env`; the
binaries from a build in build/):
  bench/logs.py --window [--lines 1000000]
  bench/logs.py --day [--spikes 6] [--bursts 4] [--seed 7]
"""
import argparse
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
import uuid

try:
    import psycopg2
except ImportError:
    sys.exit("bench/logs.py: needs python3-psycopg2 and /usr/bin/python3")

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.abspath(os.path.join(HERE, ".."))
WINDOW = 900
SERVICES = ["api", "auth", "billing", "cart", "db", "mail", "search", "web"]
# Distinct first words: the template tree keys on the first tokens.
STEADY = ["disk", "cache", "login", "queue", "index"]
NEW = ["reactor", "turbine", "gearbox", "boiler", "valve", "piston"]
KINDS = [
    "GET /api/v1/items/{n} 200 in {ms}ms",
    "POST /api/v1/orders 201 in {ms}ms for user {u}",
    "Connection from 10.{a}.{b}.{c} port {p} closed",
    "User {u} logged in from 192.168.{a}.{b}",
    "query took {ms}ms rows={n}",
    "cache miss for key session:{hex}",
    "job {uuid} finished in {s}s",
    "ERROR timeout after {s}s calling payments at https://pay.example/{n}",
    "WARN retrying request {uuid} attempt {a}",
    "worker {a} heartbeat ok",
]


def log(msg):
    print("# " + msg, file=sys.stderr, flush=True)


def iso(t):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + \
        ".%03dZ" % int((t % 1) * 1000)


def fill(kind, rng):
    return kind.format(
        n=rng.randint(1, 99999), ms=rng.randint(1, 999),
        u="u%d" % rng.randint(1, 5000), a=rng.randint(0, 255),
        b=rng.randint(0, 255), c=rng.randint(0, 255),
        p=rng.randint(1024, 65535), hex="%012x" % rng.getrandbits(48),
        uuid=str(uuid.UUID(int=rng.getrandbits(128))),
        s=rng.randint(1, 60))


class Stack:
    """A fresh database and topic, a worker, and the nightshift CLI."""

    def __init__(self, a, name, params=""):
        self.a = a
        self.tag = uuid.uuid4().hex[:6]
        self.db = "bench_logs_" + self.tag
        self.admin = psycopg2.connect(os.environ["NS_PG_DSN"])
        self.admin.autocommit = True
        self.admin.cursor().execute('CREATE DATABASE "%s"' % self.db)
        self.tmp = tempfile.mkdtemp(prefix="ns-bench-logs-")
        self.topic = "logs.bench.%s" % self.tag
        self.job = "%s-%s" % (name, self.tag)
        self.env = dict(os.environ, NS_PG_DSN=os.environ["NS_PG_DSN"] +
                        " dbname=" + self.db, NS_LOG_LEVEL="info")
        self.cfg = os.path.join(self.tmp, "jobs.yaml")
        with open(self.cfg, "w") as f:
            f.write("version: 1\nkafka:\n  group.id: \"bench-%s\"\n"
                    "worker: {metrics_port: 0, max_in_flight: 8}\n"
                    "jobs:\n  - name: %s\n"
                    "    source: {type: windows, window_seconds: %d}\n"
                    "    handler: logs.window\n"
                    "    params: {topic: \"%s\", grace_seconds: 30, "
                    "skew_seconds: 0%s}\n"
                    % (self.tag, self.job, WINDOW, self.topic, params))
        subprocess.run([a.bin, "migrate"], env=self.env, check=True,
                       capture_output=True)
        self.pg = psycopg2.connect(self.env["NS_PG_DSN"])
        self.pg.autocommit = True
        wl = open(os.path.join(self.tmp, "worker.log"), "wb")
        self.worker = subprocess.Popen([a.bin, "worker", "-c", self.cfg],
                                       env=self.env, stdout=wl, stderr=wl)
        deadline = time.time() + 60
        while b"assigned" not in open(os.path.join(self.tmp, "worker.log"),
                                      "rb").read():
            if time.time() > deadline:
                self.close()
                sys.exit("the worker did not join its group")
            time.sleep(0.1)

    def produce(self, rows):
        """rows: (key, epoch seconds, value) laid down with those times."""
        proc = subprocess.Popen([self.a.produce, os.environ["NS_KAFKA_BROKERS"],
                                 self.topic], stdin=subprocess.PIPE)
        buf = []
        for k, t, v in rows:
            buf.append("%s\t%d\t%s\n" % (k, int(t * 1000), v))
            if len(buf) >= 10000:
                proc.stdin.write("".join(buf).encode())
                buf = []
        proc.stdin.write("".join(buf).encode())
        proc.stdin.close()
        if proc.wait() != 0:
            sys.exit("ns_test_produce failed")

    def run(self, end):
        slot = time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime(end))
        t0 = time.perf_counter()
        r = subprocess.run([self.a.bin, "run", self.job, "--slot", slot,
                            "--wait", "--timeout", "3600", "-c", self.cfg],
                           env=self.env, capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit("the run failed:\n" + r.stdout[-2000:] + r.stderr[-2000:])
        return time.perf_counter() - t0

    def sql(self, q, p=()):
        cur = self.pg.cursor()
        cur.execute(q, p)
        return cur.fetchall()

    def close(self):
        self.worker.terminate()
        try:
            self.worker.wait(30)
        except subprocess.TimeoutExpired:
            self.worker.kill()
        self.pg.close()
        self.admin.cursor().execute('DROP DATABASE IF EXISTS "%s" WITH '
                                    '(FORCE)' % self.db)
        subprocess.run(["rm", "-rf", self.tmp])


def bench_window(a):
    rng = random.Random(a.seed)
    st = Stack(a, "window")
    try:
        start = int(time.time() // WINDOW) * WINDOW - 4 * WINDOW
        log("laying down %d lines in one window" % a.lines)
        t0 = time.perf_counter()

        def rows():
            for i in range(a.lines):
                t = start + (i * (WINDOW - 1.0)) / a.lines
                svc = SERVICES[i % len(SERVICES)]
                kind = KINDS[(i // 7) % len(KINDS)]
                yield (svc, t, json.dumps({
                    "timestamp": iso(t), "service": svc, "host": "h1",
                    "message": fill(kind, rng)}))
        st.produce(rows())
        produce_s = time.perf_counter() - t0
        log("produced in %.1f s; running the window" % produce_s)
        wall = st.run(start + WINDOW)
        lines, templates = st.sql(
            "SELECT lines, templates FROM log_windows WHERE job = %s",
            (st.job,))[0]
        busy = st.sql("SELECT extract(epoch FROM max(finished_at) - "
                      "min(started_at)) FROM items")[0][0]
        print("window: %d lines, %d (service, template) counts" % (lines,
                                                                   templates))
        print("  nightshift run -> succeeded: %.2f s, %.0f lines/s "
              "(the item itself: %.2f s, %.0f lines/s)"
              % (wall, lines / wall, float(busy), lines / float(busy)))
        print("  laying the lines down (not nightshift): %.1f s" % produce_s)
        return lines == a.lines and templates > 0
    finally:
        st.close()


def bench_day(a):
    rng = random.Random(a.seed)
    windows = a.day_windows
    st = Stack(a, "day", ", warmup_windows: 4")
    try:
        first = int(time.time() // WINDOW) * WINDOW - (windows + 4) * WINDOW
        steady = [(svc, k) for svc in ("api", "db", "web")
                  for k in range(5)]
        rate = {p: rng.choice([15, 25, 40, 60]) for p in steady}
        candidates = list(range(8, windows))
        rng.shuffle(candidates)
        spikes = {}
        for w in candidates[:a.spikes]:
            spikes[w] = rng.choice(steady)
        bursts = {w: ("api", i) for i, w in
                  enumerate(candidates[a.spikes:a.spikes + a.bursts])}
        rows = []
        for w in range(windows):
            start = first + w * WINDOW
            for (svc, k) in steady:
                n = max(0, int(rng.gauss(rate[(svc, k)],
                                         rate[(svc, k)] ** 0.5)))
                if spikes.get(w) == (svc, k):
                    n = int(rate[(svc, k)] * a.spike_factor)
                for i in range(n):
                    t = start + rng.uniform(1, WINDOW - 1)
                    rows.append((svc, t, json.dumps({
                        "timestamp": iso(t), "service": svc,
                        "level": "error" if k == 0 else "info",
                        "message": "%s steady event took %dms"
                        % (STEADY[k], rng.randint(1, 99))})))
            if w in bursts:
                svc, k = bursts[w]
                for i in range(80):
                    t = start + rng.uniform(1, WINDOW - 1)
                    rows.append((svc, t, json.dumps({
                        "timestamp": iso(t), "service": svc,
                        "level": "critical",
                        "message": "%s exploded in module zz%d"
                        % (NEW[k % len(NEW)], rng.randint(1, 9))})))
        rows.sort(key=lambda r: r[1])
        log("laying down %d lines over %d windows" % (len(rows), windows))
        st.produce(rows)
        t0 = time.perf_counter()
        for w in range(windows):
            st.run(first + (w + 1) * WINDOW)
        elapsed = time.perf_counter() - t0
        found = st.sql(
            "SELECT i.service, t.template, i.kind, "
            "(extract(epoch FROM i.opened_window)::bigint - %s) / %s "
            "FROM log_incidents i JOIN log_templates t USING (template_id)",
            (first, WINDOW))
        injected = [(w, "spike", svc, k) for w, (svc, k) in spikes.items()] + \
                   [(w, "burst", svc, k) for w, (svc, k) in bursts.items()]

        def matches(inj, inc):
            w, kind, svc, k = inj
            svc2, template, kind2, w2 = inc
            want = ("%s steady event" % STEADY[k]) if kind == "spike" else \
                ("%s exploded" % NEW[k % len(NEW)])
            return svc == svc2 and w == w2 and template.startswith(want)
        tp = sum(1 for inj in injected if any(matches(inj, i) for i in found))
        true_inc = sum(1 for i in found if any(matches(j, i)
                                               for j in injected))
        precision = true_inc / len(found) if found else 1.0
        recall = tp / len(injected) if injected else 1.0
        print("day: %d windows x 3 services, %d lines; injected %d spikes "
              "(x%g) and %d bursts" % (windows, len(rows), len(spikes),
                                       a.spike_factor, len(bursts)))
        print("  incidents opened: %d; precision %.2f, recall %.2f"
              % (len(found), precision, recall))
        print("  %d windows processed in %.1f s (%.2f s per window, one "
              "after the other)" % (windows, elapsed, elapsed / windows))
        return recall >= 0.75 and precision >= 0.75
    finally:
        st.close()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--window", action="store_true")
    p.add_argument("--day", action="store_true")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--lines", type=int, default=1000000)
    p.add_argument("--day-windows", type=int, default=96)
    p.add_argument("--spikes", type=int, default=6)
    p.add_argument("--bursts", type=int, default=4)
    p.add_argument("--spike-factor", type=float, default=8.0)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--bin", default=os.path.join(SRC, "build", "nightshift"))
    p.add_argument("--produce", default=os.path.join(
        SRC, "build", "tests", "ns_test_produce"))
    a = p.parse_args(argv)
    for v in ("NS_PG_DSN", "NS_KAFKA_BROKERS", "NS_REDIS_URL"):
        if not os.environ.get(v):
            print("bench/logs.py: %s is not set (eval \"$(bash "
                  "tests/stack.sh env)\")" % v, file=sys.stderr)
            return 77 if a.quick else 2
    if a.quick:
        a.window = a.day = True
        a.lines, a.day_windows, a.spikes, a.bursts = 20000, 24, 3, 2
    if not (a.window or a.day):
        p.error("say --window, --day or --quick")
    print("machine: %d CPUs (nproc)" % os.cpu_count())
    ok = True
    if a.window:
        ok = bench_window(a) and ok
    if a.day:
        ok = bench_day(a) and ok
    if a.quick and not ok:
        print("FAILED: wrong counts or detection")
    return 0 if ok or not a.quick else 1


if __name__ == "__main__":
    sys.exit(main())
