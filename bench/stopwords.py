#!/usr/bin/python3
"""The stopword refresh end to end: PostgreSQL -> Kafka -> workers -> merge ->
Redis, on the real stack (a benchmark: it prints figures, it does not pass
or fail on them).

Documents: real multilingual text, the translated messages of the gettext
catalogues Debian installs (/usr/share/locale/<lang>/LC_MESSAGES/*.mo; ~60
languages and many scripts), cut into documents of about --doc-bytes bytes
(default 400) and loaded with COPY into a fresh database until there are
--docs of them (the text repeats when the catalogues run out). Then
`nightshift run` of a stopword job (source shards of --shard-size ids) with
--workers worker processes, timed from the run command's start to the run's
`succeeded`. Printed: documents/s, MB/s, the projected time for 100 M
documents, the run's shards and languages, each worker's peak RSS (VmHWM;
the merge runs in one of them), and, on the same documents, a Python
baseline (collections.Counter over set(tokens) per document, one core)
with the ratio.

Usage (from the repository root; NS_PG_DSN, NS_KAFKA_BROKERS, NS_REDIS_URL
from `tests/stack.sh env`):
  bench/stopwords.py [--docs 1000000] [--workers 2] [--shard-size 20000]
                     [--doc-bytes 400] [--baseline-docs 200000]
"""
import argparse
import collections
import io
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid

from gettext_mo import mo_messages

try:
    import psycopg2
except ImportError:
    sys.exit("bench/stopwords.py: needs python3-psycopg2 and /usr/bin/python3")

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.abspath(os.path.join(HERE, ".."))


def log(msg):
    print("# " + msg, file=sys.stderr, flush=True)


def corpus(doc_bytes, limit_bytes):
    """(lang, body bytes) documents from the catalogues."""
    root = "/usr/share/locale"
    docs, total = [], 0
    for loc in sorted(os.listdir(root)):
        lang = re.split(r"[_@.]", loc)[0]
        d = os.path.join(root, loc, "LC_MESSAGES")
        if not os.path.isdir(d) or len(loc) > 12:
            continue
        buf = b""
        for name in sorted(os.listdir(d)):
            if not name.endswith(".mo"):
                continue
            for msg in mo_messages(os.path.join(d, name)):
                buf += msg.replace(b"\x00", b" ") + b" "
                while len(buf) >= doc_bytes:
                    docs.append((lang, buf[:doc_bytes]))
                    total += doc_bytes
                    buf = buf[doc_bytes:]
            if total >= limit_bytes:
                return docs
    return docs


def copy_text(b):
    """bytes -> a COPY text field (invalid UTF-8 replaced: the column is
    text)."""
    s = b.decode("utf-8", "replace")
    return (s.replace("\\", "\\\\").replace("\t", "\\t")
            .replace("\n", "\\n").replace("\r", "\\r"))


def vm_hwm_mb(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def baseline(docs):
    """collections.Counter over set(tokens) per document: the simple
    Python way (lower-cased \\w+ tokens; no NFKC, no segmentation)."""
    word = re.compile(r"\w+", re.UNICODE)
    per_lang = collections.defaultdict(collections.Counter)
    t0 = time.perf_counter()
    for lang, body in docs:
        per_lang[lang].update(set(word.findall(
            body.decode("utf-8", "replace").lower())))
    return time.perf_counter() - t0


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--docs", type=int, default=1000000)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--shard-size", type=int, default=20000)
    p.add_argument("--doc-bytes", type=int, default=400)
    p.add_argument("--baseline-docs", type=int, default=200000)
    p.add_argument("--bin", default=os.path.join(SRC, "build", "nightshift"))
    p.add_argument("--quick", action="store_true",
                   help="5,000 documents; exit 1 unless every document was "
                   "counted and the sets were published (never a time)")
    a = p.parse_args(argv)
    if a.quick:
        a.docs, a.shard_size, a.baseline_docs = 5000, 1000, 1000
    for v in ("NS_PG_DSN", "NS_KAFKA_BROKERS", "NS_REDIS_URL"):
        if not os.environ.get(v):
            print("bench/stopwords.py: %s is not set (eval \"$(bash "
                  "tests/stack.sh env)\")" % v, file=sys.stderr)
            return 77 if a.quick else 2
    tag = uuid.uuid4().hex[:6]
    db = "bench_stopwords_" + tag
    admin = psycopg2.connect(os.environ["NS_PG_DSN"])
    admin.autocommit = True
    admin.cursor().execute('CREATE DATABASE "%s"' % db)
    tmp = tempfile.mkdtemp(prefix="ns-bench-sw-")
    env = dict(os.environ, NS_PG_DSN=os.environ["NS_PG_DSN"] + " dbname=" + db,
               NS_LOG_LEVEL="info")
    workers = []
    try:
        cfg = os.path.join(tmp, "jobs.yaml")
        job = "stopwords-" + tag
        with open(cfg, "w") as f:
            f.write("version: 1\nkafka:\n  group.id: \"bench-%s\"\n"
                    "worker: {metrics_port: 0, max_in_flight: 4}\n"
                    "jobs:\n  - name: %s\n    source: {type: shards, "
                    "table: documents, shard_size: %d}\n"
                    "    handler: stopwords.count\n"
                    "    finalizer: stopwords.merge\n"
                    "    max_parallelism: 8\n"
                    "    params: {redis_prefix: \"bench-%s\"}\n"
                    % (tag, job, a.shard_size, tag))
        subprocess.run([a.bin, "migrate"], env=env, check=True,
                       capture_output=True)
        log("reading the gettext catalogues")
        docs = corpus(a.doc_bytes, min(a.docs, 400000) * a.doc_bytes)
        if not docs:
            sys.exit("no documents: /usr/share/locale has no catalogues")
        log("%d distinct documents; loading %d with COPY" % (len(docs),
                                                              a.docs))
        conn = psycopg2.connect(env["NS_PG_DSN"])
        t0 = time.perf_counter()
        chunk = 100000
        for start in range(0, a.docs, chunk):
            buf = io.StringIO()
            for i in range(start, min(a.docs, start + chunk)):
                lang, body = docs[i % len(docs)]
                buf.write("%d\t%s\t%s\n" % (i, lang, copy_text(body)))
            buf.seek(0)
            conn.cursor().copy_expert(
                "COPY documents (id, lang, body) FROM STDIN", buf)
            conn.commit()
        conn.cursor().execute("ANALYZE documents")
        conn.commit()
        total_bytes = conn.cursor()
        total_bytes.execute("SELECT sum(octet_length(body)), count(DISTINCT "
                            "lang) FROM documents")
        nbytes, nlangs = (int(x or 0) for x in total_bytes.fetchone())
        log("loaded in %.1f s (%.0f MB)" % (time.perf_counter() - t0,
                                             nbytes / 1e6))
        for i in range(a.workers):
            lf = open(os.path.join(tmp, "worker%d.log" % i), "wb")
            workers.append(subprocess.Popen([a.bin, "worker", "-c", cfg],
                                            env=env, stdout=lf, stderr=lf))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            ready = sum(1 for i in range(a.workers) if b"assigned" in open(
                os.path.join(tmp, "worker%d.log" % i), "rb").read())
            if ready == a.workers:
                break
            time.sleep(0.1)
        log("running %s" % job)
        t0 = time.perf_counter()
        t0_epoch = time.time()
        r = subprocess.run([a.bin, "run", job, "--wait", "--timeout", "3600",
                            "-c", cfg], env=env, capture_output=True,
                           text=True)
        wall = time.perf_counter() - t0
        if r.returncode != 0:
            sys.exit("the run failed:\n" + r.stdout + r.stderr[-2000:])
        cur = conn.cursor()
        cur.execute("SELECT count(*), sum(docs), sum(lang_missing) FROM "
                    "stopword_partials")
        shards, counted, missing = (int(x or 0) for x in cur.fetchone())
        cur.execute("SELECT extract(epoch FROM max(i.finished_at) - "
                    "min(i.started_at)) FROM items i JOIN runs r USING "
                    "(run_id) WHERE r.job = %s", (job,))
        counting = float(cur.fetchone()[0] or 0)
        # The run's phases on the database's clock (the same machine's).
        cur.execute("SELECT extract(epoch FROM r.created_at), extract(epoch "
                    "FROM min(i.started_at)), extract(epoch FROM "
                    "max(i.finished_at)), extract(epoch FROM r.finished_at) "
                    "FROM runs r JOIN items i USING (run_id) WHERE r.job = %s "
                    "GROUP BY r.run_id", (job,))
        created, first, last, finished = (float(x) for x in cur.fetchone())
        cur.execute("SELECT count(*), count(DISTINCT lang) FROM "
                    "stopword_terms")
        terms, langs = cur.fetchone()
        hwm = [vm_hwm_mb(w.pid) for w in workers]
        base_docs = docs[:a.baseline_docs] * max(
            1, a.baseline_docs // max(1, len(docs)))
        base_docs = base_docs[:a.baseline_docs]
        log("baseline: Counter over set(tokens) on %d documents"
            % len(base_docs))
        bt = baseline(base_docs)
        rate = counted / wall
        base_rate = len(base_docs) / bt if base_docs and bt > 0 else 0
        print("machine: %d CPUs (nproc)" % os.cpu_count())
        print("corpus: %d documents of ~%d bytes (%.0f MB), %d languages "
              "(gettext catalogues)" % (counted, a.doc_bytes, nbytes / 1e6,
                                        nlangs))
        print("run: %d shards of %d ids, %d worker(s), %.2f s from `nightshift"
              " run` to succeeded" % (shards, a.shard_size, a.workers, wall))
        print("end to end: %.0f documents/s, %.1f MB/s; 100 M documents "
              "would take %.1f min" % (rate, nbytes / 1e6 / wall,
                                       1e8 / rate / 60))
        if counting > 0:
            print("counting alone (first shard started -> last shard done): "
                  "%.2f s, %.0f documents/s; 100 M documents would count in "
                  "%.1f min (plus the merge, which grows with the "
                  "vocabulary, not the documents)"
                  % (counting, counted / counting,
                     1e8 / (counted / counting) / 60))
        print("phases: command -> run recorded %.2f s, -> first shard started "
              "%.2f s, counting %.2f s, last shard done -> run succeeded "
              "(the merge) %.2f s, -> command returned %.2f s"
              % (created - t0_epoch, first - created, last - first,
                 finished - last, t0_epoch + wall - finished))
        print("per-term table: %d (language, term) pairs, %d languages" % (terms,
                                                                   langs))
        if a.quick and (counted != a.docs or terms == 0 or langs == 0):
            print("FAILED: %d of %d documents counted, %d terms"
                  % (counted, a.docs, terms))
            return 1
        for i in range(a.workers):
            with open(os.path.join(tmp, "worker%d.log" % i), "rb") as f:
                for line in f:
                    m = re.search(rb'"msg":"(stopword statistics merged[^"]*)"',
                                  line)
                    if m:
                        print("merge: " + m.group(1).decode())
                    if line.startswith(b"PROF"):
                        print(line.decode().rstrip())
        print("worker peak RSS (MB): %s" % ", ".join(
            "%.0f" % h for h in hwm if h is not None))
        if base_rate > 0:
            print("baseline (Python Counter over set(tokens), 1 core): %.0f "
                  "documents/s; nightshift end to end is %.1fx that"
                  % (base_rate, rate / base_rate))
    finally:
        for w in workers:
            w.terminate()
        for w in workers:
            try:
                w.wait(30)
            except subprocess.TimeoutExpired:
                w.kill()
        admin.cursor().execute('DROP DATABASE IF EXISTS "%s" WITH (FORCE)'
                               % db)
        subprocess.run(["rm", "-rf", tmp])


if __name__ == "__main__":
    sys.exit(main())
