#!/usr/bin/python3
"""Throughput of nightshift through the real stack (a benchmark: it prints
figures, it does not pass or fail on them).

  A. noop: items/s through the real Kafka broker with the `noop` handler, one
     and two worker processes. A run of N items (`SELECT g AS id FROM
     generate_series(1, N) g`) is started with `nightshift run JOB` (the CLI
     records the run, enumerates the items and produces them itself); the
     clock runs from the CLI's start until Postgres says the run is
     `succeeded` (polled every 50 ms).
  B. webhook: items/s with the `webhook.post` handler against
     tests/fakes/fake_webhook.py answering every POST after 50 ms, at worker
     max_in_flight 1, 16, 64, 256 (one worker, N = max(200, 40 x M)), and the
     ratio to the ideal M / 0.050 s. By default twice: against the test
     fake (a thread per connection under the GIL: at thousands of calls a
     second it needs a core by itself) and against bench/
     fake_webhook_async.py (the same answers from one asyncio loop, so the
     figures show nightshift rather than the fake). The fake's real latency
     is measured first and a second ratio uses it.

Every measurement gets a fresh database (CREATE DATABASE + `nightshift
migrate`), a fresh consumer group, a unique job name (so a fresh topic) and
fresh worker processes, which are in the group with all partitions assigned
before the clock starts. Each configuration is measured --repeat times (in
rounds, so slow phases of a shared machine spread over all configurations).

Besides the end-to-end figure it reports where the time went: the run's
timestamps (created -> emitted_at = enumerating the items and producing
them to Kafka, emitted_at -> finished_at = the processing tail after the
last message was produced, plus the fan-in; the items' first start and
last finish), the workers' nightshift_item_duration_seconds histogram, the
busiest statements in pg_stat_activity (sampled every 50 ms), and CPU
seconds per component (worker, CLI, PostgreSQL, Kafka, fake) against the
machine's busy time.

Usage (from the repository root, as root on the test machine):
  bench/throughput.py                 # full run, starts and stops its own stack
  bench/throughput.py --quick         # smoke run (small N, one repetition)
  bench/throughput.py --keep-stack    # use the stack in NS_PG_DSN/NS_KAFKA_BROKERS
  bench/throughput.py --only noop --workers 1,2,4   # the scaling table
Figures go to stdout and to bench/results/throughput-<date>.json.

Needs Python 3 and Debian's python3-psycopg2 (hence /usr/bin/python3).
"""
import argparse
import datetime
import hashlib
import json
import os
import platform
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import http.client
import urllib.request
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.abspath(os.path.join(HERE, ".."))
STACK_SH = os.path.join(SRC, "tests", "stack.sh")
FAKE_WEBHOOK = os.path.join(SRC, "tests", "fakes", "fake_webhook.py")
# The same answers from one asyncio loop (see that file for why).
FAKE_WEBHOOK_ASYNC = os.path.join(HERE, "fake_webhook_async.py")
DEFAULT_STACK_DIR = "/tmp/ns-bench-stack"
TERMINAL = ("succeeded", "failed", "skipped", "cancelled")
CLK_TCK = os.sysconf("SC_CLK_TCK")
PG_SAMPLE = (
    "SELECT regexp_replace(left(query, 200), '\\s+', ' ', 'g'), "
    "coalesce(wait_event_type || ':' || wait_event, 'CPU') "
    "FROM pg_stat_activity WHERE datname = current_database() "
    "AND state = 'active' AND backend_type = 'client backend' "
    "AND pid <> pg_backend_pid()")

try:
    import psycopg2
except ImportError:
    sys.exit("bench/throughput.py: needs python3-psycopg2 (apt-get install "
             "python3-psycopg2) and /usr/bin/python3")


def log(msg):
    print("# " + msg, file=sys.stderr, flush=True)


class BenchError(Exception):
    pass


# ---------------------------------------------------------------- /proc


def proc_cpu_s(pid):
    """utime + stime of a live process, in seconds (None if gone)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except (OSError, IndexError, ValueError):
        return None


def tree_cpu_s(root):
    """CPU of root, its reaped children (cutime/cstime) and its live
    children: a stable total for a postmaster whose backends come and go."""
    try:
        with open("/proc/%d/stat" % root) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total = sum(int(fields[i]) for i in (11, 12, 13, 14)) / CLK_TCK
    except (OSError, IndexError, ValueError):
        return None
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if int(fields[1]) == root:
                total += (int(fields[11]) + int(fields[12])) / CLK_TCK
        except (OSError, IndexError, ValueError):
            pass
    return total


def machine_cpu():
    """(busy, total) jiffies of the whole machine from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + (v[4] if len(v) > 4 else 0)
    total = sum(v[:8])
    return (total - idle) / CLK_TCK, total / CLK_TCK


def read_pid(path):
    try:
        with open(path) as f:
            return int(f.readline().strip())
    except (OSError, ValueError):
        return None


# ---------------------------------------------------------------- processes


class Child:
    """A process we started; reaped by a thread with os.wait4 so the exit
    time and the CPU it used (rusage) are known exactly."""

    def __init__(self, argv, env, log_path):
        self.log_path = log_path
        self.log = open(log_path, "ab")
        self.proc = subprocess.Popen(argv, env=env, stdout=self.log,
                                     stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        self.pid = self.proc.pid
        self.t_exit = None
        self.rc = None
        self.cpu_s = None
        self._done = threading.Event()
        threading.Thread(target=self._reap, daemon=True).start()

    def _reap(self):
        _, status, ru = os.wait4(self.pid, 0)
        self.t_exit = time.monotonic()
        self.cpu_s = ru.ru_utime + ru.ru_stime
        self.rc = os.waitstatus_to_exitcode(status)
        self.proc.returncode = self.rc  # so Popen never waits on it again
        self._done.set()

    def alive(self):
        return not self._done.is_set()

    def wait(self, timeout=None):
        return self._done.wait(timeout)

    def signal(self, sig):
        if self.alive():
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass

    def stop(self, timeout=45):
        self.signal(signal.SIGTERM)
        if not self.wait(timeout):
            self.signal(signal.SIGKILL)
            self.wait(10)
            return False
        return True

    def tail(self, n=30):
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""


class Bench:
    def __init__(self, args):
        self.args = args
        self.children = []
        self.tmp = tempfile.mkdtemp(prefix="ns-bench-")
        self.stack_dir = None
        self.started_stack = False
        self.env = None
        self.fakes = {}  # variant -> (Child, port, measured latency ms)
        self.dbs = []

    # ------------------------------------------------------------ set-up

    def snapshot_binary(self):
        """Copies the binary so a rebuild during the run cannot mix
        versions; returns its description."""
        src = os.path.abspath(self.args.bin)
        if not os.access(src, os.X_OK):
            raise BenchError("no executable nightshift at %s (build it: cmake "
                             "-S . -B build && cmake --build build -j)" % src)
        self.bin = os.path.join(self.tmp, "nightshift")
        shutil.copy2(src, self.bin)
        with open(self.bin, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        version = subprocess.run([self.bin, "version"], capture_output=True,
                                 text=True).stdout.strip()
        mtime = datetime.datetime.fromtimestamp(
            os.stat(src).st_mtime, datetime.timezone.utc)
        git = None
        try:
            head = subprocess.run(["git", "-C", SRC, "rev-parse", "--short",
                                   "HEAD"], capture_output=True, text=True,
                                  timeout=10).stdout.strip()
            dirty = subprocess.run(["git", "-C", SRC, "status", "--porcelain",
                                    "--untracked-files=no"],
                                   capture_output=True, text=True,
                                   timeout=10).stdout.split("\n")
            dirty = sorted({l[3:].strip() for l in dirty if l.strip()})
            git = {"head": head, "modified": dirty}
        except (OSError, subprocess.SubprocessError):
            pass
        return {"path": src, "version": version, "sha256": digest[:16],
                "built": mtime.strftime("%Y-%m-%dT%H:%M:%SZ"), "git": git}

    def stack_up(self):
        if self.args.keep_stack:
            missing = [v for v in ("NS_PG_DSN", "NS_KAFKA_BROKERS")
                       if not os.environ.get(v)]
            if missing:
                raise BenchError("--keep-stack: %s not set (eval \"$(tests/"
                                 "stack.sh env)\")" % ", ".join(missing))
            self.env = dict(os.environ)
            self.stack_dir = os.environ.get("NS_STACK_DIR")
            return
        self.stack_dir = self.args.stack_dir
        senv = dict(os.environ, NS_STACK_DIR=self.stack_dir)
        log("starting the stack in %s (tests/stack.sh up)" % self.stack_dir)
        self.started_stack = True
        r = subprocess.run(["bash", STACK_SH, "up"], env=senv,
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise BenchError("tests/stack.sh up failed:\n" + r.stdout +
                             r.stderr[-3000:])
        r = subprocess.run(["bash", STACK_SH, "env"], env=senv,
                           capture_output=True, text=True, check=True)
        self.env = dict(os.environ)
        for line in r.stdout.splitlines():
            words = shlex.split(line)
            if len(words) == 2 and words[0] == "export" and "=" in words[1]:
                k, v = words[1].split("=", 1)
                self.env[k] = v

    def stack_down(self):
        if not self.started_stack:
            return
        log("tearing the stack down (tests/stack.sh down)")
        subprocess.run(["bash", STACK_SH, "down"],
                       env=dict(os.environ, NS_STACK_DIR=self.stack_dir),
                       capture_output=True, text=True)

    def stack_versions(self):
        v = {"postgresql": None, "kafka": None}
        conn = psycopg2.connect(self.env["NS_PG_DSN"])
        try:
            cur = conn.cursor()
            cur.execute("SHOW server_version")
            v["postgresql"] = cur.fetchone()[0].split()[0]
        finally:
            conn.close()
        if self.stack_dir:
            try:
                with open(os.path.join(self.stack_dir, "stack.env")) as f:
                    m = re.search(r"^NS_STACK_KAFKA_VERSION=(\S+)", f.read(),
                                  re.M)
                    v["kafka"] = m.group(1) if m else None
            except OSError:
                pass
        r = subprocess.run(["dpkg-query", "-W", "-f", "${Version}",
                            "librdkafka1"], capture_output=True, text=True)
        v["librdkafka"] = r.stdout.strip() or None
        v["python"] = platform.python_version()
        return v

    def component_pids(self):
        """Postmaster and Kafka JVM of the stack, when we know where it is."""
        if not self.stack_dir:
            return None, None
        return (read_pid(os.path.join(self.stack_dir, "pg", "data",
                                      "postmaster.pid")),
                read_pid(os.path.join(self.stack_dir, "kafka", "kafka.pid")))

    # ------------------------------------------------------------ helpers

    def admin(self):
        conn = psycopg2.connect(self.env["NS_PG_DSN"])
        conn.autocommit = True
        return conn

    def nightshift(self, env, *argv, timeout=120):
        r = subprocess.run([self.bin] + list(argv), env=env,
                           capture_output=True, text=True, timeout=timeout)
        if r.returncode != 0:
            raise BenchError("nightshift %s exited %d: %s" % (
                " ".join(argv), r.returncode, (r.stderr or r.stdout)[-2000:]))
        return r.stdout

    def start(self, argv, env, name):
        c = Child(argv, env, os.path.join(self.tmp, name + ".log"))
        self.children.append(c)
        return c

    def cleanup(self):
        for c in self.children:
            c.signal(signal.SIGTERM)
        for c in self.children:
            if not c.wait(30):
                c.signal(signal.SIGKILL)
                c.wait(5)
        if self.dbs and not self.started_stack:
            try:
                conn = self.admin()
                for db in self.dbs:
                    conn.cursor().execute(
                        'DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % db)
                conn.close()
            except psycopg2.Error:
                pass
        self.stack_down()
        if self.args.keep_logs:
            log("logs kept in " + self.tmp)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    # ------------------------------------------------------------ the fake

    def start_fake(self, variant):
        """Starts fake_webhook.py (variant "as-is") or
        bench/fake_webhook_async.py ("async") and measures its real per-request latency on a
        keep-alive connection."""
        if not os.path.exists(FAKE_WEBHOOK):
            raise BenchError("%s does not exist" % FAKE_WEBHOOK)
        script = FAKE_WEBHOOK if variant == "as-is" else FAKE_WEBHOOK_ASYNC
        port_file = os.path.join(self.tmp, "webhook-%s.port" % variant)
        fake = self.start(
            [sys.executable, script, "--port", "0", "--port-file",
             port_file, "--latency-ms", str(self.args.latency_ms)],
            dict(os.environ), "fake_webhook-" + variant)
        deadline = time.monotonic() + 20
        while not os.path.exists(port_file):
            if not fake.alive() or time.monotonic() > deadline:
                raise BenchError("%s did not start:\n%s"
                                 % (os.path.basename(script), fake.tail()))
            time.sleep(0.05)
        with open(port_file) as f:
            port = int(f.read().strip())
        self.fakes[variant] = (fake, port, None)
        self.fake_control(variant, "health")
        # 1 + 20 POSTs on one connection, like a worker thread's curl handle.
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        times = []
        for i in range(21):
            t = time.monotonic()
            conn.request("POST", "/calibrate", body=b'{"calibrate": %d}' % i,
                         headers={"Content-Type": "application/json"})
            conn.getresponse().read()
            times.append((time.monotonic() - t) * 1000.0)
        conn.close()
        latency = statistics.median(times[1:])
        self.fakes[variant] = (fake, port, round(latency, 1))
        self.fake_control(variant, "reset", {})
        return latency

    def fake_control(self, variant, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            "http://127.0.0.1:%d/_control/%s" % (self.fakes[variant][1], path),
            data=data, method="GET" if body is None else "POST",
            headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as resp:
            return json.loads(resp.read() or b"null")

    # ------------------------------------------------------------ one run

    def config(self, path, job, group, n, handler, mif, params=None):
        lines = [
            "version: 1",
            "kafka:",
            "  group.id: \"%s\"" % group,
            "worker: {max_in_flight: %d, pg_pool_size: %d, metrics_port: 0}"
            % (mif, self.args.pg_pool_size),
            "producer: {metrics_port: 0}",
            "jobs:",
            "  - name: %s" % job,
            "    source: {type: sql, query: \"SELECT g AS id FROM "
            "generate_series(1, %d) g\", key: id}" % n,
            "    handler: %s" % handler,
            "    max_parallelism: %d" % self.args.partitions,
            "    retry: {max_attempts: 3, backoff_seconds: 1, "
            "backoff_max_seconds: 5}",
        ]
        if params:
            lines.append("    params: %s" % json.dumps(params))
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")

    def wait_assigned(self, workers, timeout=90):
        """Until the workers own every partition between them (each at least
        one) and nothing has moved for 1.5 s. Returns their metrics ports."""
        want = self.args.partitions
        deadline = time.monotonic() + timeout
        stable_since, last = None, None
        while time.monotonic() < deadline:
            owned, ports = [], []
            for w in workers:
                if not w.alive():
                    raise BenchError("worker exited %s:\n%s" % (w.rc,
                                                                 w.tail()))
                n, port = 0, None
                try:
                    with open(w.log_path, errors="replace") as f:
                        for line in f:
                            try:
                                msg = json.loads(line).get("msg", "")
                            except ValueError:
                                continue
                            m = re.match(r"(assigned|revoking|lost) (\d+) "
                                         r"partition", msg)
                            if m:
                                n += int(m.group(2)) * (
                                    1 if m.group(1) == "assigned" else -1)
                            m = re.match(r"metrics on port (\d+)", msg)
                            if m:
                                port = int(m.group(1))
                except OSError:
                    pass
                owned.append(n)
                ports.append(port)
            state = tuple(owned)
            ok = sum(owned) == want and min(owned) > 0
            if state != last:
                stable_since, last = time.monotonic(), state
            if ok and time.monotonic() - stable_since >= 1.5:
                return ports
            time.sleep(0.1)
        raise BenchError("workers did not get all %d partitions within %d s "
                         "(own %r)\n%s" % (want, timeout, last,
                                           workers[0].tail()))

    def scrape(self, ports, job):
        """Sums nightshift_item_duration_seconds over the workers."""
        buckets, total, count = {}, 0.0, 0
        lab = 'job="%s"' % job
        for port in ports:
            if port is None:
                continue
            try:
                with urllib.request.urlopen(
                        "http://127.0.0.1:%d/metrics" % port,
                        timeout=10) as resp:
                    text = resp.read().decode()
            except OSError:
                continue
            for line in text.splitlines():
                if not line.startswith("nightshift_item_duration_seconds") \
                        or lab not in line:
                    continue
                name, value = line.rsplit(" ", 1)
                if name.startswith("nightshift_item_duration_seconds_bucket"):
                    le = re.search(r'le="([^"]+)"', name).group(1)
                    le = float("inf") if le == "+Inf" else float(le)
                    buckets[le] = buckets.get(le, 0) + float(value)
                elif name.startswith("nightshift_item_duration_seconds_sum"):
                    total += float(value)
                elif name.startswith("nightshift_item_duration_seconds_count"):
                    count += int(float(value))
        if count == 0:
            return None

        def quantile(q):
            for le in sorted(buckets):  # cumulative buckets
                if buckets[le] >= q * count:
                    return le
            return None
        return {"count": count, "mean_s": total / count,
                "p50_le_s": quantile(0.5), "p99_le_s": quantile(0.99)}

    def measure(self, kind, workers_n, mif, n, rep, variant=None):
        tag = "%s-w%d-m%d-r%d-%s" % (kind, workers_n, mif, rep,
                                     uuid.uuid4().hex[:6])
        db = "bench_" + tag.replace("-", "_")
        job = "bench-" + tag
        conn = self.admin()
        conn.cursor().execute('CREATE DATABASE "%s"' % db)
        conn.close()
        self.dbs.append(db)
        cfg = os.path.join(self.tmp, tag + ".yaml")
        if kind == "noop":
            self.config(cfg, job, "bench-" + tag, n, "noop", mif)
        else:
            self.config(cfg, job, "bench-" + tag, n, "webhook.post", mif,
                        {"url": "http://127.0.0.1:%d/hook"
                         % self.fakes[variant][1],
                         "timeout_seconds": 30})
        env = dict(self.env, NS_CONFIG=cfg,
                   NS_PG_DSN=self.env["NS_PG_DSN"] + " dbname=" + db,
                   NS_LOG_LEVEL="info")
        self.nightshift(env, "config", "check", cfg)
        self.nightshift(env, "migrate")
        if kind == "webhook":
            self.fake_control(variant, "reset", {})
        workers = [self.start([self.bin, "worker"], env,
                              "%s.worker%d" % (tag, i + 1))
                   for i in range(workers_n)]
        ports = self.wait_assigned(workers)

        pg_pid, kafka_pid = self.component_pids()
        probes = {"worker": lambda: sum(proc_cpu_s(w.pid) or 0
                                        for w in workers)}
        if pg_pid:
            probes["postgres"] = lambda: tree_cpu_s(pg_pid)
        if kafka_pid:
            probes["kafka"] = lambda: proc_cpu_s(kafka_pid)
        if kind == "webhook":
            probes["fake"] = lambda: proc_cpu_s(self.fakes[variant][0].pid)
        cpu0 = {k: f() for k, f in probes.items()}
        m0 = machine_cpu()

        pg = psycopg2.connect(env["NS_PG_DSN"])
        pg.autocommit = True
        cur = pg.cursor()
        timeout = max(120.0, n / 100.0)
        t0_wall = time.time()
        t0 = time.monotonic()
        cli = self.start([self.bin, "run", job], env, tag + ".run")
        status, t_end = None, None
        samples, active = 0, {}
        while True:
            cur.execute("SELECT status FROM runs WHERE job = %s", (job,))
            row = cur.fetchone()
            status = row[0] if row else None
            if status in TERMINAL:
                t_end = time.monotonic()
                break
            # What the database is doing: one pg_stat_activity sample per
            # poll (average active backends per statement and wait event).
            cur.execute(PG_SAMPLE)
            samples += 1
            for q, wait in cur.fetchall():
                active[(q, wait)] = active.get((q, wait), 0) + 1
            if not cli.alive() and cli.rc != 0:
                raise BenchError("nightshift run exited %d:\n%s"
                                 % (cli.rc, cli.tail()))
            if time.monotonic() - t0 > timeout:
                raise BenchError("run of %s still %s after %.0f s" %
                                 (job, status, timeout))
            time.sleep(0.05)
        m1 = machine_cpu()
        cpu1 = {k: f() for k, f in probes.items()}
        cli.wait(30)
        hist = self.scrape(ports, job)

        cur.execute(
            "SELECT run_id, extract(epoch FROM created_at), "
            "extract(epoch FROM started_at), extract(epoch FROM emitted_at), "
            "extract(epoch FROM finished_at), items_total, items_done, "
            "items_failed FROM runs WHERE job = %s", (job,))
        run_id, created, started, emitted, finished, total, done, failed = \
            cur.fetchone()
        cur.execute(
            "SELECT count(*) FILTER (WHERE attempts > 1), "
            "extract(epoch FROM min(started_at)), "
            "extract(epoch FROM max(finished_at)) FROM items "
            "WHERE run_id = %s", (run_id,))
        retried, first_start, last_finish = cur.fetchone()
        pg.close()
        created, emitted, finished = (
            float(x) if x is not None else None
            for x in (created, emitted, finished))
        first_start = float(first_start) if first_start is not None else None
        last_finish = float(last_finish) if last_finish is not None else None

        delivered = None
        if kind == "webhook":
            reqs = self.fake_control(variant, "requests")
            delivered = len({(r.get("headers") or {}).get("idempotency-key")
                             for r in reqs if r.get("status") == 200})
            posts = len(reqs)
        clean = all(w.stop() for w in workers)
        conn = self.admin()
        conn.cursor().execute('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % db)
        conn.close()
        self.dbs.remove(db)

        seconds = t_end - t0
        cpu = {k: (cpu1[k] - cpu0[k]) if cpu1[k] is not None and
               cpu0[k] is not None else None for k in probes}
        cpu["cli"] = cli.cpu_s
        busy, total_j = m1[0] - m0[0], m1[1] - m0[1]
        known = sum(v for v in cpu.values() if v)
        res = {
            "kind": kind, "workers": workers_n, "max_in_flight": mif,
            "rep": rep, "items": n, "status": status,
            "items_total": total, "items_done": done, "items_failed": failed,
            "items_retried": retried,
            "seconds": round(seconds, 3),
            "items_per_s": round(n / seconds, 1),
            "cli_exit_s": round(cli.t_exit - t0, 3) if cli.t_exit else None,
            "startup_s": round(created - t0_wall, 3),
            "emission_s": round(emitted - created, 3),
            "processing_s": round(finished - emitted, 3),
            "first_item_start_s": round(first_start - t0_wall, 3)
            if first_start else None,
            "last_item_finish_s": round(last_finish - t0_wall, 3)
            if last_finish else None,
            "finished_s": round(finished - t0_wall, 3),
            "items_per_s_to_last_item": round(n / (last_finish - t0_wall), 1)
            if last_finish and last_finish > t0_wall else None,
            "item_duration": hist,
            "cpu_s": {k: round(v, 2) if v is not None else None
                      for k, v in cpu.items()},
            "cpu_other_s": round(max(0.0, busy - known), 2),
            "machine_busy": round(busy / total_j, 3) if total_j else None,
            "machine_cpu_s": round(busy, 2),
            "workers_stopped_cleanly": clean,
            "pg_samples": samples,
            "pg_active": [
                {"statement": q, "wait": w,
                 "avg_backends": round(c / samples, 2)}
                for (q, w), c in sorted(active.items(),
                                        key=lambda kv: -kv[1])[:5]
            ] if samples else [],
        }
        if kind == "webhook":
            ideal = mif / (self.args.latency_ms / 1000.0)
            measured = self.fakes[variant][2]
            res["fake"] = variant
            res["latency_ms"] = self.args.latency_ms
            res["fake_latency_ms_measured"] = measured
            res["ideal_items_per_s"] = ideal
            res["ratio"] = round(n / seconds / ideal, 3)
            res["ideal_items_per_s_measured_latency"] = round(
                mif / (measured / 1000.0), 1)
            res["ratio_measured_latency"] = round(
                n / seconds / res["ideal_items_per_s_measured_latency"], 3)
            res["webhook_posts"] = posts
            res["webhook_delivered_keys"] = delivered
        if status != "succeeded" or done != n:
            res["problem"] = "run %s with %s/%s items done" % (status, done, n)
        return res


# ---------------------------------------------------------------- output


def fmt(v, spec):
    return "-" if v is None else format(v, spec)


def label(r):
    if r["kind"] == "noop":
        return "noop, %d worker%s, max_in_flight %d" % (
            r["workers"], "" if r["workers"] == 1 else "s", r["max_in_flight"])
    return "webhook %dms%s, 1 worker, max_in_flight %d" % (
        r.get("latency_ms", 50),
        " async fake" if r.get("fake") == "async" else "", r["max_in_flight"])


COMPONENTS = ("cli", "worker", "postgres", "kafka")


def cost_table(results, p):
    """The noop runs by worker count: items/s and CPU-microseconds per item
    for each component (the CLI records and produces the items: the
    producer's share), medians over the repetitions, for sizing."""
    noop = [r for r in results if r["kind"] == "noop"]
    if not noop:
        return []
    p()
    p("Scaling and cost per item (noop; medians of the repetitions; CPU-us "
      "per item, cli = recording + producing the items):")
    hdr = ("%-8s %8s %10s %8s %8s %9s %8s %8s %9s"
           % ("workers", "items", "items/s", "cli", "worker", "postgres",
              "kafka", "other", "total"))
    p(hdr)
    p("-" * len(hdr))
    rows = []
    for w in sorted({r["workers"] for r in noop}):
        rs = [r for r in noop if r["workers"] == w]
        per = {}
        for k in COMPONENTS + ("other",):
            vals = [(r["cpu_other_s"] if k == "other" else r["cpu_s"].get(k))
                    for r in rs]
            vals = [1e6 * v / r["items"] for v, r in zip(vals, rs)
                    if v is not None]
            per[k] = round(statistics.median(vals), 1) if vals else None
        total = sum(v for v in per.values() if v is not None)
        row = {"workers": w, "items": rs[0]["items"],
               "items_per_s": round(statistics.median(
                   r["items_per_s"] for r in rs), 1),
               "cpu_us_per_item": per, "cpu_us_per_item_total": round(total, 1)}
        rows.append(row)
        p("%-8d %8d %10.0f %8s %8s %9s %8s %8s %9.1f"
          % (w, row["items"], row["items_per_s"],
             *(fmt(per[k], ".1f") for k in COMPONENTS + ("other",)), total))
    return rows


def print_report(meta, results, out=sys.stdout):
    p = lambda s="": print(s, file=out)  # noqa: E731
    m, v, b = meta["machine"], meta["versions"], meta["binary"]
    p("nightshift throughput benchmark, %s" % meta["date"])
    p("command:  %s" % meta["command"])
    p("machine:  %d CPUs (nproc), %.1f GiB RAM, %s; load average at start %s"
      % (m["nproc"], m["mem_gib"], m["cpu_model"], m["loadavg_start"]))
    git = b.get("git") or {}
    p("versions: %s (binary %s, sha256 %s…, built %s, git %s%s); Kafka %s "
      "(KRaft, 1 node); PostgreSQL %s; librdkafka %s"
      % (b["version"], os.path.relpath(b["path"], SRC), b["sha256"],
         b["built"], git.get("head", "?"),
         " + uncommitted changes in " + ", ".join(git["modified"])
         if git.get("modified") else "", v["kafka"], v["postgresql"],
         v["librdkafka"]))
    s = meta["settings"]
    p("settings: %d partitions per job topic, pg_pool_size %d, webhook "
      "latency %d ms, %d repetition(s) per configuration; stack %s"
      % (s["partitions"], s["pg_pool_size"], s["latency_ms"], s["repeat"],
         s["stack"]))
    if meta.get("fake_latency_ms_measured"):
        p("fake webhook: --latency-ms %d; measured per POST on a keep-alive "
          "connection: %s" % (s["latency_ms"], ", ".join(
              "%s %.1f ms" % kv
              for kv in meta["fake_latency_ms_measured"].items())))
    p()
    p("Every run (seconds = `nightshift run` start -> run `succeeded`, "
      "polled every 50 ms;")
    p("emit = run row created -> emitted_at; process = emitted_at -> "
      "finished_at;")
    p("to last i/s = items / (`nightshift run` start -> last item's "
      "finished_at), i.e. without the fan-in):")
    hdr = ("%-50s %3s %6s %8s %8s %8s %6s %7s %9s %10s"
           % ("configuration", "rep", "items", "seconds", "items/s",
              "ideal/s", "ratio", "emit s", "process s", "to last i/s"))
    p(hdr)
    p("-" * len(hdr))
    for r in results:
        p("%-50s %3d %6d %8.2f %8.0f %8s %6s %7s %9s %10s%s"
          % (label(r), r["rep"], r["items"], r["seconds"], r["items_per_s"],
             fmt(r.get("ideal_items_per_s"), ".0f"), fmt(r.get("ratio"),
                                                         ".2f"),
             fmt(r["emission_s"], ".2f"), fmt(r["processing_s"], ".2f"),
             fmt(r.get("items_per_s_to_last_item"), ".0f"),
             "  !! " + r["problem"] if r.get("problem") else ""))
    p()
    p("Summary per configuration (best and median of the repetitions):")
    p("(ratio = items/s / ideal, best and median; the last two columns use "
      "the fake's measured latency instead of the nominal one)")
    hdr = ("%-50s %6s %7s %8s %10s %7s %6s %6s %8s %6s"
           % ("configuration", "items", "best s", "best i/s", "median i/s",
              "ideal/s", "ratio", "median", "ideal'/s", "ratio'"))
    p(hdr)
    p("-" * len(hdr))
    seen = []
    for r in results:
        if label(r) not in seen:
            seen.append(label(r))
    summary = []
    for name in seen:
        rs = [r for r in results if label(r) == name]
        best = max(rs, key=lambda r: r["items_per_s"])
        med = statistics.median(r["items_per_s"] for r in rs)
        ideal = best.get("ideal_items_per_s")
        ideal_m = best.get("ideal_items_per_s_measured_latency")
        summary.append({"configuration": name, "items": best["items"],
                        "best_seconds": best["seconds"],
                        "best_items_per_s": best["items_per_s"],
                        "median_items_per_s": round(med, 1),
                        "ideal_items_per_s": ideal,
                        "best_ratio": best.get("ratio"),
                        "median_ratio": round(med / ideal, 3) if ideal
                        else None,
                        "ideal_items_per_s_measured_latency": ideal_m,
                        "best_ratio_measured_latency":
                        best.get("ratio_measured_latency")})
        p("%-50s %6d %7.2f %8.0f %10.0f %7s %6s %6s %8s %6s"
          % (name, best["items"], best["seconds"], best["items_per_s"], med,
             fmt(ideal, ".0f"), fmt(best.get("ratio"), ".2f"),
             fmt(med / ideal if ideal else None, ".2f"), fmt(ideal_m, ".0f"),
             fmt(best.get("ratio_measured_latency"), ".2f")))
    scaling = cost_table(results, p)
    if scaling:
        summary.append({"cost_per_item": scaling})
    p()
    p("Where the time went (seconds from `nightshift run` start; item = "
      "nightshift_item_duration_seconds;")
    p("CPU = CPU-seconds used during the run by each component, busy = "
      "machine CPU busy over the run):")
    for r in results:
        h = r.get("item_duration") or {}
        cpu = r["cpu_s"]
        p("  %s #%d: run row created %.2f, items enumerated and produced "
          "(emitted_at) %.2f, CLI exited %s; first item started %s, last "
          "item done %s, run succeeded %.2f"
          % (label(r), r["rep"], r["startup_s"],
             r["startup_s"] + r["emission_s"], fmt(r["cli_exit_s"], ".2f"),
             fmt(r["first_item_start_s"], ".2f"),
             fmt(r["last_item_finish_s"], ".2f"), r["finished_s"]))
        if r["last_item_finish_s"] is not None and \
                r["finished_s"] - r["last_item_finish_s"] > 1.0:
            p("      !! the run was finalized %.1f s after its last item "
              "(fan-in waited; 30 s = the finalize grace, 2 s = the sweeper)"
              % (r["finished_s"] - r["last_item_finish_s"]))
        p("      item mean %s ms, p50 <= %s ms, p99 <= %s ms (%s observed); "
          "retried items %s%s"
          % (fmt(h.get("mean_s") and h["mean_s"] * 1000, ".1f"),
             fmt(h.get("p50_le_s") and h["p50_le_s"] * 1000, "g"),
             fmt(h.get("p99_le_s") and h["p99_le_s"] * 1000, "g"),
             h.get("count", 0), r["items_retried"],
             "; fake answered %d POSTs for %d distinct items"
             % (r["webhook_posts"], r["webhook_delivered_keys"])
             if r["kind"] == "webhook" else ""))
        top = [a for a in r.get("pg_active", []) if a["avg_backends"] >= 0.05]
        if top:
            p("      Postgres, average active backends: %s" % "; ".join(
                "%.2f %s [%s]" % (a["avg_backends"], a["statement"][:64],
                                  a["wait"]) for a in top[:3]))
        parts = ", ".join("%s %s" % (k, fmt(cpu.get(k), ".1f"))
                          for k in ("worker", "cli", "postgres", "kafka",
                                    "fake") if k in cpu)
        p("      CPU s: %s, other %.1f; machine busy %s of %d CPUs x %.1f s"
          % (parts, r["cpu_other_s"],
             fmt(r["machine_busy"] and r["machine_busy"] * 100, ".0f") + "%",
             meta["machine"]["nproc"], r["seconds"]))
    return summary


def machine_info():
    model = None
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        kib = int(re.search(r"MemTotal:\s+(\d+)", f.read()).group(1))
    with open("/proc/loadavg") as f:
        load = " ".join(f.read().split()[:3])
    return {"nproc": os.cpu_count() if not hasattr(os, "sched_getaffinity")
            else len(os.sched_getaffinity(0)), "mem_gib": kib / 1048576.0,
            "cpu_model": model, "kernel": platform.release(),
            "loadavg_start": load}


# ---------------------------------------------------------------- main


def parse_args(argv):
    p = argparse.ArgumentParser(
        description="nightshift throughput through the real stack "
        "(prints figures; not a test)")
    p.add_argument("--items", type=int, default=None,
                   help="items per noop run (default 50000; --quick: 2000)")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: small N, one repetition")
    p.add_argument("--bin", default=os.path.join(SRC, "build", "nightshift"),
                   help="nightshift binary (default build/nightshift; it is "
                   "copied first, so a rebuild during the run is harmless)")
    p.add_argument("--keep-stack", action="store_true",
                   help="use the running stack from NS_PG_DSN/NS_KAFKA_BROKERS "
                   "(and NS_STACK_DIR) instead of starting one")
    p.add_argument("--stack-dir", default=DEFAULT_STACK_DIR,
                   help="NS_STACK_DIR of the stack this script starts "
                   "(default %s)" % DEFAULT_STACK_DIR)
    p.add_argument("--max-in-flight", type=int, default=16,
                   help="worker max_in_flight of the noop runs (default 16)")
    p.add_argument("--webhook-max-in-flight", default="1,16,64,256",
                   help="max_in_flight values of the webhook runs "
                   "(default 1,16,64,256)")
    p.add_argument("--latency-ms", type=int, default=50,
                   help="fake webhook latency (default 50)")
    p.add_argument("--fake", choices=("as-is", "async", "both"),
                   default="both",
                   help="webhook runs against tests/fakes/fake_webhook.py, "
                   "against bench/fake_webhook_async.py (the same answers "
                   "from one asyncio loop), or both (default)")
    p.add_argument("--pg-pool-size", type=int, default=16,
                   help="worker pg_pool_size (default 16)")
    p.add_argument("--partitions", type=int, default=8,
                   help="max_parallelism = partitions of the job topic "
                   "(default 8)")
    p.add_argument("--repeat", type=int, default=None,
                   help="measurements per configuration (default 2; "
                   "--quick: 1)")
    p.add_argument("--workers", default="1,2",
                   help="worker processes of the noop runs, comma-separated "
                        "(default 1,2; the scaling table: 1,2,4)")
    p.add_argument("--only", choices=("noop", "webhook"),
                   help="run only one part")
    p.add_argument("--json", dest="json_path",
                   help="where to write the JSON (default bench/results/"
                   "throughput-<date>.json, -quick.json for --quick)")
    p.add_argument("--keep-logs", action="store_true",
                   help="keep the temp dir with configs and process logs")
    a = p.parse_args(argv)
    if a.items is None:
        a.items = 2000 if a.quick else 50000
    if a.repeat is None:
        a.repeat = 1 if a.quick else 2
    a.webhook_mifs = [int(x) for x in a.webhook_max_in_flight.split(",") if x]
    a.workers = [int(x) for x in a.workers.split(",") if x]
    if not a.workers or min(a.workers) < 1 or max(a.workers) > a.partitions:
        p.error("--workers: from 1 to --partitions (%d) each" % a.partitions)
    return a


def main(argv=None):
    args = parse_args(argv if argv is not None else sys.argv[1:])
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    bench = Bench(args)
    now = datetime.datetime.now(datetime.timezone.utc)
    meta = {"date": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "command": " ".join(shlex.quote(x) for x in
                                [os.path.relpath(sys.argv[0], SRC)
                                 if sys.argv[0].startswith(SRC) else
                                 sys.argv[0]] + sys.argv[1:]),
            "machine": machine_info()}
    results = []
    t_start = time.monotonic()
    try:
        meta["binary"] = bench.snapshot_binary()
        bench.stack_up()
        meta["versions"] = bench.stack_versions()
        meta["settings"] = {
            "partitions": args.partitions, "pg_pool_size": args.pg_pool_size,
            "latency_ms": args.latency_ms, "repeat": args.repeat,
            "noop_items": args.items, "noop_max_in_flight": args.max_in_flight,
            "noop_workers": args.workers,
            "webhook_max_in_flight": args.webhook_mifs,
            "stack": "reused (--keep-stack)" if args.keep_stack else
            "started by the benchmark in " + args.stack_dir}
        plan = []
        if args.only in (None, "noop"):
            plan += [("noop", w, args.max_in_flight, args.items)
                     for w in args.workers]
        if args.only in (None, "webhook"):
            variants = ["as-is", "async"] if args.fake == "both" \
                else [args.fake]
            meta["fake_latency_ms_measured"] = {}
            for variant in variants:
                lat = bench.start_fake(variant)
                meta["fake_latency_ms_measured"][variant] = round(lat, 1)
                log("fake webhook (%s): %.1f ms per POST on a keep-alive "
                    "connection (--latency-ms %d)"
                    % (variant, lat, args.latency_ms))
                for mif in args.webhook_mifs:
                    n = max(20, 4 * mif) if args.quick else max(200, 40 * mif)
                    plan.append(("webhook", 1, mif, n, variant))
        for rep in range(1, args.repeat + 1):
            for kind, w, mif, n, *variant in plan:
                log("%s%s: %d worker(s), max_in_flight %d, %d items, rep %d"
                    % (kind, " (%s)" % variant[0] if variant else "", w, mif,
                       n, rep))
                r = bench.measure(kind, w, mif, n, rep, *variant)
                log("  %.2f s, %.0f items/s%s" % (
                    r["seconds"], r["items_per_s"],
                    ", ratio %.2f" % r["ratio"] if "ratio" in r else ""))
                results.append(r)
    except BenchError as e:
        print("bench/throughput.py: %s" % e, file=sys.stderr)
        bench.cleanup()
        return 1
    except BaseException:
        bench.cleanup()
        raise
    bench.cleanup()
    meta["wall_seconds"] = round(time.monotonic() - t_start, 1)
    summary = print_report(meta, results)
    print()
    path = args.json_path or os.path.join(
        HERE, "results", "throughput-%s%s.json" % (
            now.strftime("%Y-%m-%d"), "-quick" if args.quick else ""))
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump({"meta": meta, "summary": summary, "runs": results}, f,
                  indent=2)
        f.write("\n")
    print("benchmark wall time %.0f s; figures written to %s"
          % (meta["wall_seconds"], os.path.relpath(path, SRC)
             if path.startswith(SRC) else path))
    return 0


if __name__ == "__main__":
    sys.exit(main())
