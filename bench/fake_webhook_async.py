#!/usr/bin/env python3
"""A webhook receiver for the throughput benchmark, on asyncio (standard
library only).

tests/fakes/fake_webhook.py runs a thread per connection under the GIL; at
a few thousand calls a second it needs more than a core of a 2-core machine
by itself, so a benchmark against it measures the fake. This one answers
the same calls the same way, with one event loop and no per-call thread:

  POST <any path>       waits --latency-ms, then 200 {"ok": true}
  GET  /_control/health {"ok": true}
  POST /_control/reset  clears the request log
  GET  /_control/requests  the log: [{"path", "status", "headers":
                        {"idempotency-key": ...}}] (what the benchmark reads)

HTTP/1.1 with keep-alive and Content-Length bodies (what libcurl sends);
"Expect: 100-continue" is honoured.

CLI: fake_webhook_async.py [--host 127.0.0.1] [--port 0] [--port-file PATH]
                           [--latency-ms N]
"""
import argparse
import asyncio
import json
import os
import signal
import socket
import sys

OK = b'{"ok": true}'


class State:
    def __init__(self, latency_s):
        self.latency_s = latency_s
        self.log = []


def response(status, body, reason=b"OK"):
    return (b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (status, reason, len(body),
                                                body))


class Conn(asyncio.Protocol):
    def __init__(self, state):
        self.state = state
        self.buf = b""
        self.transport = None
        self.pending = None  # (path, method, headers, body length needed)
        self.busy = False    # a call is waiting for its answer

    def connection_made(self, transport):
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data):
        self.buf += data
        self.parse()

    def parse(self):
        while not self.busy:
            if self.pending is None:
                end = self.buf.find(b"\r\n\r\n")
                if end < 0:
                    return
                head = self.buf[:end].decode("latin-1").split("\r\n")
                self.buf = self.buf[end + 4:]
                parts = head[0].split(" ")
                if len(parts) != 3:
                    self.transport.write(response(400, b'{"ok": false}',
                                                  b"Bad Request"))
                    self.transport.close()
                    return
                headers = {}
                for line in head[1:]:
                    k, _, v = line.partition(":")
                    headers[k.strip().lower()] = v.strip()
                length = int(headers.get("content-length") or 0)
                self.pending = (parts[0], parts[1], headers, length)
                if headers.get("expect", "").lower() == "100-continue":
                    self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            method, path, headers, length = self.pending
            if len(self.buf) < length:
                return
            self.buf = self.buf[length:]
            self.pending = None
            self.answer(method, path, headers)

    def answer(self, method, path, headers):
        st = self.state
        if path.startswith("/_control/"):
            name = path[len("/_control/"):].split("?")[0]
            if name == "reset" and method == "POST":
                st.log = []
                body = OK
            elif name == "requests":
                body = json.dumps(st.log).encode()
            else:
                body = OK
            self.transport.write(response(200, body))
            return
        st.log.append({"path": path, "status": 200, "headers": {
            "idempotency-key": headers.get("idempotency-key")}})
        self.busy = True
        asyncio.get_running_loop().call_later(st.latency_s, self.reply)

    def reply(self):
        self.busy = False
        if self.transport.is_closing():
            return
        self.transport.write(response(200, OK))
        self.parse()


async def serve(args):
    state = State(args.latency_ms / 1000.0)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Conn(state), args.host,
                                      args.port, backlog=1024)
    port = server.sockets[0].getsockname()[1]
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % port)
        os.replace(tmp, args.port_file)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()
    if args.port_file:
        try:
            os.unlink(args.port_file)
        except OSError:
            pass


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--port-file")
    p.add_argument("--latency-ms", type=float, default=0)
    asyncio.run(serve(p.parse_args(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
