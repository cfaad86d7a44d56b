#!/usr/bin/env python3
"""Minimal OTLP/HTTP capture server (stdlib only).

Usage: capture.py PORT OUTDIR [--port-file FILE]

Listens on 127.0.0.1:PORT (PORT 0 picks a free port; the chosen port is
printed on stdout and, with --port-file, written to FILE once listening).

POST /v1/traces  -> the request body is stored byte-for-byte (still gzip if the
                    client sent Content-Encoding: gzip) as OUTDIR/NNN.bin[.gz]
                    (protobuf) or OUTDIR/NNN.json[.gz] (JSON), plus a sidecar
                    OUTDIR/NNN.meta.json with content type / encoding.
POST /v1/metrics, /v1/logs -> accepted and discarded.

Every accepted request is answered 200 with an empty Export*ServiceResponse in
the request's encoding: zero body bytes for protobuf, "{}" for JSON.
Chunked transfer encoding is supported.
"""
import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SIGNALS = {"/v1/traces", "/v1/metrics", "/v1/logs"}


class _State:
    lock = threading.Lock()
    counter = 0
    outdir = "."


def _is_json(content_type):
    return "json" in (content_type or "").lower()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "otlp-capture/1"

    def log_message(self, fmt, *args):  # keep stderr quiet but useful
        sys.stderr.write("capture: " + (fmt % args) + "\n")

    def _read_body(self):
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            chunks = []
            while True:
                line = self.rfile.readline(65537)
                if not line:
                    raise ValueError("unexpected EOF in chunk size")
                size = int(line.split(b";", 1)[0].strip(), 16)
                if size == 0:
                    # trailers until empty line
                    while True:
                        trailer = self.rfile.readline(65537)
                        if trailer in (b"\r\n", b"\n", b""):
                            break
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline(3)  # CRLF after chunk data
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _reply(self, code, content_type, body):
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body:
            self.wfile.write(body)

    def do_POST(self):
        path = self.path.split("?", 1)[0]
        try:
            body = self._read_body()
        except Exception as exc:  # malformed framing
            self._reply(400, "text/plain", str(exc).encode())
            return
        if path not in SIGNALS:
            self._reply(404, "text/plain", b"not found")
            return
        ctype = self.headers.get("Content-Type") or ""
        cenc = self.headers.get("Content-Encoding") or ""
        json_enc = _is_json(ctype)
        if path == "/v1/traces":
            with _State.lock:
                _State.counter += 1
                n = _State.counter
            name = "%03d.%s" % (n, "json" if json_enc else "bin")
            if "gzip" in cenc.lower():
                name += ".gz"
            with open(os.path.join(_State.outdir, name), "wb") as f:
                f.write(body)
            meta = {
                "file": name,
                "path": path,
                "content_type": ctype,
                "content_encoding": cenc,
                "transfer_encoding": self.headers.get("Transfer-Encoding") or "",
                "user_agent": self.headers.get("User-Agent") or "",
                "bytes": len(body),
            }
            with open(os.path.join(_State.outdir, "%03d.meta.json" % n), "w") as f:
                json.dump(meta, f, indent=1, sort_keys=True)
                f.write("\n")
        if json_enc:
            self._reply(200, "application/json", b"{}")
        else:
            self._reply(200, "application/x-protobuf", b"")

    def do_GET(self):
        self._reply(200, "text/plain", b"otlp-capture\n")


def main(argv):
    if len(argv) < 3:
        sys.stderr.write(__doc__)
        return 2
    port = int(argv[1])
    _State.outdir = argv[2]
    os.makedirs(_State.outdir, exist_ok=True)
    port_file = None
    if "--port-file" in argv:
        port_file = argv[argv.index("--port-file") + 1]
    srv = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    srv.daemon_threads = True
    actual = srv.server_address[1]
    print(actual, flush=True)
    if port_file:
        tmp = port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % actual)
        os.replace(tmp, port_file)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        srv.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
