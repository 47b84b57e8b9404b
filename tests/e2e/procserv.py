#!/usr/bin/env python3
"""The process server with real children and real sockets: the crash loop's hold-off, ^X,
^T modes and ^R, a child killed by a signal, two clients at once, the replay for a late
client, a client that stops reading, and log rotation under a fast writer.
Usage: procserv.py WHARF_AGENT (ctest passes it)."""
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

AGENT = sys.argv[1]
ROOT = tempfile.mkdtemp(prefix="wharf-procserv.")
CHECKS = 0


def fail(message):
    print(f"FAIL: {message}", file=sys.stderr)
    sys.exit(1)


def ok(message):
    global CHECKS
    CHECKS += 1
    print(f"ok - {message}")


class Service:
    def __init__(self, name, command, *extra):
        self.name = name
        self.proc = subprocess.Popen(
            [AGENT, "procserv", "--root", ROOT, "--name", name, *extra, "--", *command],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.socket = f"{ROOT}/run/wharf/console/{name}.sock"
        deadline = time.time() + 5
        while not os.path.exists(self.socket):
            if time.time() > deadline or self.proc.poll() is not None:
                fail(f"{name}: the process server did not start: {self.proc.stderr.read()}")
            time.sleep(0.02)

    def status(self):
        with open(f"{ROOT}/run/wharf/status/{self.name}.json") as f:
            return json.load(f)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            return self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            fail(f"{self.name}: the process server did not stop on SIGTERM")


class Client:
    def __init__(self, path, read=True):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(path)
        self.seen = b""
        self.pos = 0  # searches start after the previous match

    def send(self, data):
        self.sock.sendall(data)

    def read_until(self, pattern, timeout=5.0):
        """Reads until `pattern` (bytes regex) appears after the previous match; returns it."""
        deadline = time.time() + timeout
        regex = re.compile(pattern)
        while True:
            m = regex.search(self.seen, self.pos)
            if m:
                self.pos = m.end()
                return m
            left = deadline - time.time()
            if left <= 0:
                fail(f"waited {timeout}s for {pattern!r}; saw: {self.seen[-600:]!r}")
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            if not chunk:
                m = regex.search(self.seen, self.pos)
                if m:
                    self.pos = m.end()
                    return m
                fail(f"the server closed the console; wanted {pattern!r}; saw: {self.seen[-600:]!r}")
            self.seen += chunk

    def close(self):
        self.sock.close()


def crash_loop_honours_holdoff():
    svc = Service("crashy", ["sh", "-c", "echo start; exit 3"], "--holdoff", "1")
    c = Client(svc.socket)
    c.read_until(rb"(?s)(started child.*){4}", timeout=8)
    svc_status = svc.status()
    # the times of the starts, from the log with timestamps would be coarse: measure here
    starts = []
    while len(starts) < 3:
        c.read_until(rb"started child, PID \d+", timeout=5)
        starts.append(time.time())
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    if min(gaps) < 0.85:
        fail(f"hold-off 1 s not honoured: starts {gaps} s apart")
    if not svc_status["restarts"] >= 2 or svc_status["last_exit"]["code"] != 3:
        fail(f"status of a crash loop: {svc_status}")
    if "start" not in svc_status["last_lines"][-4:][0] + "".join(svc_status["last_lines"]):
        fail(f"the status keeps the last lines: {svc_status['last_lines']}")
    c.close()
    svc.stop()
    ok(f"crash loop: restarts {', '.join(f'{g:.2f}' for g in gaps)} s apart with a 1 s hold-off; "
       f"status counts restarts and keeps exit 3 and the last lines")


def keys_and_modes():
    svc = Service("keys", ["sh", "-c", "echo up $$; exec sleep 1000"], "--holdoff", "0")
    c = Client(svc.socket)
    first = int(c.read_until(rb"up (\d+)").group(1))
    c.send(b"\x18")  # ^X
    c.read_until(rb"killed by signal 9 \(SIGKILL\)")
    second = int(c.read_until(rb"up (\d+)").group(1))
    if second == first:
        fail("^X: the child was not restarted")
    if svc.status()["last_exit"]["signal"] != "SIGKILL":
        fail(f"status after ^X: {svc.status()}")
    ok("^X kills the child; it restarts (mode restart) and the status says SIGKILL")

    c.send(b"\x14")  # ^T: norestart
    c.read_until(rb"mode is now norestart")
    c.send(b"\x18")
    c.read_until(rb"not restarting \(mode norestart\)")
    time.sleep(0.5)
    if svc.status()["state"] != "stopped" or svc.status()["pid"] is not None:
        fail(f"norestart: the child must stay down: {svc.status()}")
    c.send(b"\x12")  # ^R
    third = int(c.read_until(rb"up (\d+)").group(1))
    ok("^T to norestart: a killed child stays down; ^R starts it again")

    c.send(b"\x14")  # ^T: oneshot
    c.read_until(rb"mode is now oneshot")
    c.send(b"\x18")
    c.read_until(rb"mode oneshot: the process server ends")
    try:
        code = svc.proc.wait(5)
    except subprocess.TimeoutExpired:
        fail("oneshot: the server did not end with its child")
    if code != 0:
        fail(f"oneshot: exit {code}")
    if third in (first, second):
        fail("^R did not start a new child")
    ok("^T to oneshot: the server ends with its child")


def signal_is_reported():
    svc = Service("signalled", ["sh", "-c", "echo dying; kill -TERM $$"], "--mode", "norestart")
    c = Client(svc.socket)
    c.read_until(rb"killed by signal 15 \(SIGTERM\)")
    time.sleep(0.2)
    s = svc.status()
    if s["last_exit"]["signal"] != "SIGTERM" or s["last_exit"]["code"] is not None:
        fail(f"a child killed by SIGTERM: {s}")
    svc.stop()
    ok("a child killed by a signal is reported with that signal")


def two_clients_and_replay():
    svc = Service("echo", ["sh", "-c", "for i in $(seq 1 50); do echo early-$i; done; exec cat"])
    a = Client(svc.socket)
    a.read_until(rb"early-50")
    b = Client(svc.socket)
    b.read_until(rb"early-1\r?\n(.|\n)*early-50")  # the late client gets the replay
    ok("a client that attaches late gets the recent output replayed")
    a.send(b"from-a\r")
    b.read_until(rb"from-a")
    b.send(b"from-b\r")
    a.read_until(rb"from-b")
    a.pos = 0  # the terminal's echo and the child's (cat) answer, whenever they came
    a.read_until(rb"(?s)from-a.*from-a")
    ok("two clients at once: each sees the other's input and the child's output")
    a.close()
    b.close()
    svc.stop()


def client_that_stops_reading():
    import threading
    svc = Service("fast", ["sh", "-c", "i=0; while :; do i=$((i+1)); echo line-$i-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx; done"],
                  "--log-file", "none")
    stuck = socket.socket(socket.AF_UNIX)
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stuck.connect(svc.socket)  # never reads
    reader = socket.socket(socket.AF_UNIX)
    reader.connect(svc.socket)
    tail = [b""]
    running = [True]

    def read_all():
        while running[0]:
            chunk = reader.recv(1 << 16)
            if not chunk:
                break
            tail[0] = (tail[0] + chunk)[-4096:]

    thread = threading.Thread(target=read_all, daemon=True)
    thread.start()

    def newest():
        found = re.findall(rb"line-(\d+)-", tail[0])
        return int(found[-1]) if found else 0

    time.sleep(3)
    first = newest()
    time.sleep(1)
    later = newest()
    if not thread.is_alive() or later <= first:
        fail(f"the child or the reading client was held up: line {first} then {later}")
    if svc.status()["console_clients"] != 1:
        fail(f"the client that stopped reading must be dropped: {svc.status()['console_clients']} clients")
    running[0] = False
    stuck.close()
    svc.stop()
    reader.close()
    ok(f"a client that stops reading is dropped; the child and the reading client go on (line {first} -> {later})")


def log_rotation_loses_no_line():
    n = 200000
    log = f"{ROOT}/var/log/wharf/rotating.log"
    svc = Service("rotating", ["sh", "-c", f"seq 1 {n}; echo done-writing; exec sleep 1000"],
                  "--log-max", "100000", "--log-keep", "100")
    c = Client(svc.socket)
    c.read_until(rb"done-writing", timeout=60)
    time.sleep(0.3)
    files = sorted((p for p in os.listdir(os.path.dirname(log)) if p.startswith("rotating.log.")),
                   key=lambda p: -int(p.rsplit(".", 1)[1]))
    lines = []
    for name in files + ["rotating.log"]:
        with open(os.path.join(os.path.dirname(log), name), "rb") as f:
            data = f.read()
        if name != "rotating.log" and not data.endswith(b"\n"):
            fail(f"{name} ends inside a line")
        if len(data) > 100000 + 200:
            fail(f"{name} is {len(data)} bytes, over the 100000 limit")
        lines += data.decode().splitlines()
    numbers = [l for l in lines if not l.startswith("@@@") and l != "done-writing"]
    if numbers != [str(i) for i in range(1, n + 1)]:
        missing = sorted(set(map(str, range(1, n + 1))) - set(numbers))[:5]
        fail(f"lines lost or reordered across rotation: {len(numbers)} of {n}; missing e.g. {missing}")
    if len(files) < 5:
        fail(f"expected several rotations, got {len(files)}")
    c.close()
    svc.stop()
    ok(f"log rotation by the server: {len(files)} rotations under a fast writer, all {n} lines kept in order")


def list_json_schema():
    svc = Service("listed", ["sleep", "1000"])
    time.sleep(0.3)
    out = subprocess.run([AGENT, "list", "--root", ROOT, "-vv", "--json"], capture_output=True, text=True, check=True)
    rows = {r["name"]: r for r in json.loads(out.stdout)}
    r = rows.get("listed")
    if not r:
        fail(f"list: {out.stdout}")
    for key in ("name", "state", "pid", "restarts", "last_exit", "uptime", "console_clients",
                "rss_bytes", "cpu_seconds", "console_socket", "console_socket_info", "log_file", "log_bytes"):
        if key not in r:
            fail(f"list -vv --json lacks {key}: {r}")
    if r["state"] != "running" or not r["pid"] or r["console_socket_info"]["mode"] != "0660" \
            or "recv_q" not in r["console_socket_info"]:
        fail(f"list -vv --json: {r}")
    svc.stop()
    out = subprocess.run([AGENT, "list", "--root", ROOT, "--json"], capture_output=True, text=True, check=True)
    after = {r["name"]: r for r in json.loads(out.stdout)}["listed"]
    if after["state"] == "running":
        fail(f"a stopped server still shows running: {after}")
    ok("list -vv --json: state, PID, restarts, last exit, clients, CPU, RSS, socket mode, log")


try:
    crash_loop_honours_holdoff()
    keys_and_modes()
    signal_is_reported()
    two_clients_and_replay()
    client_that_stops_reading()
    log_rotation_loses_no_line()
    list_json_schema()
    print(f"procserv: {CHECKS} checks passed")
finally:
    subprocess.run(["pkill", "-f", f"procserv --root {ROOT}"], check=False)
    shutil.rmtree(ROOT, ignore_errors=True)
