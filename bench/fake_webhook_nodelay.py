#!/usr/bin/env python3
"""tests/fakes/fake_webhook.py with TCP_NODELAY on its accepted sockets.

Same CLI and control API. Why: fakecommon's handler writes a response's
headers and body with two unbuffered send() calls; on a keep-alive
connection Nagle holds the body until the client ACKs the headers, and the
client delays that ACK (40 ms on Linux), so every request after the first
on a connection takes latency + ~40 ms. bench/throughput.py measures the
webhook handler against both the fake as it is and this variant, so the
figures show nightshift rather than the fake's Nagle stall.
"""
import os
import socket
import sys

FAKES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                     "tests", "fakes")
sys.path.insert(0, FAKES)

import fakecommon  # noqa: E402
import fake_webhook  # noqa: E402

_setup = fakecommon.Handler.setup


def _setup_nodelay(self):
    _setup(self)
    try:
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError:
        pass


fakecommon.Handler.setup = _setup_nodelay

if __name__ == "__main__":
    sys.exit(fake_webhook.main())
