#!/usr/bin/python3
"""The nightly structuring against a rate-limited API (a benchmark: it
prints figures, it does not pass or fail on them).

--messages raw messages in --chats chats go to a fresh database; the fake
OpenAI-compatible API (tests/fakes/fake_llm.py) answers every request in
--latency-ms and answers 429 to anything over --api-limit requests in any
1-second window; nightshift's shared limit `structurer` is --limit (Redis
token bucket, burst 1, shared by --workers worker processes). Printed:
messages/s from `nightshift run` to succeeded, the API's own count of
requests and 429s, the peak of requests in flight at once, and the same
from the first item started to the last one finished.

Usage (from the repository root; NS_PG_DSN, NS_KAFKA_BROKERS, NS_REDIS_URL
from `tests/stack.sh env`):
  bench/structuring.py [--messages 1500] [--chats 60] [--workers 2]
                       [--latency-ms 200] [--api-limit 50] [--limit 50/s]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid

try:
    import psycopg2
except ImportError:
    sys.exit("bench/structuring.py: needs python3-psycopg2 and "
             "/usr/bin/python3")

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.abspath(os.path.join(HERE, ".."))
TEXTS = ["Team meeting on Monday at ten", "todo: renew the passport",
         "Where did we park the car?", "[file] the signed contract",
         "Just a thought about the garden", "Встреча с юристом в среду",
         "Lunch with Ana, urgent task: book the table"]


def log(msg):
    print("# " + msg, file=sys.stderr, flush=True)


def wait_for(fn, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if fn():
            return
        time.sleep(0.1)
    sys.exit("timed out waiting for " + what)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--messages", type=int, default=1500)
    p.add_argument("--chats", type=int, default=60)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--latency-ms", type=int, default=200)
    p.add_argument("--api-limit", type=int, default=50)
    p.add_argument("--limit", default="50/s")
    p.add_argument("--in-flight", type=int, default=16)
    p.add_argument("--bin", default=os.path.join(SRC, "build", "nightshift"))
    p.add_argument("--quick", action="store_true",
                   help="60 messages, no latency; exit 1 unless every one "
                   "was structured (never a time)")
    a = p.parse_args(argv)
    if a.quick:
        a.messages, a.chats, a.latency_ms = 60, 6, 0
    for v in ("NS_PG_DSN", "NS_KAFKA_BROKERS", "NS_REDIS_URL"):
        if not os.environ.get(v):
            print("bench/structuring.py: %s is not set (eval \"$(bash "
                  "tests/stack.sh env)\")" % v, file=sys.stderr)
            return 77 if a.quick else 2
    tag = uuid.uuid4().hex[:6]
    db = "bench_structuring_" + tag
    admin = psycopg2.connect(os.environ["NS_PG_DSN"])
    admin.autocommit = True
    admin.cursor().execute('CREATE DATABASE "%s"' % db)
    tmp = tempfile.mkdtemp(prefix="ns-bench-st-")
    env = dict(os.environ, NS_PG_DSN=os.environ["NS_PG_DSN"] + " dbname=" + db,
               NS_LOG_LEVEL="info", NS_LLM_API_KEY="sk-bench")
    procs = []
    try:
        port_file = os.path.join(tmp, "llm.port")
        lf = open(os.path.join(tmp, "llm.log"), "wb")
        procs.append(subprocess.Popen(
            ["/usr/bin/python3", os.path.join(SRC, "tests", "fakes",
                                              "fake_llm.py"),
             "--port", "0", "--port-file", port_file,
             "--latency-ms", str(a.latency_ms),
             "--rate-limit", str(a.api_limit)], stdout=lf, stderr=lf))
        wait_for(lambda: os.path.exists(port_file), 30, "the fake API")
        url = "http://127.0.0.1:%s" % open(port_file).read().strip()
        cfg = os.path.join(tmp, "jobs.yaml")
        job = "structuring-" + tag
        select = ("SELECT id, chat_id, user_id, message_text, message_type, "
                  "reply_to_text, is_clarification, file_id FROM "
                  "raw_messages WHERE NOT is_processed ORDER BY id")
        with open(cfg, "w") as f:
            f.write("version: 1\nkafka:\n  group.id: \"bench-%s\"\n"
                    "worker: {metrics_port: 0, max_in_flight: %d}\n"
                    "rate_limits:\n  structurer: \"%s burst 1\"\n"
                    "llm: {base_url: \"%s\", api_key: \"${NS_LLM_API_KEY}\","
                    " timeout_seconds: 30}\n"
                    "jobs:\n  - name: %s\n    source: {type: sql, query: "
                    "\"%s\", key: id, order_key: chat_id}\n"
                    "    handler: structure.message\n"
                    "    max_parallelism: 8\n"
                    "    max_in_flight: %d\n"
                    "    params: {structurer: llm, rate_limit: structurer}\n"
                    % (tag, a.in_flight, a.limit, url, job, select,
                       a.in_flight))
        subprocess.run([a.bin, "migrate"], env=env, check=True,
                       capture_output=True)
        conn = psycopg2.connect(env["NS_PG_DSN"])
        cur = conn.cursor()
        for i in range(a.messages):
            text = TEXTS[i % len(TEXTS)] + " #%d" % i
            cur.execute("INSERT INTO raw_messages (update_id, chat_id, "
                        "user_id, message_id, message_text, message_type, "
                        "raw_telegram_json) VALUES (%s, %s, 7, %s, %s, "
                        "'text', %s)", (i, i % a.chats, i, text,
                                        json.dumps({"update_id": i})))
        conn.commit()
        for i in range(a.workers):
            wl = open(os.path.join(tmp, "worker%d.log" % i), "wb")
            procs.append(subprocess.Popen([a.bin, "worker", "-c", cfg],
                                          env=env, stdout=wl, stderr=wl))
        wait_for(lambda: all(b"assigned" in open(
            os.path.join(tmp, "worker%d.log" % i), "rb").read()
            for i in range(a.workers)), 60, "the workers")
        log("structuring %d messages" % a.messages)
        t0 = time.perf_counter()
        r = subprocess.run([a.bin, "run", job, "--wait", "--timeout", "3600",
                            "-c", cfg], env=env, capture_output=True,
                           text=True)
        wall = time.perf_counter() - t0
        if r.returncode != 0:
            sys.exit("the run failed:\n" + r.stdout[-3000:] +
                     r.stderr[-2000:])
        cur.execute("SELECT count(*) FILTER (WHERE is_processed), "
                    "count(*) FROM raw_messages")
        done, total = cur.fetchone()
        cur.execute("SELECT extract(epoch FROM max(i.finished_at) - "
                    "min(i.started_at)) FROM items i JOIN runs r USING "
                    "(run_id) WHERE r.job = %s", (job,))
        busy = float(cur.fetchone()[0] or 0)
        with urllib.request.urlopen(url + "/_control/stats",
                                    timeout=10) as resp:
            stats = json.loads(resp.read())
        print("machine: %d CPUs (nproc)" % os.cpu_count())
        print("setup: %d messages in %d chats, %d worker(s) x %d in flight; "
              "API: %d ms per answer, at most %d requests in any second; "
              "nightshift limit %s burst 1"
              % (a.messages, a.chats, a.workers, a.in_flight, a.latency_ms,
                 a.api_limit, a.limit))
        print("run: %d of %d messages structured in %.2f s: %.1f "
              "messages/s (first item started -> last done: %.2f s, %.1f/s)"
              % (done, total, wall, done / wall, busy,
                 done / busy if busy else 0))
        print("API: %d requests, %d answered 429, at most %d in flight at "
              "once" % (stats.get("requests", 0),
                        stats.get("rate_limited", 0),
                        stats.get("max_concurrent", 0)))
        if a.quick and done != total:
            print("FAILED: %d of %d messages structured" % (done, total))
            return 1
    finally:
        for pr in procs:
            pr.terminate()
        for pr in procs:
            try:
                pr.wait(30)
            except subprocess.TimeoutExpired:
                pr.kill()
        admin.cursor().execute('DROP DATABASE IF EXISTS "%s" WITH (FORCE)'
                               % db)
        subprocess.run(["rm", "-rf", tmp])


if __name__ == "__main__":
    sys.exit(main())
