"""Bad input on the real stack: poison messages in a job topic are marked
failed or dead-lettered with a clear reason, the worker keeps going and a
normal run still succeeds afterwards."""
import json
import os
import re
import subprocess
import unittest

import harness


class BadInputTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        env = cls.env = harness.Env("badinput")
        cls.llm = harness.Fake(env, "fake_llm.py")
        cls.tg = harness.Fake(env, "fake_telegram.py")
        cls.job = env.job("batch")
        cls.topic = "ns.items." + cls.job
        cls.cfg = env.config(
            "jobs:\n  - name: %s\n    source: {type: sql, query: \"SELECT id,"
            " name, description, status, progress FROM projects WHERE status"
            " = 'active' ORDER BY id\", key: id}\n"
            "    handler: analyzer.project\n    finalizer: analyzer.summary\n"
            "    notify: {telegram: {chat_id: \"${NS_TELEGRAM_CHAT_ID}\", mode: per_project}}\n"
            % cls.job, llm=cls.llm, telegram=cls.tg)
        env.sql("INSERT INTO projects (name, progress) VALUES ('Alpha', 5), "
                "('Beta', 7)")
        cls.worker = env.start("worker", "-c", cls.cfg)
        env.wait_log(cls.worker, "assigned")

    @classmethod
    def tearDownClass(cls):
        cls.env.close()

    def produce(self, key, value):
        path = os.path.join(self.env.tmp, "msg.bin")
        with open(path, "wb") as f:
            f.write(value)
        subprocess.run(["kcat", "-P", "-b", os.environ["NS_KAFKA_BROKERS"],
                        "-t", self.topic, "-k", key,
                        "-X", "message.max.bytes=16777216", path],
                       check=True, timeout=60)

    def envelope(self, **fields):
        doc = {"v": 1, "job": self.job, "run_id": 1, "item_key": "k",
               "attempt": 1, "dry_run": False, "payload": {}}
        doc.update(fields)
        return json.dumps(doc).encode()

    def dead_letter(self, key):
        return harness.wait_for(lambda: self.env.sql(
            "SELECT reason, length(payload) FROM dead_letters WHERE "
            "msg_key = %s::bytea", (key.encode(),)), 60, "dead letter " + key)

    def test_1_poison_messages(self):
        cases = [
            ("p-json", b"{not json", "bad input: malformed JSON"),
            ("p-utf8", b'{"v":1,"job":"\xff\xfe"}',
             "bad input: invalid UTF-8 at byte 14"),
            ("p-version", self.envelope(v=2),
             "bad input: unsupported envelope version 2"),
            ("p-job", self.envelope(job="no-such-job"),
             'bad input: unknown job "no-such-job"'),
            ("p-fields", self.envelope(run_id="seven"),
             'bad input: envelope field "run_id" missing or not a positive'),
            ("p-big", self.envelope(payload={"x": "a" * (10 << 20)}),
             "exceeds the limit of 1048576"),
            ("p-item", self.envelope(run_id=999999, item_key="ghost"),
             'bad input: run 999999 has no item "ghost"'),
        ]
        for key, value, _ in cases:
            self.produce(key, value)
        for key, value, reason in cases:
            rows = self.dead_letter(key)
            self.assertEqual(len(rows), 1, key)
            self.assertIn(reason, rows[0][0], key)
            # Nothing is lost: the original bytes are kept.
            self.assertEqual(rows[0][1], len(value), key)
        self.assertIsNone(self.worker.poll())

    def test_2_schema_violation_fails_its_item_and_the_run_goes_on(self):
        env = self.env
        res = env.nightshift("run", self.job, "--wait", "--timeout", "120",
                             "-c", self.cfg)
        good = int(re.search(r"run (\d+) of", res.stdout).group(1))
        self.assertEqual(env.scalar("SELECT status FROM runs WHERE run_id = "
                                    "%s", (good,)), "succeeded")
        # A real run whose item payload violates the handler's schema.
        env.sql("INSERT INTO runs (job, kind, status, items_total, "
                "emitted_at, started_at) VALUES (%s, 'manual', 'running', 1,"
                " now(), now())", (self.job,))
        run_id = env.scalar("SELECT max(run_id) FROM runs")
        env.sql("INSERT INTO items (run_id, item_key) VALUES (%s, 'bad')",
                (run_id,))
        self.produce("bad", self.envelope(run_id=run_id, item_key="bad",
                                          payload={"id": "not a number"}))
        status = harness.wait_for(lambda: env.scalar(
            "SELECT status FROM runs WHERE run_id = %s AND status IN "
            "('succeeded', 'failed')", (run_id,)), 60, "run end")
        self.assertEqual(status, "failed")
        err = env.scalar("SELECT error FROM items WHERE run_id = %s",
                         (run_id,))
        self.assertIn("bad input: payload has no numeric project id", err)
        self.assertIsNone(self.worker.poll())


if __name__ == "__main__":
    harness.run(globals())
