#!/usr/bin/env python3
"""A real SMTP server for the tests (Debian's python3-aiosmtpd) that keeps what it gets.

  smtp_sink.py --port P --maildir DIR [--host 127.0.0.1] [--user U --password PW]
               [--cert CERT --key KEY]

Each accepted message is stored as DIR/<n>.eml (the DATA bytes exactly as received,
dot-unstuffed) with DIR/<n>.json beside it, written first:
  {"seq": n, "mail_from": "...", "rcpt_tos": [...], "auth_user": "..." | null,
   "tls": true | false, "peer": "127.0.0.1", "received_at": unix}
Both are renamed into place before the server answers 250 to the final ".", so a client
that saw its message accepted finds the files already there.

Behaviour:
  - with --user/--password, AUTH LOGIN and AUTH PLAIN are offered and required before
    MAIL (530 otherwise); a wrong login gets 535. AUTH is allowed without TLS: loopback.
  - with --cert/--key, STARTTLS is offered (not required).
  - recipients whose local part starts with "reject" get 550 5.1.1, with "tempfail"
    451 4.3.0: the client's error classification can be tested against a real reply.
SIGTERM/SIGINT stop it cleanly.
"""
import argparse
import itertools
import json
import logging
import os
import signal
import ssl
import sys
import threading
import time
import warnings

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


def write_atomic(path, data):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


class Sink:
    def __init__(self, maildir):
        self.maildir = maildir
        # Continue after whatever a previous run (stop/start) left.
        taken = [int(n[:-4]) for n in os.listdir(maildir)
                 if n.endswith(".eml") and n[:-4].isdigit()]
        self.seq = itertools.count(max(taken, default=0) + 1)
        self.lock = threading.Lock()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.split("@", 1)[0].lower()
        if local.startswith("reject"):
            return "550 5.1.1 <%s>: recipient rejected" % address
        if local.startswith("tempfail"):
            return "451 4.3.0 <%s>: try again later" % address
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            n = next(self.seq)
        auth = session.auth_data
        meta = {
            "seq": n,
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "auth_user": auth.login.decode("utf-8", "replace")
            if isinstance(auth, LoginPassword) else None,
            "tls": session.ssl is not None,
            "peer": session.peer[0] if session.peer else None,
            "received_at": time.time(),
        }
        base = os.path.join(self.maildir, "%06d" % n)
        write_atomic(base + ".json", json.dumps(meta, indent=1).encode())
        write_atomic(base + ".eml", envelope.original_content or envelope.content)
        return "250 2.0.0 OK stored as %06d.eml" % n


def make_authenticator(user, password):
    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = (isinstance(auth_data, LoginPassword)
              and auth_data.login == user.encode()
              and auth_data.password == password.encode())
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)
    return authenticator


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--maildir", required=True)
    ap.add_argument("--user")
    ap.add_argument("--password")
    ap.add_argument("--cert")
    ap.add_argument("--key")
    args = ap.parse_args()
    if (args.user is None) != (args.password is None):
        ap.error("--user and --password go together")
    if (args.cert is None) != (args.key is None):
        ap.error("--cert and --key go together")
    os.makedirs(args.maildir, exist_ok=True)
    # AUTH without TLS is deliberate here (loopback); aiosmtpd warns about it on every
    # connection.
    warnings.filterwarnings("ignore", message="Requiring AUTH while not requiring TLS")
    logging.getLogger("mail.log").setLevel(logging.ERROR)

    kwargs = {"data_size_limit": 64 << 20, "server_hostname": "smtp-sink.test"}
    if args.user is not None:
        kwargs.update(authenticator=make_authenticator(args.user, args.password),
                      auth_required=True, auth_require_tls=False)
    if args.cert:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(args.cert, args.key)
        kwargs["tls_context"] = ctx
    controller = Controller(Sink(args.maildir), hostname=args.host, port=args.port,
                            **kwargs)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    controller.start()
    print("smtp_sink listening on %s:%d, maildir %s" % (args.host, args.port, args.maildir),
          flush=True)
    while not stop.wait(1.0):
        pass
    controller.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
