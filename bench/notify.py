#!/usr/bin/python3
"""Reports to one Telegram chat at scale (a benchmark: it prints figures,
it does not pass or fail on them).

--projects active projects go to a fresh database; batch-analyzer runs
them through --workers workers against the fake LLM (no latency) and the
fake Telegram API, which enforces Telegram's flood limits: per chat a burst
of 3, then 1 message per second; 30 per second per bot; 429 with
parameters.retry_after beyond that. nightshift paces with its defaults
(1/s per chat, burst 1; 30/s per bot). --scale S multiplies both sides'
rates (the fake's and nightshift's) to compress time: S = 20 makes a
2,000-message hour-long delivery take ~100 s; the printed "at Telegram's
rates" figure multiplies the delivery time back. --kill-one kills one
worker with SIGKILL when half the items are done (delivery goes on in
the other).

Printed per mode (--modes digest,per_project): messages sent, how many
requests were answered 429 (and the ratio), duplicates, the run's own
time (start -> succeeded) and the time from run start to the last report
delivered (runs.delivered_at), and when the summary arrived.

Usage (from the repository root; NS_PG_DSN, NS_KAFKA_BROKERS, NS_REDIS_URL
from `tests/stack.sh env`):
  bench/notify.py [--projects 2000] [--workers 2] [--modes digest]
                  [--scale 1] [--kill-one] [--quick]
--quick: 60 projects, scale 10, both modes; checks every report arrived
exactly once and the summary last (exit 1 if not), never a time.
"""
import argparse
import collections
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid

try:
    import psycopg2
except ImportError:
    sys.exit("bench/notify.py: needs python3-psycopg2 and /usr/bin/python3")

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.abspath(os.path.join(HERE, ".."))
FAKES = os.path.join(SRC, "tests", "fakes")


def log(msg):
    print("# " + msg, file=sys.stderr, flush=True)


def wait_for(fn, timeout, what, interval=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(interval)
    sys.exit("timed out waiting for " + what)


def get(url):
    with urllib.request.urlopen(url, timeout=30) as resp:
        return json.loads(resp.read())


def start_fake(tmp, procs, script, *args):
    port_file = os.path.join(tmp, script + ".port")
    lf = open(os.path.join(tmp, script + ".log"), "wb")
    procs.append(subprocess.Popen(
        ["/usr/bin/python3", os.path.join(FAKES, script), "--port", "0",
         "--port-file", port_file] + list(args), stdout=lf, stderr=lf))
    wait_for(lambda: os.path.exists(port_file), 30, script)
    return "http://127.0.0.1:%s" % open(port_file).read().strip()


def one_mode(a, mode, admin):
    tag = uuid.uuid4().hex[:6]
    db = "bench_notify_" + tag
    admin.cursor().execute('CREATE DATABASE "%s"' % db)
    tmp = tempfile.mkdtemp(prefix="ns-bench-notify-")
    token = "123456:" + uuid.uuid4().hex
    env = dict(os.environ, NS_PG_DSN=os.environ["NS_PG_DSN"] + " dbname=" + db,
               NS_LOG_LEVEL="info", NS_LLM_API_KEY="sk-bench",
               NS_TELEGRAM_BOT_TOKEN=token)
    procs = []
    try:
        llm = start_fake(tmp, procs, "fake_llm.py")
        tg = start_fake(tmp, procs, "fake_telegram.py", "--token", token,
                        "--limits", "--limit-scale", str(a.scale))
        cfg = os.path.join(tmp, "jobs.yaml")
        job = "notify-" + tag
        with open(cfg, "w") as f:
            f.write("version: 1\nkafka:\n  group.id: \"bench-%s\"\n"
                    "worker: {metrics_port: 0, max_in_flight: 64}\n"
                    "rate_limits:\n  telegram: \"%g/s\"\n"
                    "  telegram.chat: \"%g/s burst 1\"\n"
                    "llm: {base_url: \"%s\", api_key: \"${NS_LLM_API_KEY}\","
                    " timeout_seconds: 30}\n"
                    "telegram: {api_url: \"%s\", bot_token: "
                    "\"${NS_TELEGRAM_BOT_TOKEN}\", timeout_seconds: 30}\n"
                    "jobs:\n  - name: %s\n    source: {type: sql, key: id, "
                    "query: \"SELECT id, name, description, status, progress "
                    "FROM projects ORDER BY id\"}\n"
                    "    handler: analyzer.project\n"
                    "    finalizer: analyzer.summary\n"
                    "    max_parallelism: 8\n"
                    "    notify: {telegram: {chat_id: \"4242\", mode: %s}}\n"
                    % (tag, 30 * a.scale, 1 * a.scale, llm, tg, job, mode))
        subprocess.run([a.bin, "migrate"], env=env, check=True,
                       capture_output=True)
        conn = psycopg2.connect(env["NS_PG_DSN"])
        conn.autocommit = True
        cur = conn.cursor()
        for i in range(a.projects):
            # Hostile names: Markdown, HTML, SQL; delivered literally.
            cur.execute("INSERT INTO projects (name, description, status, "
                        "progress) VALUES (%s, 'bench', 'active', %s)",
                        ("p%04d <b>*_[x](y)_*</b> & '; DROP TABLE x; --" % i,
                         i % 100))
        workers = []
        for i in range(a.workers):
            wl = open(os.path.join(tmp, "worker%d.log" % i), "wb")
            w = subprocess.Popen([a.bin, "worker", "-c", cfg], env=env,
                                 stdout=wl, stderr=wl)
            procs.append(w)
            workers.append(w)
        wait_for(lambda: all(b"assigned" in open(
            os.path.join(tmp, "worker%d.log" % i), "rb").read()
            for i in range(a.workers)), 60, "the workers")
        log("%s: %d projects to one chat, scale %g" % (mode, a.projects,
                                                        a.scale))
        t0 = time.time()
        run = subprocess.Popen([a.bin, "run", job, "--wait", "--timeout",
                                "7200", "-c", cfg], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
        if a.kill_one and a.workers > 1:
            wait_for(lambda: (cur.execute(
                "SELECT count(*) FROM items WHERE status = 'done'") or
                cur.fetchone()[0] >= a.projects // 2), 600, "half the items")
            workers[0].send_signal(signal.SIGKILL)
            log("killed worker 0 with SIGKILL")
        out, err = run.communicate()
        run_s = time.time() - t0
        if run.returncode != 0:
            sys.exit("the run failed:\n" + out[-3000:] + err[-2000:])
        run_id = int(re.search(r"run (\d+) of", out).group(1))
        wait_for(lambda: (cur.execute(
            "SELECT delivered_at IS NOT NULL FROM runs WHERE run_id = %s",
            (run_id,)) or cur.fetchone()[0]), 7200, "delivery", 0.5)
        cur.execute("SELECT extract(epoch FROM delivered_at - "
                    "coalesce(started_at, created_at)), extract(epoch FROM "
                    "delivered_at - finished_at) FROM runs WHERE run_id = %s",
                    (run_id,))
        to_delivered, after_run = cur.fetchone()
        stats = get(tg + "/_control/stats")
        log_entries = get(tg + "/_control/requests")
        texts = [e["json"]["text"] for e in log_entries
                 if e.get("status") == 200 and "sendMessage" in e["path"]]
        names = collections.Counter(
            n for t in texts for n in re.findall(r"<b>Project:</b> (.*)\n", t))
        summary_last = bool(texts) and "Batch Analysis Complete" in texts[-1]
        calls = stats["sent"] + stats["refused_429"]
        dups = sum(c - 1 for c in names.values())
        ok = len(names) == a.projects and summary_last
        print("%s: %d projects, %d worker(s)%s, scale %g" % (
            mode, a.projects, a.workers,
            ", one killed mid-run" if a.kill_one else "", a.scale))
        print("  messages sent: %d (%d reports, %d duplicated, summary "
              "%s)" % (len(texts), sum(names.values()), dups,
                       "last" if summary_last else "NOT last"))
        print("  429 answers: %d of %d calls (%.2f %%)" % (
            stats["refused_429"], calls,
            100.0 * stats["refused_429"] / calls if calls else 0))
        print("  run start -> succeeded: %.1f s; run start -> last report "
              "delivered: %.1f s (%.1f s after the run)" % (
                  run_s, float(to_delivered), float(after_run or 0)))
        if a.scale != 1:
            print("  at Telegram's rates (x%g): delivery ~%.0f s" % (
                a.scale, float(after_run or 0) * a.scale + run_s))
        return ok
    finally:
        for pr in procs:
            if pr.poll() is None:
                pr.terminate()
        for pr in procs:
            try:
                pr.wait(30)
            except subprocess.TimeoutExpired:
                pr.kill()
        admin.cursor().execute('DROP DATABASE IF EXISTS "%s" WITH (FORCE)'
                               % db)
        subprocess.run(["rm", "-rf", tmp])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--projects", type=int, default=2000)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--modes", default="digest")
    p.add_argument("--scale", type=float, default=1.0)
    p.add_argument("--kill-one", action="store_true")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--bin", default=os.path.join(SRC, "build", "nightshift"))
    a = p.parse_args(argv)
    if a.quick:
        a.projects, a.scale, a.modes = 60, 10.0, "digest,per_project"
    for v in ("NS_PG_DSN", "NS_KAFKA_BROKERS", "NS_REDIS_URL"):
        if not os.environ.get(v):
            print("bench/notify.py: %s is not set (eval \"$(bash "
                  "tests/stack.sh env)\")" % v, file=sys.stderr)
            return 77 if a.quick else 2  # 77: ctest's "skipped"
    admin = psycopg2.connect(os.environ["NS_PG_DSN"])
    admin.autocommit = True
    print("machine: %d CPUs (nproc)" % os.cpu_count())
    ok = all([one_mode(a, m.strip(), admin) for m in a.modes.split(",")])
    if not ok:
        print("FAILED: a report is missing or the summary was not last")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
