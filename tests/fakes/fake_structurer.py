#!/usr/bin/env python3
"""Fake of the seed's structurer webhook (stdlib only).

POST <path> (default /webhook/digital-twin-ask; --path P) with a JSON object:
  {"message": str, "message_type": str, "user_id": int|str,
   "reply_to_message": str|null, "is_clarification": bool,
   "repair": {"previous": str, "error": str}   (optional; null = absent)}
answered 200 with the JSON {"type": TYPE, "data": {...}} directly, or 200 with
the non-JSON body "Sure! Here is" (Content-Type application/json all the same).

THE RULE and the markers: see structurer_rule.py (shared with fake_llm.py's
structured mode). t = body["message"]; a request with a non-null "repair"
object is a repair. In short:
  "#invalid-once"   first request for this exact t: "Sure! Here is"; later
                    requests and repairs: the plain rule
  "#invalid-always" always "Sure! Here is"
  "#bad-data"       {"type": "task", "data": {"title": 5}}
  "#unknown-type"   {"type": "recipe", "data": {}}
  "#reclassify"     type from POST /_control/classify {"reclassify": T} (default note)
  "meeting"/"встреча" -> event, "todo"/"task"/"сделать" -> task (priority high
  if "urgent"), ends with "?" -> question, "[file]" -> file, else note
  (checked on t.lower(), in that order).

Errors are {"error": "..."}:
  400 body is not JSON / not an object / a field missing or of the wrong type
  401 with --secret S, when neither "X-Webhook-Secret: S" nor
      "Authorization: Bearer S" is sent
  404 another path, 405 not POST, 413 body > 20 MB
  429 {"error": "rate limited"} + Retry-After beyond --rate-limit R calls in
      any 1-second window (answered at once, no latency, no fault consumed;
      logged with "rate_limited": true)
The request log entry of an answered call has "answer_type" (a type,
"recipe", or "invalid_json") and "repair" (bool).

Faults (fakecommon.py): status -> {"error": ...} (+ Retry-After if given);
malformed -> 200 with truncated JSON; empty -> 200 with an empty body.

Control API (fakecommon.py's, plus):
  GET  /_control/stats     {"requests", "rate_limited", "max_concurrent",
                            "in_flight", "by_type": {type or "invalid_json": n},
                            "repairs"}
  POST /_control/classify  {"reclassify": TYPE};  GET /_control/classify
  POST /_control/config    also {"rate_limit": R} (0 = off), "latency_ms", ...
  POST /_control/reset     everything back to the CLI values

CLI: fake_structurer.py [--host 127.0.0.1] [--port 0] [--port-file PATH]
                        [--path /webhook/digital-twin-ask] [--secret S]
                        [--latency-ms N] [--rate-limit R] [--fail-rate R]
                        [--seed S] [-v]
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import fakecommon  # noqa: E402
from fakecommon import App, Response, json_response  # noqa: E402
import structurer_rule  # noqa: E402
from structurer_rule import StructurerMixin  # noqa: E402

DEFAULT_PATH = "/webhook/digital-twin-ask"


def field_error(body):
    if not isinstance(body, dict):
        return "the body must be a JSON object"
    need = (("message", (str,), False), ("message_type", (str,), False),
            ("user_id", (int, str), False), ("reply_to_message", (str,), True),
            ("is_clarification", (bool,), False))
    for name, types, nullable in need:
        if name not in body:
            return "missing field %r" % name
        v = body[name]
        if v is None and nullable:
            continue
        if not isinstance(v, types) or (isinstance(v, bool) and bool not in types):
            return "field %r has the wrong type" % name
    rep = body.get("repair")
    if rep is not None:
        if not isinstance(rep, dict):
            return "field 'repair' must be an object or null"
        for k in ("previous", "error"):
            if not isinstance(rep.get(k), str):
                return "field 'repair.%s' must be a string" % k
    return None


class StructurerApp(StructurerMixin, App):
    name = "fake_structurer"
    json_only = True

    def __init__(self, args):
        super().__init__(args)
        self.path = args.path
        self.secret = args.secret
        self.init_structurer(args)

    def reset_app(self):
        self.reset_structurer()

    def error(self, status, message, retry_after=None):
        headers = []
        if retry_after is not None:
            headers.append(("Retry-After", str(int(retry_after))))
        if message is None:
            message = {429: "rate limited", 413: "body too large",
                       401: "unauthorized"}.get(status, "injected %d" % status)
        return json_response({"error": message}, status, headers)

    def fault_malformed(self, req):
        return Response(200, b'{"type": "note", "data": {"title": "trunc')

    def redact_header(self, name, value):
        if name == "x-webhook-secret":
            return "<redacted>"
        return super().redact_header(name, value)

    def handle_api(self, req):
        if (req.path.rstrip("/") or "/") != (self.path.rstrip("/") or "/"):
            return self.error(404, "not found")
        if req.method != "POST":
            r = self.error(405, "method not allowed")
            r.headers.append(("Allow", "POST"))
            return r
        if self.secret is not None:
            bearer = req.headers.get("authorization", "")
            ok = (req.headers.get("x-webhook-secret") == self.secret
                  or bearer == "Bearer " + self.secret)
            req.entry["auth"] = "valid" if ok else "invalid"
            if not ok:
                return self.error(401, "unauthorized")
        if req.parse_error is not None or req.body_kind == "empty":
            return self.error(400, "invalid JSON body: %s" % (req.parse_error or "empty"))
        err = field_error(req.json)
        if err:
            return self.error(400, err)
        body = req.json
        repair = body.get("repair") is not None
        ans = self.rules_state.answer(body["message"], repair)
        req.entry["repair"] = repair
        if isinstance(ans, str):
            req.entry["answer_type"] = "invalid_json"
            return Response(200, ans.encode("utf-8"))
        req.entry["answer_type"] = ans["type"]
        return json_response(ans)


def main(argv=None):
    p = fakecommon.make_arg_parser("Fake structurer webhook.", "--secret",
                                   "require X-Webhook-Secret: S or Authorization: Bearer S")
    p.add_argument("--path", default=DEFAULT_PATH,
                   help="the webhook's path (default %s)" % DEFAULT_PATH)
    structurer_rule.add_cli_flags(p)
    args = p.parse_args(argv)
    structurer_rule.install_handler()
    return fakecommon.run(StructurerApp(args), args)


if __name__ == "__main__":
    sys.exit(main())
