#!/usr/bin/python3
"""Emission: how fast `nightshift run JOB` records a run's items and
produces them to Kafka, with no worker running (a benchmark: it prints
figures, it does not pass or fail on them).

Each repetition gets a fresh database (CREATE DATABASE + `nightshift
migrate`) and a fresh job (so a fresh topic); the run is
`SELECT g AS id FROM generate_series(1, N) g`. Reported per repetition:
the CLI's wall time and maximum RSS (from wait4), items/s, and
PostgreSQL's CPU per item (its backends' CPU, from the postmaster's
reaped-children times in /proc, so PostgreSQL must run on this machine).

Usage (the stack in NS_PG_DSN / NS_KAFKA_BROKERS: eval "$(tests/stack.sh env)"):
  bench/emission.py --items 1000000 --repeat 3
  bench/emission.py --quick          # 20,000 items once (a smoke run)

Needs Python 3 and Debian's python3-psycopg2 (hence /usr/bin/python3).
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

import psycopg2

SRC = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def postmaster_cpu(conn):
    """CPU seconds of the postmaster's reaped children (backends)."""
    cur = conn.cursor()
    cur.execute("SHOW data_directory")
    with open(os.path.join(cur.fetchone()[0], "postmaster.pid")) as f:
        pid = int(f.readline())
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return (int(fields[13]) + int(fields[14])) / tick  # cutime + cstime


def one(args, rep):
    dsn = os.environ["NS_PG_DSN"]
    db = "bench_emit_%s" % uuid.uuid4().hex[:8]
    admin = psycopg2.connect(dsn)
    admin.autocommit = True
    admin.cursor().execute('CREATE DATABASE "%s"' % db)
    tmp = tempfile.mkdtemp(prefix="ns-emit-")
    job = "emit-%s" % uuid.uuid4().hex[:8]
    cfg = os.path.join(tmp, "jobs.yaml")
    with open(cfg, "w") as f:
        f.write("version: 1\nkafka:\n  group.id: \"%s\"\n"
                "producer: {metrics_port: 0}\njobs:\n"
                "  - name: %s\n    source: {type: sql, query: \"SELECT g AS "
                "id FROM generate_series(1, %d) g\", key: id}\n"
                "    handler: noop\n    max_parallelism: 8\n"
                % (job, job, args.items))
    env = dict(os.environ, NS_PG_DSN=dsn + " dbname=" + db)
    subprocess.run([args.bin, "migrate", "-c", cfg], env=env, check=True,
                   capture_output=True)
    cpu0 = postmaster_cpu(admin)
    t0 = time.monotonic()
    proc = subprocess.Popen([args.bin, "run", job, "-c", cfg], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    cli_cpu = usage.ru_utime + usage.ru_stime
    seconds = time.monotonic() - t0
    err = proc.stderr.read().decode(errors="replace")
    proc.stdout.close()
    proc.stderr.close()
    time.sleep(0.2)  # the backend exits after the CLI disconnects
    pg_cpu = postmaster_cpu(admin) - cpu0
    conn = psycopg2.connect(dsn + " dbname=" + db)
    cur = conn.cursor()
    cur.execute("SELECT items_total, emitted_at IS NOT NULL FROM runs")
    total, emitted = cur.fetchone()
    conn.close()
    admin.cursor().execute('DROP DATABASE "%s" WITH (FORCE)' % db)
    admin.close()
    if os.waitstatus_to_exitcode(status) != 0 or not emitted or \
            total != args.items:
        sys.exit("run %d failed (items %s, emitted %s): %s"
                 % (rep, total, emitted, err[-2000:]))
    return {"seconds": seconds, "items_per_s": args.items / seconds,
            "rss_mb": usage.ru_maxrss / 1024.0,
            "pg_us_per_item": pg_cpu * 1e6 / args.items,
            "cli_us_per_item": cli_cpu * 1e6 / args.items}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--items", type=int, default=1000000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--quick", action="store_true",
                    help="20,000 items once (for the test suite)")
    ap.add_argument("--bin", default=os.environ.get(
        "NS_BIN", os.path.join(SRC, "build", "nightshift")))
    args = ap.parse_args()
    if args.quick:
        args.items, args.repeat = 20000, 1
    for var in ("NS_PG_DSN", "NS_KAFKA_BROKERS"):
        if not os.environ.get(var):
            print("%s is not set: eval \"$(tests/stack.sh env)\" first"
                  % var, file=sys.stderr)
            sys.exit(77)  # ctest: skipped
    rows = []
    for rep in range(1, args.repeat + 1):
        r = one(args, rep)
        rows.append(r)
        print("rep %d: %d items in %.2f s = %.0f items/s, CLI max RSS %.0f MB,"
              " CPU-us per item: PostgreSQL %.1f, CLI %.1f" % (
                  rep, args.items, r["seconds"], r["items_per_s"],
                  r["rss_mb"], r["pg_us_per_item"], r["cli_us_per_item"]),
              flush=True)
    s = sorted(r["seconds"] for r in rows)
    print("emission of %d items: %.2f-%.2f s (median %.2f), %.0f-%.0f items/s"
          % (args.items, s[0], s[-1], statistics.median(s),
             args.items / s[-1], args.items / s[0]))


if __name__ == "__main__":
    main()
