"""Raw ingest (seed 002) on the real stack: `nightshift ingest` takes
Telegram's webhook calls (secret token checked) and appends each update to
its Kafka topic before answering; the stream job `ingest.telegram` stores
them raw — raw_updates, raw_messages, raw_files (content fetched with
getFile from the fake Bot API, stored once per sha256), message_chains
(atomic append) and bot_responses — once, whatever is delivered twice.

Cases: text, reply and edit; a redelivered update; files (the same file
twice, a photo, one too large); bad requests (401, 400, nothing stored)
and odd updates (unknown kinds, no text, 4096 characters, emoji and RTL,
garbage on the topic → dead letter); replies to one message processed
concurrently by two workers; a bot's own reply; Postgres down while
updates arrive (they wait in Kafka and are stored once it is back); Kafka
down (503, so Telegram delivers again; stored once)."""
import base64
import hashlib
import json
import os
import subprocess
import unittest
import urllib.error
import urllib.request
import uuid

import harness

STACK_SH = harness.STACK_SH


class IngestTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        env = cls.env = harness.Env("ingest")
        cls.tg = harness.Fake(env, "fake_telegram.py")
        cls.job = env.job("ingest")
        cls.topic = "ns.ingest.telegram-" + env.tag
        cls.secret = "s3cr3t_" + uuid.uuid4().hex
        cls.files = os.path.join(env.tmp, "files")
        extra = ("ingest: {port: 0, bind: 127.0.0.1, topic: %s, "
                 "secret_token: %s, partitions: 4, timeout_ms: 5000}\n"
                 % (cls.topic, cls.secret))
        cls.cfg = env.config(
            "jobs:\n"
            "  - name: %s\n"
            "    source: {type: stream, topic: %s}\n"
            "    handler: ingest.telegram\n"
            "    retry: {max_attempts: 3, backoff_seconds: 0.2,"
            " backoff_max_seconds: 1}\n"
            "    max_parallelism: 4\n"
            "    params: {files_dir: \"%s\", max_file_bytes: 100000}\n"
            % (cls.job, cls.topic, cls.files),
            telegram=cls.tg, extra=extra)
        port_file = os.path.join(env.tmp, "ingest.port")
        cls.ingest = env.start("ingest", "-c", cls.cfg, "--port-file",
                               port_file)
        harness.wait_for(lambda: os.path.exists(port_file), 60,
                         "ingest to listen")
        with open(port_file) as f:
            cls.url = "http://127.0.0.1:%s" % f.read().strip()
        cls.workers = [env.start("worker", "-c", cls.cfg, log="w%d" % i)
                       for i in range(2)]
        for w in cls.workers:
            env.wait_log(w, "assigned")
        cls.next_update = 1000

    @classmethod
    def tearDownClass(cls):
        cls.env.close()

    # -- helpers ------------------------------------------------------------
    def post(self, body, path="/telegram/webhook", secret=None, raw=None):
        data = raw if raw is not None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        if secret is not False:
            headers["X-Telegram-Bot-Api-Secret-Token"] = secret or self.secret
        req = urllib.request.Request(self.url + path, data=data,
                                     headers=headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"{}")

    def update(self, kind="message", body=None):
        cls = type(self)
        cls.next_update += 1
        return {"update_id": cls.next_update, kind: body}

    def message(self, chat, mid, text=None, user=7, **extra):
        m = {"message_id": mid, "date": 1764480000 + mid,
             "chat": {"id": chat, "type": "private"},
             "from": {"id": user, "is_bot": False, "first_name": "Ann"}}
        if text is not None:
            m["text"] = text
        m.update(extra)
        return m

    def send(self, kind="message", body=None):
        u = self.update(kind, body)
        status, body = self.post(u)
        self.assertEqual((status, body), (200, {"ok": True}))
        return u

    def stored(self, chat, mid):
        rows = self.env.sql(
            "SELECT message_text, message_type, reply_to_message_id, "
            "is_clarification, file_id, edited_at, is_processed, "
            "raw_telegram_json FROM raw_messages WHERE chat_id = %s AND "
            "message_id = %s", (chat, mid))
        return rows[0] if rows else None

    def wait_stored(self, chat, mid):
        return harness.wait_for(lambda: self.stored(chat, mid), 60,
                                "message %s/%s stored" % (chat, mid))

    def wait_update(self, update_id):
        harness.wait_for(lambda: self.env.scalar(
            "SELECT count(*) FROM raw_updates WHERE update_id = %s",
            (update_id,)), 60, "update %s stored" % update_id)

    # -- cases --------------------------------------------------------------
    def test_1_text_reply_and_edit(self):
        self.send("message", self.message(100, 1, "Hello"))
        self.send("message", self.message(
            100, 2, "I meant tomorrow",
            reply_to_message=self.message(100, 1, "Hello")))
        self.send("edited_message", self.message(100, 1, "Hello, edited",
                                                 edit_date=1764490000))
        harness.wait_for(lambda: (self.stored(100, 1) or [""])[0] ==
                         "Hello, edited", 60, "the edit")
        text, mtype, reply, clar, _, edited, processed, raw = \
            self.stored(100, 1)
        self.assertEqual((mtype, reply, clar, processed),
                         ("text", None, False, False))
        self.assertIsNotNone(edited)
        self.assertEqual(raw["edited_message"]["edit_date"], 1764490000)
        text, _, reply, clar, *_ = self.wait_stored(100, 2)
        self.assertEqual((reply, clar), (1, True))
        replies = self.env.scalar(
            "SELECT replies FROM message_chains WHERE chat_id = 100 AND "
            "original_message_id = 1")
        self.assertEqual([(r["reply_message_id"], r["reply_text"])
                          for r in replies], [(2, "I meant tomorrow")])
        self.assertEqual(self.env.scalar(
            "SELECT count(*) FROM raw_updates WHERE chat_id = 100"), 3)

    def test_2_a_redelivered_update_is_stored_once(self):
        u = self.send("message", self.message(101, 1, "once"))
        self.wait_stored(101, 1)
        for _ in range(3):
            self.assertEqual(self.post(u)[0], 200)
        # The chat's next update is stored after the redeliveries (one
        # chat, one partition, in order).
        self.send("message", self.message(101, 2, "next"))
        self.wait_stored(101, 2)
        self.assertEqual(self.env.scalar(
            "SELECT count(*) FROM raw_messages WHERE chat_id = 101"), 2)
        self.assertEqual(self.env.scalar(
            "SELECT count(*) FROM raw_updates WHERE update_id = %s",
            (u["update_id"],)), 1)

    def register(self, content, name):
        return self.tg.control("files", {
            "content_b64": base64.b64encode(content).decode(),
            "file_name": name})

    def test_3_files_are_fetched_and_stored_once(self):
        content = b"%PDF-1.4 report\x00\x01" + os.urandom(2000)
        f = self.register(content, "report.pdf")
        doc = {"file_id": f["file_id"], "file_unique_id": f["file_unique_id"],
               "file_name": "report.pdf", "mime_type": "application/pdf",
               "file_size": len(content)}
        self.send("message", self.message(102, 1, caption="the report",
                                       document=doc))
        self.send("message", self.message(102, 2, document=doc))  # again
        photo = self.register(b"\x89PNG fake photo " + os.urandom(500),
                              "photo.png")
        sizes = [{"file_id": "small-" + uuid.uuid4().hex,
                  "file_unique_id": "small-u", "width": 90, "height": 90},
                 {"file_id": photo["file_id"],
                  "file_unique_id": photo["file_unique_id"],
                  "width": 800, "height": 600, "file_size": 516}]
        self.send("message", self.message(102, 3, photo=sizes))
        big = {"file_id": "big-" + uuid.uuid4().hex,
               "file_unique_id": "big-" + uuid.uuid4().hex,
               "file_name": "movie.mp4", "file_size": 50_000_000}
        self.send("message", self.message(102, 4, video=big))
        for mid in (1, 2, 3, 4):
            self.wait_stored(102, mid)
        first, second, pic, movie = (self.stored(102, m)[4]
                                     for m in (1, 2, 3, 4))
        self.assertEqual(first, second)  # the same file, one row
        self.assertEqual(self.stored(102, 1)[:2], ("the report", "document"))
        self.assertIsNone(self.stored(102, 2)[0])
        sha = hashlib.sha256(content).hexdigest()
        path, fhash, ftype, name = self.env.sql(
            "SELECT file_path, file_hash, file_type, file_name FROM "
            "raw_files WHERE id = %s", (first,))[0]
        self.assertEqual((fhash, ftype, name), (sha, "document",
                                                "report.pdf"))
        self.assertEqual(path, os.path.join(self.files, sha[:2], sha))
        with open(path, "rb") as fh:
            self.assertEqual(fh.read(), content)
        self.assertEqual(self.env.scalar(
            "SELECT file_type FROM raw_files WHERE id = %s", (pic,)),
            "photo")
        # Too large to fetch: its metadata only.
        self.assertEqual(self.env.sql(
            "SELECT file_path, file_hash, file_size FROM raw_files WHERE "
            "id = %s", (movie,))[0], (None, None, 50_000_000))
        # getFile was asked once per stored file, not for the repeat.
        gets = [r for r in self.tg.requests() if r["path"].endswith(
            "/getFile")]
        self.assertEqual(len(gets), 2)

    def test_4_bad_requests_are_refused_and_odd_updates_kept(self):
        u = self.update("message", self.message(103, 1, "x"))
        self.assertEqual(self.post(u, secret="wrong")[0], 401)
        self.assertEqual(self.post(u, secret=False)[0], 401)
        self.assertEqual(self.post(None, raw=b"{not json")[0], 400)
        self.assertEqual(self.post(None, raw=b'{"update_id": 1, "m": '
                                   b'"\xff\xfe"}')[0], 400)
        self.assertEqual(self.post({"message": {}})[0], 400)
        self.assertEqual(self.post([1, 2])[0], 400)
        long_text = ("Привет 👋 שלום עולם مرحبا " * 200)[:4096]
        self.send("message", self.message(103, 2, long_text,
                                       some_future_field={"x": 1}))
        self.send("message", self.message(103, 3, sticker={
            "file_id": "st-" + uuid.uuid4().hex,
            "file_unique_id": "st-u-" + uuid.uuid4().hex,
            "file_size": 10_000_000, "emoji": "🙂"}))
        poll = self.send("poll", {"id": "p1", "question": "Lunch?",
                                  "options": []})
        # Garbage on the topic itself (not through ingest): dead-lettered
        # with its reason, and the chat goes on.
        subprocess.run(["kcat", "-P", "-b", os.environ["NS_KAFKA_BROKERS"],
                        "-t", self.topic, "-k", "103"],
                       input=b"not json {", check=True, timeout=60)
        self.send("message", self.message(103, 4, "after the garbage"))
        self.wait_stored(103, 4)
        self.wait_update(poll["update_id"])
        text, mtype, *_ = self.stored(103, 2)
        self.assertEqual(text, long_text)
        self.assertEqual(self.stored(103, 2)[7]["message"]
                         ["some_future_field"], {"x": 1})
        self.assertEqual(self.stored(103, 3)[:2], (None, "sticker"))
        self.assertIsNone(self.stored(103, 1))  # refused: never appended
        self.assertEqual(self.env.scalar(
            "SELECT kind FROM raw_updates WHERE update_id = %s",
            (poll["update_id"],)), "poll")
        reason = harness.wait_for(lambda: self.env.scalar(
            "SELECT reason FROM dead_letters WHERE topic = %s",
            (self.topic,)), 60, "the dead letter")
        self.assertIn("not a JSON object", reason)

    def test_5_concurrent_replies_all_join_the_chain(self):
        self.send("message", self.message(104, 1, "Original"))
        self.wait_stored(104, 1)
        # Straight onto the topic with different keys, so both workers
        # take replies of one chain at once.
        n = 40
        lines = []
        for i in range(n):
            u = self.update("message", self.message(
                104, 100 + i, "reply %d" % i, user=7 + i % 3,
                reply_to_message=self.message(104, 1, "Original")))
            lines.append("k%d\t%s" % (i, json.dumps(u)))
        subprocess.run(["kcat", "-P", "-b", os.environ["NS_KAFKA_BROKERS"],
                        "-t", self.topic, "-K", "\t"],
                       input="\n".join(lines).encode(), check=True,
                       timeout=60)
        harness.wait_for(lambda: self.env.scalar(
            "SELECT count(*) FROM raw_messages WHERE chat_id = 104") ==
            n + 1, 120, "the replies")
        replies = self.env.scalar(
            "SELECT replies FROM message_chains WHERE chat_id = 104 AND "
            "original_message_id = 1")
        ids = sorted(r["reply_message_id"] for r in replies)
        self.assertEqual(ids, list(range(100, 100 + n)))

    def test_6_a_bot_reply_is_a_bot_response(self):
        self.send("message", self.message(105, 1, "Question?"))
        self.send("message", self.message(
            105, 2, "More detail", reply_to_message=self.message(
                105, 1, "Question?")))
        self.wait_stored(105, 2)
        answer = {"message_id": 3, "date": 1764480100,
                  "chat": {"id": 105, "type": "private"},
                  "from": {"id": 999, "is_bot": True, "first_name": "bot"},
                  "text": "Here is the answer",
                  "reply_to_message": self.message(105, 1, "Question?")}
        self.assertEqual(self.post(answer, "/telegram/bot-response")[0], 200)
        self.assertEqual(self.post(answer, "/telegram/bot-response")[0], 200)
        self.assertEqual(self.post({"text": "no chat"},
                                   "/telegram/bot-response")[0], 400)
        row = harness.wait_for(lambda: self.env.sql(
            "SELECT user_id, response_text, related_user_message_id, "
            "chain_id = (SELECT chain_id FROM message_chains WHERE "
            "chat_id = 105 AND original_message_id = 1) FROM bot_responses "
            "WHERE chat_id = 105"), 60, "the bot response")
        self.assertEqual(row, [(7, "Here is the answer", 1, True)])

    def test_7_postgres_down_updates_wait_in_kafka(self):
        if not harness.stack_matches("NS_PG_DSN"):
            self.skipTest("needs NS_STACK_DIR of the stack in use")
        subprocess.run(["bash", STACK_SH, "stop", "postgres"], check=True,
                       capture_output=True, timeout=180)
        try:
            for mid in range(1, 6):
                self.send("message", self.message(106, mid, "while down %d"
                                               % mid))
        finally:
            subprocess.run(["bash", STACK_SH, "start", "postgres"],
                           check=True, capture_output=True, timeout=180)
            self.env.pg().close()  # the test's own session died with it
        harness.wait_for(lambda: self.env.scalar(
            "SELECT count(*) FROM raw_messages WHERE chat_id = 106") == 5,
            120, "the updates that waited")
        self.assertEqual([r[0] for r in self.env.sql(
            "SELECT message_text FROM raw_messages WHERE chat_id = 106 "
            "ORDER BY id")], ["while down %d" % i for i in range(1, 6)])

    def test_8_kafka_down_means_503_and_nothing_lost(self):
        if not harness.stack_matches("NS_PG_DSN"):
            self.skipTest("needs NS_STACK_DIR of the stack in use")
        u = self.update("message", self.message(107, 1, "while Kafka is "
                                                "down"))
        subprocess.run(["bash", STACK_SH, "stop", "kafka"], check=True,
                       capture_output=True, timeout=180)
        try:
            # Not acknowledged by Kafka in timeout_ms: 503, so Telegram
            # delivers it again (a 200 would lose it).
            status, body = self.post(u)
            self.assertEqual(status, 503)
            self.assertIn("retry later", body["description"])
        finally:
            subprocess.run(["bash", STACK_SH, "start", "kafka"], check=True,
                           capture_output=True, timeout=300)
        # Telegram's next delivery is taken, and stored once (an append
        # that timed out may still have reached Kafka).
        harness.wait_for(lambda: self.post(u)[0] == 200, 180,
                         "ingest to take updates again")
        self.wait_stored(107, 1)
        self.send("message", self.message(107, 2, "and the next one"))
        self.wait_stored(107, 2)
        self.assertEqual(self.env.scalar(
            "SELECT count(*) FROM raw_updates WHERE update_id = %s",
            (u["update_id"],)), 1)


if __name__ == "__main__":
    harness.run(globals())
