#!/usr/bin/env python3
"""Fake OpenAI-compatible chat completions API (OpenAI / Perplexity wire format).

Endpoints: POST /chat/completions, /v1/chat/completions, /openai/v1/chat/completions
           GET  /models, /v1/models, /openai/v1/models (a one-model list)
Auth:      Authorization: Bearer <key>; 401 {"error":{"message","type":"invalid_request_error",
           "param":null,"code":"invalid_api_key"}} when missing, or (with --api-key K) not K.

DETERMINISTIC CONTENT RULE (recompute it in tests):
    user    = content of the LAST message whose role is "user"
              (if content is an array of parts, the "text" of its text parts joined by "\n")
    content = "ANALYSIS(" + sha256(user.encode("utf-8")).hexdigest()[:12] + ")\n"
              "1. Assessment: ok\n2. Risks: none\n3. Next steps: continue"
    prompt_tokens     = sum(len(c.split()) for c in contents of ALL messages)
    completion_tokens = len(content.split())            (11 for the rule above)
    total_tokens      = prompt_tokens + completion_tokens
    finish_reason     = "stop"
  If max_tokens (or max_completion_tokens) < completion_tokens, content is cut right after
  its max_tokens-th word (original whitespace kept), completion_tokens = max_tokens and
  finish_reason = "length".
  Scripted answers (POST /_control/responses, see below) replace the rule for matching
  prompts; the token counts and the max_tokens cut apply to them the same way.

  In Python:
    h = hashlib.sha256(user.encode()).hexdigest()[:12]
    content = f"ANALYSIS({h})\\n1. Assessment: ok\\n2. Risks: none\\n3. Next steps: continue"

Response (200):
  {"id":"chatcmpl-fake00000001","object":"chat.completion","created":<unix>,"model":<model>,
   "choices":[{"index":0,"message":{"role":"assistant","content":...},"finish_reason":"stop"}],
   "usage":{"prompt_tokens":N,"completion_tokens":M,"total_tokens":N+M}}

Errors use OpenAI's shape {"error":{"message","type","param","code"}}:
  400 invalid JSON / missing model / missing or empty messages / bad role / bad content /
      max_tokens < 1 / stream=true (unsupported) / no user message
  401 invalid_api_key, 404 unknown_url, 405 wrong method, 413 body > 20 MB.

Faults (see fakecommon.py): status -> OpenAI error JSON (429: type "requests",
code "rate_limit_exceeded"; a "retry_after" adds a Retry-After header on any status);
malformed -> 200 with truncated JSON; empty -> 200 with "choices": [].

Extra control endpoints:
  POST /_control/responses {"responses":[{"contains":"substr","content":"text"}, ...]}
       scripted answers: the first rule whose "contains" occurs in the last user message
       (a rule without "contains" matches everything) gives the content. Replaces the
       list; cleared by /_control/reset. GET /_control/responses shows it.

STRUCTURED MODE (the nightly structuring job's structurer), when the body has
  "response_format": {"type": "json_schema",
                      "json_schema": {"name": N, "strict": true, "schema": {...}}}
  content = json.dumps(ans, ensure_ascii=False), ans = structurer_rule.answer(...)
  (or the text "Sure! Here is" for the non-JSON markers); see structurer_rule.py for
  THE RULE, the markers (#invalid-once, #invalid-always, #bad-data, #unknown-type,
  #reclassify), which text t is classified (the last user message's content, or the
  text after its last line starting with "Message:") and what counts as a repair
  (more than one user message, or a message containing "did not match").
  Scripted answers (/_control/responses) still win when they match; token counts and
  the max_tokens cut apply as above (a cut answer is not valid JSON).
  "model" in the answer is --model-version / config "model_version" when set, else
  the request's model (in both modes).
  400 (OpenAI shape, param "response_format") when response_format is not an object,
  its type is not "text" / "json_schema" ("json_object" is refused: use json_schema),
  json_schema is not an object, its name is not a string of 1-64 [A-Za-z0-9_-],
  schema is not an object, strict is not a boolean, or (strict true) the schema breaks
  OpenAI's strict rules: the root is an object schema; every object schema has
  "additionalProperties": false and "required" listing every key of "properties".
  response_format {"type": "text"} = the ANALYSIS rule above.

Rate limit / stats (structurer_rule.py): --rate-limit R (or config "rate_limit") admits
  at most R API calls in any 1-second window; beyond that 429 at once (no latency, no
  fault consumed), OpenAI's shape (type "requests", code "rate_limit_exceeded") with
  Retry-After; logged with "rate_limited": true.
  GET  /_control/stats    {"requests", "rate_limited", "max_concurrent", "in_flight",
                           "by_type": {type or "invalid_json": n}, "repairs"}
                          (by_type / repairs: structured answers only; a matching
                          scripted answer counts as "scripted"; requests: every API
                          call, 429s included; max_concurrent: peak of API calls in
                          progress at once, latency included, since reset)
  POST /_control/classify {"reclassify": TYPE}  what "#reclassify" texts become (default note)
  GET  /_control/classify
  POST /_control/config   also {"rate_limit": R, "model_version": str|null}
  All of it back to the CLI values on /_control/reset.

CLI: fake_llm.py [--host 127.0.0.1] [--port 0] [--port-file PATH] [--api-key K]
                 [--latency-ms N] [--fail-rate R] [--seed S] [--rate-limit R]
                 [--model-version V] [-v]
"""

import hashlib
import json
import os
import re
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import fakecommon  # noqa: E402
from fakecommon import App, Response, json_response  # noqa: E402
import structurer_rule  # noqa: E402
from structurer_rule import StructurerMixin  # noqa: E402

COMPLETION_PATHS = ("/chat/completions", "/v1/chat/completions", "/openai/v1/chat/completions")
MODEL_PATHS = ("/models", "/v1/models", "/openai/v1/models")
ROLES = ("system", "user", "assistant", "tool", "function", "developer")
SCHEMA_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
TAIL = "\n1. Assessment: ok\n2. Risks: none\n3. Next steps: continue"


def default_content(user_text):
    return "ANALYSIS(" + hashlib.sha256(user_text.encode("utf-8")).hexdigest()[:12] + ")" + TAIL


def content_text(content):
    """The text of a message content: a string, or an array of parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "\n".join(p.get("text", "") for p in content
                     if isinstance(p, dict) and p.get("type") == "text")


def cut_words(text, n):
    """text up to the end of its n-th whitespace-separated word."""
    i, count, L = 0, 0, len(text)
    while i < L:
        while i < L and text[i].isspace():
            i += 1
        if i >= L:
            break
        while i < L and not text[i].isspace():
            i += 1
        count += 1
        if count == n:
            return text[:i]
    return text


def strict_schema_error(schema, where="()"):
    """Why OpenAI would refuse this schema in strict mode, or None."""
    if isinstance(schema, list):
        for i, s in enumerate(schema):
            e = strict_schema_error(s, "%s, %d" % (where, i))
            if e:
                return e
        return None
    if not isinstance(schema, dict):
        return None
    t = schema.get("type")
    is_object = t == "object" or (isinstance(t, list) and "object" in t) or "properties" in schema
    if is_object:
        if schema.get("additionalProperties") is not False:
            return ("In context=%s, 'additionalProperties' is required to be supplied and to be "
                    "false." % where)
        props = schema.get("properties") or {}
        if not isinstance(props, dict):
            return "In context=%s, 'properties' must be an object." % where
        req = schema.get("required")
        if not isinstance(req, list):
            req = []
        missing = [k for k in props if k not in req]
        extra = [k for k in req if k not in props]
        if missing:
            return ("In context=%s, 'required' is required to be supplied and to be an array "
                    "including every key in properties. Missing '%s'." % (where, missing[0]))
        if extra:
            return "In context=%s, 'required' names '%s', which is not in properties." % (where, extra[0])
        for k, v in props.items():
            e = strict_schema_error(v, "%s, 'properties', '%s'" % (where, k))
            if e:
                return e
    for key in ("items", "anyOf", "$defs", "definitions"):
        if key in schema:
            sub = schema[key]
            if isinstance(sub, dict) and key in ("$defs", "definitions"):
                for k, v in sub.items():
                    e = strict_schema_error(v, "%s, '%s', '%s'" % (where, key, k))
                    if e:
                        return e
            else:
                e = strict_schema_error(sub, "%s, '%s'" % (where, key))
                if e:
                    return e
    return None


class LlmApp(StructurerMixin, App):
    name = "fake_llm"
    json_only = True

    def __init__(self, args):
        super().__init__(args)
        self.api_key = args.secret
        self.lock = threading.Lock()
        self.counter = 0
        self.rules = []
        self.extra_defaults = {"model_version": args.model_version}
        self.init_structurer(args)

    def check_extra_config(self, key, value):
        if key == "model_version" and value is not None and not (isinstance(value, str) and value):
            return "must be a non-empty string or null"
        return None

    # --- errors in OpenAI's format
    def err(self, status, message, etype="invalid_request_error", code=None, param=None,
            retry_after=None):
        headers = []
        if retry_after is not None:
            headers.append(("Retry-After", str(retry_after)))
        return json_response({"error": {"message": message, "type": etype, "param": param,
                                        "code": code}}, status, headers)

    def error(self, status, message, retry_after=None):
        if status == 429:
            return self.err(429, message or "Rate limit reached for requests. Please try again later.",
                            "requests", "rate_limit_exceeded", retry_after=retry_after)
        if status == 401:
            return self.err(401, message or "Incorrect API key provided.", code="invalid_api_key",
                            retry_after=retry_after)
        if status == 413:
            return self.err(413, message or "Request too large: the body exceeds %d bytes."
                            % fakecommon.MAX_BODY, code="request_too_large", retry_after=retry_after)
        if status >= 500:
            default = {503: "The server is overloaded or not ready yet.",
                       502: "Bad gateway."}.get(status, "The server had an error while processing "
                                                         "your request. Sorry about that!")
            return self.err(status, message or default, "server_error", retry_after=retry_after)
        return self.err(status, message or "Injected error (HTTP %d)." % status,
                        retry_after=retry_after)

    def fault_malformed(self, req):
        return Response(200, b'{"id":"chatcmpl-malformed","object":"chat.completion","choices":[{"index":0,'
                             b'"message":{"role":"assistant","content":"trunc')

    def fault_empty(self, req):
        model = req.json.get("model") if isinstance(req.json, dict) else None
        return json_response({"id": self.next_id(), "object": "chat.completion",
                              "created": int(time.time()), "model": self.answer_model(model), "choices": [],
                              "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}})

    def next_id(self):
        with self.lock:
            self.counter += 1
            return "chatcmpl-fake%08d" % self.counter

    def reset_app(self):
        with self.lock:
            self.rules = []
        self.reset_structurer()

    def answer_model(self, model):
        return self.extra_config.get("model_version") or model

    def response_format_error(self, rf):
        """(error response or None, structured: bool)"""
        def bad(msg, code="invalid_value"):
            return self.err(400, msg, param="response_format", code=code), False
        if not isinstance(rf, dict):
            return bad("Invalid type for 'response_format': expected an object.", "invalid_type")
        t = rf.get("type")
        if t == "text":
            return None, False
        if t == "json_object":
            return bad("response_format json_object is not supported by this fake: use json_schema.")
        if t != "json_schema":
            return bad("Invalid value: %r. Supported values are: 'text', 'json_object' and "
                       "'json_schema'." % (t,))
        js = rf.get("json_schema")
        if not isinstance(js, dict):
            return bad("Missing required parameter: 'response_format.json_schema'.",
                       "missing_required_parameter")
        name = js.get("name")
        if not isinstance(name, str) or not SCHEMA_NAME.match(name):
            return bad("Invalid 'response_format.json_schema.name': expected a string of 1 to 64 "
                       "characters a-z, A-Z, 0-9, '_' or '-'.")
        schema = js.get("schema")
        if not isinstance(schema, dict):
            return bad("Invalid type for 'response_format.json_schema.schema': expected an object.",
                       "invalid_type")
        strict = js.get("strict", False)
        if strict is not None and not isinstance(strict, bool):
            return bad("Invalid type for 'response_format.json_schema.strict': expected a boolean.",
                       "invalid_type")
        if strict:
            if schema.get("type") != "object":
                return bad("Invalid schema for response_format '%s': schema must be a JSON Schema "
                           "of 'type: \"object\"', got 'type: \"%s\"'." % (name, schema.get("type")))
            e = strict_schema_error(schema)
            if e:
                return bad("Invalid schema for response_format '%s': %s" % (name, e))
        return None, True

    def control(self, method, path, query, body):
        if path == "/_control/responses":
            if method == "GET":
                with self.lock:
                    return json_response(list(self.rules))
            if method == "POST":
                rules = body.get("responses") if isinstance(body, dict) else None
                if not isinstance(rules, list) or not all(
                        isinstance(r, dict) and isinstance(r.get("content"), str) for r in rules):
                    return json_response({"ok": False, "error": "expected {\"responses\": "
                                          "[{\"contains\": str?, \"content\": str}]}"}, 400)
                with self.lock:
                    self.rules = rules
                return json_response({"ok": True, "rules": len(rules)})
        return None

    # --- the API
    def check_auth(self, req):
        h = req.headers.get("authorization", "")
        scheme, _, key = h.partition(" ")
        key = key.strip()
        if not h or scheme.lower() != "bearer" or not key:
            req.entry["auth"] = "missing"
            return self.err(401, "You didn't provide an API key. You need to provide your API key in "
                                 "an Authorization header using Bearer auth (i.e. Authorization: "
                                 "Bearer YOUR_KEY).", code="invalid_api_key")
        if self.api_key is not None and key != self.api_key:
            req.entry["auth"] = "invalid"
            masked = key[:3] + "*" * max(0, len(key) - 7) + key[-4:] if len(key) > 7 else "****"
            return self.err(401, "Incorrect API key provided: %s." % masked, code="invalid_api_key")
        req.entry["auth"] = "valid"
        return None

    def handle_api(self, req):
        path = req.path.rstrip("/") or "/"
        if path in MODEL_PATHS:
            if req.method != "GET":
                return self.err(405, "Invalid method for this endpoint.", code="method_not_allowed")
            bad = self.check_auth(req)
            if bad:
                return bad
            return json_response({"object": "list", "data": [
                {"id": "fake-model", "object": "model", "created": 0, "owned_by": "nightshift-fake"}]})
        if path not in COMPLETION_PATHS:
            return self.err(404, "Unknown request URL: %s %s." % (req.method, req.path), code="unknown_url")
        if req.method != "POST":
            return self.err(405, "Invalid method for chat completions: use POST.", code="method_not_allowed")
        bad = self.check_auth(req)
        if bad:
            return bad
        if req.parse_error is not None or req.body_kind == "empty":
            return self.err(400, "We could not parse the JSON body of your request. (HINT: This likely "
                                 "means you aren't using your HTTP library correctly. The OpenAI API "
                                 "expects a JSON payload.)")
        body = req.json
        if not isinstance(body, dict):
            return self.err(400, "Invalid request body: expected a JSON object.")
        model = body.get("model")
        if not isinstance(model, str) or not model:
            return self.err(400, "you must provide a model parameter", param="model")
        if "messages" not in body:
            return self.err(400, "Missing required parameter: 'messages'.", param="messages",
                            code="missing_required_parameter")
        msgs = body["messages"]
        if not isinstance(msgs, list):
            return self.err(400, "Invalid type for 'messages': expected an array.", param="messages",
                            code="invalid_type")
        if not msgs:
            return self.err(400, "Invalid 'messages': empty array. Expected an array with minimum "
                                 "length 1, but got an empty array instead.", param="messages",
                            code="empty_array")
        for i, m in enumerate(msgs):
            if not isinstance(m, dict):
                return self.err(400, "Invalid type for 'messages[%d]': expected an object." % i,
                                param="messages[%d]" % i, code="invalid_type")
            role = m.get("role")
            if role not in ROLES:
                return self.err(400, "Invalid value: %r. Supported values are: 'system', 'assistant', "
                                     "'user', 'function', 'tool', and 'developer'." % (role,),
                                param="messages[%d].role" % i, code="invalid_value")
            c = m.get("content")
            if c is None and role != "assistant":
                return self.err(400, "Missing required parameter: 'messages[%d].content'." % i,
                                param="messages[%d].content" % i, code="missing_required_parameter")
            if c is not None and not isinstance(c, (str, list)):
                return self.err(400, "Invalid type for 'messages[%d].content': expected one of a "
                                     "string or array of objects." % i,
                                param="messages[%d].content" % i, code="invalid_type")
        max_tokens = body.get("max_tokens", body.get("max_completion_tokens"))
        if max_tokens is not None:
            if not isinstance(max_tokens, int) or isinstance(max_tokens, bool):
                return self.err(400, "Invalid type for 'max_tokens': expected an integer.",
                                param="max_tokens", code="invalid_type")
            if max_tokens < 1:
                return self.err(400, "Invalid 'max_tokens': integer below minimum value. Expected a "
                                     "value >= 1, but got %d instead." % max_tokens,
                                param="max_tokens", code="integer_below_min_value")
        if body.get("stream"):
            return self.err(400, "stream=true is not supported by this fake.", param="stream")
        users = [m for m in msgs if m.get("role") == "user"]
        if not users:
            return self.err(400, "messages must contain at least one message with role 'user'.",
                            param="messages")
        structured = False
        if "response_format" in body:
            bad, structured = self.response_format_error(body["response_format"])
            if bad:
                return bad
        user_text = content_text(users[-1].get("content"))

        content = None
        with self.lock:
            rules = list(self.rules)
        for r in rules:
            needle = r.get("contains")
            if needle is None or needle in user_text:
                content = r["content"]
                break
        if structured:
            user_texts = [content_text(m.get("content")) for m in users]
            repair = structurer_rule.chat_is_repair(
                user_texts, [content_text(m.get("content")) for m in msgs])
            t = structurer_rule.chat_text(user_texts)
            req.entry["repair"] = repair
            if content is not None:
                req.entry["answer_type"] = "scripted"
                self.rules_state.count("scripted")
            else:
                ans = self.rules_state.answer(t, repair)
                if isinstance(ans, str):
                    content = ans
                    req.entry["answer_type"] = "invalid_json"
                else:
                    content = json.dumps(ans, ensure_ascii=False)
                    req.entry["answer_type"] = ans["type"]
        if content is None:
            content = default_content(user_text)

        prompt_tokens = sum(len(content_text(m.get("content")).split()) for m in msgs)
        completion_tokens = len(content.split())
        finish = "stop"
        if max_tokens is not None and completion_tokens > max_tokens:
            content = cut_words(content, max_tokens)
            completion_tokens = max_tokens
            finish = "length"
        return json_response({
            "id": self.next_id(),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.answer_model(model),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                         "finish_reason": finish}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens},
        })


def main(argv=None):
    p = fakecommon.make_arg_parser("Fake OpenAI-compatible chat completions API.",
                                   "--api-key", "require this Bearer key (default: any non-empty key)")
    structurer_rule.add_cli_flags(p)
    p.add_argument("--model-version", default=None,
                   help='answer with this "model" (default: the request\'s model)')
    args = p.parse_args(argv)
    structurer_rule.install_handler()
    return fakecommon.run(LlmApp(args), args)


if __name__ == "__main__":
    sys.exit(main())
