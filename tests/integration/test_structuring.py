"""Nightly structuring (seed 002) on the real stack: `structure.message`
sends each unprocessed raw message to a structurer — the fake
OpenAI-compatible API asked for JSON matching schemas/structure/answer.json,
or the fake seed webhook — validates the answer, writes the typed row and
marks the message processed in one transaction.

Cases: every type end to end through both kinds of structurer; an answer
that is not JSON repaired by one more request; answers that stay invalid or
name an unknown type failing with the reason (dead-lettered); a message
without text; re-structuring (`run --reprocess --type note`) moving rows
whose type changed, with their history; the dry run."""
import json
import os
import re
import unittest

import harness

RULE_TYPES = {  # the fakes' rule (tests/fakes/structurer_rule.py)
    "Team meeting on Monday at ten": "event",
    "todo: renew the passport, urgent": "task",
    "Where did we park the car?": "question",
    "[file] the signed contract": "file",
    "Just a thought about the garden": "note",
    "Привет 👋 שלום — заметка на полях": "note",
}


class StructuringTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        env = cls.env = harness.Env("structuring")
        cls.llm = harness.Fake(env, "fake_llm.py")
        cls.hook = harness.Fake(env, "fake_structurer.py")
        cls.job = env.job("structuring")
        cls.hook_job = env.job("hook")
        select = ("SELECT id, chat_id, user_id, message_text, message_type, "
                  "reply_to_text, is_clarification, file_id FROM "
                  "raw_messages")
        job = ("  - name: %s\n"
               "    timezone: Europe/Moscow\n"
               "    source:\n"
               "      type: sql\n"
               "      query: %s WHERE NOT is_processed ORDER BY id\n"
               "      key: id\n"
               "      order_key: chat_id\n"
               "      reprocess_query: %s WHERE is_processed AND ($1::"
               "timestamptz IS NULL OR created_at >= $1::timestamptz) AND "
               "($2::text IS NULL OR structured_type = $2::text) ORDER BY "
               "id\n"
               "    handler: structure.message\n"
               "    retry: {max_attempts: 2, backoff_seconds: 0.1,"
               " backoff_max_seconds: 0.2}\n"
               "    max_in_flight: 8\n"
               "    params: %s\n")
        cls.cfg = env.config(
            "jobs:\n" +
            job % (cls.job, select, select,
                   "{structurer: llm, version: llm-v1}") +
            job % (cls.hook_job, select, select,
                   "{structurer: webhook, webhook_url: \"%s/webhook/"
                   "digital-twin-ask\"}" % cls.hook.url),
            llm=cls.llm,
            extra="rate_limits:\n  structurer: \"50/s\"\n")
        cls.worker = env.start("worker", "-c", cls.cfg)
        env.wait_log(cls.worker, "assigned")
        cls.next_id = 0

    @classmethod
    def tearDownClass(cls):
        cls.env.close()

    def raw(self, chat, text, mtype="text", file_id=None):
        cls = type(self)
        cls.next_id += 1
        n = cls.next_id
        return self.env.scalar(
            "INSERT INTO raw_messages (update_id, chat_id, user_id, "
            "message_id, message_text, message_type, raw_telegram_json, "
            "file_id) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
            (n, chat, 7, n, text, mtype,
             json.dumps({"update_id": n, "message": {"text": text}}),
             file_id))

    def run_job(self, job, *flags, ok=True):
        res = self.env.nightshift("run", job, "--wait", "--timeout", "120",
                                  "-c", self.cfg, *flags, check=ok)
        return int(re.search(r"run (\d+) of", res.stdout).group(1)), res

    def state(self, raw_id):
        return self.env.sql(
            "SELECT is_processed, structured_type, structured_id, "
            "structurer_version FROM raw_messages WHERE id = %s",
            (raw_id,))[0]

    def row(self, table, raw_id, cols):
        rows = self.env.sql("SELECT %s FROM %s WHERE raw_message_id = %%s"
                            % (cols, table), (raw_id,))
        return rows[0] if rows else None

    def test_1_every_type_through_the_llm(self):
        fid = self.env.scalar(
            "INSERT INTO raw_files (user_id, chat_id, message_id, file_type, "
            "file_hash) VALUES (7, 1, 1, 'document', 'abc') RETURNING id")
        ids = {text: self.raw(1 + i % 2, text,
                              file_id=fid if "[file]" in text else None)
               for i, text in enumerate(RULE_TYPES)}
        no_text = self.raw(1, None, "sticker")
        caption_less = self.raw(1, None, "document", file_id=fid)
        run_id, _ = self.run_job(self.job)
        for text, want in RULE_TYPES.items():
            done, typ, row_id, version = self.state(ids[text])
            self.assertEqual((done, typ, version), (True, want, "llm-v1"),
                             text)
        self.assertEqual(self.row("events", ids["Team meeting on Monday at "
                                                "ten"],
                                  "title, starts_at IS NOT NULL"),
                         ("Team meeting on Monday at ten", True))
        self.assertEqual(self.row("tasks", ids["todo: renew the passport, "
                                               "urgent"],
                                  "priority, done, structurer_version"),
                         ("high", False, "llm-v1"))
        self.assertEqual(self.row("questions",
                                  ids["Where did we park the car?"],
                                  "question"),
                         ("Where did we park the car?",))
        self.assertEqual(self.row("files", ids["[file] the signed contract"],
                                  "raw_file_id"), (fid,))
        self.assertEqual(self.row("notes", ids["Привет 👋 שלום — заметка на "
                                               "полях"], "body"),
                         ("Привет 👋 שלום — заметка на полях",))
        # Without text: kept raw (processed, no row); a file stays a file.
        self.assertEqual(self.state(no_text)[:2], (True, None))
        self.assertEqual(self.state(caption_less)[1], "file")
        self.assertEqual(self.env.scalar(
            "SELECT status FROM runs WHERE run_id = %s", (run_id,)),
            "succeeded")

    def test_2_the_seed_webhook(self):
        a = self.raw(3, "Board meeting moved to Friday")
        b = self.raw(3, "Is the report ready?")
        self.run_job(self.hook_job)
        self.assertEqual(self.state(a)[1:2], ("event",))
        self.assertEqual(self.state(b)[1], "question")
        self.assertEqual(self.state(a)[3], "webhook")

    def test_3_one_repair_then_the_reason(self):
        repaired = self.raw(4, "Pick up the keys #invalid-once")
        hopeless = self.raw(4, "Nonsense #invalid-always")
        bad_data = self.raw(5, "Broken #bad-data")
        unknown = self.raw(6, "Cake #unknown-type")
        run_id, _ = self.run_job(self.job, ok=False)
        self.assertEqual(self.state(repaired)[:2], (True, "note"))
        for raw_id in (hopeless, bad_data, unknown):
            self.assertEqual(self.state(raw_id)[:2], (False, None))
        reasons = dict(self.env.sql(
            "SELECT item_key, error FROM items WHERE run_id = %s AND "
            "status = 'failed'", (run_id,)))
        self.assertIn("rejected after one repair: the answer is not JSON",
                      reasons[str(hopeless)])
        self.assertRegex(reasons[str(bad_data)],
                         r"data of a task: at .*: (missing required|expected)")
        self.assertIn('unknown type "recipe"', reasons[str(unknown)])
        self.assertEqual(self.env.scalar(
            "SELECT count(*) FROM dead_letters WHERE run_id = %s",
            (run_id,)), 3)
        # Left unprocessed: tonight's run asks again. Out of the way now.
        self.env.sql("UPDATE raw_messages SET is_processed = true WHERE id "
                     "IN (%s, %s, %s)", (hopeless, bad_data, unknown))

    def test_4_reprocess_moves_rows_with_history(self):
        a = self.raw(8, "Remember the blue door #reclassify")
        b = self.raw(8, "Another musing")
        self.run_job(self.job)
        note_id = self.state(a)[2]
        self.assertEqual(self.state(a)[1], "note")
        # The "model" now says task for it.
        self.llm.control("classify", {"reclassify": "task"})
        dry, res = self.run_job(self.job, "--reprocess", "--type", "note",
                                "--dry-run")
        self.assertIn("would move", res.stdout)
        self.assertEqual(self.state(a)[1], "note")  # nothing written
        run_id, _ = self.run_job(self.job, "--reprocess", "--type", "note")
        self.assertEqual(self.state(a)[1], "task")
        self.assertEqual(self.state(b)[1], "note")  # same type: stays
        self.assertIsNone(self.env.scalar(
            "SELECT id FROM notes WHERE id = %s", (note_id,)))
        move = self.env.sql(
            "SELECT from_type, to_type, from_row->>'title', run_id FROM "
            "structuring_moves WHERE raw_message_id = %s", (a,))
        self.assertEqual(move, [("note", "task",
                                 "Remember the blue door #reclassify",
                                 run_id)])
        # --since in the future selects nothing.
        later, _ = self.run_job(self.job, "--reprocess", "--since",
                                "2999-01-01T00:00:00Z")
        self.assertEqual(self.env.scalar(
            "SELECT items_total FROM runs WHERE run_id = %s", (later,)), 0)

    def test_5_dry_run_writes_nothing(self):
        a = self.raw(9, "Dentist meeting on Tuesday")
        _, res = self.run_job(self.job, "--dry-run")
        self.assertIn("would create", res.stdout)
        self.assertIn('"type":"event"', res.stdout.replace(" ", ""))
        self.assertEqual(self.state(a)[:2], (False, None))
        self.assertIsNone(self.row("events", a, "id"))


if __name__ == "__main__":
    harness.run(globals())
