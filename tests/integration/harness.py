"""Shared helpers for the integration tests.

Every test file gets its own Postgres database, its own Kafka consumer group
and its own job names (so topics never collide), starts the nightshift
processes and the API fakes it needs, and waits on conditions, never on
fixed sleeps. The real stack comes from tests/stack.sh (NS_PG_DSN,
NS_REDIS_URL, NS_KAFKA_BROKERS); without it the test exits 77 (skipped).
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request
import uuid

SKIP = 77
HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("NS_SRC", os.path.abspath(os.path.join(HERE, "..", "..")))
BIN = os.environ.get("NS_BIN", os.path.join(SRC, "build", "nightshift"))


STACK_SH = os.path.join(SRC, "tests", "stack.sh")


def stack_matches(var="NS_PG_DSN"):
    """True when tests/stack.sh's NS_STACK_DIR is the stack these tests
    talk to (compared on var), so a test may stop and start its services."""
    if not os.environ.get("NS_STACK_DIR") or not os.environ.get(var):
        return False
    res = subprocess.run(["bash", STACK_SH, "env"], capture_output=True,
                         text=True, timeout=60)
    m = re.search(r"%s='([^']*)'" % var, res.stdout)
    return (res.returncode == 0 and m is not None and
            m.group(1) == os.environ[var])


def require_stack():
    missing = [v for v in ("NS_PG_DSN", "NS_KAFKA_BROKERS")
               if not os.environ.get(v)]
    if missing:
        print("skipped: the real stack is not running (missing %s); "
              "use scripts/test.sh" % ", ".join(missing))
        sys.exit(SKIP)
    try:
        import psycopg2  # noqa: F401
    except ImportError:
        print("skipped: python3-psycopg2 is not installed")
        sys.exit(SKIP)


def wait_for(fn, timeout=60.0, what="condition", interval=0.1):
    """Polls fn() until it returns a truthy value; fails after timeout."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError("timed out after %.0f s waiting for %s (last: %r)"
                         % (timeout, what, last))


def iso(t):
    """Epoch seconds as RFC 3339 UTC with milliseconds."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + \
        ".%03dZ" % int(round((t % 1) * 1000) % 1000)


def set_clock(path, t):
    """Moves an injectable clock (NS_TEST_CLOCK_FILE) to epoch seconds t,
    atomically."""
    with open(path + ".tmp", "w") as f:
        f.write("%.3f\n" % t)
    os.replace(path + ".tmp", path)


def produce_timed(topic, rows):
    """Lays down (key, epoch seconds, value) messages on topic with those
    Kafka timestamps (tests/tools/produce.c), for past log windows."""
    data = "".join("%s\t%d\t%s\n" % (k, int(t * 1000), v)
                   for k, t, v in rows).encode()
    subprocess.run([os.environ["NS_TEST_PRODUCE"],
                    os.environ["NS_KAFKA_BROKERS"], topic],
                   input=data, check=True, timeout=120)


class Fake:
    """A running API fake from tests/fakes/."""

    def __init__(self, env, script, *args):
        self.port_file = os.path.join(env.tmp, "%s.%s.port"
                                      % (script, uuid.uuid4().hex[:6]))
        log = open(os.path.join(env.tmp, script + ".log"), "ab")
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(SRC, "tests", "fakes", script),
             "--port", "0", "--port-file", self.port_file] + list(args),
            stdout=log, stderr=log)
        env.procs.append(self.proc)
        wait_for(lambda: os.path.exists(self.port_file), 20,
                 "%s to listen" % script)
        with open(self.port_file) as f:
            self.port = int(f.read().strip())
        self.url = "http://127.0.0.1:%d" % self.port

    def control(self, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            self.url + "/_control/" + path, data=data,
            method="GET" if body is None else "POST",
            headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read() or b"null")

    def reset(self):
        return self.control("reset", {})

    def requests(self):
        return self.control("requests")

    def delivered(self, method=None):
        """Successful API calls (what a user would actually have seen)."""
        return [r for r in self.requests()
                if r.get("fault") is None and r.get("status") == 200 and
                (method is None or r["path"].endswith("/" + method))]

    def faults(self, *faults):
        return self.control("faults", {"faults": list(faults)})


class Env:
    """One test file's world: database, group, temp dir, processes."""

    def __init__(self, name):
        import psycopg2
        self.name = name
        self.tag = "%s-%s" % (name, uuid.uuid4().hex[:6])
        self.tmp = tempfile.mkdtemp(prefix="ns-it-%s-" % name)
        self.procs = []
        base = os.environ["NS_PG_DSN"]
        self.db = "it_" + self.tag.replace("-", "_")
        admin = psycopg2.connect(base)
        admin.autocommit = True
        admin.cursor().execute('CREATE DATABASE "%s"' % self.db)
        admin.close()
        # In a libpq conninfo string the last setting of a keyword wins.
        self.dsn = base + " dbname=" + self.db
        self.env = dict(os.environ, NS_PG_DSN=self.dsn,
                        NS_LLM_API_KEY="sk-test-" + uuid.uuid4().hex[:8],
                        NS_TELEGRAM_BOT_TOKEN="123456:" + uuid.uuid4().hex,
                        NS_TELEGRAM_CHAT_ID="4242")
        self.env.pop("NS_TEST_CLOCK_FILE", None)
        self._pg = None
        self.nightshift("migrate")

    # -- database -------------------------------------------------------
    def pg(self):
        import psycopg2
        if self._pg is None or self._pg.closed:
            self._pg = psycopg2.connect(self.dsn)
            self._pg.autocommit = True
        return self._pg

    def sql(self, query, params=()):
        cur = self.pg().cursor()
        cur.execute(query, params)
        return cur.fetchall() if cur.description else []

    def scalar(self, query, params=()):
        rows = self.sql(query, params)
        return rows[0][0] if rows else None

    # -- processes --------------------------------------------------------
    def job(self, base):
        """A job name unique to this test file (its topic too)."""
        return "%s-%s" % (base, self.tag)

    # The outbox paces Telegram at its documented limits (1 message/s per
    # chat) by default; tests about other things turn that off so that
    # thousands of reports do not take an hour. test_delivery keeps it.
    PACING_OFF = ("  telegram: \"off\"\n  telegram.chat: \"off\"\n"
                  "  telegram.group: \"off\"\n")

    def config(self, body, name="jobs.yaml", llm=None, telegram=None,
               extra="", worker="max_in_flight: 8", pacing=False):
        head = ["version: 1",
                "kafka:",
                "  group.id: \"nightshift-%s\"" % self.tag,
                "worker: {metrics_port: 0, %s}" % worker,
                "producer: {metrics_port: 0, tick_ms: 100}"]
        if llm is not None:
            head += ["llm: {base_url: \"%s\", api_key: \"${NS_LLM_API_KEY}\","
                     " timeout_seconds: 5}" % llm.url]
        if telegram is not None:
            head += ["telegram: {api_url: \"%s\", bot_token: "
                     "\"${NS_TELEGRAM_BOT_TOKEN}\", timeout_seconds: 5}"
                     % telegram.url]
        if telegram is not None and not pacing:
            off = "".join(line + "\n" for line in
                          self.PACING_OFF.splitlines()
                          if line.split(":")[0].strip() + ":" not in extra)
            if "rate_limits:\n" in extra:
                extra = extra.replace("rate_limits:\n", "rate_limits:\n" + off,
                                      1)
            else:
                extra = "rate_limits:\n" + off + extra
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write("\n".join(head) + "\n" + extra + body)
        return path

    def start(self, *args, log=None, env=None):
        log = log or args[0]
        out = open(os.path.join(self.tmp, log + ".log"), "ab")
        proc = subprocess.Popen([BIN] + list(args), stdout=out, stderr=out,
                                env=env or self.env)
        proc.log_path = out.name
        self.procs.append(proc)
        return proc

    def nightshift(self, *args, check=True, timeout=180, env=None):
        res = subprocess.run([BIN] + list(args), capture_output=True,
                             text=True, timeout=timeout, env=env or self.env)
        if check and res.returncode != 0:
            raise AssertionError("nightshift %s exited %d\nstdout: %s\n"
                                 "stderr: %s" % (" ".join(args),
                                                 res.returncode, res.stdout,
                                                 res.stderr[-4000:]))
        return res

    def stop(self, proc, sig=signal.SIGTERM, timeout=60):
        if proc.poll() is None:
            proc.send_signal(sig)
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise AssertionError("process did not stop within %d s" % timeout)

    def wait_log(self, proc, text, timeout=60):
        """Waits for text in a process's log; fails early if it exits."""
        def seen():
            if text in self.log_tail(proc, 400):
                return True
            if proc.poll() is not None:
                raise AssertionError("process exited %d before logging %r:\n%s"
                                     % (proc.returncode, text,
                                        self.log_tail(proc)))
            return False
        return wait_for(seen, timeout, repr(text))

    def log_tail(self, proc, n=40):
        try:
            with open(proc.log_path, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except (AttributeError, OSError):
            return ""

    def close(self):
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
        if self._pg is not None:
            self._pg.close()
        if os.environ.get("NS_KEEP_TEST_DIRS"):
            print("kept", self.tmp)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)


def run(module_globals):
    """unittest.main with a closing line ctest and humans can read."""
    require_stack()
    suite = unittest.defaultTestLoader.loadTestsFromModule(
        sys.modules[module_globals["__name__"]])
    result = unittest.TextTestRunner(verbosity=2).run(suite)
    failed = len(result.failures) + len(result.errors)
    print("%d passed, %d failed" % (result.testsRun - failed, failed))
    sys.exit(1 if failed else 0)
