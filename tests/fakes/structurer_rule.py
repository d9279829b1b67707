"""The structurer's deterministic answer rule, shared by fake_llm.py (chat
completions with response_format json_schema) and fake_structurer.py (the
seed's webhook), plus what both use for rate limiting and stats (stdlib only).

THE RULE (recompute it in tests: `from structurer_rule import answer` or copy):
  t = the raw message text (webhook: body["message"]; chat: see chat_text()).
  low = t.lower()
  Markers, checked first, in this order:
    "#invalid-once"  in t -> the first request for this exact t answers the
                            non-JSON text "Sure! Here is"; later requests and
                            any repair request for it answer normally (below)
    "#invalid-always" in t -> always "Sure! Here is" (repairs too)
    "#bad-data"      in t -> {"type": "task", "data": {"title": 5}} (schema-invalid)
    "#unknown-type"  in t -> {"type": "recipe", "data": {}}
    "#reclassify"    in t -> type = the control switch (POST /_control/classify
                            {"reclassify": TYPE}; "note" by default and after
                            reset), data = make_data(type, t)
  Otherwise the type is the first that applies:
    "meeting" in low or "встреча" in low                -> "event"
    "todo" in low or "task" in low or "сделать" in low  -> "task"
    t.rstrip().endswith("?")                           -> "question"
    "[file]" in low                                    -> "file"
    else                                               -> "note"
  and data = make_data(type, t):
    event:    {"title": t.strip()[:60], "starts_at": "2026-12-01T10:00:00Z",
               "ends_at": None, "location": None}
    task:     {"title": t.strip()[:60], "due_at": None,
               "priority": "high" if "urgent" in low else "normal", "done": False}
    question: {"question": t[:2000], "topic": None}
    file:     {"description": t.strip()[:200]}
    note:     {"title": t.strip()[:60], "body": t}
  (slices count code points, as Python does).

Repair requests: webhook -> the body has a non-null "repair" object; chat ->
more than one user message, or any message whose text contains "did not match".

Chat text (chat_text): of the user messages, take the LAST one that does not
contain "did not match" (if all do, the last one); if it has a line starting
with "Message:", t = everything after that prefix on the last such line
(including the lines after it), .strip()ped; otherwise t = its whole content.
So a repair may be sent as [system, user(original), assistant(bad answer),
user("... did not match ...")] and t is still the original text.
"""

import json
import math
import threading
import time
from collections import deque
from urllib.parse import urlsplit

import fakecommon

TYPES = ("event", "task", "note", "question", "file")
NOT_JSON = "Sure! Here is"
STARTS_AT = "2026-12-01T10:00:00Z"
MARKERS = ("#invalid-once", "#invalid-always", "#bad-data", "#unknown-type", "#reclassify")


# ---------------------------------------------------------------- the rule

def make_data(typ, t):
    low = t.lower()
    if typ == "event":
        return {"title": t.strip()[:60], "starts_at": STARTS_AT, "ends_at": None, "location": None}
    if typ == "task":
        return {"title": t.strip()[:60], "due_at": None,
                "priority": "high" if "urgent" in low else "normal", "done": False}
    if typ == "question":
        return {"question": t[:2000], "topic": None}
    if typ == "file":
        return {"description": t.strip()[:200]}
    return {"title": t.strip()[:60], "body": t}


def classify(t):
    """The type by the plain rule (no markers)."""
    low = t.lower()
    if "meeting" in low or "встреча" in low:
        return "event"
    if "todo" in low or "task" in low or "сделать" in low:
        return "task"
    if t.rstrip().endswith("?"):
        return "question"
    if "[file]" in low:
        return "file"
    return "note"


def answer(t, repair=False, first_time=True, reclassify="note"):
    """The answer for text t: a dict {"type", "data"}, or the str NOT_JSON.
    first_time: no request for this exact t was seen before (for #invalid-once)."""
    if "#invalid-once" in t:
        if first_time and not repair:
            return NOT_JSON
    elif "#invalid-always" in t:
        return NOT_JSON
    elif "#bad-data" in t:
        return {"type": "task", "data": {"title": 5}}
    elif "#unknown-type" in t:
        return {"type": "recipe", "data": {}}
    elif "#reclassify" in t:
        return {"type": reclassify, "data": make_data(reclassify, t)}
    typ = classify(t)
    return {"type": typ, "data": make_data(typ, t)}


def text_after_message_line(content):
    lines = content.split("\n")
    for i in range(len(lines) - 1, -1, -1):
        if lines[i].startswith("Message:"):
            rest = [lines[i][len("Message:"):]] + lines[i + 1:]
            return "\n".join(rest).strip()
    return content


def chat_text(user_texts):
    """t from the texts of the user messages (in order)."""
    if not user_texts:
        return ""
    pick = user_texts[-1]
    for u in reversed(user_texts):
        if "did not match" not in u:
            pick = u
            break
    return text_after_message_line(pick)


def chat_is_repair(user_texts, all_texts):
    return len(user_texts) > 1 or any("did not match" in x for x in all_texts)


# ---------------------------------------------------------------- per-fake state

class RuleState:
    """#invalid-once memory, the #reclassify switch, answer counters."""

    def __init__(self):
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        with self.lock:
            self.seen = set()
            self.reclassify = "note"
            self.by_type = {}
            self.repairs = 0

    def answer(self, t, repair):
        with self.lock:
            first = t not in self.seen
            self.seen.add(t)
            a = answer(t, repair, first, self.reclassify)
            key = "invalid_json" if isinstance(a, str) else a["type"]
            self.by_type[key] = self.by_type.get(key, 0) + 1
            if repair:
                self.repairs += 1
            return a

    def count(self, key):
        with self.lock:
            self.by_type[key] = self.by_type.get(key, 0) + 1


class Limits:
    """Rate limit (sliding 1-second window: at most R calls admitted in any
    second; 0 = off), request counters and the peak of calls in progress."""

    def __init__(self, rate_limit):
        self.lock = threading.Lock()
        self.default_rate = rate_limit
        self.in_flight = 0
        self.reset()

    def reset(self):
        with self.lock:
            self.rate_limit = self.default_rate
            self.window = deque()
            self.requests = 0
            self.rate_limited = 0
            self.peak = self.in_flight

    def set_rate(self, r):
        with self.lock:
            self.rate_limit = r
            self.window.clear()

    def enter(self):
        with self.lock:
            self.requests += 1
            self.in_flight += 1
            if self.in_flight > self.peak:
                self.peak = self.in_flight

    def leave(self):
        with self.lock:
            self.in_flight -= 1

    def admit(self):
        """None if the call may go on, else the Retry-After seconds."""
        with self.lock:
            r = self.rate_limit
            if not r:
                return None
            now = time.monotonic()
            while self.window and self.window[0] <= now - 1.0:
                self.window.popleft()
            if len(self.window) >= r:
                self.rate_limited += 1
                return max(1, int(math.ceil(self.window[0] + 1.0 - now)))
            self.window.append(now)
            return None

    def stats(self):
        with self.lock:
            return {"requests": self.requests, "rate_limited": self.rate_limited,
                    "max_concurrent": self.peak, "in_flight": self.in_flight}


class LimitedHandler(fakecommon.Handler):
    """fakecommon's handler, plus: every API call is counted as in progress
    from its first byte to its answer (latency included), and a call over the
    rate limit is answered 429 at once (no latency, no fault consumed; logged
    with "rate_limited": true)."""

    def _dispatch(self):
        app = self.app
        limits = getattr(app, "limits", None)
        path = urlsplit(self.path).path
        if limits is None or path == "/_control" or path.startswith("/_control/"):
            return super()._dispatch()
        limits.enter()
        try:
            retry = limits.admit()
            if retry is None:
                return super()._dispatch()
            self._rate_limited(retry)
        finally:
            limits.leave()

    def _rate_limited(self, retry):
        app = self.app
        try:
            body = self._read_body()
        except fakecommon._TooLarge:
            self._too_large()
            return
        except (ValueError, ConnectionError):
            self.close_connection = True
            return
        split = urlsplit(self.path)
        query = dict(fakecommon.parse_qsl(split.query, keep_blank_values=True))
        headers = {k.lower(): v for k, v in self.headers.items()}
        req = fakecommon.Request(self.command, split.path, query, headers, body)
        fakecommon.parse_body(req, json_only=app.json_only)
        entry = self._new_entry()
        entry["json"] = app.redact_value(fakecommon.body_for_log(req))
        if req.parse_error is not None:
            entry["raw"] = app.redact_text(body[:65536].decode("utf-8", "replace"))
        entry["rate_limited"] = True
        entry["status"] = 429
        with app.state.lock:
            entry["seq"] = len(app.state.requests)
            app.state.requests.append(entry)
        if self._send(app.error(429, None, retry)) is None:
            entry["status"] = None
        app.log("%s %s -> 429 (rate limited)" % (self.command, entry["path"]))


def install_handler():
    """Make fakecommon.run() serve with LimitedHandler (fakecommon.Server looks
    the handler class up by name when it is created)."""
    fakecommon.Handler = LimitedHandler


def add_cli_flags(p):
    p.add_argument("--rate-limit", type=int, default=0,
                   help="answer 429 beyond R API calls in any 1-second window (0 = off, default)")


class StructurerMixin:
    """For an App subclass: self.limits, self.rules_state, and the control
    endpoints GET /_control/stats, GET|POST /_control/classify, plus the
    extra config keys "rate_limit" (and any in self.extra_config)."""

    def init_structurer(self, args):
        self.limits = Limits(args.rate_limit)
        self.rules_state = RuleState()
        self.extra_defaults = dict(getattr(self, "extra_defaults", {}))
        self.extra_config = dict(self.extra_defaults)

    def reset_structurer(self):
        self.limits.reset()
        self.rules_state.reset()
        self.extra_config = dict(self.extra_defaults)

    def check_extra_config(self, key, value):
        """An error text, or None. Subclasses extend this."""
        return "unknown key"

    def _config_doc(self, doc):
        doc["rate_limit"] = self.limits.rate_limit
        doc.update(self.extra_config)
        return doc

    def handle_control(self, method, path, query, body_bytes):
        body = None
        if body_bytes:
            try:
                body = json.loads(body_bytes.decode("utf-8"))
            except (ValueError, UnicodeDecodeError) as e:
                return fakecommon.json_response({"ok": False, "error": "invalid JSON: %s" % e}, 400)
        if path == "/_control/stats" and method == "GET":
            doc = self.limits.stats()
            with self.rules_state.lock:
                doc["by_type"] = dict(self.rules_state.by_type)
                doc["repairs"] = self.rules_state.repairs
            return fakecommon.json_response(doc)
        if path == "/_control/classify":
            if method == "POST":
                r = body.get("reclassify") if isinstance(body, dict) else None
                if r not in TYPES:
                    return fakecommon.json_response(
                        {"ok": False, "error": "expected {\"reclassify\": one of %s}" % ", ".join(TYPES)}, 400)
                with self.rules_state.lock:
                    self.rules_state.reclassify = r
                return fakecommon.json_response({"ok": True, "reclassify": r})
            if method == "GET":
                with self.rules_state.lock:
                    return fakecommon.json_response({"reclassify": self.rules_state.reclassify})
        if path == "/_control/config":
            if method == "POST" and isinstance(body, dict):
                if "rate_limit" in body:
                    r = body["rate_limit"]
                    if r is None:
                        r = 0
                    if not isinstance(r, int) or isinstance(r, bool) or r < 0:
                        return fakecommon.json_response(
                            {"ok": False, "error": "rate_limit must be a non-negative integer"}, 400)
                for k in self.extra_defaults:
                    if k in body:
                        err = self.check_extra_config(k, body[k])
                        if err:
                            return fakecommon.json_response({"ok": False, "error": "%s: %s" % (k, err)}, 400)
                if "rate_limit" in body:
                    self.limits.set_rate(body["rate_limit"] or 0)
                for k in self.extra_defaults:
                    if k in body:
                        self.extra_config[k] = body[k]
            resp = super().handle_control(method, path, query, body_bytes)
            if resp.status == 200:
                resp = fakecommon.json_response(self._config_doc(json.loads(resp.body)))
            return resp
        return super().handle_control(method, path, query, body_bytes)
