#!/usr/bin/env python3
"""Fake Microsoft Teams webhooks (real wire format), stdlib only.

Endpoints (POST, JSON body):
  /webhookb2/<id>          an incoming webhook (Office 365 connector):
                           200 with the text body "1" on success
  /workflows/<id>          a Workflows "When a Teams webhook request is
                           received" trigger: 202 Accepted, empty body
Both take {"type": "message", "attachments": [{"contentType":
"application/vnd.microsoft.card.adaptive", "content": <AdaptiveCard>}]}
and refuse what Teams refuses:
  400 "Bad payload received by generic incoming webhook."  not JSON, no
      attachments, an attachment that is not an Adaptive Card, a card
      without "type": "AdaptiveCard", "version" or a "body" list, or a
      TextBlock without text
  413 "Payload is too large"   body over 28 KB (28,672 bytes)
  404 / 410                    an id registered as removed (POST
                               /_control/removed {"ids": [...]})
  429 with Retry-After         more than --rate-limit requests (default 4)
                               to one id in any --rate-window seconds (1)
An incoming webhook answers errors after throttling the old way when
--legacy-200 is given: HTTP 200 whose text says
"Microsoft Teams endpoint returned HTTP error 429 ...".

Control API (fakecommon.py's: requests, faults, config, reset), plus:
  GET  /_control/cards     [{"id", "card", "texts": [every TextBlock and
                            fact, in order]}] of the accepted messages
  GET  /_control/stats     {"accepted": n, "refused_429": n}
  POST /_control/removed   {"ids": [...]}

CLI: fake_teams.py [--host 127.0.0.1] [--port 0] [--port-file PATH]
                   [--rate-limit 4] [--rate-window 1] [--legacy-200]
                   [--latency-ms N] [-v]
"""

import json
import os
import re
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import fakecommon  # noqa: E402
from fakecommon import App, Response, json_response  # noqa: E402

MAX_PAYLOAD = 28 * 1024
PATH = re.compile(r"^/(webhookb2|workflows)/([A-Za-z0-9_.@-]+)$")
ADAPTIVE = "application/vnd.microsoft.card.adaptive"


def text_response(status, text, headers=None):
    return Response(status, text.encode(), "text/plain; charset=utf-8",
                    headers or [])


def card_texts(card):
    out = []
    for el in card.get("body", []):
        if not isinstance(el, dict):
            continue
        if el.get("type") == "TextBlock":
            out.append(el.get("text"))
        elif el.get("type") == "FactSet":
            for f in el.get("facts", []):
                out.append("%s: %s" % (f.get("title"), f.get("value")))
    return out


def check_card(msg):
    """None when Teams would take msg, else the reason."""
    if not isinstance(msg, dict) or msg.get("type") != "message":
        return "not a message"
    atts = msg.get("attachments")
    if not isinstance(atts, list) or not atts:
        return "no attachments"
    for a in atts:
        if not isinstance(a, dict) or a.get("contentType") != ADAPTIVE:
            return "attachment is not an Adaptive Card"
        c = a.get("content")
        if not isinstance(c, dict) or c.get("type") != "AdaptiveCard":
            return "content is not an AdaptiveCard"
        if not isinstance(c.get("version"), str):
            return "card has no version"
        if not isinstance(c.get("body"), list):
            return "card has no body"
        for el in c["body"]:
            if not isinstance(el, dict) or "type" not in el:
                return "body element without type"
            if el["type"] == "TextBlock" and not isinstance(el.get("text"),
                                                            str):
                return "TextBlock without text"
    return None


class TeamsApp(App):
    name = "fake_teams"
    json_only = True

    def __init__(self, args):
        super().__init__(args)
        self.rate_limit = args.rate_limit
        self.rate_window = args.rate_window
        self.legacy_200 = args.legacy_200
        self.lock = threading.Lock()
        self.reset_app()

    def reset_app(self):
        with self.lock:
            self.cards = []
            self.calls = {}  # id -> recent call times
            self.removed = set()
            self.accepted = 0
            self.refused = 0

    def error(self, status, message, retry_after=None):
        headers = []
        if retry_after is not None:
            headers.append(("Retry-After", str(int(retry_after))))
        return text_response(status, message or "injected %d" % status,
                             headers)

    def throttled(self, hook):
        now = time.monotonic()
        with self.lock:
            recent = [t for t in self.calls.get(hook, [])
                      if now - t < self.rate_window]
            if len(recent) >= self.rate_limit:
                self.calls[hook] = recent
                self.refused += 1
                return True
            recent.append(now)
            self.calls[hook] = recent
            return False

    def handle_api(self, req):
        m = PATH.match(req.path)
        if req.method != "POST" or not m:
            return text_response(404, "Not Found")
        kind, hook = m.group(1), m.group(2)
        with self.lock:
            gone = hook in self.removed
        if gone:
            return text_response(410 if kind == "webhookb2" else 404,
                                 "Webhook has been removed")
        if len(req.body) > MAX_PAYLOAD:
            return text_response(413, "Payload is too large")
        if self.throttled(hook):
            req.entry["rate_limited"] = True
            if self.legacy_200 and kind == "webhookb2":
                return text_response(200, "Microsoft Teams endpoint returned "
                                     "HTTP error 429 with ContextId "
                                     "tcid=0,server=fake")
            return text_response(429, "Too many requests", [("Retry-After",
                                                             "1")])
        if req.parse_error is not None or req.utf8_error:
            return text_response(400, "Bad payload received by generic "
                                 "incoming webhook.")
        why = check_card(req.json)
        if why is not None:
            req.entry["refused"] = why
            return text_response(400, "Bad payload received by generic "
                                 "incoming webhook.")
        card = req.json["attachments"][0]["content"]
        with self.lock:
            self.accepted += 1
            self.cards.append({"id": hook, "card": card,
                               "texts": card_texts(card)})
        if kind == "workflows":
            return Response(202, b"", "text/plain", [])
        return text_response(200, "1")

    def control(self, method, path, query, body):
        if path == "/_control/cards" and method == "GET":
            with self.lock:
                return json_response(list(self.cards))
        if path == "/_control/stats" and method == "GET":
            with self.lock:
                return json_response({"accepted": self.accepted,
                                      "refused_429": self.refused})
        if path == "/_control/removed" and method == "POST":
            ids = body.get("ids") if isinstance(body, dict) else None
            if not isinstance(ids, list):
                return json_response({"ok": False,
                                      "error": "expected {\"ids\": [...]}"},
                                     400)
            with self.lock:
                self.removed.update(str(i) for i in ids)
            return json_response({"ok": True})
        return None


def main(argv=None):
    p = fakecommon.make_arg_parser("Fake Microsoft Teams webhooks.",
                                   "--secret", "unused (webhook URLs carry "
                                   "their own secret)")
    p.add_argument("--rate-limit", type=int, default=4,
                   help="requests per webhook in any second before 429")
    p.add_argument("--rate-window", type=float, default=1.0,
                   help="seconds of the rate limit's window (tests: long)")
    p.add_argument("--legacy-200", action="store_true",
                   help="incoming webhooks report throttling in a 200 body")
    args = p.parse_args(argv)
    return fakecommon.run(TeamsApp(args), args)


if __name__ == "__main__":
    sys.exit(main())
