"""Shared machinery for nightshift's fakes of external HTTP APIs (stdlib only).

A fake is an `App` subclass (see fake_llm.py, fake_telegram.py) served by
`run()`: a ThreadingHTTPServer speaking HTTP/1.1 (keep-alive, Content-Length
always set, chunked request bodies and `Expect: 100-continue` accepted).

Every path under /_control/ is the control API (JSON in, JSON out); every other
request is an "API call": it is recorded in the request log, consumes at most
one queued fault, then is answered by the App.

Control API (both fakes):
  GET  /_control/health            {"ok": true, "name": ...}
  GET  /_control/requests[?since=N] list of API calls (entries with seq >= N), in arrival order:
       {"seq", "time", "method", "path", "headers", "json", "fault", "status", ...}
       - path: with secrets redacted by the App (Telegram: "/bot<token>/sendMessage")
       - headers: lower-cased names; Authorization value becomes "<scheme> <redacted>"
       - json: parsed JSON body; for form / multipart a dict of fields, file parts
         as {"filename", "content_type", "size", "sha256"}; for GET/empty body the
         query fields or null; an unparseable body gives null plus "raw" (text)
       - fault: kind of the fault applied to this call, or null
       - status: HTTP status answered (null while in progress or if the
         connection was closed without an answer)
  POST /_control/reset             clears the log, the fault queue, the config
                                   (back to the CLI values) and App state
  POST /_control/faults            {"faults": [fault, ...]} appended to the queue
  GET  /_control/faults            the faults still queued
  POST /_control/config            {"fail_rate", "seed", "latency_ms", "fail_kinds",
                                    "timeout_seconds", "retry_after"} merged
  GET  /_control/config            the current config

Fault objects (one consumed per API call, in order, before any validation):
  {"kind": "status", "status": 500}            error in the API's own format
  {"kind": "status", "status": 429, "retry_after": 2}
  {"kind": "timeout", "seconds": S}            sleep S, then answer normally
  {"kind": "timeout", "seconds": S, "close": true}  sleep S, close without answering
  {"kind": "malformed"}                        200, body is not valid JSON
  {"kind": "empty"}                            200, API-specific empty answer
Optional in any fault: "description" / "message" override the error text.
"""

import argparse
import base64
import hashlib
import json
import os
import random
import signal
import socket
import sys
import threading
import time
import traceback
from collections import deque
from email.message import Message
from email.utils import collapse_rfc2231_value
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

MAX_BODY = 20 * 1024 * 1024  # bytes; larger request bodies get 413
_DRAIN_LIMIT = 256 * 1024 * 1024  # beyond this we do not even read the body to discard it

FAULT_KINDS = ("status", "timeout", "malformed", "empty")
DEFAULT_FAIL_KINDS = ["429", "500", "timeout", "malformed"]


class Response:
    """An HTTP answer. close_without_answer=True drops the connection instead."""

    def __init__(self, status=200, body=b"", content_type="application/json",
                 headers=None, close_without_answer=False):
        self.status = status
        self.body = body if isinstance(body, bytes) else body.encode("utf-8")
        self.content_type = content_type
        self.headers = list(headers or [])
        self.close_without_answer = close_without_answer


def json_response(obj, status=200, headers=None):
    return Response(status, json.dumps(obj, ensure_ascii=False).encode("utf-8"),
                    headers=headers)


class FilePart:
    def __init__(self, name, filename, content_type, data):
        self.name = name
        self.filename = filename
        self.content_type = content_type
        self.data = data

    def describe(self):
        return {"filename": self.filename, "content_type": self.content_type,
                "size": len(self.data), "sha256": hashlib.sha256(self.data).hexdigest()}


class Request:
    """An API call as the App sees it."""

    def __init__(self, method, path, query, headers, body):
        self.method = method
        self.path = path            # unredacted path, no query
        self.query = query          # dict of query fields (last value wins)
        self.headers = headers      # dict, lower-cased names
        self.body = body            # raw bytes
        self.content_type = headers.get("content-type", "").split(";")[0].strip().lower()
        self.json = None            # parsed JSON value (JSON bodies)
        self.fields = {}            # form / multipart text fields
        self.files = {}             # multipart file parts: name -> FilePart
        self.body_kind = "empty"    # empty | json | form | multipart | other
        self.parse_error = None     # text, when the body could not be parsed
        self.utf8_error = False     # a form/multipart field was not valid UTF-8
        self.entry = None           # the request-log entry (App may add fields)


# ---------------------------------------------------------------- body parsing

def _header_param(header_value, param, header="content-type"):
    m = Message()
    m[header] = header_value
    v = m.get_param(param, header=header)
    if v is None:
        return None
    return collapse_rfc2231_value(v)


def _decode_field(data, req):
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        req.utf8_error = True
        return data.decode("utf-8", "replace")


def parse_multipart(body, content_type_header, req):
    boundary = _header_param(content_type_header, "boundary")
    if not boundary:
        raise ValueError("multipart body without boundary")
    delim = b"--" + boundary.encode("latin-1")
    chunks = body.split(delim)
    if len(chunks) < 2:
        raise ValueError("multipart boundary not found")
    closed = False
    for part in chunks[1:]:
        if part.startswith(b"--"):
            closed = True
            break
        if part.startswith(b"\r\n"):
            part = part[2:]
        elif part.startswith(b"\n"):
            part = part[1:]
        if part.endswith(b"\r\n"):
            part = part[:-2]
        elif part.endswith(b"\n"):
            part = part[:-1]
        head, sep, data = part.partition(b"\r\n\r\n")
        if not sep:
            head, sep, data = part.partition(b"\n\n")
            if not sep:
                raise ValueError("multipart part without header/body separator")
        hdrs = {}
        for line in head.decode("utf-8", "replace").splitlines():
            if ":" in line:
                k, v = line.split(":", 1)
                hdrs[k.strip().lower()] = v.strip()
        cd = hdrs.get("content-disposition")
        if not cd:
            raise ValueError("multipart part without Content-Disposition")
        name = _header_param(cd, "name", "content-disposition")
        if name is None:
            raise ValueError("multipart part without a name")
        filename = _header_param(cd, "filename", "content-disposition")
        if filename is not None:
            ctype = hdrs.get("content-type", "application/octet-stream")
            req.files[name] = FilePart(name, filename, ctype, data)
        else:
            req.fields[name] = _decode_field(data, req)
    if not closed:
        raise ValueError("multipart body without closing boundary")


def parse_body(req, json_only=False):
    """Fill req.json / fields / files from req.body according to Content-Type.
    json_only: parse any non-empty body as JSON (like the OpenAI API)."""
    ct = req.content_type
    if not req.body:
        req.body_kind = "empty"
        return
    try:
        if not json_only and ct == "multipart/form-data":
            req.body_kind = "multipart"
            parse_multipart(req.body, req.headers.get("content-type", ""), req)
        elif not json_only and ct == "application/x-www-form-urlencoded":
            req.body_kind = "form"
            try:
                text = req.body.decode("utf-8")
            except UnicodeDecodeError:
                req.utf8_error = True
                text = req.body.decode("utf-8", "replace")
            req.fields = dict(parse_qsl(text, keep_blank_values=True))
        else:
            req.body_kind = "json"
            req.json = json.loads(req.body.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        req.parse_error = str(e) or e.__class__.__name__
        req.json = None


def body_for_log(req):
    if req.parse_error is not None:
        return None
    if req.body_kind == "json":
        return req.json
    if req.body_kind in ("form", "multipart"):
        d = dict(req.fields)
        for name, fp in req.files.items():
            d[name] = fp.describe()
        return d
    if req.query:
        return dict(req.query)
    return None


# ---------------------------------------------------------------- shared state

class State:
    def __init__(self, defaults):
        self.lock = threading.Lock()
        self.defaults = dict(defaults)
        self.reset()

    def reset(self):
        with self.lock:
            self.requests = []
            self.faults = deque()
            self.config = dict(self.defaults)
            self.rng = random.Random(self.config.get("seed"))

    def set_config(self, upd):
        with self.lock:
            for k in ("fail_rate", "seed", "latency_ms", "fail_kinds", "timeout_seconds", "retry_after"):
                if k in upd:
                    self.config[k] = upd[k]
            if "seed" in upd:
                self.rng = random.Random(upd["seed"])
            return dict(self.config)

    def start_call(self, entry):
        """Append entry to the log and pick the fault for this call (atomically)."""
        with self.lock:
            entry["seq"] = len(self.requests)
            self.requests.append(entry)
            if self.faults:
                return dict(self.faults.popleft())
            rate = float(self.config.get("fail_rate") or 0)
            if rate > 0 and self.rng.random() < rate:
                kinds = self.config.get("fail_kinds") or DEFAULT_FAIL_KINDS
                kind = str(self.rng.choice(kinds))
                if kind.isdigit():
                    f = {"kind": "status", "status": int(kind), "random": True}
                    if kind == "429":
                        f["retry_after"] = int(self.config.get("retry_after", 1))
                    return f
                if kind == "timeout":
                    return {"kind": "timeout", "seconds": float(self.config.get("timeout_seconds", 5)),
                            "close": True, "random": True}
                return {"kind": kind, "random": True}
            return None


def validate_fault(f):
    if not isinstance(f, dict):
        return "a fault must be an object"
    kind = f.get("kind")
    if kind not in FAULT_KINDS:
        return "unknown fault kind %r (expected one of %s)" % (kind, ", ".join(FAULT_KINDS))
    if kind == "status":
        st = f.get("status")
        if not isinstance(st, int) or isinstance(st, bool) or not 100 <= st <= 599:
            return "status fault needs an integer 'status'"
    if kind == "timeout":
        s = f.get("seconds", 0)
        if not isinstance(s, (int, float)) or isinstance(s, bool) or s < 0:
            return "timeout fault needs non-negative 'seconds'"
    return None


# ---------------------------------------------------------------- the App base

class App:
    """Subclass hooks: handle_api, error, fault_status, fault_malformed, fault_empty,
    redact_path, control (extra control endpoints), reset_app."""

    name = "fake"
    json_only = False

    def __init__(self, args):
        self.args = args
        self.verbose = args.verbose
        self.state = State({
            "fail_rate": args.fail_rate, "seed": args.seed, "latency_ms": args.latency_ms,
            "fail_kinds": list(DEFAULT_FAIL_KINDS), "timeout_seconds": 5, "retry_after": 1,
        })

    # --- hooks
    def handle_api(self, req):
        raise NotImplementedError

    def error(self, status, message, retry_after=None):
        raise NotImplementedError

    def fault_status(self, fault, req):
        msg = fault.get("message") or fault.get("description")
        return self.error(fault["status"], msg, fault.get("retry_after"))

    def fault_malformed(self, req):
        return Response(200, b'{"malformed": tru')

    def fault_empty(self, req):
        return Response(200, b"")

    def redact_path(self, raw_path):
        return raw_path

    def redact_header(self, name, value):
        if name == "authorization":
            scheme = value.split(" ", 1)[0] if " " in value else ""
            return (scheme + " <redacted>").strip()
        return value

    def redact_text(self, s):
        """Scrub secrets from any string that goes into the request log."""
        return s

    def redact_value(self, v):
        if isinstance(v, str):
            return self.redact_text(v)
        if isinstance(v, list):
            return [self.redact_value(x) for x in v]
        if isinstance(v, dict):
            return {self.redact_text(k): self.redact_value(x) for k, x in v.items()}
        return v

    def control(self, method, path, query, body):
        return None

    def reset_app(self):
        pass

    def log(self, msg):
        if self.verbose:
            sys.stderr.write("[%s] %s\n" % (self.name, msg))
            sys.stderr.flush()

    # --- control API
    def handle_control(self, method, path, query, body_bytes):
        body = None
        if body_bytes:
            try:
                body = json.loads(body_bytes.decode("utf-8"))
            except (ValueError, UnicodeDecodeError) as e:
                return json_response({"ok": False, "error": "invalid JSON: %s" % e}, 400)
        st = self.state
        if path == "/_control/health":
            return json_response({"ok": True, "name": self.name})
        if path == "/_control/requests" and method == "GET":
            since = int(query.get("since", 0) or 0)
            with st.lock:
                data = json.dumps(st.requests[since:], ensure_ascii=False)
            return Response(200, data.encode("utf-8"))
        if path == "/_control/reset" and method == "POST":
            st.reset()
            self.reset_app()
            return json_response({"ok": True})
        if path == "/_control/faults":
            if method == "GET":
                with st.lock:
                    return json_response(list(st.faults))
            if method == "POST":
                faults = body.get("faults") if isinstance(body, dict) else None
                if not isinstance(faults, list):
                    return json_response({"ok": False, "error": "expected {\"faults\": [...]}"}, 400)
                for f in faults:
                    err = validate_fault(f)
                    if err:
                        return json_response({"ok": False, "error": err, "fault": f}, 400)
                with st.lock:
                    st.faults.extend(faults)
                    n = len(st.faults)
                return json_response({"ok": True, "queued": n})
        if path == "/_control/config":
            if method == "GET":
                with st.lock:
                    return json_response(dict(st.config))
            if method == "POST":
                if not isinstance(body, dict):
                    return json_response({"ok": False, "error": "expected a JSON object"}, 400)
                return json_response(dict(st.set_config(body), ok=True))
        r = self.control(method, path, query, body)
        if r is not None:
            return r
        return json_response({"ok": False, "error": "unknown control endpoint %s %s" % (method, path)}, 404)


# ---------------------------------------------------------------- HTTP handler

class _TooLarge(Exception):
    pass


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "nightshift-fake/1"
    sys_version = ""
    timeout = 300  # idle keep-alive connections are dropped after this

    def setup(self):
        super().setup()
        # Headers and body go out in separate writes; without TCP_NODELAY
        # the body waits for the client's delayed ACK (~40 ms per call on a
        # reused connection), which would distort latency and throughput.
        import socket
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    @property
    def app(self):
        return self.server.app

    def log_message(self, fmt, *args):
        if self.app.verbose:
            msg = fmt % args
            path = getattr(self, "path", None)
            if path:  # never log a secret that is part of the path (Telegram's bot token)
                msg = msg.replace(path, self.app.redact_path(path))
            sys.stderr.write("[%s] %s %s\n" % (self.app.name, self.address_string(), msg))

    def log_request(self, code="-", size="-"):
        pass  # one line per call is logged by _dispatch (verbose only)

    # -- Expect: 100-continue with an oversized body: refuse before it is sent
    def handle_expect_100(self):
        try:
            length = int(self.headers.get("Content-Length", "0") or 0)
        except ValueError:
            length = 0
        if length > MAX_BODY and not urlsplit(self.path).path.startswith("/_control/"):
            self._too_large(drain=False)
            return False
        return super().handle_expect_100()

    def do_GET(self):
        self._dispatch()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_GET

    # -- body
    def _read_body(self, allow_drain=True):
        te = self.headers.get("Transfer-Encoding", "").lower()
        if "chunked" in te:
            out = bytearray()
            while True:
                line = self.rfile.readline(65537)
                if not line:
                    raise ConnectionError("eof in chunked body")
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while True:  # trailers
                        t = self.rfile.readline(65537)
                        if t in (b"\r\n", b"\n", b""):
                            break
                    break
                if len(out) + size > MAX_BODY:
                    raise _TooLarge()
                out += self.rfile.read(size)
                self.rfile.readline(3)
            return bytes(out)
        cl = self.headers.get("Content-Length")
        if not cl:
            return b""
        length = int(cl)
        if length < 0:
            raise ValueError("negative Content-Length")
        if length > MAX_BODY:
            if allow_drain and length <= _DRAIN_LIMIT:
                left = length
                while left > 0:
                    got = self.rfile.read(min(left, 1 << 20))
                    if not got:
                        break
                    left -= len(got)
            raise _TooLarge()
        data = self.rfile.read(length)
        if len(data) != length:
            raise ConnectionError("short body")
        return data

    def _headers_for_log(self):
        h = {}
        for k, v in self.headers.items():
            k = k.lower()
            v = self.app.redact_header(k, v)
            h[k] = v if k not in h else h[k] + ", " + v
        return h

    def _new_entry(self):
        return {"seq": None, "time": time.time(), "method": self.command,
                "path": self.app.redact_path(self.path), "headers": self._headers_for_log(),
                "json": None, "fault": None, "status": None}

    def _send(self, resp):
        if resp.close_without_answer:
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return None
        try:
            self.send_response(resp.status)
            self.send_header("Content-Type", resp.content_type)
            self.send_header("Content-Length", str(len(resp.body)))
            for k, v in resp.headers:
                self.send_header(k, v)
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(resp.body)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
            return None
        return resp.status

    def _too_large(self, drain=True):
        entry = self._new_entry()
        entry["error"] = "body larger than %d bytes" % MAX_BODY
        with self.app.state.lock:  # recorded, but never consumes a fault
            entry["seq"] = len(self.app.state.requests)
            self.app.state.requests.append(entry)
        self.close_connection = True
        entry["status"] = self._send(self.app.error(413, None))
        self.app.log("%s %s -> 413 (body too large)" % (self.command, entry["path"]))

    def _dispatch(self):
        app = self.app
        split = urlsplit(self.path)
        path = split.path
        query = dict(parse_qsl(split.query, keep_blank_values=True))
        if path == "/_control" or path.startswith("/_control/"):
            try:
                body = self._read_body(allow_drain=False)
            except _TooLarge:
                self.close_connection = True
                self._send(json_response({"ok": False, "error": "body too large"}, 413))
                return
            except (ValueError, ConnectionError):
                self.close_connection = True
                return
            try:
                resp = app.handle_control(self.command, path, query, body)
            except Exception:
                traceback.print_exc()
                resp = json_response({"ok": False, "error": traceback.format_exc()}, 500)
            status = self._send(resp)
            app.log("control %s %s -> %s" % (self.command, path, status))
            return

        try:
            body = self._read_body()
        except _TooLarge:
            self._too_large()
            return
        except (ValueError, ConnectionError):
            self.close_connection = True
            return

        headers = {k.lower(): v for k, v in self.headers.items()}
        req = Request(self.command, path, query, headers, body)
        parse_body(req, json_only=app.json_only)
        entry = self._new_entry()
        entry["json"] = app.redact_value(body_for_log(req))
        if req.parse_error is not None:
            entry["raw"] = app.redact_text(body[:65536].decode("utf-8", "replace"))
        req.entry = entry
        fault = app.state.start_call(entry)
        entry["fault"] = fault["kind"] if fault else None

        with app.state.lock:
            latency = float(app.state.config.get("latency_ms") or 0)
        if latency > 0:
            time.sleep(latency / 1000.0)

        resp = None
        try:
            if fault:
                kind = fault["kind"]
                if kind == "timeout":
                    time.sleep(float(fault.get("seconds", 0)))
                    if fault.get("close"):
                        resp = Response(close_without_answer=True)
                elif kind == "status":
                    resp = app.fault_status(fault, req)
                elif kind == "malformed":
                    resp = app.fault_malformed(req)
                elif kind == "empty":
                    resp = app.fault_empty(req)
            if resp is None:
                resp = app.handle_api(req)
        except Exception:
            traceback.print_exc()
            resp = app.error(500, None)
        # Record the outcome before the client can see it: a test that reads
        # the log right after its call returned must find the call complete.
        entry["status"] = None if resp.close_without_answer else resp.status
        sent = self._send(resp)
        if sent is None:
            entry["status"] = None
        app.log("%s %s -> %s%s" % (self.command, entry["path"], entry["status"] or "closed",
                                   " (fault %s)" % entry["fault"] if entry["fault"] else ""))


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256

    def __init__(self, addr, app):
        self.app = app
        super().__init__(addr, Handler)

    def handle_error(self, request, client_address):
        if self.app.verbose:
            super().handle_error(request, client_address)


# ---------------------------------------------------------------- CLI / main loop

def make_arg_parser(description, secret_flag, secret_help):
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=0, help="port to bind; 0 = ephemeral (default)")
    p.add_argument("--port-file", help="write the bound port here (atomically) once listening")
    p.add_argument(secret_flag, dest="secret", default=None, help=secret_help)
    p.add_argument("--latency-ms", type=float, default=0, help="sleep this long before answering each API call")
    p.add_argument("--fail-rate", type=float, default=0.0, help="random failure probability per API call")
    p.add_argument("--seed", type=int, default=None, help="seed for --fail-rate")
    p.add_argument("-v", "--verbose", action="store_true", help="log every request to stderr")
    return p


def write_port_file(path, port):
    path = os.path.abspath(path)
    tmp = "%s.tmp.%d" % (path, os.getpid())
    with open(tmp, "w") as f:
        f.write("%d\n" % port)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def run(app, args):
    server = Server((args.host, args.port), app)
    port = server.server_address[1]
    stopping = threading.Event()

    def on_signal(signum, frame):
        if not stopping.is_set():
            stopping.set()
            threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if args.port_file:
        write_port_file(args.port_file, port)
    if args.verbose or not args.port_file:
        sys.stderr.write("%s listening on http://%s:%d\n" % (app.name, args.host, port))
        sys.stderr.flush()
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        if args.port_file:
            try:
                os.unlink(os.path.abspath(args.port_file))
            except OSError:
                pass
        app.log("stopped")
    return 0


def b64decode_field(s):
    return base64.b64decode(s.encode("ascii"), validate=True)
