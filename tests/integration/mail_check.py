#!/usr/bin/env python3
"""Reads back a message stored by tests/fakes/smtp_sink.py and prints it as JSON.

  mail_check.py MAILDIR TOKEN [--timeout SECONDS]

Finds the one stored message whose envelope recipients contain TOKEN (waiting up to
--timeout for it to appear; the sink stores before it answers 250, so normally it is
there at once), parses it with the standard library's email package (policy.default:
RFC 2047 / RFC 2231 decoding) and prints a summary for tests/integration/test_mail.c:

  {"file", "envelope": {mail_from, rcpt_tos, auth_user, tls},
   "header_names": [top-level header names in order], "raw_headers": [[name, raw]],
   "subject", "from", "to", "to_addresses": [addr-spec...], "date_ok", "message_id",
   "content_type", "max_line": longest line in bytes, "bare_lf": LF without CR,
   "max_word": longest RFC 2047 encoded word in the raw Subject,
   "max_subject_line": longest line of the raw Subject header ("Subject: " included),
   "body", "body_charset", "body_cte",
   "attachments": [{"filename", "content_type", "cte", "disposition", "raw_disposition",
                    "header_names", "len", "hex"}],
   "defects": [...]}

Exit 0 with the JSON; exit 1 with a message on stderr when there is no such message or
more than one.
"""
import argparse
import email
import email.policy
import email.utils
import glob
import json
import os
import re
import sys
import time


def find(maildir, token, timeout):
    deadline = time.monotonic() + timeout
    while True:
        hits = []
        for meta_path in sorted(glob.glob(os.path.join(maildir, "*.json"))):
            eml = meta_path[:-5] + ".eml"
            if not os.path.exists(eml):
                continue  # the .json is renamed in first; the .eml follows
            with open(meta_path) as f:
                meta = json.load(f)
            if any(token in r for r in meta["rcpt_tos"]):
                hits.append((eml, meta))
        if len(hits) > 1:
            sys.exit("mail_check: %d messages for %r: %s" % (
                len(hits), token, ", ".join(h[0] for h in hits)))
        if hits:
            return hits[0]
        if time.monotonic() >= deadline:
            sys.exit("mail_check: no message for %r in %s after %.1fs" % (token, maildir, timeout))
        time.sleep(0.05)


def all_defects(msg):
    out = []
    for part in msg.walk():
        out += ["%s: %s" % (part.get_content_type(), type(d).__name__) for d in part.defects]
        for _, value in part.items():
            out += ["header: %s" % type(d).__name__ for d in getattr(value, "defects", ())]
    return out


def summary(path, meta):
    with open(path, "rb") as f:
        raw = f.read()
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    raw_msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    lines = raw.split(b"\n")
    raw_subject = raw_msg.get("Subject", "")
    words = re.findall(r"=\?[^?]+\?[BbQq]\?[^?]*\?=", raw_subject)
    out = {
        "file": path,
        "envelope": {k: meta.get(k) for k in ("mail_from", "rcpt_tos", "auth_user", "tls")},
        "header_names": list(msg.keys()),
        "raw_headers": [[k, v] for k, v in raw_msg.items()],
        "subject": str(msg.get("Subject", "")),
        "from": str(msg.get("From", "")),
        "to": str(msg.get("To", "")),
        "to_addresses": [a.addr_spec for a in msg["To"].addresses] if msg["To"] else [],
        "date_ok": False,
        "message_id": str(msg.get("Message-ID", "")),
        "content_type": msg.get_content_type(),
        "max_line": max(len(l.rstrip(b"\r")) for l in lines),
        "bare_lf": any(not l.endswith(b"\r") for l in lines[:-1]),
        "max_word": max((len(w) for w in words), default=0),
        "max_subject_line": max(len(l.rstrip("\r")) + (9 if i == 0 else 0)
                                for i, l in enumerate(raw_subject.split("\n"))),
        "body": None,
        "body_charset": None,
        "body_cte": None,
        "attachments": [],
        "defects": all_defects(msg),
    }
    try:
        out["date_ok"] = email.utils.parsedate_to_datetime(msg["Date"]) is not None
    except (TypeError, ValueError):
        pass
    for part in msg.walk():
        if part.is_multipart():
            continue
        if part.get_content_disposition() == "attachment":
            data = part.get_payload(decode=True)
            out["attachments"].append({
                "filename": part.get_filename(),
                "content_type": part.get_content_type(),
                "cte": part.get("Content-Transfer-Encoding", ""),
                "disposition": part.get_content_disposition(),
                "raw_disposition": str(part.get("Content-Disposition", "")),
                "header_names": list(part.keys()),
                "len": len(data),
                "hex": data.hex(),
            })
        elif part.get_content_type() == "text/plain" and out["body"] is None:
            # The wire has CRLF line ends; compare text with the caller's "\n".
            out["body"] = part.get_content().replace("\r\n", "\n")
            out["body_charset"] = part.get_content_charset()
            out["body_cte"] = part.get("Content-Transfer-Encoding", "")
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("maildir")
    ap.add_argument("token")
    ap.add_argument("--timeout", type=float, default=10.0)
    args = ap.parse_args()
    path, meta = find(args.maildir, args.token, args.timeout)
    json.dump(summary(path, meta), sys.stdout, ensure_ascii=False, indent=1)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
