"""Serve MockRelay over real HTTP/1.1 on loopback (for the Locust run without the Rust relay).

    python -m tests.mock_server PORT
"""

from __future__ import annotations

import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

from .mock_relay import MockRelay


def _read_chunked(rfile) -> bytes:
    out = bytearray()
    while True:
        size = int(rfile.readline().split(b";")[0].strip(), 16)
        if size == 0:
            while rfile.readline() not in (b"\r\n", b"\n", b""):
                pass
            return bytes(out)
        out += rfile.read(size)
        rfile.readline()


def make_handler(relay: MockRelay):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # quiet
            pass

        def _any(self):
            if self.headers.get("transfer-encoding", "").lower() == "chunked":
                data = _read_chunked(self.rfile)
            else:
                data = self.rfile.read(int(self.headers.get("content-length") or 0))
            headers = [(k, v) for k, v in self.headers.items() if k.lower() not in ("transfer-encoding", "content-length")]
            if data or self.command in ("POST", "PUT", "PATCH"):
                headers.append(("content-length", str(len(data))))
            req = httpx.Request(self.command, "http://relay" + self.path, headers=headers, content=data)
            resp = relay.handle(req)
            payload = resp.read()
            self.send_response(resp.status_code)
            for k, v in resp.headers.multi_items():
                if k.lower() not in ("content-length", "transfer-encoding"):
                    self.send_header(k, v)
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = _any

    return Handler


def serve(port: int) -> None:
    ThreadingHTTPServer(("127.0.0.1", port), make_handler(MockRelay())).serve_forever()


if __name__ == "__main__":
    serve(int(sys.argv[1]))
