#!/usr/bin/env python3
"""Fake webhook receiver, stdlib only: what `webhook.post` talks to.

Any request to any path (other than /_control/...) is recorded and answered
with the configured status (default 200) and {"ok": true} (errors:
{"ok": false, "error": "..."}). The request log entry carries the parsed JSON
body under "json" (see fakecommon.py), so a test can see which items arrived.

Control API (fakecommon.py's, plus):
  POST /_control/config {"status": 400}     answer 400 until changed
                        {"latency_ms": N}   sleep N ms before each answer
                        {"hold": true}      keep calls waiting until
                                            {"hold": false}
                        {"release": N}      while holding, let N more
                                            calls through (one each)
  GET  /_control/stats                     {"in_flight": calls being
                                           answered now, "peak_in_flight":
                                           the most at once since reset}
  GET  /_control/requests                  the request log
  POST /_control/reset                     log, faults and config back to
                                           the start (status 200)
Faults: {"kind": "status", "status": 500} answers that status once, etc.

CLI: fake_webhook.py [--host 127.0.0.1] [--port 0] [--port-file PATH]
                     [--status 200] [--latency-ms N] [-v]
"""

import json
import os
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import fakecommon  # noqa: E402
from fakecommon import App, json_response  # noqa: E402


class WebhookApp(App):
    name = "fake_webhook"
    json_only = True  # any body is parsed as JSON ("raw" when it is not)

    def __init__(self, args):
        super().__init__(args)
        self.default_status = args.status
        self.lock = threading.Lock()
        self.released = threading.Condition(self.lock)
        self.reset_app()

    def reset_app(self):
        with self.lock:
            self.status = self.default_status
            self.hold = False
            self.permits = 0
            self.in_flight = 0
            self.peak = 0
            self.released.notify_all()

    def error(self, status, message, retry_after=None):
        headers = []
        if retry_after is not None:
            headers.append(("Retry-After", str(int(retry_after))))
        return json_response({"ok": False,
                              "error": message or "injected %d" % status},
                             status, headers)

    def handle_api(self, req):
        with self.lock:
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
            while self.hold and self.permits == 0:
                self.released.wait()
            if self.hold:
                self.permits -= 1
            status = self.status
        try:
            if status != 200:
                return self.error(status, "configured to answer %d" % status)
            return json_response({"ok": True})
        finally:
            with self.lock:
                self.in_flight -= 1

    def handle_control(self, method, path, query, body_bytes):
        if path == "/_control/stats" and method == "GET":
            with self.lock:
                return json_response({"in_flight": self.in_flight,
                                      "peak_in_flight": self.peak})
        # "status" and "hold" are ours; the rest is fakecommon's.
        if path == "/_control/config" and method == "POST" and body_bytes:
            try:
                body = json.loads(body_bytes.decode("utf-8"))
            except (ValueError, UnicodeDecodeError) as e:
                return json_response({"ok": False,
                                      "error": "invalid JSON: %s" % e}, 400)
            hold = body.get("hold") if isinstance(body, dict) else None
            if hold is not None:
                if not isinstance(hold, bool):
                    return json_response({"ok": False,
                                          "error": "hold must be true or "
                                                   "false"}, 400)
                with self.lock:
                    self.hold = hold
                    self.released.notify_all()
            release = body.get("release") if isinstance(body, dict) else None
            if release is not None:
                if (not isinstance(release, int) or isinstance(release, bool)
                        or release < 0):
                    return json_response({"ok": False,
                                          "error": "release must be a "
                                                   "count >= 0"}, 400)
                with self.lock:
                    self.permits += release
                    self.released.notify_all()
            status = body.get("status") if isinstance(body, dict) else None
            if status is not None:
                if (not isinstance(status, int) or isinstance(status, bool)
                        or not 100 <= status <= 599):
                    return json_response({"ok": False,
                                          "error": "status must be an "
                                                   "integer HTTP status"}, 400)
                with self.lock:
                    self.status = status
        resp = super().handle_control(method, path, query, body_bytes)
        if path == "/_control/config" and resp.status == 200:
            doc = json.loads(resp.body)
            with self.lock:
                doc["status"] = self.status
                doc["hold"] = self.hold
                doc["permits"] = self.permits
            resp = json_response(doc)
        return resp


def main(argv=None):
    p = fakecommon.make_arg_parser("Fake webhook receiver.", "--secret",
                                   "unused (kept for the common CLI)")
    p.add_argument("--status", type=int, default=200,
                   help="status to answer with until changed (default 200)")
    args = p.parse_args(argv)
    return fakecommon.run(WebhookApp(args), args)


if __name__ == "__main__":
    sys.exit(main())
