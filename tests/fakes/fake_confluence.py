#!/usr/bin/env python3
"""Fake Confluence REST content API (Server/DC and Cloud wire format),
stdlib only.

  GET  /rest/api/content/<id>[?expand=version,body.storage]
       {"id", "type": "page", "status": "current", "title",
        "version": {"number": n}, "body": {"storage": {"value",
        "representation": "storage"}}}
  PUT  /rest/api/content/<id>
       {"id", "type": "page", "title", "version": {"number": n + 1},
        "body": {"storage": {"value": XHTML, "representation": "storage"}}}
       409 {"statusCode": 409, "message": "Version must be incremented on
       update. Current version is: n"} when the number is not current + 1;
       400 when the body is not well-formed XHTML (checked with
       xml.etree; ac: and ri: namespaces allowed) or fields are missing
  PUT|POST /rest/api/content/<id>/child/attachment
       multipart/form-data, part "file" (one or more); needs the header
       X-Atlassian-Token: no-check (else 403 "XSRF check failed"); an
       attachment of the same file name gets a new version
       {"results": [{"id": "att<n>", "type": "attachment", "title",
        "version": {"number"}, "extensions": {"mediaType", "fileSize"}}],
        "size": k}
Auth: --user U --password P (basic) or --token T (bearer); otherwise any
credentials. 401 {"statusCode": 401, "message": "..."} when missing or
wrong, 403 for pages registered as forbidden, 404 for unknown pages.

Control API (fakecommon.py's: requests, faults, config, reset), plus:
  POST /_control/pages    {"id", "title", "body"?, "version"?,
                           "forbidden"?} creates or replaces a page
  GET  /_control/pages    {id: {"title", "version", "body",
                           "attachments": {name: {"version", "size",
                           "sha256", "media_type", "content_b64"}}}}
  POST /_control/edit     {"id"} bumps a page's version (someone else
                           edited it: the next PUT at the old version
                           gets 409); {"id", "before_next_put": n}: the
                           next n PUTs of the page find it edited just
                           before them (a race: 409, then the client reads
                           the version again)

CLI: fake_confluence.py [--host 127.0.0.1] [--port 0] [--port-file PATH]
                        [--user U --password P | --token T]
                        [--latency-ms N] [-v]
"""

import base64
import hashlib
import os
import re
import sys
import threading
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import fakecommon  # noqa: E402
from fakecommon import App, json_response  # noqa: E402

PAGE = re.compile(r"^/(?:wiki/)?rest/api/content/(\d+)$")
ATTACH = re.compile(r"^/(?:wiki/)?rest/api/content/(\d+)/child/attachment$")
# Storage format is XHTML with a few entities and Confluence's namespaces.
XML_WRAP = ('<!DOCTYPE r [<!ENTITY nbsp "&#160;">]>'
            '<r xmlns:ac="http://atlassian.com/content" '
            'xmlns:ri="http://atlassian.com/resource/identifier">%s</r>')


def error(status, message):
    return json_response({"statusCode": status, "message": message}, status)


class ConfluenceApp(App):
    name = "fake_confluence"

    def __init__(self, args):
        super().__init__(args)
        self.user, self.password = args.user, args.password
        self.token = args.secret
        self.lock = threading.Lock()
        self.reset_app()

    def reset_app(self):
        with self.lock:
            self.pages = {}
            self.next_att = 1

    def redact_header(self, name, value):
        if name == "authorization":
            return value.split(" ", 1)[0] + " <redacted>"
        return value

    def error(self, status, message, retry_after=None):
        resp = error(status, message or "injected %d" % status)
        if retry_after is not None:
            resp.headers.append(("Retry-After", str(int(retry_after))))
        return resp

    def authorised(self, req):
        h = req.headers.get("authorization", "")
        if h.startswith("Basic "):
            try:
                user, _, pw = base64.b64decode(h[6:]).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                return False
            if self.user is None:
                return bool(user and pw)
            return user == self.user and pw == self.password
        if h.startswith("Bearer "):
            return self.token is None or h[7:] == self.token
        return False

    def page_json(self, pid, p):
        return {"id": pid, "type": "page", "status": "current",
                "title": p["title"], "version": {"number": p["version"]},
                "body": {"storage": {"value": p["body"],
                                     "representation": "storage"}}}

    def handle_api(self, req):
        if not self.authorised(req):
            return error(401, "Basic authentication with passwords is "
                         "deprecated or the credentials are wrong")
        m = PAGE.match(req.path)
        a = ATTACH.match(req.path)
        pid = (m or a).group(1) if (m or a) else None
        with self.lock:
            page = self.pages.get(pid)
        if pid is None:
            return error(404, "No such resource")
        if page is None:
            return error(404, "No content found with id: ContentId{id=%s}"
                         % pid)
        if page.get("forbidden"):
            return error(403, "User not permitted to edit content with id %s"
                         % pid)
        if m and req.method == "GET":
            with self.lock:
                return json_response(self.page_json(pid, page))
        if m and req.method == "PUT":
            return self.put_page(req, pid)
        if a and req.method in ("PUT", "POST"):
            return self.attach(req, pid)
        return error(405, "Method not allowed")

    def put_page(self, req, pid):
        doc = req.json
        if not isinstance(doc, dict):
            return error(400, "Could not read the JSON body")
        try:
            number = int(doc["version"]["number"])
            value = doc["body"]["storage"]["value"]
            rep = doc["body"]["storage"]["representation"]
            title = doc["title"]
        except (KeyError, TypeError, ValueError):
            return error(400, "id, type, title, version.number and "
                         "body.storage are required")
        if rep != "storage" or doc.get("type") != "page" or not title:
            return error(400, "type page, a title and representation "
                         "storage are required")
        try:
            ET.fromstring(XML_WRAP % value)
        except ET.ParseError as e:
            return error(400, "Error parsing xhtml: %s" % e)
        with self.lock:
            page = self.pages[pid]
            if page.get("race", 0) > 0:
                page["race"] -= 1
                page["version"] += 1
            if number != page["version"] + 1:
                return error(409, "Version must be incremented on update. "
                             "Current version is: %d" % page["version"])
            page.update(version=number, body=value, title=title)
            out = self.page_json(pid, page)
        return json_response(out)

    def attach(self, req, pid):
        if req.headers.get("x-atlassian-token") != "no-check":
            return error(403, "XSRF check failed")
        files = [req.files["file"]] if "file" in req.files else []
        if not files:
            return error(400, "No file in the request (part \"file\")")
        results = []
        with self.lock:
            atts = self.pages[pid].setdefault("attachments", {})
            for f in files:
                old = atts.get(f.filename)
                att = {"id": old["id"] if old else "att%d" % self.next_att,
                       "version": old["version"] + 1 if old else 1,
                       "size": len(f.data), "media_type": f.content_type,
                       "sha256": hashlib.sha256(f.data).hexdigest(),
                       "content_b64": base64.b64encode(f.data).decode()}
                if not old:
                    self.next_att += 1
                atts[f.filename] = att
                results.append({"id": att["id"], "type": "attachment",
                                "title": f.filename,
                                "version": {"number": att["version"]},
                                "extensions": {
                                    "mediaType": f.content_type,
                                    "fileSize": len(f.data)}})
        return json_response({"results": results, "size": len(results)})

    def control(self, method, path, query, body):
        if path == "/_control/pages" and method == "GET":
            with self.lock:
                return json_response({k: dict(v) for k, v in
                                      self.pages.items()})
        if path == "/_control/pages" and method == "POST":
            if not isinstance(body, dict) or "id" not in body:
                return json_response({"ok": False, "error": "need id"}, 400)
            with self.lock:
                self.pages[str(body["id"])] = {
                    "title": body.get("title", "Page %s" % body["id"]),
                    "version": int(body.get("version", 1)),
                    "body": body.get("body", "<p>empty</p>"),
                    "forbidden": bool(body.get("forbidden"))}
            return json_response({"ok": True})
        if path == "/_control/edit" and method == "POST":
            pid = str(body.get("id")) if isinstance(body, dict) else None
            with self.lock:
                if pid not in self.pages:
                    return json_response({"ok": False}, 404)
                if "before_next_put" in body:
                    self.pages[pid]["race"] = int(body["before_next_put"])
                else:
                    self.pages[pid]["version"] += 1
            return json_response({"ok": True})
        return None


def main(argv=None):
    p = fakecommon.make_arg_parser("Fake Confluence REST API.", "--token",
                                   "require this bearer token")
    p.add_argument("--user", help="require basic auth with this user")
    p.add_argument("--password", help="... and this password")
    args = p.parse_args(argv)
    return fakecommon.run(ConfluenceApp(args), args)


if __name__ == "__main__":
    sys.exit(main())
