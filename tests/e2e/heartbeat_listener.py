"""A stand-in for the server's heartbeat route: notes one field of every heartbeat.

Usage: heartbeat_listener.py PORT LOG FIELD [--time]
Appends to LOG one line per heartbeat: the FIELD's value ("-" when absent or empty),
after the arrival's monotonic time when --time is given. Answers 200 "{}".
"""
import http.server
import json
import sys
import time

port, log_path, field = int(sys.argv[1]), sys.argv[2], sys.argv[3]
with_time = "--time" in sys.argv[4:]
log = open(log_path, "a")


class Heartbeats(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        value = body.get(field) or "-"
        log.write((f"{time.monotonic():.3f} " if with_time else "") + f"{value}\n")
        log.flush()
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):
        pass


http.server.HTTPServer(("127.0.0.1", port), Heartbeats).serve_forever()
