"""The stopword refresh on the real stack, counting slice: the `shards`
source, `stopwords.count` (COPY, tokenize, count, partial per shard) and
`stopwords.merge` (totals = previous − replaced partials + new ones).

A full run counts every shard; after edits, insertions and soft deletions
an incremental run counts only the shards that changed, and its totals are
exactly those of a full recount of the edited corpus (a second job with no
watermark). The stopword sets go to Redis as hashes switched at once, the
ranked lists (at least min_words words, the set their prefix) beside them
as sorted sets, and `nightshift stopwords rollback` swaps both back. A dry
run counts what changed and reports what would change, writing nothing."""
import os
import random
import re
import signal
import subprocess
import unittest

import harness

SHARD = 50
N_DOCS = 500

SENTENCES = {
    "en": ["The quick brown fox jumps over the lazy dog.",
           "It is a truth universally acknowledged that a single man is in "
           "want of a wife.",
           "We shall fight on the beaches, we shall fight on the landing "
           "grounds.",
           "The weather in the north of the country is cold and wet.",
           "Don't count your chickens before they hatch."],
    "fr": ["Le petit prince est parti à la recherche d'un ami.",
           "L'homme et la mer sont deux thèmes de la littérature.",
           "Il fait beau aujourd'hui dans le sud de la France.",
           "C'est la vie, et elle est belle."],
    "de": ["Der schnelle braune Fuchs springt über den faulen Hund.",
           "Die Straße ist lang und die Nacht ist dunkel.",
           "Ich bin ein Berliner, sagte er in der Rede."],
    "ru": ["Москва — столица России и крупнейший город страны.",
           "Война и мир — роман Льва Толстого.",
           "В лесу родилась ёлочка, в лесу она росла."],
    "zh": ["我们是学生，我们在北京学习中文。",
           "今天天气很好，我们去公园散步。"],
    "ja": ["私はコーヒーが好きです。東京は大きい都市です。",
           "日本語を勉強しています。"],
    "th": ["ภาษาไทยง่ายนิดเดียว", "สวัสดีครับ ยินดีที่ได้รู้จัก"],
}


def redis(*args):
    """redis-cli against the stack's Redis (NS_REDIS_URL)."""
    m = re.match(r"redis://([^:/]+):(\d+)/?(\d*)",
                 os.environ["NS_REDIS_URL"])
    out = subprocess.run(["redis-cli", "-h", m.group(1), "-p", m.group(2),
                          "-n", m.group(3) or "0", "--no-raw"] + list(args),
                         capture_output=True, text=True, check=True,
                         timeout=30).stdout
    return out


def hash_of(key):
    """HGETALL as a dict (raw output: field, value, field, value...)."""
    m = re.match(r"redis://([^:/]+):(\d+)/?(\d*)",
                 os.environ["NS_REDIS_URL"])
    out = subprocess.run(["redis-cli", "-h", m.group(1), "-p", m.group(2),
                          "-n", m.group(3) or "0", "--raw", "HGETALL", key],
                         capture_output=True, text=True, check=True,
                         timeout=30).stdout.split("\n")
    out = [x for x in out if x != ""]
    return dict(zip(out[0::2], (float(v) for v in out[1::2])))


def ranked_of(key):
    """ZREVRANGE ... WITHSCORES as [(word, score)], best first."""
    m = re.match(r"redis://([^:/]+):(\d+)/?(\d*)",
                 os.environ["NS_REDIS_URL"])
    out = subprocess.run(["redis-cli", "-h", m.group(1), "-p", m.group(2),
                          "-n", m.group(3) or "0", "--raw", "ZREVRANGE", key,
                          "0", "-1", "WITHSCORES"],
                         capture_output=True, text=True, check=True,
                         timeout=30).stdout.split("\n")
    out = [x for x in out if x != ""]
    return list(zip(out[0::2], (float(v) for v in out[1::2])))


MIN_WORDS = 40


def document(rng):
    lang = rng.choice(sorted(SENTENCES))
    body = " ".join(rng.choice(SENTENCES[lang])
                    for _ in range(rng.randint(1, 6)))
    # Some documents arrive without their language.
    return (None if rng.random() < 0.1 else lang), body


class StopwordsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        env = cls.env = harness.Env("stopwords")
        cls.job = env.job("sw")
        cls.full = env.job("swfull")
        cls.prefix = "sw-" + env.tag
        cls.full_prefix = "swfull-" + env.tag
        job = ("  - name: %s\n"
               "    source: {type: shards, table: documents, shard_size: %d,"
               " watermark_overlap_seconds: 0}\n"
               "    handler: stopwords.count\n"
               "    finalizer: stopwords.merge\n"
               "    max_parallelism: 4\n"
               "    params: {redis_prefix: %s, top_n: 20, min_score: 0.05,"
               " min_docs: 10, min_words: " + str(MIN_WORDS) + "}\n")
        cls.cfg = env.config("jobs:\n" +
                             job % (cls.job, SHARD, cls.prefix) +
                             job % (cls.full, SHARD, cls.full_prefix))
        cls.rng = random.Random(5)
        rows = [(i,) + document(cls.rng) for i in range(1, N_DOCS + 1)]
        for i, lang, body in rows:
            env.sql("INSERT INTO documents (id, lang, body) VALUES "
                    "(%s, %s, %s)", (i, lang, body))
        cls.workers = [env.start("worker", "-c", cls.cfg, log="w%d" % i)
                       for i in range(2)]
        for w in cls.workers:
            env.wait_log(w, "assigned")

    @classmethod
    def tearDownClass(cls):
        cls.env.close()

    def run_job(self, job, *flags):
        res = self.env.nightshift("run", job, "--wait", "--timeout", "120",
                                  "-c", self.cfg, *flags)
        return int(re.search(r"run (\d+) of", res.stdout).group(1))

    def terms(self, job):
        return {(r[0], r[1]): r[2:] for r in self.env.sql(
            "SELECT lang, term, df, count, nlogn FROM stopword_terms "
            "WHERE job = %s", (job,))}

    def test_1_full_run_counts_every_shard(self):
        run_id = self.run_job(self.job)
        env = self.env
        self.assertEqual(env.scalar(
            "SELECT items_total FROM runs WHERE run_id = %s", (run_id,)),
            N_DOCS // SHARD + 1)  # ids 1..500: shards 0..10
        self.assertEqual(env.scalar(
            "SELECT sum(docs) FROM stopword_partials WHERE job = %s",
            (self.job,)), N_DOCS)
        report = {e["action"]: e for e in env.scalar(
            "SELECT report FROM runs WHERE run_id = %s", (run_id,))}
        figures = report["stopword statistics"]
        self.assertEqual((figures["documents"], figures["shards"]),
                         (N_DOCS, N_DOCS // SHARD + 1))
        self.assertGreater(figures["languages"], 6)
        self.assertIn("en", report["published stopword sets"]["candidates"])
        terms = self.terms(self.job)
        # "the" in English documents: df = English documents containing
        # it, counted here the simple way (ASCII words, lower case). Those
        # that came without a language count too when detection says
        # English (one short sentence may well be taken for another
        # language).
        def has_the(b):
            return "the" in re.findall(r"[a-z']+", b.lower())
        rows = env.sql("SELECT lang, body FROM documents")
        labelled = sum(1 for lang, b in rows if lang == "en" and has_the(b))
        unlabelled = sum(1 for lang, b in rows if lang is None and has_the(b)
                         and any(b.startswith(x) for x in SENTENCES["en"]))
        df = terms[("en", "the")][0]
        self.assertGreater(labelled, 30)
        self.assertGreaterEqual(df, labelled)
        self.assertLessEqual(df, labelled + unlabelled)
        # Dictionary segmentation and folding reached the totals.
        self.assertIn(("zh", "学生"), terms)
        self.assertIn(("ja", "東京"), terms)
        self.assertIn(("th", "ภาษา"), terms)
        self.assertIn(("de", "strasse"), terms)
        self.assertIn(("fr", "l'"), terms)
        # Documents without a language: detected (libexttextcat).
        missing, detected = env.sql(
            "SELECT sum(lang_missing), sum(lang_detected) FROM "
            "stopword_partials WHERE job = %s", (self.job,))[0]
        self.assertGreater(missing, 20)
        self.assertGreater(int(detected), int(missing) * 0.9)
        self.assertEqual(env.scalar(
            "SELECT run_id FROM shard_watermarks WHERE job = %s",
            (self.job,)), run_id)
        # The sets: one hash per language with documents enough; none for
        # documents without a language.
        en = hash_of(self.prefix + ":en")
        self.assertIn("the", en)
        self.assertLessEqual(len(en), 20)
        self.assertTrue(all(0.05 <= v <= 1 for v in en.values()), en)
        langs = set(redis("SMEMBERS", self.prefix + ":langs").split())
        self.assertIn('"en"', langs)
        self.assertNotIn('""', langs)
        self.assertEqual(hash_of(self.prefix + ":"), {})  # never a set
        # The ranked lists: min_words words (English has more than 40
        # distinct words here), best first, the set their prefix with the
        # same scores; every language with a set has one.
        ranked = ranked_of(self.prefix + ":en:ranked")
        self.assertEqual(len(ranked), MIN_WORDS)
        self.assertEqual({w for w, _ in ranked[:len(en)]}, set(en))
        for w, score in ranked[:len(en)]:
            self.assertAlmostEqual(score, en[w], places=6)
        scores = [v for _, v in ranked]
        self.assertEqual(scores, sorted(scores, reverse=True))
        # Past the set: below the threshold, unless top_n cut it.
        self.assertTrue(len(en) == 20 or all(
            v < 0.05 for v in scores[len(en):]), ranked)
        counts = report["published stopword sets"]["ranked"]
        self.assertEqual(counts["en"], MIN_WORDS)
        for lang in re.findall(r'"([^"]*)"', " ".join(langs)):
            r = ranked_of("%s:%s:ranked" % (self.prefix, lang))
            h = hash_of("%s:%s" % (self.prefix, lang))
            self.assertEqual(len(r), counts[lang], lang)
            self.assertGreaterEqual(len(r), len(h), lang)
            self.assertEqual({w for w, _ in r[:len(h)]}, set(h), lang)

    def test_1b_a_first_run_takes_every_range_with_rows(self):
        # A job's first run finds its ranges over the index on id (a
        # lookup per range) and, for a table without one, by a scan: both
        # give the ranges of floor(id / size), negative and sparse ids
        # included. Only the enumeration is looked at (no worker serves
        # these jobs; the runs are cancelled after).
        env = self.env
        ids = [-45001, -1000, -999, -1, 0, 7, 999, 1000, 123456,
               10 ** 15, 10 ** 15 + 1]
        expected = sorted({i // 1000 for i in ids})
        env.sql("CREATE TABLE docs_sparse (LIKE documents INCLUDING ALL)")
        env.sql("CREATE TABLE docs_noidx (LIKE documents INCLUDING DEFAULTS)")
        for t in ("docs_sparse", "docs_noidx"):
            for i in ids:
                env.sql("INSERT INTO %s (id, lang, body) VALUES (%%s, 'en', "
                        "'x')" % t, (i,))
        jobs = {t: env.job("sw" + t.replace("_", "")) for t in
                ("docs_sparse", "docs_noidx")}
        cfg = env.config("jobs:\n" + "".join(
            "  - name: %s\n    source: {type: shards, table: %s, "
            "shard_size: 1000}\n    handler: stopwords.count\n"
            "    finalizer: stopwords.merge\n" % (j, t)
            for t, j in jobs.items()), name="sparse.yaml")
        for t, j in jobs.items():
            res = env.nightshift("run", j, "-c", cfg)
            run_id = int(re.search(r"run (\d+) of", res.stdout).group(1))
            keys = sorted(int(k) for (k,) in env.sql(
                "SELECT item_key FROM items WHERE run_id = %s", (run_id,)))
            self.assertEqual(keys, expected, t)
            self.assertEqual(env.scalar(
                "SELECT payload FROM items WHERE run_id = %s AND item_key = "
                "'-46'", (run_id,)),
                {"shard": -46, "first_id": -46000, "last_id": -45001})
            env.sql("UPDATE runs SET status = 'cancelled', finished_at = "
                    "now() WHERE run_id = %s", (run_id,))

    def test_2_incremental_equals_full(self):
        env = self.env
        before = env.scalar("SELECT count(*) FROM stopword_partials "
                            "WHERE job = %s", (self.job,))
        # Edits in shard 1, a deletion in shard 3, new documents in a new
        # shard 12 and in shard -1 (negative ids).
        env.sql("UPDATE documents SET body = 'Le chat noir dort sur le "
                "canapé.', lang = 'fr', updated_at = now() WHERE id IN "
                "(60, 61, 75)")
        env.sql("UPDATE documents SET deleted = true, updated_at = now() "
                "WHERE id BETWEEN 150 AND 160")
        for i in list(range(600, 620)) + [-3, -2, -1]:
            lang, body = document(self.rng)
            env.sql("INSERT INTO documents (id, lang, body) VALUES "
                    "(%s, %s, %s)", (i, lang, body))
        run_id = self.run_job(self.job)
        shards = sorted(int(k) for (k,) in env.sql(
            "SELECT item_key FROM items WHERE run_id = %s", (run_id,)))
        self.assertEqual(shards, [-1, 1, 3, 12])
        # Replaced partials are gone; one partial per shard is left.
        self.assertEqual(env.scalar(
            "SELECT count(*) FROM stopword_partials WHERE job = %s",
            (self.job,)), before + 2)
        full_run = self.run_job(self.full)
        self.assertEqual(env.scalar(
            "SELECT items_total FROM runs WHERE run_id = %s", (full_run,)),
            13)  # shards -1, 0..10 and 12
        incremental, full = self.terms(self.job), self.terms(self.full)
        self.assertGreater(len(full), 100)
        self.assertEqual(incremental, full)
        for lang in SENTENCES:
            self.assertEqual(hash_of("%s:%s" % (self.prefix, lang)),
                             hash_of("%s:%s" % (self.full_prefix, lang)),
                             lang)
            self.assertEqual(
                ranked_of("%s:%s:ranked" % (self.prefix, lang)),
                ranked_of("%s:%s:ranked" % (self.full_prefix, lang)), lang)
        self.assertEqual(env.scalar(
            "SELECT sum(docs) FROM stopword_partials WHERE job = %s",
            (self.job,)), N_DOCS - 11 + 23)

    def sets(self, job_prefix):
        langs = [x.strip('"') for x in
                 redis("SMEMBERS", job_prefix + ":langs").split()]
        return {lang: set(hash_of("%s:%s" % (job_prefix, lang)))
                for lang in langs}

    def ranked(self, job_prefix):
        langs = [x.strip('"') for x in
                 redis("SMEMBERS", job_prefix + ":langs").split()]
        return {lang: ranked_of("%s:%s:ranked" % (job_prefix, lang))
                for lang in langs}

    def test_3_dry_run_computes_everything_and_writes_nothing(self):
        env = self.env
        terms = self.terms(self.job)
        sets = self.sets(self.prefix)
        ranked = self.ranked(self.prefix)
        mark = env.sql("SELECT watermark, run_id FROM shard_watermarks "
                       "WHERE job = %s", (self.job,))
        totals = env.sql("SELECT run_id, md5(data) FROM stopword_totals "
                         "WHERE job = %s", (self.job,))
        partials = env.sql("SELECT shard, run_id FROM stopword_partials "
                           "WHERE job = %s ORDER BY 1", (self.job,))
        # English documents of shards 4 and 5 turn French: the English and
        # French sets must move.
        env.sql("UPDATE documents SET lang = 'fr', body = 'Le chat noir dort "
                "sur le canapé. Le chien noir dort dans le jardin.', "
                "updated_at = now() WHERE id BETWEEN 200 AND 299 AND "
                "lang = 'en'")
        res = self.env.nightshift("run", self.job, "--wait", "--timeout",
                                  "120", "-c", self.cfg, "--dry-run")
        dry = int(re.search(r"run (\d+) of", res.stdout).group(1))
        # `run --wait` prints, per language, what would be added/removed.
        self.assertRegex(res.stdout, r'would publish stopword sets: .*'
                         r'"changes":\{"[a-z]+":\{"added":')
        self.assertEqual(env.scalar(
            "SELECT status FROM runs WHERE run_id = %s", (dry,)),
            "succeeded")
        # Nothing written: statistics, watermark, partials, sets.
        self.assertEqual(self.terms(self.job), terms)
        self.assertEqual(self.sets(self.prefix), sets)
        self.assertEqual(self.ranked(self.prefix), ranked)
        self.assertEqual(env.sql("SELECT watermark, run_id FROM "
                                 "shard_watermarks WHERE job = %s",
                                 (self.job,)), mark)
        self.assertEqual(env.sql("SELECT run_id, md5(data) FROM "
                                 "stopword_totals WHERE job = %s",
                                 (self.job,)), totals)
        self.assertEqual(env.sql("SELECT shard, run_id FROM "
                                 "stopword_partials WHERE job = %s ORDER "
                                 "BY 1", (self.job,)), partials)
        report = {e["action"]: e for e in env.scalar(
            "SELECT report FROM runs WHERE run_id = %s", (dry,))}
        changes = report["would publish stopword sets"]["changes"]
        self.assertTrue(any(c["added"] or c["removed"]
                            for c in changes.values()), changes)
        # The real run that follows does exactly what the dry run said.
        real = self.run_job(self.job)
        after = self.sets(self.prefix)
        for lang, c in changes.items():
            self.assertEqual(sorted(after[lang] - sets.get(lang, set())),
                             sorted(c["added"]), lang)
            self.assertEqual(sorted(sets.get(lang, set()) - after[lang]),
                             sorted(c["removed"]), lang)
        real_report = {e["action"]: e for e in env.scalar(
            "SELECT report FROM runs WHERE run_id = %s", (real,))}
        self.assertEqual(real_report["stopword statistics"],
                         report["stopword statistics"])
        for what in ("candidates", "ranked"):
            self.assertEqual(real_report["published stopword sets"][what],
                             report["would publish stopword sets"][what])

    def test_3b_rollback_swaps_current_and_previous(self):
        # Three publishes so far; the last turned English documents French,
        # so the French sets differ somewhere.
        key = self.prefix + ":fr"
        cur, prev = hash_of(key), hash_of(key + ":prev")
        cur_r, prev_r = ranked_of(key + ":ranked"), ranked_of(
            key + ":ranked:prev")
        self.assertTrue(cur and prev)
        self.assertNotEqual(cur, prev)  # the scores moved at least
        self.assertTrue(cur_r and prev_r)
        self.assertNotEqual(cur_r, prev_r)
        res = self.env.nightshift("stopwords", "rollback", "--job", self.job,
                                  "--lang", "fr", "-c", self.cfg)
        self.assertIn("rolled back the stopword sets of 1 language",
                      res.stdout)
        self.assertEqual(hash_of(key), prev)
        self.assertEqual(hash_of(key + ":prev"), cur)
        # The ranked list with its set: the previous version whole.
        self.assertEqual(ranked_of(key + ":ranked"), prev_r)
        self.assertEqual(ranked_of(key + ":ranked:prev"), cur_r)
        self.assertEqual({w for w, _ in prev_r[:len(prev)]}, set(prev))
        # And back again, all languages of the job (found by their :prev
        # keys, the ranked lists' among them, each language once).
        with_prev = {re.sub(r"(:ranked)?:prev$", "", k)[len(self.prefix) + 1:]
                     for k in re.findall(r'"([^"]*)"', redis(
                         "KEYS", self.prefix + ":*:prev"))}
        self.assertIn(key[len(self.prefix) + 1:], with_prev)
        res = self.env.nightshift("stopwords", "rollback", "--job", self.job,
                                  "-c", self.cfg)
        n = int(re.search(r"of (\d+) languages", res.stdout).group(1))
        self.assertEqual(n, len(with_prev), with_prev)
        self.assertEqual(hash_of(key), cur)
        self.assertEqual(ranked_of(key + ":ranked"), cur_r)
        self.assertFalse([x for x in re.findall(r'"([^"]*)"', redis(
            "SMEMBERS", self.prefix + ":langs")) if ":" in x])
        # Twice more (each call swaps every language): French current again.
        for _ in range(2):
            self.env.nightshift("stopwords", "rollback", "--job", self.job,
                                "-c", self.cfg)
        self.assertEqual(hash_of(key), cur)
        self.assertEqual(ranked_of(key + ":ranked"), cur_r)
        res = self.env.nightshift("stopwords", "rollback", "--job", self.job,
                                  "--lang", "xx", "-c", self.cfg,
                                  check=False)
        self.assertEqual(res.returncode, 1)
        self.assertIn("nothing to roll back", res.stdout)

    def test_3c_a_run_ends_when_its_merge_does(self):
        # The run's finished_at is when its finalizer committed, not when
        # the finalizer's transaction began (now()): the merge is held at
        # the totals' row lock, and the run must end after its release.
        # The end is announced on nightshift_runs (migration 015).
        import psycopg2
        env = self.env
        listener = psycopg2.connect(env.dsn)
        listener.autocommit = True
        listener.cursor().execute("LISTEN nightshift_runs")
        holder = psycopg2.connect(env.dsn)
        cur = holder.cursor()
        cur.execute("SELECT 1 FROM stopword_totals WHERE job = %s FOR UPDATE",
                    (self.full,))
        self.assertEqual(cur.rowcount, 1)
        res = env.nightshift("run", self.full, "-c", self.cfg)
        run_id = int(re.search(r"run (\d+) of", res.stdout).group(1))
        harness.wait_for(lambda: env.scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = "
            "'Lock' AND query LIKE 'SELECT data FROM stopword_totals%%'"),
            120, "the merge waiting for the totals' row")
        released = env.scalar("SELECT clock_timestamp()")
        holder.commit()
        holder.close()
        harness.wait_for(lambda: env.scalar(
            "SELECT status FROM runs WHERE run_id = %s AND status = "
            "'succeeded'", (run_id,)), 120, "the run's end")
        self.assertGreater(env.scalar(
            "SELECT finished_at FROM runs WHERE run_id = %s", (run_id,)),
            released)

        def announced():
            listener.poll()
            return [n.payload for n in listener.notifies
                    if n.payload == str(run_id)]
        # pending -> running -> finalizing -> succeeded
        harness.wait_for(lambda: len(announced()) >= 3, 30,
                         "the run's changes of status announced")
        listener.close()

    def test_4_a_worker_killed_mid_run_resumes(self):
        # A third job over a table of its own with many small shards, so
        # that a worker dies with shards counted, shards in flight and
        # shards not started; the run finishes on the survivor and equals
        # a full recount (the swfull-style reference job) exactly.
        env = self.env
        env.sql("CREATE TABLE docs_crash (LIKE documents INCLUDING ALL)")
        rng = random.Random(11)
        for i in range(2000):
            lang, body = document(rng)
            env.sql("INSERT INTO docs_crash (id, lang, body) VALUES "
                    "(%s, %s, %s)", (i, lang, body))
        crash, ref = env.job("swcrash"), env.job("swref")
        job = ("  - name: %s\n"
               "    source: {type: shards, table: docs_crash, shard_size: 5}\n"
               "    handler: stopwords.count\n"
               "    finalizer: stopwords.merge\n"
               "    max_parallelism: 4\n"
               "    params: {redis_prefix: %s}\n")
        cfg = env.config("jobs:\n" + job % (crash, crash) + job % (ref, ref),
                         name="crash.yaml")
        workers = [env.start("worker", "-c", cfg, log="crash-w%d" % i)
                   for i in range(2)]
        for w in workers:
            env.wait_log(w, "assigned")
        res = env.nightshift("run", crash, "-c", cfg)
        run_id = int(re.search(r"run (\d+) of", res.stdout).group(1))
        harness.wait_for(lambda: env.scalar(
            "SELECT count(*) FROM items WHERE run_id = %s AND status = "
            "'done'", (run_id,)) >= 100, 120, "100 shards counted", 0.01)
        workers[0].send_signal(signal.SIGKILL)
        workers[0].wait(10)
        print("\n  killed a worker with %d of 400 shards counted" % env.scalar(
            "SELECT count(*) FROM items WHERE run_id = %s AND status = "
            "'done'", (run_id,)))
        status = harness.wait_for(lambda: env.scalar(
            "SELECT status FROM runs WHERE run_id = %s AND status IN "
            "('succeeded', 'failed')", (run_id,)), 180, "run end")
        self.assertEqual(status, "succeeded")
        self.assertEqual(env.scalar(
            "SELECT count(*) FROM stopword_partials WHERE job = %s",
            (crash,)), 400)
        ref_run = env.nightshift("run", ref, "--wait", "--timeout", "180",
                                 "-c", cfg)
        self.assertEqual(ref_run.returncode, 0)
        self.assertEqual(self.terms(crash), self.terms(ref))
        self.assertEqual(env.stop(workers[1]), 0)

    def test_4b_redis_failing_at_the_switch_keeps_the_sets(self):
        # Redis refuses writes (as without its replicas: reads still work,
        # the data stays): the merge fails before the switch, its
        # transaction rolls back, the current sets and totals stay; once
        # Redis takes writes again the finalizer's retry completes the run.
        env = self.env
        key = self.prefix + ":fr"
        before = hash_of(key)
        totals_run = env.scalar("SELECT run_id FROM stopword_totals WHERE "
                                "job = %s", (self.job,))
        env.sql("UPDATE documents SET body = 'Le soleil brille sur la mer "
                "et la plage.', lang = 'fr', updated_at = now() WHERE id = 7")
        redis("CONFIG", "SET", "min-replicas-to-write", "1")
        try:
            res = env.nightshift("run", self.job, "-c", self.cfg)
            run_id = int(re.search(r"run (\d+) of", res.stdout).group(1))

            def refused():
                for w in self.workers:
                    with open(w.log_path, errors="replace") as f:
                        if "NOREPLICAS" in f.read():
                            return True
                return False
            harness.wait_for(refused, 60, "the merge refused by Redis")
            self.assertEqual(env.scalar(
                "SELECT status FROM runs WHERE run_id = %s", (run_id,)),
                "finalizing")
            self.assertEqual(hash_of(key), before)
            self.assertEqual(env.scalar(
                "SELECT run_id FROM stopword_totals WHERE job = %s",
                (self.job,)), totals_run)
        finally:
            redis("CONFIG", "SET", "min-replicas-to-write", "0")
        self.assertEqual(harness.wait_for(lambda: env.scalar(
            "SELECT status FROM runs WHERE run_id = %s AND status IN "
            "('succeeded', 'failed')", (run_id,)), 90, "the retried merge"),
            "succeeded")
        self.assertEqual(env.scalar(
            "SELECT run_id FROM stopword_totals WHERE job = %s",
            (self.job,)), run_id)
        self.assertEqual(hash_of(key + ":prev"), before)

    def test_5_a_failed_shard_keeps_the_sets_and_alerts(self):
        # A table the handler cannot read (no body column): every shard
        # fails at once (a permanent error), the run fails, the merge
        # changes nothing and the job's Telegram chat hears of it.
        env = self.env
        # The outbox dispatcher of every worker serves the whole database:
        # the workers of the other cases (no Telegram configured) leave.
        for w in self.workers:
            if w.poll() is None:
                self.assertEqual(env.stop(w), 0)
        tg = harness.Fake(env, "fake_telegram.py", "--token",
                          env.env["NS_TELEGRAM_BOT_TOKEN"])
        env.sql("CREATE TABLE docs_bad (id bigint PRIMARY KEY, lang text, "
                "updated_at timestamptz NOT NULL DEFAULT now())")
        env.sql("INSERT INTO docs_bad (id) VALUES (1), (2), (3)")
        bad = env.job("swbad")
        cfg = env.config(
            "jobs:\n  - name: %s\n    source: {type: shards, table: "
            "docs_bad, shard_size: 2}\n    handler: stopwords.count\n"
            "    finalizer: stopwords.merge\n    retry: {max_attempts: 1}\n"
            "    notify: {telegram: {chat_id: \"77\"}}\n"
            "    params: {redis_prefix: %s}\n" % (bad, bad),
            name="bad.yaml", telegram=tg)
        w = env.start("worker", "-c", cfg, log="bad-w")
        env.wait_log(w, "assigned")
        res = env.nightshift("run", bad, "--wait", "--timeout", "120", "-c",
                             cfg, check=False)
        self.assertEqual(res.returncode, 1, res.stdout + res.stderr)
        self.assertIn("failed", res.stdout)
        self.assertEqual(env.scalar(
            "SELECT count(*) FROM stopword_totals WHERE job = %s", (bad,)), 0)
        self.assertEqual(redis("EXISTS", bad + ":langs").strip(),
                         "(integer) 0")
        texts = harness.wait_for(lambda: [
            m["json"]["text"] for m in tg.delivered("sendMessage")], 60,
            "the alert")
        self.assertEqual(len(texts), 1)
        self.assertIn("Stopword refresh failed", texts[0])
        self.assertIn("2 of 2 shard(s) failed", texts[0])
        self.assertEqual(env.stop(w), 0)

if __name__ == "__main__":
    harness.run(globals())
