#!/usr/bin/env python3
"""Fake Elasticsearch (the point-in-time search API, real wire format),
stdlib only.

  POST   /<index>/_pit?keep_alive=2m     {"id": "<pit>"}; <index> may be a
                                         pattern (logs-*) or a list (a,b)
  POST   /_search   {"size" (<= 10000), "query": {"range": {<field>:
                     {"gte", "lt", "format": "epoch_millis"}}},
                     "pit": {"id", "keep_alive"}, "sort": [{<field>:
                     "asc"}, {"_shard_doc": "asc"}], "search_after"?}
         -> {"pit_id", "took", "timed_out": false, "_shards": {...},
             "hits": {"hits": [{"_index", "_id", "_score": null,
                                "_source", "sort": [ms, shard_doc]}]}}
  DELETE /_pit      {"id"} -> {"succeeded": true, "num_freed": 1}
Errors as Elasticsearch writes them, {"error": {"root_cause": [...],
"type", "reason"}, "status"}:
  401 security_exception                 missing or wrong credentials
                                         (--user/--password or --api-key)
  404 index_not_found_exception          no index matches
  404 search_context_missing_exception   unknown or closed point in time
  400 parsing_exception / illegal_argument_exception   a body without
      size <= 10000, sort, pit, or a range on the sorted field
Documents: POST /_control/docs {"index": "logs-app", "docs": [{...}]};
the time field is parsed from "@timestamp" (RFC 3339 or epoch ms) unless
{"time_field": "..."} says otherwise.
GET /_control/stats {"searches", "pits_opened", "open_pits",
                     "largest_page"}
Faults (fakecommon.py) apply to the API calls in order.

CLI: fake_elasticsearch.py [--host 127.0.0.1] [--port 0] [--port-file P]
                           [--user U --password P | --api-key K] [-v]
"""

import base64
import datetime
import fnmatch
import os
import sys
import threading
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import fakecommon  # noqa: E402
from fakecommon import App, json_response  # noqa: E402


def es_error(status, etype, reason):
    return json_response({"error": {"root_cause": [{"type": etype,
                                                    "reason": reason}],
                                    "type": etype, "reason": reason},
                          "status": status}, status)


def to_ms(v):
    if isinstance(v, (int, float)):
        return int(v)
    if isinstance(v, str):
        s = v.replace("Z", "+00:00")
        try:
            return int(datetime.datetime.fromisoformat(s).timestamp() * 1000)
        except ValueError:
            return None
    return None


class ElasticApp(App):
    name = "fake_elasticsearch"
    json_only = True

    def __init__(self, args):
        super().__init__(args)
        self.user, self.password = args.user, args.password
        self.api_key = args.api_key
        self.lock = threading.Lock()
        self.reset_app()

    def reset_app(self):
        with self.lock:
            self.indices = {}  # name -> [(ms, seq, doc)]
            self.pits = {}     # id -> [index names]
            self.seq = 0
            self.stats = {"searches": 0, "pits_opened": 0,
                          "largest_page": 0}

    def redact_header(self, name, value):
        if name == "authorization":
            return value.split(" ", 1)[0] + " <redacted>"
        return value

    def error(self, status, message, retry_after=None):
        resp = es_error(status, "fake_exception",
                        message or "injected %d" % status)
        if retry_after is not None:
            resp.headers.append(("Retry-After", str(int(retry_after))))
        return resp

    def authorised(self, req):
        h = req.headers.get("authorization", "")
        if self.api_key is not None:
            return h == "ApiKey " + self.api_key
        if self.user is None:
            return True
        if not h.startswith("Basic "):
            return False
        try:
            u, _, p = base64.b64decode(h[6:]).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        return u == self.user and p == self.password

    def matching(self, pattern):
        names = []
        for part in pattern.split(","):
            names += [n for n in self.indices if fnmatch.fnmatch(n, part)]
        return sorted(set(names))

    def handle_api(self, req):
        if not self.authorised(req):
            return es_error(401, "security_exception",
                            "unable to authenticate user for REST request")
        path = req.path
        if req.method == "POST" and path.endswith("/_pit"):
            pattern = path[1:-len("/_pit")]
            with self.lock:
                names = self.matching(pattern)
                if not names:
                    return es_error(404, "index_not_found_exception",
                                    "no such index [%s]" % pattern)
                pid = "pit-" + uuid.uuid4().hex
                self.pits[pid] = names
                self.stats["pits_opened"] += 1
            return json_response({"id": pid, "_shards": {"total": 1,
                                                         "successful": 1,
                                                         "failed": 0}})
        if req.method == "POST" and path == "/_search":
            return self.search(req.json)
        if req.method == "DELETE" and path == "/_pit":
            pid = req.json.get("id") if isinstance(req.json, dict) else None
            with self.lock:
                freed = 1 if self.pits.pop(pid, None) is not None else 0
            return json_response({"succeeded": True, "num_freed": freed})
        return es_error(400, "illegal_argument_exception",
                        "no handler found for uri [%s] and method [%s]"
                        % (path, req.method))

    def search(self, body):
        if not isinstance(body, dict):
            return es_error(400, "parsing_exception", "request body is "
                            "required")
        size = body.get("size", 10)
        if not isinstance(size, int) or not 0 <= size <= 10000:
            return es_error(400, "illegal_argument_exception",
                            "Result window is too large")
        pit = body.get("pit")
        if not isinstance(pit, dict) or "id" not in pit:
            return es_error(400, "illegal_argument_exception",
                            "this fake serves point-in-time searches only")
        sort = body.get("sort")
        try:
            field = next(iter(sort[0]))
            assert sort[1] == {"_shard_doc": "asc"} and \
                sort[0][field] == "asc"
            rng = body["query"]["range"][field]
            lo, hi = int(rng["gte"]), int(rng["lt"])
        except (TypeError, KeyError, IndexError, AssertionError, ValueError,
                StopIteration):
            return es_error(400, "parsing_exception",
                            "expected sort [{field: asc}, {_shard_doc: asc}]"
                            " and a range query on the field")
        after = body.get("search_after")
        with self.lock:
            names = self.pits.get(pit["id"])
            if names is None:
                return es_error(404, "search_context_missing_exception",
                                "No search context found for id [%s]"
                                % pit["id"])
            docs = sorted((ms, seq, name, doc) for name in names
                          for ms, seq, doc in self.indices.get(name, [])
                          if lo <= ms < hi)
            if after is not None:
                a = (int(after[0]), int(after[1]))
                docs = [d for d in docs if (d[0], d[1]) > a]
            page = docs[:size]
            self.stats["searches"] += 1
            self.stats["largest_page"] = max(self.stats["largest_page"],
                                             len(page))
        hits = [{"_index": name, "_id": str(seq), "_score": None,
                 "_source": doc, "sort": [ms, seq]}
                for ms, seq, name, doc in page]
        return json_response({"pit_id": pit["id"], "took": 1,
                              "timed_out": False,
                              "_shards": {"total": 1, "successful": 1,
                                          "skipped": 0, "failed": 0},
                              "hits": {"max_score": None, "hits": hits}})

    def control(self, method, path, query, body):
        if path == "/_control/docs" and method == "POST":
            if not isinstance(body, dict) or not isinstance(body.get("docs"),
                                                            list):
                return json_response({"ok": False, "error": "need docs"},
                                     400)
            field = body.get("time_field", "@timestamp")
            with self.lock:
                idx = self.indices.setdefault(body.get("index", "logs"), [])
                for d in body["docs"]:
                    ms = to_ms(d.get(field)) if isinstance(d, dict) else None
                    self.seq += 1
                    # A document without a readable time sorts first and
                    # matches no range: as in Elasticsearch.
                    idx.append((ms if ms is not None else -1, self.seq, d))
            return json_response({"ok": True})
        if path == "/_control/stats" and method == "GET":
            with self.lock:
                return json_response(dict(self.stats,
                                          open_pits=len(self.pits)))
        return None


def main(argv=None):
    p = fakecommon.make_arg_parser("Fake Elasticsearch.", "--api-key",
                                   "require this API key (ApiKey auth)")
    p.add_argument("--user", help="require basic auth with this user")
    p.add_argument("--password", help="... and this password")
    args = p.parse_args(argv)
    args.api_key = args.secret
    return fakecommon.run(ElasticApp(args), args)


if __name__ == "__main__":
    sys.exit(main())
