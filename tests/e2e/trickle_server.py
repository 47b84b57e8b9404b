#!/usr/bin/env python3
"""A store mirror that trickles: serves files of a folder over HTTP (GET, HEAD, Range) at
RATE bytes/s, just above curl's low-speed limit, so that stall detection never fires.
Logs one line per request when it ends: PATH START END BYTES_SENT (times: monotonic-free
epoch seconds), to LOG.  Usage: trickle_server.py ROOT PORT RATE LOG"""
import http.server
import os
import sys
import time

ROOT, PORT, RATE, LOG = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
TICK = 0.1


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def log_message(self, *args):
        pass

    def do_HEAD(self):
        self.serve(False)

    def do_GET(self):
        self.serve(True)

    def serve(self, body):
        start = time.time()
        sent = 0
        path = os.path.normpath(os.path.join(ROOT, self.path.split("?")[0].lstrip("/")))
        try:
            if not path.startswith(os.path.abspath(ROOT)) or not os.path.isfile(path):
                self.send_error(404)
                return
            with open(path, "rb") as f:
                data = f.read()
            begin, end = 0, len(data)
            rng = self.headers.get("Range")
            if rng and rng.startswith("bytes="):
                first, _, last = rng[6:].partition("-")
                begin = int(first)
                end = int(last) + 1 if last else len(data)
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {begin}-{end - 1}/{len(data)}")
            else:
                self.send_response(200)
            self.send_header("Content-Length", str(end - begin))
            self.end_headers()
            if not body:
                return
            chunk = max(1, int(RATE * TICK))
            at = begin
            while at < end:
                piece = data[at:min(end, at + chunk)]
                self.wfile.write(piece)
                self.wfile.flush()
                at += len(piece)
                sent += len(piece)
                time.sleep(TICK)
        except (BrokenPipeError, ConnectionResetError):
            pass
        finally:
            with open(LOG, "a") as log:
                log.write(f"{self.path} {start:.3f} {time.time():.3f} {sent}\n")


http.server.ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
