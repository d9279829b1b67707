#!/usr/bin/env python3
"""Self-test of the HTTP fakes (stdlib only): python3 tests/fakes/test_fakes.py

Starts fake_llm.py, fake_telegram.py, fake_webhook.py and fake_structurer.py on
ephemeral ports (--port-file), exercises success paths, every fault kind, Telegram's
4096 limit and HTML validation, token redaction in the request log, the structurer
rule (structurer_rule.py) with its markers and repairs in both the LLM's json_schema
mode and the webhook, rate limits (429) and stats, and stops them with SIGTERM (exit
code 0 expected).
"""

import hashlib
import http.client
import json
import os
import shutil
import signal
import subprocess
import threading
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import structurer_rule  # noqa: E402
TOKEN = "123456:TEST-secret_token"
API_KEY = "sk-test-key-0123456789"


class Fake:
    def __init__(self, script, *args):
        self.dir = tempfile.mkdtemp(prefix="nsfake-")
        self.port_file = os.path.join(self.dir, "port")
        self.stderr = open(os.path.join(self.dir, "stderr"), "w+")
        # cwd elsewhere on purpose: the fake must find fakecommon.py by itself
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(HERE, script), "--port", "0",
             "--port-file", self.port_file, *args],
            cwd=self.dir, stdout=subprocess.DEVNULL, stderr=self.stderr)
        deadline = time.time() + 15
        while not os.path.exists(self.port_file):
            if self.proc.poll() is not None or time.time() > deadline:
                self.stderr.seek(0)
                raise RuntimeError("%s did not start: %s" % (script, self.stderr.read()))
            time.sleep(0.02)
        with open(self.port_file) as f:
            self.port = int(f.read().strip())

    def request(self, method, path, body=None, headers=None, timeout=10):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            if isinstance(body, (dict, list)):
                body = json.dumps(body).encode()
                headers = dict({"Content-Type": "application/json"}, **(headers or {}))
            elif isinstance(body, str):
                body = body.encode()
            conn.request(method, path, body=body, headers=headers or {})
            r = conn.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        finally:
            conn.close()

    def json(self, method, path, body=None, headers=None, timeout=10):
        st, h, data = self.request(method, path, body, headers, timeout)
        return st, h, json.loads(data)

    def control(self, method, name, body=None):
        st, _, data = self.json(method, "/_control/" + name, body)
        assert st == 200, (st, data)
        return data

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(10)
        self.stderr.close()
        gone = not os.path.exists(self.port_file)
        shutil.rmtree(self.dir, ignore_errors=True)
        return rc, gone


def multipart(fields, files=()):
    boundary = "----nsfakeboundary7MA4YWxkTrZu0gW"
    out = []
    for k, v in fields.items():
        out.append(("--%s\r\nContent-Disposition: form-data; name=\"%s\"\r\n\r\n" % (boundary, k)).encode())
        out.append(v.encode() + b"\r\n")
    for name, filename, ctype, data in files:
        out.append(("--%s\r\nContent-Disposition: form-data; name=\"%s\"; filename=\"%s\"\r\n"
                    "Content-Type: %s\r\n\r\n" % (boundary, name, filename, ctype)).encode())
        out.append(data + b"\r\n")
    out.append(("--%s--\r\n" % boundary).encode())
    return b"".join(out), {"Content-Type": "multipart/form-data; boundary=" + boundary}


def expected_content(user_text):
    h = hashlib.sha256(user_text.encode("utf-8")).hexdigest()[:12]
    return "ANALYSIS(%s)\n1. Assessment: ok\n2. Risks: none\n3. Next steps: continue" % h


SAMPLES = [
    ("Team meeting on Friday", "event"),
    ("Встреча с Иваном в 10", "event"),
    ("TODO: buy milk, urgent", "task"),
    ("надо сделать отчёт", "task"),
    ("meeting todo", "event"),                      # event wins over task
    ("Where is the report?  \n", "question"),
    ("[FILE] scan.pdf", "file"),
    ("  just a thought " + "x" * 100, "note"),
    ("Привет 👋 мир", "note"),
]

SCHEMA = {"type": "object", "additionalProperties": False, "required": ["type", "data"],
          "properties": {"type": {"type": "string", "enum": list(structurer_rule.TYPES)},
                         "data": {"anyOf": [
                             {"type": "object", "additionalProperties": False,
                              "required": ["title", "body"],
                              "properties": {"title": {"type": "string"}, "body": {"type": "string"}}},
                             {"type": "object", "additionalProperties": False,
                              "required": ["description"],
                              "properties": {"description": {"type": "string"}}}]}}}
RESPONSE_FORMAT = {"type": "json_schema",
                   "json_schema": {"name": "structured_message", "strict": True, "schema": SCHEMA}}


def settled_stats(fake, timeout=10):
    """The fake's stats once no call is in progress: a call counts as in
    progress until its handler returns, just after its answer was sent,
    so a client that has its answer can still see it for a moment."""
    deadline = time.monotonic() + timeout
    while True:
        stats = fake.control("GET", "stats")
        if stats["in_flight"] == 0 or time.monotonic() > deadline:
            return stats
        time.sleep(0.01)


def parallel(fn, n, workers=None):
    """Run fn(i) for i in range(n) on `workers` threads; the results in order."""
    out = [None] * n
    it = iter(range(n))
    lock = threading.Lock()

    def work():
        while True:
            with lock:
                i = next(it, None)
            if i is None:
                return
            out[i] = fn(i)
    ts = [threading.Thread(target=work) for _ in range(workers or n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    return out


class StructurerRuleTest(unittest.TestCase):
    def test_rule(self):
        for text, typ in SAMPLES:
            a = structurer_rule.answer(text)
            self.assertEqual(a["type"], typ, text)
        self.assertEqual(structurer_rule.answer("Team meeting on Friday"), {
            "type": "event", "data": {"title": "Team meeting on Friday",
                                      "starts_at": "2026-12-01T10:00:00Z", "ends_at": None,
                                      "location": None}})
        self.assertEqual(structurer_rule.answer("TODO: buy milk, urgent")["data"],
                         {"title": "TODO: buy milk, urgent", "due_at": None, "priority": "high",
                          "done": False})
        self.assertEqual(structurer_rule.answer("a task")["data"]["priority"], "normal")
        self.assertEqual(structurer_rule.answer("Where?  \n")["data"],
                         {"question": "Where?  \n", "topic": None})
        self.assertEqual(structurer_rule.answer("[file] " + "d" * 300)["data"],
                         {"description": ("[file] " + "d" * 300)[:200]})
        t = "  just a thought " + "x" * 100
        self.assertEqual(structurer_rule.answer(t)["data"], {"title": t.strip()[:60], "body": t})
        self.assertEqual(structurer_rule.answer("q" * 3000 + "?")["data"]["question"], "q" * 2000)

    def test_markers(self):
        A = structurer_rule.answer
        self.assertEqual(A("meeting #invalid-once", first_time=True), "Sure! Here is")
        self.assertEqual(A("meeting #invalid-once", first_time=False)["type"], "event")
        self.assertEqual(A("meeting #invalid-once", repair=True)["type"], "event")
        self.assertEqual(A("x #invalid-always", repair=True), "Sure! Here is")
        self.assertEqual(A("meeting #bad-data"), {"type": "task", "data": {"title": 5}})
        self.assertEqual(A("x #unknown-type"), {"type": "recipe", "data": {}})
        self.assertEqual(A("urgent #reclassify"), {"type": "note", "data": {
            "title": "urgent #reclassify", "body": "urgent #reclassify"}})
        self.assertEqual(A("urgent #reclassify", reclassify="task")["data"]["priority"], "high")

    def test_chat_text(self):
        ct = structurer_rule.chat_text
        self.assertEqual(ct(["hello"]), "hello")
        self.assertEqual(ct(["Type: text\nMessage: hi\nthere \n"]), "hi\nthere")
        self.assertEqual(ct(["Message: a\nMessage:\n b"]), "b")
        self.assertEqual(ct(["orig", "Your answer did not match the schema"]), "orig")
        self.assertEqual(ct(["first", "second"]), "second")
        rep = structurer_rule.chat_is_repair
        self.assertFalse(rep(["x"], ["sys", "x"]))
        self.assertTrue(rep(["x", "y"], ["x", "y"]))
        self.assertTrue(rep(["x"], ["the answer did not match", "x"]))


class FakeLlmTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.fake = Fake("fake_llm.py", "--api-key", API_KEY)

    @classmethod
    def tearDownClass(cls):
        rc, gone = cls.fake.stop()
        assert rc == 0 and gone, (rc, gone)

    def setUp(self):
        self.fake.control("POST", "reset")

    AUTH = {"Authorization": "Bearer " + API_KEY}

    def chat(self, messages=None, path="/chat/completions", headers=None, **extra):
        body = {"model": "sonar-pro", "max_tokens": 500,
                "messages": messages or [{"role": "system", "content": "You are terse."},
                                         {"role": "user", "content": "- Name: Alpha\nStatus: green"}]}
        body.update(extra)
        return self.fake.request("POST", path, body, self.AUTH if headers is None else headers)

    def test_success_and_rule(self):
        for path in ("/chat/completions", "/v1/chat/completions", "/openai/v1/chat/completions"):
            st, h, data = self.chat(path=path)
            self.assertEqual(st, 200, data)
            self.assertTrue(h["content-type"].startswith("application/json"))
            r = json.loads(data)
            self.assertTrue(r["id"].startswith("chatcmpl-"))
            self.assertEqual(r["object"], "chat.completion")
            self.assertIsInstance(r["created"], int)
            self.assertEqual(r["model"], "sonar-pro")
            c = expected_content("- Name: Alpha\nStatus: green")
            self.assertEqual(r["choices"], [{"index": 0, "message": {"role": "assistant", "content": c},
                                             "finish_reason": "stop"}])
            self.assertEqual(r["usage"], {"prompt_tokens": 3 + 5, "completion_tokens": 11,
                                          "total_tokens": 19})
        # last *user* message counts
        msgs = [{"role": "user", "content": "first"}, {"role": "assistant", "content": "x y"},
                {"role": "user", "content": "second é"}]
        r = json.loads(self.chat(msgs)[2])
        self.assertEqual(r["choices"][0]["message"]["content"], expected_content("second é"))
        self.assertEqual(r["usage"]["prompt_tokens"], 5)

    def test_max_tokens_cut(self):
        r = json.loads(self.chat(max_tokens=3)[2])
        c = r["choices"][0]
        self.assertEqual(c["finish_reason"], "length")
        self.assertEqual(c["message"]["content"], expected_content("- Name: Alpha\nStatus: green")
                         .split("\n1. Assessment:")[0] + "\n1. Assessment:")
        self.assertEqual(r["usage"]["completion_tokens"], 3)

    def test_auth(self):
        for headers in ({}, {"Authorization": "Bearer wrong-key-123456"}, {"Authorization": "Basic eA=="}):
            st, _, data = self.chat(headers=headers)
            self.assertEqual(st, 401)
            e = json.loads(data)["error"]
            self.assertEqual((e["type"], e["code"]), ("invalid_request_error", "invalid_api_key"))
        log = self.fake.control("GET", "requests")
        self.assertEqual([x["auth"] for x in log], ["missing", "invalid", "missing"])
        self.assertNotIn("wrong-key", json.dumps(log))

    def test_bad_requests(self):
        st, _, data = self.fake.request("POST", "/v1/chat/completions", b"{not json",
                                        dict(self.AUTH, **{"Content-Type": "application/json"}))
        self.assertEqual(st, 400)
        self.assertEqual(json.loads(data)["error"]["type"], "invalid_request_error")
        st, _, data = self.fake.request("POST", "/chat/completions", {"model": "m", "messages": []}, self.AUTH)
        self.assertEqual(st, 400)
        self.assertEqual(json.loads(data)["error"]["code"], "empty_array")
        st, _, _ = self.fake.request("POST", "/chat/completions", {"messages": [{"role": "user", "content": "x"}]},
                                     self.AUTH)
        self.assertEqual(st, 400)
        st, _, _ = self.chat(max_tokens=0)
        self.assertEqual(st, 400)
        st, _, data = self.fake.request("POST", "/nope", {}, self.AUTH)
        self.assertEqual(st, 404)
        self.assertEqual(json.loads(data)["error"]["code"], "unknown_url")
        log = self.fake.control("GET", "requests")
        self.assertIsNone(log[0]["json"])
        self.assertEqual(log[0]["raw"], "{not json")

    def test_body_limit(self):
        big = b'{"model":"m","pad":"' + b"x" * (21 * 1024 * 1024) + b'"}'
        st, _, data = self.fake.request("POST", "/chat/completions", big,
                                        dict(self.AUTH, **{"Content-Type": "application/json"}), timeout=60)
        self.assertEqual(st, 413)
        self.assertIn("error", json.loads(data))

    def test_faults(self):
        self.fake.control("POST", "faults", {"faults": [
            {"kind": "status", "status": 500},
            {"kind": "status", "status": 429, "retry_after": 2},
            {"kind": "timeout", "seconds": 0.4},
            {"kind": "timeout", "seconds": 0.1, "close": True},
            {"kind": "malformed"},
            {"kind": "empty"},
        ]})
        st, _, data = self.chat()
        self.assertEqual(st, 500)
        self.assertEqual(json.loads(data)["error"]["type"], "server_error")
        st, h, data = self.chat()
        self.assertEqual(st, 429)
        self.assertEqual(h["retry-after"], "2")
        self.assertEqual(json.loads(data)["error"]["code"], "rate_limit_exceeded")
        t0 = time.time()
        st, _, data = self.chat()
        self.assertEqual(st, 200)
        self.assertGreaterEqual(time.time() - t0, 0.4)
        with self.assertRaises((http.client.RemoteDisconnected, ConnectionError)):
            self.chat()
        st, _, data = self.chat()
        self.assertEqual(st, 200)
        with self.assertRaises(ValueError):
            json.loads(data)
        st, _, data = self.chat()
        self.assertEqual(st, 200)
        self.assertEqual(json.loads(data)["choices"], [])
        st, _, data = self.chat()  # queue drained: normal again
        self.assertEqual(st, 200)
        log = self.fake.control("GET", "requests")
        self.assertEqual([x["fault"] for x in log],
                         ["status", "status", "timeout", "timeout", "malformed", "empty", None])
        self.assertEqual([x["status"] for x in log], [500, 429, 200, None, 200, 200, 200])
        self.assertEqual(log[0]["json"]["model"], "sonar-pro")
        self.assertEqual(log[0]["headers"]["authorization"], "Bearer <redacted>")
        self.assertEqual([x["seq"] for x in log], list(range(7)))
        self.assertEqual(len(self.fake.control("GET", "requests?since=5")), 2)
        # bad fault is refused
        st, _, _ = self.fake.json("POST", "/_control/faults", {"faults": [{"kind": "nope"}]})
        self.assertEqual(st, 400)

    def test_random_failures_reproducible(self):
        def run():
            self.fake.control("POST", "reset")
            self.fake.control("POST", "config", {"fail_rate": 0.5, "seed": 7,
                                                 "fail_kinds": ["500", "429", "malformed"]})
            return [self.chat()[0] for _ in range(12)]
        a, b = run(), run()
        self.assertEqual(a, b)
        self.assertTrue(any(s != 200 for s in a) and 200 in a, a)
        self.fake.control("POST", "config", {"fail_rate": 0, "latency_ms": 200})
        t0 = time.time()
        self.assertEqual(self.chat()[0], 200)
        self.assertGreaterEqual(time.time() - t0, 0.2)
        self.fake.control("POST", "reset")
        self.assertEqual(self.fake.control("GET", "config")["latency_ms"], 0)

    def test_scripted_responses(self):
        self.fake.control("POST", "responses", {"responses": [
            {"contains": "classify", "content": '{"category": "invoice"}'}]})
        r = json.loads(self.chat([{"role": "user", "content": "please classify this"}])[2])
        self.assertEqual(r["choices"][0]["message"]["content"], '{"category": "invoice"}')
        r = json.loads(self.chat([{"role": "user", "content": "other"}])[2])
        self.assertEqual(r["choices"][0]["message"]["content"], expected_content("other"))

    # --- structured mode (response_format json_schema), rate limit, stats

    def structured(self, text, messages=None, **extra):
        msgs = messages or [{"role": "system", "content": "Classify the message."},
                            {"role": "user", "content": text}]
        body = dict({"response_format": RESPONSE_FORMAT}, **extra)
        st, h, data = self.chat(msgs, **body)
        return st, h, json.loads(data)

    def content(self, r):
        return r["choices"][0]["message"]["content"]

    def test_structured_rule(self):
        for text, typ in SAMPLES:
            st, _, r = self.structured(text)
            self.assertEqual(st, 200, r)
            self.assertEqual(r["choices"][0]["finish_reason"], "stop")
            self.assertEqual(json.loads(self.content(r)), structurer_rule.answer(text))
            self.assertEqual(json.loads(self.content(r))["type"], typ)
        # the text after the last "Message:" line, whole content otherwise
        st, _, r = self.structured("Type: text\nUser: 7\nMessage: Where is it?")
        self.assertEqual(json.loads(self.content(r)), structurer_rule.answer("Where is it?"))
        # response_format text = the ANALYSIS rule
        st, _, r = self.structured("todo", response_format={"type": "text"})
        self.assertEqual(self.content(r), expected_content("todo"))
        stats = self.fake.control("GET", "stats")
        self.assertEqual(stats["by_type"], {"event": 3, "task": 2, "question": 2, "file": 1, "note": 2})
        self.assertEqual(stats["requests"], len(SAMPLES) + 2)
        log = self.fake.control("GET", "requests")
        self.assertEqual([x.get("answer_type") for x in log],
                         [t for _, t in SAMPLES] + ["question", None])

    def test_structured_markers_and_repair(self):
        text = "Meeting at noon #invalid-once"
        self.assertEqual(self.content(self.structured(text)[2]), "Sure! Here is")
        self.assertEqual(json.loads(self.content(self.structured(text)[2])),
                         structurer_rule.answer(text, first_time=False))
        # a repair answers valid JSON even for the first request of a text
        text2 = "note #invalid-once"
        repair = [{"role": "system", "content": "Classify."}, {"role": "user", "content": text2},
                  {"role": "assistant", "content": "Sure! Here is"},
                  {"role": "user", "content": "Your answer did not match the schema: not JSON. "
                                              "Answer again."}]
        st, _, r = self.structured(None, repair)
        self.assertEqual(json.loads(self.content(r)), structurer_rule.answer(text2, repair=True))
        # a single message mentioning "did not match" is a repair too
        text3 = "x #invalid-once"
        msgs = [{"role": "system", "content": "The previous answer did not match the schema."},
                {"role": "user", "content": text3}]
        self.assertEqual(json.loads(self.content(self.structured(None, msgs)[2]))["type"], "note")
        for _ in range(2):
            self.assertEqual(self.content(self.structured("y #invalid-always", repair[:1] + [
                {"role": "user", "content": "y #invalid-always"}, {"role": "user", "content": "did not match"}
            ])[2]), "Sure! Here is")
        self.assertEqual(json.loads(self.content(self.structured("meeting #bad-data")[2])),
                         {"type": "task", "data": {"title": 5}})
        self.assertEqual(json.loads(self.content(self.structured("#unknown-type")[2])),
                         {"type": "recipe", "data": {}})
        self.assertEqual(json.loads(self.content(self.structured("urgent #reclassify")[2]))["type"], "note")
        self.assertEqual(self.fake.control("POST", "classify", {"reclassify": "task"})["reclassify"], "task")
        self.assertEqual(json.loads(self.content(self.structured("urgent #reclassify")[2])),
                         {"type": "task", "data": {"title": "urgent #reclassify", "due_at": None,
                                                   "priority": "high", "done": False}})
        self.assertEqual(self.fake.control("GET", "classify"), {"reclassify": "task"})
        st, _, _ = self.fake.json("POST", "/_control/classify", {"reclassify": "recipe"})
        self.assertEqual(st, 400)
        stats = self.fake.control("GET", "stats")
        self.assertEqual(stats["by_type"], {"invalid_json": 3, "event": 1, "note": 3, "task": 2,
                                            "recipe": 1})
        self.assertEqual(stats["repairs"], 4)
        log = self.fake.control("GET", "requests")
        self.assertEqual([x["repair"] for x in log][:4], [False, False, True, True])
        self.fake.control("POST", "reset")
        self.assertEqual(self.fake.control("GET", "classify"), {"reclassify": "note"})
        self.assertEqual(self.content(self.structured(text)[2]), "Sure! Here is")  # forgotten

    def test_structured_scripted_and_max_tokens(self):
        self.fake.control("POST", "responses", {"responses": [{"contains": "script", "content": "{}"}]})
        self.assertEqual(self.content(self.structured("script me")[2]), "{}")
        st, _, r = self.structured("a long note " * 20, max_tokens=3)
        self.assertEqual(r["choices"][0]["finish_reason"], "length")
        with self.assertRaises(ValueError):
            json.loads(self.content(r))

    def test_response_format_validation(self):
        def rf(**js):
            d = {"name": "structured_message", "strict": True, "schema": SCHEMA}
            d.update(js)
            return {"type": "json_schema", "json_schema": {k: v for k, v in d.items() if v is not None}}
        obj = {"type": "object", "properties": {"a": {"type": "string"}}}
        bad = [
            "json_schema", {"type": "json_object"}, {"type": "xml"}, {"type": "json_schema"},
            {"type": "json_schema", "json_schema": "x"}, rf(name="has space"), rf(name=5),
            rf(schema="{}"), rf(schema=[]), rf(strict="yes"),
            rf(schema={"type": "array", "items": {"type": "string"}}),
            rf(schema=dict(obj, required=["a"])),                              # no additionalProperties
            rf(schema=dict(obj, additionalProperties=False)),                  # a key not required
            rf(schema={"type": "object", "additionalProperties": False, "required": ["d"],
                       "properties": {"d": {"anyOf": [obj]}}}),                # nested object
        ]
        for f in bad:
            st, _, r = self.chat(response_format=f)
            self.assertEqual(st, 400, f)
            self.assertEqual(r and json.loads(r)["error"]["param"], "response_format", f)
            self.assertEqual(json.loads(r)["error"]["type"], "invalid_request_error")
        # without strict the schema is not checked
        st, _, r = self.chat(response_format=rf(strict=False, schema=obj))
        self.assertEqual(st, 200, r)
        self.assertEqual(self.fake.control("GET", "stats")["by_type"], {"note": 1})

    def test_model_version(self):
        self.assertEqual(self.structured("x")[2]["model"], "sonar-pro")
        cfg = self.fake.control("POST", "config", {"model_version": "fake-model-v2"})
        self.assertEqual(cfg["model_version"], "fake-model-v2")
        self.assertEqual(self.structured("x")[2]["model"], "fake-model-v2")
        self.assertEqual(json.loads(self.chat()[2])["model"], "fake-model-v2")
        st, _, _ = self.fake.json("POST", "/_control/config", {"model_version": 5})
        self.assertEqual(st, 400)
        self.fake.control("POST", "reset")
        self.assertIsNone(self.fake.control("GET", "config")["model_version"])
        self.assertEqual(self.structured("x")[2]["model"], "sonar-pro")

    def test_rate_limit_and_stats(self):
        self.assertEqual(self.fake.control("POST", "config", {"rate_limit": 5, "latency_ms": 300})
                         ["rate_limit"], 5)
        t0 = time.time()
        res = parallel(lambda i: self.structured("meeting %d" % i), 10)
        statuses = sorted(st for st, _, _ in res)
        self.assertEqual(statuses, [200] * 5 + [429] * 5)
        for st, h, r in res:
            if st == 429:
                self.assertEqual(r["error"]["code"], "rate_limit_exceeded")
                self.assertEqual(r["error"]["type"], "requests")
                self.assertGreaterEqual(int(h["retry-after"]), 1)
        stats = settled_stats(self.fake)
        self.assertEqual((stats["requests"], stats["rate_limited"]), (10, 5))
        self.assertGreaterEqual(stats["max_concurrent"], 5)
        self.assertEqual(stats["in_flight"], 0)
        self.assertEqual(stats["by_type"], {"event": 5})
        log = self.fake.control("GET", "requests")
        self.assertEqual(sum(1 for x in log if x.get("rate_limited")), 5)
        self.assertTrue(all(x["status"] == 429 for x in log if x.get("rate_limited")))
        self.assertEqual(log[0]["json"]["model"], "sonar-pro")
        # the window slides: a second later calls are admitted again
        time.sleep(max(0, 1.05 - (time.time() - t0)))
        self.assertEqual(self.structured("meeting")[0], 200)
        # a queued fault is not consumed by a rate-limited call
        self.fake.control("POST", "config", {"rate_limit": 1, "latency_ms": 0})
        self.assertEqual(self.structured("a")[0], 200)
        self.fake.control("POST", "faults", {"faults": [{"kind": "status", "status": 503}]})
        self.assertEqual(self.structured("a")[0], 429)
        self.assertEqual(len(self.fake.control("GET", "faults")), 1)
        st, _, _ = self.fake.json("POST", "/_control/config", {"rate_limit": -1})
        self.assertEqual(st, 400)
        self.fake.control("POST", "reset")
        self.assertEqual(self.fake.control("GET", "config")["rate_limit"], 0)
        self.assertEqual(self.fake.control("GET", "stats"),
                         {"requests": 0, "rate_limited": 0, "max_concurrent": 0, "in_flight": 0,
                          "by_type": {}, "repairs": 0})


class FakeTelegramTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.fake = Fake("fake_telegram.py", "--token", TOKEN)

    @classmethod
    def tearDownClass(cls):
        rc, gone = cls.fake.stop()
        assert rc == 0 and gone, (rc, gone)

    def setUp(self):
        self.fake.control("POST", "reset")

    def call(self, method, body=None, headers=None, token=TOKEN, http_method="POST"):
        return self.fake.json(http_method, "/bot%s/%s" % (token, method), body, headers)

    def send(self, text, parse_mode=None, chat_id=42):
        body = {"chat_id": chat_id, "text": text}
        if parse_mode:
            body["parse_mode"] = parse_mode
        return self.call("sendMessage", body)

    def assert_bad(self, resp, description, status=400):
        st, _, r = resp
        self.assertEqual(st, status, r)
        self.assertEqual(r, {"ok": False, "error_code": status, "description": description})

    def test_get_me(self):
        for m in ("GET", "POST"):
            st, _, r = self.call("getMe", http_method=m)
            self.assertEqual(st, 200)
            self.assertTrue(r["ok"])
            self.assertTrue(r["result"]["is_bot"])
            self.assertEqual(r["result"]["id"], 123456)

    def test_send_message_formats_and_ids(self):
        st, _, r = self.send("hello")
        self.assertEqual(st, 200)
        m = r["result"]
        self.assertEqual((m["message_id"], m["chat"]["id"], m["text"]), (1, 42, "hello"))
        self.assertIsInstance(m["date"], int)
        # form-urlencoded
        st, _, r = self.fake.json("POST", "/bot%s/sendMessage" % TOKEN, "chat_id=42&text=hi%20there",
                                  {"Content-Type": "application/x-www-form-urlencoded"})
        self.assertEqual((st, r["result"]["message_id"], r["result"]["text"]), (200, 2, "hi there"))
        # multipart
        body, h = multipart({"chat_id": "42", "text": "<b>bold</b> &amp; more", "parse_mode": "HTML"})
        st, _, r = self.fake.json("POST", "/bot%s/sendMessage" % TOKEN, body, h)
        self.assertEqual((st, r["result"]["message_id"], r["result"]["text"]), (200, 3, "bold & more"))
        # other chat starts at 1
        self.assertEqual(self.send("x", chat_id=-1001234)[2]["result"]["message_id"], 1)
        log = self.fake.control("GET", "requests")
        self.assertEqual([x["json"]["chat_id"] for x in log], [42, "42", "42", -1001234])

    def test_errors(self):
        self.assert_bad(self.send("x", chat_id="0"), "Bad Request: chat not found")
        self.assert_bad(self.send("x", chat_id=0), "Bad Request: chat not found")
        self.assert_bad(self.send(""), "Bad Request: message text is empty")
        self.assert_bad(self.send("<b> </b>", "HTML"), "Bad Request: message text is empty")
        self.assert_bad(self.call("sendMessage", {"text": "x"}), "Bad Request: chat_id is empty")
        self.assert_bad(self.call("getMe", token="999:wrong"), "Unauthorized", 401)
        self.assert_bad(self.call("noSuchMethod", {}), "Not Found", 404)
        self.assert_bad(self.fake.json("POST", "/bot%s/sendMessage" % TOKEN, b"{bad",
                                       {"Content-Type": "application/json"}),
                        "Bad Request: invalid JSON body")

    def test_flood_limits(self):
        # A slow clock (rates x 0.01) so that no refill happens mid-test.
        self.fake.control("POST", "limits", {"enabled": True, "scale": 0.01})
        try:
            for _ in range(3):
                self.assertEqual(self.send("burst")[0], 200)
            st, _, r = self.send("one too many")
            self.assertEqual(st, 429)
            self.assertEqual(r["error_code"], 429)
            self.assertGreaterEqual(r["parameters"]["retry_after"], 90)
            self.assertEqual(self.send("other chat", chat_id=43)[0], 200)
            stats = self.fake.control("GET", "stats")
            self.assertEqual((stats["sent"], stats["refused_429"]), (4, 1))
            self.assertEqual(stats["by_chat"]["42"], {"sent": 3, "refused_429": 1})
            log = self.fake.control("GET", "requests")
            self.assertEqual([bool(x.get("rate_limited")) for x in log],
                             [False, False, False, True, False])
        finally:
            self.fake.control("POST", "limits", {"enabled": False})
        for _ in range(5):  # off again: nothing refused
            self.assertEqual(self.send("free")[0], 200)

    def test_length_limit(self):
        self.assertEqual(self.send("a" * 4096)[0], 200)
        self.assert_bad(self.send("a" * 4097), "Bad Request: message is too long")
        self.assertEqual(self.send("é" * 4096)[0], 200)          # code points, not bytes
        self.assertEqual(self.send("\U0001F600" * 4096)[0], 200)
        self.assertEqual(self.send("<b>" + "a" * 4096 + "</b>", "HTML")[0], 200)  # tags are free
        self.assertEqual(self.send("&amp;" * 4096, "HTML")[0], 200)  # an entity is one character
        self.assert_bad(self.send("&lt;" * 4097, "HTML"), "Bad Request: message is too long")
        self.assert_bad(self.send("<i>" + "a" * 4097 + "</i>", "HTML"), "Bad Request: message is too long")
        # without parse_mode the markup counts
        self.assert_bad(self.send("<b>" + "a" * 4094 + "</b>"), "Bad Request: message is too long")

    def test_html_validation(self):
        good = {
            "<b>x</b><strong>y</strong><i>z</i><em>e</em><u>u</u><ins>n</ins>": "xyzeun",
            "<s>1</s><strike>2</strike><del>3</del>": "123",
            '<a href="https://example.com/?a=1&amp;b=2">link</a>': "link",
            '<span class="tg-spoiler">s</span><tg-spoiler>t</tg-spoiler>': "st",
            '<pre><code class="language-c">int x = 1 &lt; 2;</code></pre>': "int x = 1 < 2;",
            "<blockquote>q</blockquote> a > b": "q a > b",
            "&#65;&#x42;&quot;&gt;": 'AB">',
            "<B>upper</B>": "upper",
            "line1\nline2": "line1\nline2",
        }
        for html, plain in good.items():
            st, _, r = self.send(html, "HTML")
            self.assertEqual(st, 200, (html, r))
            self.assertEqual(r["result"]["text"], plain)
        bad = {
            "<foo>x</foo>": 'Unsupported start tag "foo" at byte offset 0',
            "<br>": 'Unsupported start tag "br" at byte offset 0',
            "ab<b>x": 'Can\'t find end tag corresponding to start tag "b"',
            "<b><i>x</b></i>": 'Unmatched end tag at byte offset 7, expected "</i>", found "</b>"',
            "x</b>": "Unexpected end tag at byte offset 1",
            "a < b": 'Unsupported start tag "" at byte offset 2',
            "AT&T": "Can't find end of the entity starting at byte offset 2",
            "&nbsp;": "Can't find end of the entity starting at byte offset 0",
            "<span>x</span>": 'Tag "span" must have class "tg-spoiler" at byte offset 0',
            "<b": "Unclosed start tag at byte offset 0",
            "é<b>x</b": "Unclosed end tag at byte offset 6",
        }
        for html, detail in bad.items():
            self.assert_bad(self.send(html, "HTML"), "Bad Request: can't parse entities: " + detail)
        # same text without parse_mode is fine
        self.assertEqual(self.send("a < b & <foo>")[0], 200)
        self.assert_bad(self.send("x", "Fancy"), "Bad Request: unsupported parse_mode")

    def test_send_document_and_files(self):
        data = bytes(range(256)) * 40
        body, h = multipart({"chat_id": "42", "caption": "<b>Report</b>", "parse_mode": "HTML"},
                            [("document", "report.xlsx", "application/vnd.ms-excel", data)])
        st, _, r = self.fake.json("POST", "/bot%s/sendDocument" % TOKEN, body, h)
        self.assertEqual(st, 200, r)
        m = r["result"]
        self.assertEqual(m["caption"], "Report")
        self.assertEqual(m["document"]["file_name"], "report.xlsx")
        self.assertEqual(m["document"]["file_size"], len(data))
        st, _, r = self.call("getFile", {"file_id": m["document"]["file_id"]})
        self.assertEqual(st, 200)
        st, _, got = self.fake.request("GET", "/file/bot%s/%s" % (TOKEN, r["result"]["file_path"]))
        self.assertEqual((st, got), (200, data))
        log = self.fake.control("GET", "requests")
        self.assertEqual(log[0]["json"]["document"], {
            "filename": "report.xlsx", "content_type": "application/vnd.ms-excel",
            "size": len(data), "sha256": hashlib.sha256(data).hexdigest()})
        self.assertEqual(log[0]["json"]["chat_id"], "42")
        # registered through the control API
        reg = self.fake.control("POST", "files", {"content": "hello file", "file_id": "F1",
                                                  "file_path": "documents/hello.txt"})
        self.assertEqual(reg["file_path"], "documents/hello.txt")
        st, _, r = self.call("getFile", {"file_id": "F1"}, http_method="POST")
        self.assertEqual(r["result"], {"file_id": "F1", "file_unique_id": r["result"]["file_unique_id"],
                                       "file_size": 10, "file_path": "documents/hello.txt"})
        st, _, got = self.fake.request("GET", "/file/bot%s/documents/hello.txt" % TOKEN)
        self.assertEqual((st, got), (200, b"hello file"))
        self.assert_bad(self.call("getFile", {"file_id": "nope"}), "Bad Request: invalid file_id")
        body, h = multipart({"chat_id": "42"})
        self.assert_bad(self.fake.json("POST", "/bot%s/sendDocument" % TOKEN, body, h),
                        "Bad Request: there is no document in the request")
        body, h = multipart({"chat_id": "42", "caption": "c" * 1025},
                            [("document", "a.txt", "text/plain", b"x")])
        self.assert_bad(self.fake.json("POST", "/bot%s/sendDocument" % TOKEN, body, h),
                        "Bad Request: message caption is too long")

    def test_token_redaction(self):
        self.send("hi")
        self.call("getMe", token="999:wrong-token")
        self.fake.request("GET", "/file/bot%s/documents/none" % TOKEN)
        self.fake.request("GET", "/bot%s/getFile?file_id=x&echo=%s" % (TOKEN, TOKEN))
        log = self.fake.control("GET", "requests")
        self.assertEqual([x["path"] for x in log], [
            "/bot<token>/sendMessage", "/bot<token>/getMe", "/file/bot<token>/documents/none",
            "/bot<token>/getFile?file_id=x&echo=<token>"])
        dump = json.dumps(log)
        self.assertNotIn(TOKEN, dump)
        self.assertNotIn("wrong-token", dump)
        self.assertEqual([x["auth"] for x in log], ["valid", "invalid", "valid", "valid"])

    def test_faults(self):
        self.fake.control("POST", "faults", {"faults": [
            {"kind": "status", "status": 429, "retry_after": 2},
            {"kind": "status", "status": 500},
            {"kind": "malformed"},
            {"kind": "empty"},
            {"kind": "timeout", "seconds": 0.3},
            {"kind": "timeout", "seconds": 0, "close": True},
        ]})
        st, h, data = self.fake.request("POST", "/bot%s/sendMessage" % TOKEN, {"chat_id": 1, "text": "a"})
        self.assertEqual(st, 429)
        self.assertEqual(json.loads(data), {"ok": False, "error_code": 429,
                                            "description": "Too Many Requests: retry after 2",
                                            "parameters": {"retry_after": 2}})
        self.assert_bad(self.send("a"), "Internal Server Error", 500)
        st, _, data = self.fake.request("POST", "/bot%s/sendMessage" % TOKEN, {"chat_id": 1, "text": "a"})
        self.assertEqual(st, 200)
        with self.assertRaises(ValueError):
            json.loads(data)
        st, _, data = self.fake.request("POST", "/bot%s/sendMessage" % TOKEN, {"chat_id": 1, "text": "a"})
        self.assertEqual((st, data), (200, b""))
        t0 = time.time()
        self.assertEqual(self.send("a")[0], 200)
        self.assertGreaterEqual(time.time() - t0, 0.3)
        with self.assertRaises((http.client.RemoteDisconnected, ConnectionError)):
            self.send("a")
        self.assertEqual(self.send("a")[0], 200)
        log = self.fake.control("GET", "requests")
        self.assertEqual([x["fault"] for x in log],
                         ["status", "status", "malformed", "empty", "timeout", "timeout", None])
        # deliveries = calls answered normally without a fault
        self.assertEqual(sum(1 for x in log if x["fault"] is None and x["status"] == 200), 1)

    def test_get_updates(self):
        self.fake.control("POST", "updates", {"updates": [
            {"message": {"message_id": 5, "chat": {"id": 42, "type": "private"}, "text": "hi"}}]})
        st, _, r = self.call("getUpdates", {"timeout": 0})
        self.assertEqual([u["update_id"] for u in r["result"]], [1])
        st, _, r = self.call("getUpdates", {"offset": 2, "timeout": 0})
        self.assertEqual(r["result"], [])
        self.assertEqual(self.fake.control("GET", "updates"), [])


class FakeWebhookTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.fake = Fake("fake_webhook.py")

    @classmethod
    def tearDownClass(cls):
        cls.fake.stop()

    def setUp(self):
        self.fake.control("POST", "reset")

    def test_status_and_log(self):
        st, _, r = self.fake.json("POST", "/hook", {"item": "a"})
        self.assertEqual((st, r), (200, {"ok": True}))
        self.fake.control("POST", "config", {"status": 503})
        st, _, r = self.fake.json("POST", "/hook", {"item": "b"})
        self.assertEqual((st, r["ok"]), (503, False))
        log = self.fake.control("GET", "requests")
        self.assertEqual([x["json"]["item"] for x in log], ["a", "b"])

    def hold_three(self):
        """Three calls held by the fake: (their statuses, threads)."""
        self.assertTrue(self.fake.control("POST", "config",
                                          {"hold": True})["hold"])
        results = []

        def call():
            results.append(self.fake.json("POST", "/hook", {}, timeout=30)[0])
        threads = [threading.Thread(target=call) for _ in range(3)]
        for t in threads:
            t.start()
        deadline = time.time() + 15
        while self.fake.control("GET", "stats")["in_flight"] < 3:
            self.assertLess(time.time(), deadline, "3 calls held")
            time.sleep(0.01)
        return results, threads

    def test_hold_counts_calls_in_flight(self):
        results, threads = self.hold_three()
        self.assertEqual(results, [])
        self.fake.control("POST", "config", {"hold": False})
        for t in threads:
            t.join(15)
        self.assertEqual(results, [200, 200, 200])
        self.assertEqual(self.fake.control("GET", "stats"),
                         {"in_flight": 0, "peak_in_flight": 3})
        st, _, r = self.fake.json("POST", "/_control/config", {"hold": 1})
        self.assertEqual(st, 400)

    def test_release_lets_some_held_calls_through(self):
        results, threads = self.hold_three()
        deadline = time.time() + 15
        self.fake.control("POST", "config", {"release": 2})
        while len(results) < 2:
            self.assertLess(time.time(), deadline, "2 calls released")
            time.sleep(0.01)
        self.assertEqual(self.fake.control("GET", "stats")["in_flight"], 1)
        self.fake.control("POST", "config", {"hold": False})
        for t in threads:
            t.join(15)
        self.assertEqual(results, [200, 200, 200])
        st, _, r = self.fake.json("POST", "/_control/config", {"release": -1})
        self.assertEqual(st, 400)


STRUCT_PATH = "/webhook/digital-twin-ask"


class FakeStructurerTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.fake = Fake("fake_structurer.py")

    @classmethod
    def tearDownClass(cls):
        rc, gone = cls.fake.stop()
        assert rc == 0 and gone, (rc, gone)

    def setUp(self):
        self.fake.control("POST", "reset")

    def ask(self, text, repair=None, path=STRUCT_PATH, **over):
        body = {"message": text, "message_type": "text", "user_id": 42,
                "reply_to_message": None, "is_clarification": False}
        if repair is not None:
            body["repair"] = repair
        body.update(over)
        st, h, data = self.fake.request("POST", path, body)
        try:
            return st, h, json.loads(data)
        except ValueError:
            return st, h, data.decode()

    def test_rule(self):
        for text, typ in SAMPLES:
            st, h, r = self.ask(text)
            self.assertEqual(st, 200, r)
            self.assertTrue(h["content-type"].startswith("application/json"))
            self.assertEqual(r, structurer_rule.answer(text))
            self.assertEqual(r["type"], typ)
        self.assertEqual(self.ask("in reply", reply_to_message="a meeting?", is_clarification=True,
                                  user_id="42")[2]["type"], "note")
        stats = self.fake.control("GET", "stats")
        self.assertEqual(stats["by_type"], {"event": 3, "task": 2, "question": 1, "file": 1, "note": 3})
        log = self.fake.control("GET", "requests")
        self.assertEqual(log[0]["json"]["message"], SAMPLES[0][0])
        self.assertEqual([x["answer_type"] for x in log], [t for _, t in SAMPLES] + ["note"])

    def test_markers_and_repair(self):
        text = "meeting #invalid-once"
        st, _, r = self.ask(text)
        self.assertEqual((st, r), (200, "Sure! Here is"))
        self.assertEqual(self.ask(text)[2], structurer_rule.answer(text, first_time=False))
        rep = {"previous": "Sure! Here is", "error": "not JSON"}
        self.assertEqual(self.ask("todo #invalid-once", rep)[2]["type"], "task")
        self.assertEqual(self.ask("x #invalid-once", None)[2], "Sure! Here is")  # repair: null = none
        self.assertEqual(self.ask("x #invalid-always")[2], "Sure! Here is")
        self.assertEqual(self.ask("x #invalid-always", rep)[2], "Sure! Here is")
        self.assertEqual(self.ask("#bad-data")[2], {"type": "task", "data": {"title": 5}})
        self.assertEqual(self.ask("#bad-data", rep)[2], {"type": "task", "data": {"title": 5}})
        self.assertEqual(self.ask("meeting #unknown-type")[2], {"type": "recipe", "data": {}})
        self.assertEqual(self.ask("#reclassify ok?")[2]["type"], "note")
        self.fake.control("POST", "classify", {"reclassify": "question"})
        self.assertEqual(self.ask("#reclassify ok?")[2],
                         {"type": "question", "data": {"question": "#reclassify ok?", "topic": None}})
        stats = self.fake.control("GET", "stats")
        self.assertEqual(stats["repairs"], 3)
        self.assertEqual(stats["by_type"], {"invalid_json": 4, "event": 1, "task": 3, "recipe": 1,
                                            "note": 1, "question": 1})
        log = self.fake.control("GET", "requests")
        self.assertEqual([x["repair"] for x in log][:4], [False, False, True, False])
        self.fake.control("POST", "reset")
        self.assertEqual(self.ask("#reclassify ok?")[2]["type"], "note")
        self.assertEqual(self.ask(text)[2], "Sure! Here is")

    def test_bad_requests(self):
        st, _, r = self.fake.request("POST", STRUCT_PATH, b"{nope", {"Content-Type": "application/json"})
        self.assertEqual(st, 400)
        self.assertIn("invalid JSON", json.loads(r)["error"])
        self.assertEqual(self.fake.request("POST", STRUCT_PATH, b"")[0], 400)
        self.assertEqual(self.fake.request("POST", STRUCT_PATH, [1])[0], 400)
        for over in ({"message": None}, {"message": 5}, {"is_clarification": "no"},
                     {"user_id": True}, {"reply_to_message": 3}, {"message_type": None}):
            self.assertEqual(self.ask("x", **over)[0], 400, over)
        body = {"message": "x", "user_id": 1, "reply_to_message": None, "is_clarification": False}
        st, _, r = self.fake.json("POST", STRUCT_PATH, body)
        self.assertEqual((st, r), (400, {"error": "missing field 'message_type'"}))
        self.assertEqual(self.ask("x", {"previous": "p"})[0], 400)
        self.assertEqual(self.ask("x", "bad")[0], 400)
        st, _, r = self.ask("x", path="/webhook/other")
        self.assertEqual((st, r), (404, {"error": "not found"}))
        st, h, _ = self.fake.request("GET", STRUCT_PATH)
        self.assertEqual((st, h["allow"]), (405, "POST"))
        self.assertEqual(self.fake.control("GET", "stats")["by_type"], {})

    def test_faults(self):
        self.fake.control("POST", "faults", {"faults": [
            {"kind": "status", "status": 502}, {"kind": "status", "status": 429, "retry_after": 3},
            {"kind": "malformed"}, {"kind": "empty"}]})
        st, _, r = self.ask("x")
        self.assertEqual((st, r), (502, {"error": "injected 502"}))
        st, h, r = self.ask("x")
        self.assertEqual((st, h["retry-after"], r), (429, "3", {"error": "rate limited"}))
        st, _, r = self.ask("x")
        self.assertEqual(st, 200)
        self.assertIsInstance(r, str)
        self.assertEqual(self.ask("x")[:3:2], (200, ""))
        self.assertEqual(self.ask("x")[2]["type"], "note")

    def test_rate_limit_and_stats(self):
        self.fake.control("POST", "config", {"rate_limit": 4})
        res = parallel(lambda i: self.ask("task %d" % i), 9)
        self.assertEqual(sorted(st for st, _, _ in res), [200] * 4 + [429] * 5)
        for st, h, r in res:
            if st == 429:
                self.assertEqual(r, {"error": "rate limited"})
                self.assertIn(h["retry-after"], ("1", "2"))
        stats = self.fake.control("GET", "stats")
        self.assertEqual((stats["requests"], stats["rate_limited"], stats["by_type"]),
                         (9, 5, {"task": 4}))
        # peak concurrency, latency included
        self.fake.control("POST", "reset")
        self.fake.control("POST", "config", {"latency_ms": 400})
        res = parallel(lambda i: self.ask("n %d" % i)[0], 6)
        self.assertEqual(res, [200] * 6)
        self.assertEqual(self.fake.control("GET", "stats")["max_concurrent"], 6)

    def test_throughput(self):
        # ~100 requests/s with 200 ms latency: 30 clients, 150 calls, ideally 1 s
        self.fake.control("POST", "config", {"latency_ms": 200})
        t0 = time.time()
        res = parallel(lambda i: self.ask("m %d" % i)[0], 150, workers=30)
        took = time.time() - t0
        self.assertEqual(res, [200] * 150)
        self.assertLess(took, 3.0)
        stats = self.fake.control("GET", "stats")
        self.assertEqual(stats["requests"], 150)
        self.assertGreaterEqual(stats["max_concurrent"], 20)

    def test_secret_and_path(self):
        fake = Fake("fake_structurer.py", "--secret", "s3cret", "--path", "/hook/x", "--rate-limit", "3")
        try:
            # every API call counts for the rate limit, the 401 too
            body = {"message": "hi", "message_type": "text", "user_id": 1,
                    "reply_to_message": None, "is_clarification": False}
            self.assertEqual(fake.request("POST", "/hook/x", body)[0], 401)
            self.assertEqual(fake.request("POST", "/hook/x", body, {"X-Webhook-Secret": "s3cret"})[0], 200)
            self.assertEqual(fake.request("POST", "/hook/x", body, {"Authorization": "Bearer s3cret"})[0],
                             200)
            self.assertEqual(fake.request("POST", "/hook/x", body, {"X-Webhook-Secret": "s3cret"})[0], 429)
            log = fake.control("GET", "requests")
            self.assertNotIn("s3cret", json.dumps(log))
            self.assertEqual(fake.control("GET", "config")["rate_limit"], 3)
        finally:
            rc, gone = fake.stop()
            self.assertEqual((rc, gone), (0, True))



class FakeTeamsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # Two calls per webhook per hour: the third is refused, whatever
        # the machine's speed.
        cls.fake = Fake("fake_teams.py", "--rate-limit", "2",
                        "--rate-window", "3600")

    @classmethod
    def tearDownClass(cls):
        cls.fake.stop()

    def setUp(self):
        self.fake.control("POST", "reset")

    @staticmethod
    def message(text="hello"):
        return {"type": "message", "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "content": {"type": "AdaptiveCard", "version": "1.4",
                        "body": [{"type": "TextBlock", "text": text}]}}]}

    def raw(self, path, body):
        st, h, data = self.fake.request(
            "POST", path, body, {"Content-Type": "application/json"})
        return st, data.decode(), h

    def post(self, path, msg):
        return self.raw(path, json.dumps(msg).encode())

    def test_incoming_webhook_and_workflows(self):
        self.assertEqual(self.post("/webhookb2/a", self.message())[:2],
                         (200, "1"))
        self.assertEqual(self.post("/workflows/b", self.message("x"))[:2],
                         (202, ""))
        cards = self.fake.control("GET", "cards")
        self.assertEqual([(c["id"], c["texts"]) for c in cards],
                         [("a", ["hello"]), ("b", ["x"])])

    def test_refuses_what_teams_refuses(self):
        bad = "Bad payload received by generic incoming webhook."
        self.assertEqual(self.raw("/webhookb2/c", b"{nope")[:2], (400, bad))
        self.assertEqual(self.post("/webhookb2/d", {"text": "x"})[:2],
                         (400, bad))
        wrong = self.message()
        wrong["attachments"][0]["content"]["type"] = "MessageCard"
        self.assertEqual(self.post("/webhookb2/e", wrong)[0], 400)
        big = self.message("x" * (29 * 1024))
        self.assertEqual(self.post("/webhookb2/f", big)[:2],
                         (413, "Payload is too large"))
        self.fake.control("POST", "removed", {"ids": ["g"]})
        self.assertEqual(self.post("/webhookb2/g", self.message())[0], 410)
        self.assertEqual(self.fake.control("GET", "cards"), [])

    def test_rate_limit_429_with_retry_after(self):
        for _ in range(2):
            self.assertEqual(self.post("/webhookb2/h", self.message())[0],
                             200)
        st, _, headers = self.post("/webhookb2/h", self.message())
        self.assertEqual(st, 429)
        self.assertEqual(headers.get("retry-after"), "1")
        self.assertEqual(self.post("/webhookb2/i", self.message())[0], 200)
        self.assertEqual(self.fake.control("GET", "stats"),
                         {"accepted": 3, "refused_429": 1})

if __name__ == "__main__":
    unittest.main(verbosity=2)
