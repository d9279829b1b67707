"""Dead letters on the real stack: the webhook.post handler against the
fake webhook, then `nightshift dlq list / show / replay` — a run whose 20
items all fail permanently is replayed after the receiver is fixed, each
item is delivered exactly once, a second replay changes nothing, and a
poison message replays into a new dead letter without harm."""
import collections
import json
import os
import re
import subprocess
import unittest

import harness

N_ITEMS = 20


class DlqTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        env = cls.env = harness.Env("dlq")
        cls.hook = harness.Fake(env, "fake_webhook.py")
        cls.job = env.job("hook")
        cls.one = env.job("hookone")
        cls.topic = "ns.items." + cls.job
        job = ("  - name: %s\n"
               "    source: {type: sql, query: \"%s\", key: id}\n"
               "    handler: webhook.post\n"
               "    params: {url: \"%s/hook/%s\", timeout_seconds: 5}\n"
               "    retry: {max_attempts: 3, backoff_seconds: 0.2, "
               "backoff_max_seconds: 1}\n"
               "    max_parallelism: 2\n")
        cls.cfg = env.config(
            "jobs:\n" +
            job % (cls.job, "SELECT g AS id FROM generate_series(1, %d) g"
                   % N_ITEMS, cls.hook.url, cls.job) +
            job % (cls.one, "SELECT 1 AS id", cls.hook.url, cls.one))
        cls.worker = env.start("worker", "-c", cls.cfg)
        env.wait_log(cls.worker, "assigned")

    @classmethod
    def tearDownClass(cls):
        cls.env.close()

    # -- helpers ----------------------------------------------------------
    def ns(self, *args, check=True):
        return self.env.nightshift(*(args + ("-c", self.cfg)), check=check)

    def run_job(self, job, *flags):
        res = self.ns("run", job, "--wait", "--timeout", "120", *flags,
                      check=False)
        run_id = int(re.search(r"run (\d+) of", res.stdout).group(1))
        return run_id, res

    def posts(self, job, status=None):
        """Requests the fake received for job (status: only those)."""
        return [r for r in self.hook.requests()
                if r["path"] == "/hook/" + job and
                (status is None or r["status"] == status)]

    def run_posts(self, job, run_id):
        return [r for r in self.posts(job) if r["headers"].get(
            "idempotency-key", "").startswith("%d:" % run_id)]

    def run_status(self, run_id):
        return self.env.scalar("SELECT status FROM runs WHERE run_id = %s",
                               (run_id,))

    def wait_run(self, run_id, status):
        harness.wait_for(lambda: self.run_status(run_id) == status, 90,
                         "run %d %s" % (run_id, status))

    def replay(self, *args):
        res = self.ns("dlq", "replay", *args)
        print(res.stdout.rstrip().splitlines()[-1])
        return res.stdout

    def produce_poison(self, key, value):
        path = os.path.join(self.env.tmp, "poison.bin")
        with open(path, "wb") as f:
            f.write(value)
        subprocess.run(["kcat", "-P", "-b", os.environ["NS_KAFKA_BROKERS"],
                        "-t", self.topic, "-k", key, path],
                       check=True, timeout=60)

    # -- the webhook handler -----------------------------------------------
    def test_1_webhook_handler(self):
        env, hook = self.env, self.hook
        hook.reset()
        # 200: done at the first attempt, the item's payload as the body.
        run_id, res = self.run_job(self.one)
        self.assertEqual(res.returncode, 0, res.stderr[-2000:])
        posts = self.run_posts(self.one, run_id)
        self.assertEqual([(p["status"], p["json"]) for p in posts],
                         [(200, {"id": 1})])
        self.assertEqual(posts[0]["headers"]["content-type"],
                         "application/json")
        # 500 then 200: retried, done.
        hook.faults({"kind": "status", "status": 500})
        run_id, res = self.run_job(self.one)
        self.assertEqual(res.returncode, 0, res.stderr[-2000:])
        self.assertEqual([p["status"] for p in self.run_posts(self.one,
                                                               run_id)],
                         [500, 200])
        self.assertEqual(env.scalar("SELECT attempts FROM items WHERE "
                                    "run_id = %s", (run_id,)), 2)
        # 400: failed at once, no retry, dead-lettered.
        hook.control("config", {"status": 400})
        try:
            run_id, res = self.run_job(self.one)
        finally:
            hook.control("config", {"status": 200})
        self.assertEqual(res.returncode, 1)
        self.assertEqual(self.run_status(run_id), "failed")
        self.assertEqual([p["status"] for p in self.run_posts(self.one,
                                                               run_id)],
                         [400])
        status, error = env.sql("SELECT status, error FROM items WHERE "
                                "run_id = %s", (run_id,))[0]
        self.assertEqual(status, "failed")
        self.assertIn("webhook.post: HTTP 400 (after 1 attempt)", error)
        self.assertEqual(env.scalar(
            "SELECT count(*) FROM dead_letters WHERE run_id = %s", (run_id,)),
            1)
        # Dry run: reported, nothing POSTed.
        before = len(self.posts(self.one))
        run_id, res = self.run_job(self.one, "--dry-run")
        self.assertEqual(res.returncode, 0, res.stderr[-2000:])
        self.assertEqual(len(self.posts(self.one)), before)
        self.assertIn("webhook.post", res.stdout)
        report = env.scalar("SELECT report::text FROM items WHERE run_id = "
                            "%s", (run_id,))
        self.assertIn("/hook/" + self.one, report)

    # -- dlq list / show / replay -----------------------------------------
    def test_1b_retries_of_other_deployments_are_left_alone(self):
        # The retry tiers are shared by every deployment on the cluster: a
        # retry whose job is not in this worker's config is not handed
        # back (a new group reads the tiers from the start, and used to
        # re-inject every old retry of every other deployment, one
        # synchronous produce each). One waits in front of each partition
        # of ns.retry.5s, then an item of ours is retried through it.
        brokers = os.environ["NS_KAFKA_BROKERS"]
        foreign = "ns.items.foreign-" + self.env.tag
        marker = os.path.join(self.env.tmp, "marker")
        with open(marker, "w") as f:
            f.write("marker")
        subprocess.run(["kcat", "-P", "-b", brokers, "-t", foreign, marker],
                       check=True, timeout=60)
        for p in range(4):
            subprocess.run(["kcat", "-P", "-b", brokers, "-t", "ns.retry.5s",
                            "-p", str(p), "-k", "foreign-%d" % p,
                            "-H", "ns-origin-topic=" + foreign,
                            "-H", "ns-not-before=0", marker],
                           check=True, timeout=60)
        self.hook.faults({"kind": "status", "status": 500})
        run_id, res = self.run_job(self.one)
        self.assertEqual(res.returncode, 0, res.stderr[-2000:])
        self.assertEqual([p["status"] for p in self.run_posts(self.one,
                                                               run_id)],
                         [500, 200])
        out = subprocess.run(["kcat", "-C", "-b", brokers, "-t", foreign,
                              "-o", "beginning", "-e", "-q"],
                             capture_output=True, text=True, timeout=60,
                             check=True).stdout
        self.assertEqual(out.split(), ["marker"])

    def test_2_all_items_fail_into_dead_letters(self):
        env = self.env
        self.hook.control("config", {"status": 400})
        run_id, res = self.run_job(self.job)
        self.__class__.run_id = run_id
        self.assertEqual(res.returncode, 1, res.stdout + res.stderr[-2000:])
        self.assertEqual(self.run_status(run_id), "failed")
        self.assertEqual(env.scalar(
            "SELECT count(*) FROM items WHERE run_id = %s AND status = "
            "'failed'", (run_id,)), N_ITEMS)
        self.assertEqual(env.scalar(
            "SELECT count(*) FROM dead_letters WHERE run_id = %s", (run_id,)),
            N_ITEMS)
        self.assertEqual(len(self.posts(self.job, 400)), N_ITEMS)

    def test_3_list(self):
        out = self.ns("dlq", "list", "--job", self.job).stdout
        print(out)
        lines = out.splitlines()
        self.assertTrue(lines[0].startswith("ID "), out)
        self.assertEqual(len(lines), 1 + N_ITEMS, out)
        for line in lines[1:]:
            self.assertIn(self.job, line)
            self.assertIn("webhook.post: HTTP 400", line)
        doc = json.loads(self.ns("dlq", "list", "--job", self.job,
                                 "--json").stdout)
        letters = doc["dead_letters"]
        self.assertEqual(doc["total"], N_ITEMS)
        ids = [d["id"] for d in letters]
        self.assertEqual(ids, sorted(ids, reverse=True))  # newest first
        self.assertEqual(sorted(int(d["item_key"]) for d in letters),
                         list(range(1, N_ITEMS + 1)))
        for d in letters:
            self.assertEqual(d["job"], self.job)
            self.assertEqual(d["run_id"], self.run_id)
            self.assertEqual(d["attempts"], 1)
            self.assertEqual(d["replay_count"], 0)
            self.assertEqual(d["reason"],
                             "webhook.post: HTTP 400 (after 1 attempt)")
        recent = json.loads(self.ns("dlq", "list", "--job", self.job,
                                    "--since", "1h", "--json").stdout)
        self.assertEqual(len(recent["dead_letters"]), N_ITEMS)
        future = self.ns("dlq", "list", "--job", self.job, "--since",
                         "2099-01-01")
        self.assertEqual(future.stdout.strip(), "no dead letters")
        future = json.loads(self.ns("dlq", "list", "--job", self.job,
                                    "--since", "2099-01-01T00:00:00Z",
                                    "--json").stdout)
        self.assertEqual(future["dead_letters"], [])
        limited = self.ns("dlq", "list", "--job", self.job, "--limit", "5")
        self.assertIn("(15 older not shown", limited.stdout)
        bad = self.ns("dlq", "list", "--since", "yesterday", check=False)
        self.assertEqual(bad.returncode, 2)
        self.assertIn("--since \"yesterday\"", bad.stderr)

    def test_4_show(self):
        env = self.env
        dl_id, topic, partition, offset = env.sql(
            "SELECT id, topic, partition, \"offset\" FROM dead_letters WHERE "
            "run_id = %s AND item_key = '7'", (self.run_id,))[0]
        out = self.ns("dlq", "show", str(dl_id)).stdout
        print(out)
        self.assertIn("dead letter %d" % dl_id, out)
        self.assertIn("webhook.post: HTTP 400 (after 1 attempt)", out)
        self.assertIn("handler         webhook.post", out)
        self.assertIn("%s partition %d offset %d" % (topic, partition,
                                                     offset), out)
        self.assertIn("payload (json,", out)
        self.assertRegex(out, r'"item_key":\s+"7"')
        self.assertRegex(out, r'"payload":\s+\{\s+"id":\s+7\s+\}')
        doc = json.loads(self.ns("dlq", "show", str(dl_id), "--json").stdout)
        self.assertEqual(doc["payload"]["payload"], {"id": 7})
        self.assertEqual(doc["payload"]["run_id"], self.run_id)
        self.assertEqual((doc["topic"], doc["partition"], doc["offset"]),
                         (topic, partition, offset))
        self.assertEqual(doc["item_status"], "failed")
        self.assertEqual(doc["handler"], "webhook.post")
        self.assertIsNotNone(doc["first_failed_at"])
        missing = self.ns("dlq", "show", "99999999", check=False)
        self.assertEqual(missing.returncode, 1)
        self.assertEqual(self.ns("dlq", "show", "x", check=False).returncode,
                         2)

    def test_5_replay_one_item(self):
        env = self.env
        self.hook.control("config", {"status": 200})
        # Without a reachable broker nothing is reopened.
        down = dict(env.env, NS_KAFKA_BROKERS="127.0.0.1:1")
        res = env.nightshift("dlq", "replay", "--job", self.job, "--item",
                             "3", "-c", self.cfg, check=False, env=down)
        self.assertEqual(res.returncode, 1, res.stdout + res.stderr)
        self.assertIn("no Kafka broker answers", res.stderr)
        self.assertIn("nothing changed", res.stderr)
        self.assertEqual(self.run_status(self.run_id), "failed")
        self.assertEqual(env.scalar(
            "SELECT count(*) FROM items WHERE run_id = %s AND status = "
            "'failed'", (self.run_id,)), N_ITEMS)
        out = self.replay("--job", self.job, "--item", "3")
        self.assertIn("replayed 1 dead letter (1 item reopened, 1 run "
                      "reopened)", out)
        self.assertRegex(out, r"(?m)^replayed #\d+ run %d item 3 -> %s "
                         r"\(item and run reopened\)$"
                         % (self.run_id, re.escape(self.topic)))
        harness.wait_for(lambda: env.scalar(
            "SELECT status FROM items WHERE run_id = %s AND item_key = '3'",
            (self.run_id,)) == "done", 60, "item 3 done")
        # The other 19 still failed: the run finishes failed again.
        self.wait_run(self.run_id, "failed")
        self.assertEqual([p["json"] for p in self.posts(self.job, 200)],
                         [{"id": 3}])

    def test_6_dry_run_changes_nothing(self):
        env = self.env
        out = self.replay("--job", self.job, "--dry-run")
        self.assertIn("would replay 19 dead letters (19 items reopened, 1 run "
                      "reopened, 1 skipped: already done); nothing changed",
                      out)
        self.assertEqual(len(re.findall(r"^would replay #", out, re.M)), 19)
        self.assertEqual(env.scalar(
            "SELECT count(*) FROM items WHERE run_id = %s AND status = "
            "'failed'", (self.run_id,)), 19)
        self.assertEqual(self.run_status(self.run_id), "failed")
        self.assertEqual(env.scalar(
            "SELECT sum(replay_count) FROM dead_letters WHERE run_id = %s",
            (self.run_id,)), 1)

    def test_7_replay_the_job(self):
        env = self.env
        out = self.replay("--job", self.job)
        self.assertIn("replayed 19 dead letters (19 items reopened, 1 run "
                      "reopened, 1 skipped: already done)", out)
        self.wait_run(self.run_id, "succeeded")
        self.assertEqual(env.scalar(
            "SELECT count(*) FROM items WHERE run_id = %s AND status = "
            "'done'", (self.run_id,)), N_ITEMS)
        delivered = collections.Counter(
            p["json"]["id"] for p in self.posts(self.job, 200))
        self.assertEqual(delivered, {i: 1 for i in range(1, N_ITEMS + 1)})
        rows = env.sql("SELECT replay_count, replayed_at IS NOT NULL FROM "
                       "dead_letters WHERE run_id = %s", (self.run_id,))
        self.assertEqual(rows, [(1, True)] * N_ITEMS)

    def test_8_second_replay_processes_nothing_twice(self):
        env = self.env
        out = self.replay("--job", self.job)
        self.assertIn("replayed 0 dead letters (20 skipped: already done)",
                      out)
        dl_id = env.scalar("SELECT min(id) FROM dead_letters WHERE run_id = "
                           "%s", (self.run_id,))
        out = self.replay("--id", str(dl_id))
        self.assertIn("replayed 0 dead letters (1 skipped: already done)", out)
        self.assertEqual(self.run_status(self.run_id), "succeeded")
        self.assertEqual(env.scalar(
            "SELECT count(*) FROM items WHERE run_id = %s AND status = "
            "'done'", (self.run_id,)), N_ITEMS)
        delivered = collections.Counter(
            p["json"]["id"] for p in self.posts(self.job, 200))
        self.assertEqual(delivered, {i: 1 for i in range(1, N_ITEMS + 1)})
        self.assertEqual(env.scalar(
            "SELECT max(replay_count) FROM dead_letters WHERE run_id = %s",
            (self.run_id,)), 1)

    def test_9_poison_replays_into_a_new_dead_letter(self):
        env = self.env
        self.produce_poison("poison", b"{not json")

        def rows():
            return env.sql("SELECT id, reason, replay_count FROM dead_letters "
                           "WHERE msg_key = 'poison'::bytea ORDER BY id")
        first = harness.wait_for(rows, 60, "poison dead letter")[0]
        self.assertIn("bad input: malformed JSON", first[1])
        listed = self.ns("dlq", "list", "--job", self.job).stdout
        print(listed.splitlines()[0] + "\n" + listed.splitlines()[1])
        self.assertRegex(listed, r"(?m)^%d .* poison .*malformed JSON"
                         % first[0])
        shown = self.ns("dlq", "show", str(first[0])).stdout
        print(shown)
        self.assertIn("payload (not JSON, 9 bytes)", shown)
        self.assertIn("|{not json|", shown)
        out = self.replay("--item", "poison")
        self.assertIn("replayed 1 dead letter", out)
        self.assertIn("-> " + self.topic, out)
        both = harness.wait_for(lambda: len(rows()) == 2 and rows(), 60,
                                "second poison dead letter")
        self.assertEqual(both[1][1], first[1])  # the same reason again
        self.assertEqual(both[0][2], 1)  # the first one was replayed
        # The replayed row is superseded by the new one: a replay of
        # everything puts the message back once, not twice.
        plan = self.ns("dlq", "replay", "--item", "poison",
                       "--dry-run").stdout
        print(plan)
        self.assertIn("would skip #%d item poison: superseded by #%d"
                      % (both[0][0], both[1][0]), plan)
        self.assertIn("would replay #%d" % both[1][0], plan)
        history = self.ns("dlq", "show", str(both[1][0])).stdout
        self.assertIn("history of this message:", history)
        self.assertIsNone(self.worker.poll(), "the worker is still running")
        self.assertEqual(self.run_status(self.run_id), "succeeded")

    def test_usage(self):
        for args in (("dlq",), ("dlq", "replay"), ("dlq", "frobnicate"),
                     ("dlq", "show"), ("dlq", "replay", "--id", "x")):
            res = self.ns(*args, check=False)
            self.assertEqual(res.returncode, 2, args)


if __name__ == "__main__":
    harness.run(globals())
