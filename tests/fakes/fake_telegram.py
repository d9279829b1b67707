#!/usr/bin/env python3
"""Fake Telegram Bot API (real wire format), stdlib only.

Methods (GET or POST; parameters from the query string and/or a JSON,
application/x-www-form-urlencoded or multipart/form-data body; names case-insensitive):
  /bot<token>/getMe
  /bot<token>/sendMessage     chat_id, text, parse_mode (HTML | MarkdownV2 | Markdown), ...
  /bot<token>/sendDocument    chat_id, document (multipart file part, or a known file_id /
                              http(s) URL string), caption, parse_mode
  /bot<token>/getFile         file_id -> {"file_id","file_unique_id","file_size","file_path"}
  /bot<token>/getUpdates      offset, limit, timeout (long poll); updates come from the
                              control API; deleteWebhook / setWebhook / getWebhookInfo are stubs
  GET /file/bot<token>/<file_path>   the bytes of a registered or uploaded file

Success: {"ok":true,"result":...}; sendMessage/sendDocument result is a Message:
  {"message_id": n (1, 2, ... per chat), "from": {bot user}, "chat": {"id", "type"},
   "date": unix, "text": <text after HTML parsing>}  (sendDocument: "document", "caption")
Errors: {"ok":false,"error_code":C,"description":"..."}
  401 "Unauthorized"                       token != --token (any non-empty token if not given)
  404 "Not Found"                          unknown method / file path
  400 "Bad Request: chat_id is empty"      / "Bad Request: chat not found" (chat_id 0 or
                                           not an integer / @username)
  400 "Bad Request: message text is empty" (also when nothing is left after HTML parsing)
  400 "Bad Request: can't parse entities: <detail>"  (parse_mode HTML, see parse_html)
  400 "Bad Request: message is too long"   > 4096 code points after HTML parsing
  400 "Bad Request: message caption is too long"     caption > 1024 code points
  400 "Bad Request: there is no document in the request" / "file must be non-empty"
  400 "Bad Request: unsupported parse_mode", 400 "Bad Request: invalid JSON body"
  413 body > 20 MB
  429 {"ok":false,"error_code":429,"description":"Too Many Requests: retry after N",
       "parameters":{"retry_after":N}}   (no Retry-After header: read parameters.retry_after)

Faults (see fakecommon.py): status -> the format above; malformed -> 200 with truncated
JSON; empty -> 200 with an empty body.

Telegram's flood limits (--limits, or POST /_control/limits {"enabled": true, "scale": S}):
  per chat a burst of 3, then 1 message per second; per group, supergroup or channel
  (negative id or @username) also 20 per minute (burst 3); per bot 30 per second (burst 30).
  A send over a limit is refused with 429 and parameters.retry_after = the whole seconds
  until it would be admitted (at least 1), as Telegram does, and is not counted as sent.
  "scale" multiplies every rate (2 = twice as fast) for time-compressed benchmarks.
  GET /_control/stats -> {"sent": n, "refused_429": n, "by_chat": {chat: {"sent", "refused_429"}},
                          "limits": {"enabled", "scale"}}

Extra control endpoints:
  POST /_control/files   {"content": "text" | "content_b64": "...", "file_id"?, "file_path"?,
                          "file_name"?} -> {"ok", "file_id", "file_unique_id", "file_path",
                          "file_size"}; documents uploaded by sendDocument are registered too
  GET  /_control/files   [{"file_id","file_path","file_size","sha256","file_name"}]
  POST /_control/updates {"updates": [{...}, ...]} queued for getUpdates; update_id is
                          assigned (1, 2, ...) unless given
  POST /_control/limits  {"enabled": bool, "scale": S} (see above); GET /_control/stats
The request log never contains the bot token: paths are recorded as "/bot<token>/...".

CLI: fake_telegram.py [--host 127.0.0.1] [--port 0] [--port-file PATH] [--token T]
                      [--latency-ms N] [--fail-rate R] [--seed S] [--limits] [--limit-scale S]
                      [-v]
"""

import base64
import binascii
import hashlib
import json
import math
import os
import re
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import fakecommon  # noqa: E402
from fakecommon import App, Response, json_response  # noqa: E402

MAX_TEXT = 4096
MAX_CAPTION = 1024
SUPPORTED_TAGS = {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "a", "code", "pre",
                  "span", "tg-spoiler", "blockquote", "tg-emoji"}
NAMED_ENTITIES = {b"lt": 0x3C, b"gt": 0x3E, b"amp": 0x26, b"quot": 0x22}
BOT_PATH = re.compile(r"^/bot([^/]*)/([^/]+)/?$")
FILE_PATH = re.compile(r"^/file/bot([^/]*)/(.+)$")


# ---------------------------------------------------------------- HTML subset

class HtmlError(Exception):
    pass


def _is_name_char(c):
    return (0x30 <= c <= 0x39) or (0x41 <= c <= 0x5A) or (0x61 <= c <= 0x7A) or c in (0x2D, 0x5F)


def _decode_entity(b, i):
    """b[i] == '&'. Returns (code point, index after ';') or None."""
    n = len(b)
    j = i + 1
    if j < n and b[j] == 0x23:  # '#'
        j += 1
        base = 10
        if j < n and b[j] in (0x78, 0x58):  # x X
            base = 16
            j += 1
        start = j
        digits = b"0123456789abcdefABCDEF" if base == 16 else b"0123456789"
        while j < n and b[j] in digits and j - start < 8:
            j += 1
        if j == start or j >= n or b[j] != 0x3B:
            return None
        cp = int(b[start:j], base)
        if cp == 0 or cp > 0x10FFFF or 0xD800 <= cp <= 0xDFFF:
            return None
        return cp, j + 1
    start = j
    while j < n and (0x61 <= b[j] <= 0x7A or 0x41 <= b[j] <= 0x5A) and j - start < 10:
        j += 1
    if j >= n or b[j] != 0x3B:
        return None
    cp = NAMED_ENTITIES.get(b[start:j])
    if cp is None:
        return None
    return cp, j + 1


def _decode_entities(b, base_offset):
    out = bytearray()
    i = 0
    while i < len(b):
        if b[i] == 0x26:
            d = _decode_entity(b, i)
            if d is None:
                raise HtmlError("Can't find end of the entity starting at byte offset %d" % (base_offset + i))
            out += chr(d[0]).encode("utf-8")
            i = d[1]
        else:
            out.append(b[i])
            i += 1
    return bytes(out)


def parse_html(text):
    """Telegram's HTML subset -> plain text. Raises HtmlError(detail) like the real API
    (offsets are UTF-8 byte offsets). Stricter than Telegram on one point: a '&' that does
    not start &lt; &gt; &amp; &quot; &#N; or &#xH; is an error (Telegram would keep it)."""
    b = text.encode("utf-8")
    n = len(b)
    out = bytearray()
    stack = []
    i = 0
    while i < n:
        c = b[i]
        if c == 0x26:  # &
            d = _decode_entity(b, i)
            if d is None:
                raise HtmlError("Can't find end of the entity starting at byte offset %d" % i)
            out += chr(d[0]).encode("utf-8")
            i = d[1]
            continue
        if c != 0x3C:  # not <
            out.append(c)
            i += 1
            continue
        begin = i
        if i + 1 < n and b[i + 1] == 0x2F:  # end tag
            i += 2
            s = i
            while i < n and _is_name_char(b[i]):
                i += 1
            name = b[s:i].decode("ascii").lower()
            while i < n and b[i] in b" \t\r\n":
                i += 1
            if i >= n or b[i] != 0x3E:
                raise HtmlError("Unclosed end tag at byte offset %d" % begin)
            i += 1
            if not stack:
                raise HtmlError("Unexpected end tag at byte offset %d" % begin)
            if stack[-1] != name:
                raise HtmlError('Unmatched end tag at byte offset %d, expected "</%s>", found "</%s>"'
                                % (begin, stack[-1], name))
            stack.pop()
            continue
        # start tag
        i += 1
        s = i
        while i < n and _is_name_char(b[i]):
            i += 1
        name = b[s:i].decode("ascii").lower()
        if name not in SUPPORTED_TAGS:
            raise HtmlError('Unsupported start tag "%s" at byte offset %d' % (name, begin))
        attrs = {}
        while True:
            while i < n and b[i] in b" \t\r\n":
                i += 1
            if i >= n:
                raise HtmlError("Unclosed start tag at byte offset %d" % begin)
            if b[i] == 0x3E:
                i += 1
                break
            s = i
            while i < n and b[i] not in b" \t\r\n=>/\"'":
                i += 1
            if i == s:
                raise HtmlError('Empty attribute name in the tag "%s" at byte offset %d' % (name, begin))
            aname = b[s:i].decode("utf-8", "replace").lower()
            while i < n and b[i] in b" \t\r\n":
                i += 1
            if i >= n or b[i] != 0x3D:
                raise HtmlError('Expected equal sign in declaration of an attribute of the tag "%s" '
                                'at byte offset %d' % (name, begin))
            i += 1
            while i < n and b[i] in b" \t\r\n":
                i += 1
            if i >= n:
                raise HtmlError("Unclosed start tag at byte offset %d" % begin)
            if b[i] in (0x22, 0x27):
                q = b[i]
                e = b.find(bytes([q]), i + 1)
                if e < 0:
                    raise HtmlError("Unclosed start tag at byte offset %d" % begin)
                raw, vstart, i = b[i + 1:e], i + 1, e + 1
            else:
                s = i
                while i < n and b[i] not in b" \t\r\n>":
                    i += 1
                raw, vstart = b[s:i], s
            attrs[aname] = _decode_entities(raw, vstart).decode("utf-8", "replace")
        if name == "span" and attrs.get("class") != "tg-spoiler":
            raise HtmlError('Tag "span" must have class "tg-spoiler" at byte offset %d' % begin)
        if name == "tg-emoji" and "emoji-id" not in attrs:
            raise HtmlError('Tag "tg-emoji" must have attribute "emoji-id" at byte offset %d' % begin)
        stack.append(name)
    if stack:
        raise HtmlError('Can\'t find end tag corresponding to start tag "%s"' % stack[-1])
    return out.decode("utf-8")


# ---------------------------------------------------------------- the API

def tg_error(status, description, retry_after=None):
    body = {"ok": False, "error_code": status, "description": description}
    if retry_after is not None:
        body["parameters"] = {"retry_after": int(retry_after)}
    return json_response(body, status)


def ok(result):
    return json_response({"ok": True, "result": result})


class BadRequest(Exception):
    def __init__(self, description):
        super().__init__(description)
        self.description = description


DEFAULT_DESCRIPTIONS = {
    400: "Bad Request: injected error",
    401: "Unauthorized",
    403: "Forbidden: bot was blocked by the user",
    404: "Not Found",
    409: "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running",
    413: "Request Entity Too Large",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


class Bucket:
    """A token bucket: `burst` at most, refilled at `rate` per second."""

    def __init__(self, rate, burst, now):
        self.rate, self.burst, self.level, self.at = rate, burst, float(burst), now

    def wait(self, now):
        """Seconds until a token is there (0: now); takes nothing."""
        self.level = min(self.burst, self.level + (now - self.at) * self.rate)
        self.at = now
        return 0.0 if self.level >= 1 else (1 - self.level) / self.rate


class FloodLimits:
    """Telegram's documented sending limits, per chat, per group and per bot."""
    CHAT = (1.0, 3)           # 1/s after a burst of 3
    GROUP = (20 / 60.0, 3)    # 20/min per group
    BOT = (30.0, 30)          # 30/s per bot

    def __init__(self, enabled=False, scale=1.0):
        self.enabled, self.scale = enabled, scale
        self.buckets = {}
        self.sent, self.refused = 0, 0
        self.by_chat = {}

    def _bucket(self, key, spec, now):
        b = self.buckets.get(key)
        if b is None:
            b = self.buckets[key] = Bucket(spec[0] * self.scale, spec[1], now)
        return b

    def admit(self, chat):
        """None when the send may go (its tokens taken), else retry_after seconds."""
        key = str(chat["id"])
        per = self.by_chat.setdefault(key, {"sent": 0, "refused_429": 0})
        if not self.enabled:
            self.sent += 1
            per["sent"] += 1
            return None
        now = time.monotonic()
        buckets = [self._bucket("chat:" + key, self.CHAT, now),
                   self._bucket("bot", self.BOT, now)]
        if chat["type"] != "private":
            buckets.append(self._bucket("group:" + key, self.GROUP, now))
        wait = max(b.wait(now) for b in buckets)
        if wait > 0:
            self.refused += 1
            per["refused_429"] += 1
            return max(1, int(math.ceil(wait)))
        for b in buckets:
            b.level -= 1
        self.sent += 1
        per["sent"] += 1
        return None

    def stats(self):
        return {"sent": self.sent, "refused_429": self.refused,
                "by_chat": dict(self.by_chat),
                "limits": {"enabled": self.enabled, "scale": self.scale}}


class TelegramApp(App):
    name = "fake_telegram"

    def __init__(self, args):
        super().__init__(args)
        self.token = args.secret
        self.limits_default = (bool(getattr(args, "limits", False)),
                               float(getattr(args, "limit_scale", 1.0) or 1.0))
        self.lock = threading.Lock()
        self.updates_cv = threading.Condition(self.lock)
        self.reset_app()
        bot_id = 1234567890
        if self.token and self.token.split(":", 1)[0].isdigit():
            bot_id = int(self.token.split(":", 1)[0])
        self.bot_user = {"id": bot_id, "is_bot": True, "first_name": "Nightshift Fake Bot",
                         "username": "nightshift_fake_bot"}

    def reset_app(self):
        with self.lock:
            self.next_message_id = {}
            self.files = {}          # file_id -> dict(file_path, data, file_name, mime_type)
            self.file_counter = 0
            self.updates = []
            self.next_update_id = 1
            self.flood = FloodLimits(*self.limits_default)

    # --- redaction
    def redact_path(self, raw_path):
        p = re.sub(r"^/bot[^/?]*", "/bot<token>", raw_path)
        p = re.sub(r"^/file/bot[^/?]*", "/file/bot<token>", p)
        if self.token:
            p = p.replace(self.token, "<token>")
        return p

    def redact_text(self, s):
        if self.token and self.token in s:
            s = s.replace(self.token, "<token>")
        return s

    def redact_header(self, name, value):
        return self.redact_text(super().redact_header(name, value))

    # --- errors and faults
    def error(self, status, message, retry_after=None):
        if status == 429:
            ra = int(retry_after if retry_after is not None else 1)
            return tg_error(429, message or "Too Many Requests: retry after %d" % ra, ra)
        return tg_error(status, message or DEFAULT_DESCRIPTIONS.get(status, "Error"), retry_after)

    def fault_malformed(self, req):
        return Response(200, b'{"ok":true,"result":{"message_id":')

    def fault_empty(self, req):
        return Response(200, b"")

    # --- files
    def _register_file(self, data, file_id=None, file_path=None, file_name=None, mime_type=None,
                       folder="documents"):
        with self.lock:
            self.file_counter += 1
            n = self.file_counter
            if not file_id:
                file_id = "FAKEFILE%06d" % n
            if not file_path:
                ext = os.path.splitext(file_name or "")[1]
                file_path = "%s/file_%d%s" % (folder, n, ext)
            self.files[file_id] = {"file_path": file_path, "data": data, "file_name": file_name,
                                   "mime_type": mime_type, "unique": "FAKEUNIQ%06d" % n}
        return file_id

    def _file_info(self, file_id):
        f = self.files[file_id]
        return {"file_id": file_id, "file_unique_id": f["unique"], "file_size": len(f["data"]),
                "file_path": f["file_path"]}

    # --- control
    def control(self, method, path, query, body):
        if path == "/_control/files":
            if method == "GET":
                with self.lock:
                    return json_response([{"file_id": k, "file_path": v["file_path"],
                                           "file_size": len(v["data"]), "file_name": v["file_name"],
                                           "sha256": hashlib.sha256(v["data"]).hexdigest()}
                                          for k, v in self.files.items()])
            if method == "POST":
                if not isinstance(body, dict):
                    return json_response({"ok": False, "error": "expected a JSON object"}, 400)
                try:
                    if "content_b64" in body:
                        data = fakecommon.b64decode_field(body["content_b64"])
                    else:
                        data = str(body.get("content", "")).encode("utf-8")
                except (binascii.Error, ValueError, AttributeError) as e:
                    return json_response({"ok": False, "error": "bad content_b64: %s" % e}, 400)
                fid = self._register_file(data, body.get("file_id"), body.get("file_path"),
                                          body.get("file_name"), body.get("mime_type"))
                with self.lock:
                    info = self._file_info(fid)
                return json_response(dict(info, ok=True))
        if path == "/_control/stats" and method == "GET":
            with self.lock:
                return json_response(self.flood.stats())
        if path == "/_control/limits" and method == "POST":
            if not isinstance(body, dict):
                return json_response({"ok": False, "error": "expected a JSON object"}, 400)
            with self.lock:
                self.flood = FloodLimits(bool(body.get("enabled", True)),
                                         float(body.get("scale", 1.0)))
            return json_response({"ok": True})
        if path == "/_control/updates":
            if method == "GET":
                with self.lock:
                    return json_response(list(self.updates))
            if method == "POST":
                ups = body.get("updates") if isinstance(body, dict) else None
                if not isinstance(ups, list) or not all(isinstance(u, dict) for u in ups):
                    return json_response({"ok": False, "error": "expected {\"updates\": [{...}]}"}, 400)
                ids = []
                with self.updates_cv:
                    for u in ups:
                        u = dict(u)
                        if "update_id" not in u:
                            u["update_id"] = self.next_update_id
                        self.next_update_id = max(self.next_update_id, int(u["update_id"]) + 1)
                        self.updates.append(u)
                        ids.append(u["update_id"])
                    self.updates_cv.notify_all()
                return json_response({"ok": True, "update_ids": ids})
        return None

    # --- request helpers
    def params(self, req):
        p = dict(req.query)
        if req.body_kind == "json" and isinstance(req.json, dict):
            p.update(req.json)
        else:
            p.update(req.fields)
        return p

    def chat(self, params):
        raw = params.get("chat_id")
        if raw is None or (isinstance(raw, str) and raw.strip() == ""):
            raise BadRequest("Bad Request: chat_id is empty")
        if isinstance(raw, bool):
            raise BadRequest("Bad Request: chat not found")
        s = str(raw).strip()
        if isinstance(raw, float):
            if raw != int(raw):
                raise BadRequest("Bad Request: chat not found")
            s = str(int(raw))
        if re.fullmatch(r"-?\d+", s):
            cid = int(s)
            if cid == 0:
                raise BadRequest("Bad Request: chat not found")
            if cid > 0:
                return {"id": cid, "type": "private", "first_name": "Test"}
            if s.startswith("-100"):
                return {"id": cid, "type": "supergroup", "title": "Test group"}
            return {"id": cid, "type": "group", "title": "Test group"}
        if re.fullmatch(r"@[A-Za-z][A-Za-z0-9_]{3,}", s):
            h = int(hashlib.sha256(s.lower().encode()).hexdigest()[:9], 16)
            return {"id": -1000000000000 - h, "type": "channel", "title": s[1:], "username": s[1:]}
        raise BadRequest("Bad Request: chat not found")

    def formatted(self, text, parse_mode, what):
        """Apply parse_mode; returns the plain text."""
        mode = (parse_mode or "").strip().lower() if isinstance(parse_mode, str) else parse_mode
        if mode in ("", None):
            return text
        if mode == "html":
            try:
                return parse_html(text)
            except HtmlError as e:
                raise BadRequest("Bad Request: can't parse entities: %s" % e)
        if mode in ("markdown", "markdownv2"):
            return text
        raise BadRequest("Bad Request: unsupported parse_mode")

    def message(self, chat, **extra):
        key = str(chat["id"])
        with self.lock:
            mid = self.next_message_id.get(key, 1)
            self.next_message_id[key] = mid + 1
        m = {"message_id": mid, "from": dict(self.bot_user), "chat": chat, "date": int(time.time())}
        m.update(extra)
        return m

    @staticmethod
    def text_param(params, name):
        v = params.get(name)
        if v is None:
            return None
        if isinstance(v, (dict, list, bool)):
            raise BadRequest("Bad Request: field \"%s\" must be of type String" % name)
        return str(v)

    # --- methods
    def m_getme(self, req, params):
        return ok(dict(self.bot_user, can_join_groups=True, can_read_all_group_messages=False,
                       supports_inline_queries=False))

    def m_sendmessage(self, req, params):
        chat = self.chat(params)
        text = self.text_param(params, "text")
        if text is None or text == "":
            raise BadRequest("Bad Request: message text is empty")
        plain = self.formatted(text, params.get("parse_mode"), "text")
        if plain.strip() == "":
            raise BadRequest("Bad Request: message text is empty")
        if len(plain) > MAX_TEXT:
            raise BadRequest("Bad Request: message is too long")
        self._check_markup(params)
        with self.lock:
            retry_after = self.flood.admit(chat)
        if retry_after is not None:
            req.entry["rate_limited"] = True
            return tg_error(429, "Too Many Requests: retry after %d" % retry_after, retry_after)
        return ok(self.message(chat, text=plain))

    def _check_markup(self, params):
        rm = params.get("reply_markup")
        if isinstance(rm, str):
            try:
                rm = json.loads(rm)
            except ValueError:
                raise BadRequest("Bad Request: can't parse reply keyboard markup JSON object")
        if rm is not None and not isinstance(rm, dict):
            raise BadRequest("Bad Request: can't parse reply keyboard markup JSON object")

    def m_senddocument(self, req, params):
        chat = self.chat(params)
        doc = None
        fp = req.files.get("document")
        if fp is not None:
            if not fp.data:
                raise BadRequest("Bad Request: file must be non-empty")
            fid = self._register_file(fp.data, file_name=fp.filename, mime_type=fp.content_type)
            doc = {"file_name": fp.filename, "mime_type": fp.content_type}
        else:
            ref = params.get("document")
            if ref is None or ref == "":
                raise BadRequest("Bad Request: there is no document in the request")
            ref = str(ref)
            with self.lock:
                known = ref in self.files
            if known:
                fid = ref
            elif re.match(r"^https?://", ref):
                name = ref.rstrip("/").rsplit("/", 1)[-1] or "document"
                fid = self._register_file(b"fake remote document " + ref.encode(), file_name=name)
            elif ref.startswith("attach://"):
                raise BadRequest("Bad Request: there is no document in the request")
            else:
                raise BadRequest("Bad Request: wrong file identifier/HTTP URL specified")
            with self.lock:
                f = self.files[fid]
            doc = {"file_name": f["file_name"], "mime_type": f["mime_type"]}
        with self.lock:
            info = self._file_info(fid)
        doc = {k: v for k, v in doc.items() if v is not None}
        doc.update(file_id=fid, file_unique_id=info["file_unique_id"], file_size=info["file_size"])
        extra = {"document": doc}
        caption = self.text_param(params, "caption")
        if caption:
            plain = self.formatted(caption, params.get("parse_mode"), "caption")
            if len(plain) > MAX_CAPTION:
                raise BadRequest("Bad Request: message caption is too long")
            if plain:
                extra["caption"] = plain
        self._check_markup(params)
        with self.lock:
            retry_after = self.flood.admit(chat)
        if retry_after is not None:
            req.entry["rate_limited"] = True
            return tg_error(429, "Too Many Requests: retry after %d" % retry_after, retry_after)
        return ok(self.message(chat, **extra))

    def m_getfile(self, req, params):
        fid = self.text_param(params, "file_id")
        if not fid:
            raise BadRequest("Bad Request: file_id is empty")
        with self.lock:
            if fid not in self.files:
                raise BadRequest("Bad Request: invalid file_id")
            return ok(self._file_info(fid))

    def m_getupdates(self, req, params):
        def num(name, default):
            v = params.get(name)
            if v is None or v == "":
                return default
            try:
                return int(v)
            except (TypeError, ValueError):
                raise BadRequest("Bad Request: field \"%s\" must be of type Integer" % name)
        offset = num("offset", 0)
        limit = max(1, min(100, num("limit", 100)))
        timeout = max(0, min(50, num("timeout", 0)))
        deadline = time.time() + timeout
        with self.updates_cv:
            if offset:
                if offset < 0:
                    self.updates = self.updates[offset:]
                else:
                    self.updates = [u for u in self.updates if u["update_id"] >= offset]
            while not self.updates and time.time() < deadline:
                self.updates_cv.wait(max(0.0, deadline - time.time()))
            return ok([dict(u) for u in self.updates[:limit]])

    def m_deletewebhook(self, req, params):
        return json_response({"ok": True, "result": True, "description": "Webhook is already deleted"})

    def m_setwebhook(self, req, params):
        return json_response({"ok": True, "result": True, "description": "Webhook was set"})

    def m_getwebhookinfo(self, req, params):
        return ok({"url": "", "has_custom_certificate": False, "pending_update_count": 0})

    def handle_api(self, req):
        m = FILE_PATH.match(req.path)
        if m:
            token, file_path = m.group(1), m.group(2)
            if not token or (self.token is not None and token != self.token):
                req.entry["auth"] = "invalid"
                return tg_error(401, "Unauthorized")
            req.entry["auth"] = "valid"
            with self.lock:
                for f in self.files.values():
                    if f["file_path"] == file_path:
                        return Response(200, f["data"],
                                        content_type=f["mime_type"] or "application/octet-stream")
            return tg_error(404, "Not Found")
        m = BOT_PATH.match(req.path)
        if not m or not m.group(1):
            return tg_error(404, "Not Found")
        token, method = m.group(1), m.group(2)
        if self.token is not None and token != self.token:
            req.entry["auth"] = "invalid"
            return tg_error(401, "Unauthorized")
        req.entry["auth"] = "valid"
        handler = getattr(self, "m_" + method.lower(), None)
        if handler is None:
            return tg_error(404, "Not Found")
        if req.parse_error is not None:
            return tg_error(400, "Bad Request: invalid JSON body" if req.body_kind == "json"
                            else "Bad Request: can't parse request body")
        if req.body_kind == "json" and not isinstance(req.json, dict):
            return tg_error(400, "Bad Request: invalid JSON body")
        if req.utf8_error:
            return tg_error(400, "Bad Request: strings must be encoded in UTF-8")
        try:
            return handler(req, self.params(req))
        except BadRequest as e:
            return tg_error(400, e.description)


def main(argv=None):
    p = fakecommon.make_arg_parser("Fake Telegram Bot API.", "--token",
                                   "require this bot token (default: any non-empty token)")
    p.add_argument("--limits", action="store_true",
                   help="enforce Telegram's flood limits (per chat, group and bot)")
    p.add_argument("--limit-scale", type=float, default=1.0,
                   help="multiply every limit's rate (time-compressed benchmarks)")
    args = p.parse_args(argv)
    return fakecommon.run(TelegramApp(args), args)


if __name__ == "__main__":
    sys.exit(main())
