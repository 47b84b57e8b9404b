#!/usr/bin/env python3
"""Slow clients against `wharf serve` (issue 13, class 3).

Opens many connections that send a request header a byte at a time (a byte every
--trickle seconds, never finishing), from one or several loopback source addresses,
and meanwhile measures how long honest clients (from another address) wait for a store
file and for GET /api/v1.

  slow_clients.py bench --wharf build/src/cmd/wharf [--slow 5000] [--seconds 20]
      starts its own server, runs three rounds (no attackers; --slow from one address;
      --slow from 50 addresses) and prints p50/p99 of each kind of honest request.
  slow_clients.py attack --port P --slow N --addresses K --seconds S [--reconnect]
      only the attackers (for tests): prints a JSON summary when done.

Only loopback addresses are used: attackers from 127.0.0.2.., honest clients from 127.0.0.200.
"""
import argparse
import json
import os
import resource
import selectors
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HONEST_SOURCE = "127.0.0.200"


def raise_fd_limit(want):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))


class Attack:
    """`count` connections from `addresses` source addresses, each trickling a header."""

    def __init__(self, port, count, addresses, trickle=1.0, reconnect=False, first_source=2):
        self.port, self.count, self.trickle, self.reconnect = port, count, trickle, reconnect
        self.sources = ["127.0.0.%d" % (first_source + i) for i in range(addresses)]
        self.sel = selectors.DefaultSelector()
        self.stop = threading.Event()
        self.opened = 0          # connections the server accepted (a header byte went out)
        self.refused = 0         # closed before any byte could be sent, or connect failed
        self.lifetimes = []      # seconds from connect to the server's close, for accepted ones
        self.open_now = 0
        self.peak_open = 0
        self.thread = threading.Thread(target=self.run, daemon=True)

    def connect(self, i):
        s = socket.socket()
        s.setblocking(False)
        try:
            s.bind((self.sources[i % len(self.sources)], 0))
            s.connect_ex(("127.0.0.1", self.port))
        except OSError:
            s.close()
            self.refused += 1
            return
        st = {"i": i, "t0": time.monotonic(), "sent": 0, "next": time.monotonic()}
        self.sel.register(s, selectors.EVENT_READ, st)

    def close(self, s, st):
        self.sel.unregister(s)
        s.close()
        if st["sent"] > 0:
            self.lifetimes.append(time.monotonic() - st["t0"])
            self.open_now -= 1
        else:
            self.refused += 1
        if self.reconnect and not self.stop.is_set():
            st2 = ("again", st["i"], time.monotonic() + 0.5)
            self.pending.append(st2)

    def run(self):
        self.pending = []
        for i in range(self.count):
            self.connect(i)
        header = b"GET /api/v1 HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100000
        while not self.stop.is_set():
            now = time.monotonic()
            for ev, _ in self.sel.select(timeout=0.05):
                s, st = ev.fileobj, ev.data
                try:
                    data = s.recv(4096)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    data = b""
                if not data:
                    self.close(s, st)
            for key in list(self.sel.get_map().values()):
                st = key.data
                if st["next"] <= now:
                    try:
                        n = key.fileobj.send(header[st["sent"]:st["sent"] + 1])
                    except (BlockingIOError, InterruptedError):
                        continue
                    except OSError:
                        self.close(key.fileobj, st)
                        continue
                    if st["sent"] == 0 and n:
                        self.opened += 1
                        self.open_now += 1
                        self.peak_open = max(self.peak_open, self.open_now)
                    st["sent"] += n
                    st["next"] = now + self.trickle
            again = [p for p in self.pending if p[2] <= now]
            self.pending = [p for p in self.pending if p[2] > now]
            for _, i, _ in again:
                self.connect(i)
        for key in list(self.sel.get_map().values()):
            key.fileobj.close()

    def summary(self):
        life = sorted(self.lifetimes)
        return {"opened": self.opened, "refused": self.refused, "peak_open": self.peak_open,
                "still_open": self.open_now, "cut": len(life),
                "held_over_1s": sum(1 for t in life if t > 1.0) + self.open_now,
                "cut_after_min": round(life[0], 2) if life else None,
                # Of those the server held past a second (not closed on accept, as a server
                # over its per-address limit does once it gets to them on a loaded machine).
                "held_cut_after_min": min((round(t, 2) for t in life if t > 1.0), default=None),
                "cut_after_max": round(life[-1], 2) if life else None}


def timed_get(port, path, timeout=10.0):
    """Seconds for a whole GET from the honest address; the timeout when it failed."""
    t0 = time.monotonic()
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                     source_address=(HONEST_SOURCE, 0))
        s.settimeout(timeout)
        s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % path).encode())
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        s.close()
        ok = data.startswith(b"HTTP/1.1 200")
        return (time.monotonic() - t0, ok)
    except OSError:
        return (timeout, False)


def probe(port, paths, seconds):
    results = {p: [] for p in paths}
    fails = {p: 0 for p in paths}
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for p in paths:
            took, ok = timed_get(port, p)
            results[p].append(took)
            fails[p] += 0 if ok else 1
        time.sleep(0.02)
    out = {}
    for p in paths:
        xs = sorted(results[p])
        q = lambda f: xs[min(len(xs) - 1, int(f * len(xs)))] * 1000
        out[p] = {"n": len(xs), "failed": fails[p], "p50_ms": round(q(0.50), 1),
                  "p99_ms": round(q(0.99), 1), "max_ms": round(xs[-1] * 1000, 1)}
    return out


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def bench(args):
    raise_fd_limit(args.slow + 1000)
    work = tempfile.mkdtemp(prefix="wharf-slow-")
    server = None
    try:
        store = os.path.join(work, "store")
        os.makedirs(os.path.join(store, "software/a/1"))
        with open(os.path.join(store, "software/a/1/a-1.tar.zst"), "wb") as f:
            f.write(os.urandom(256 * 1024))
        state = os.path.join(work, "state")
        os.makedirs(state)
        subprocess.run([args.wharf, "keygen", "--out", os.path.join(state, "signing")], check=True,
                       stdout=subprocess.DEVNULL)
        port = free_port()
        cmd = [args.wharf, "serve", "--store", store, "--state", state,
               "--listen", "127.0.0.1:%d" % port] + args.serve_arg
        server = subprocess.Popen(cmd, stderr=open(os.path.join(work, "server.log"), "w"))
        for _ in range(200):
            if timed_get(port, "/api/v1", 1)[1]:
                break
            time.sleep(0.05)
        else:
            sys.exit("wharf serve did not start: " + open(os.path.join(work, "server.log")).read())
        paths = ["/software/a/1/a-1.tar.zst", "/api/v1"]
        rounds = [("no attackers", 0, 1), ("%d slow from 1 address" % args.slow, args.slow, 1),
                  ("%d slow from 50 addresses" % args.slow, args.slow, 50)]
        print("server: wharf serve %s" % " ".join(args.serve_arg or ["(defaults)"]))
        for name, count, addresses in rounds:
            attack = None
            if count:
                attack = Attack(port, count, addresses, trickle=1.0, reconnect=True)
                attack.thread.start()
                time.sleep(args.ramp)
            got = probe(port, paths, args.seconds)
            summary = None
            if attack:
                attack.stop.set()
                attack.thread.join()
                summary = attack.summary()
            print("== %s" % name)
            for p in paths:
                r = got[p]
                print("  GET %-28s n=%-4d failed=%-3d p50=%7.1f ms  p99=%8.1f ms  max=%8.1f ms"
                      % (p, r["n"], r["failed"], r["p50_ms"], r["p99_ms"], r["max_ms"]))
            if summary:
                print("  attackers: %s" % json.dumps(summary))
            time.sleep(2)
    finally:
        if server:
            server.terminate()
            server.wait()
        shutil.rmtree(work, ignore_errors=True)


def attack_only(args):
    raise_fd_limit(args.slow + 500)
    attack = Attack(args.port, args.slow, args.addresses, trickle=args.trickle, reconnect=args.reconnect,
                    first_source=args.first_source)
    attack.thread.start()
    time.sleep(args.seconds)
    attack.stop.set()
    attack.thread.join()
    print(json.dumps(attack.summary()))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("bench")
    b.add_argument("--wharf", required=True)
    b.add_argument("--slow", type=int, default=5000)
    b.add_argument("--seconds", type=float, default=20, help="of measuring, per round")
    b.add_argument("--ramp", type=float, default=5, help="seconds the attackers get first")
    b.add_argument("--serve-arg", action="append", default=[], help="extra `wharf serve` argument")
    b.set_defaults(run=bench)
    a = sub.add_parser("attack")
    a.add_argument("--port", type=int, required=True)
    a.add_argument("--slow", type=int, default=2000)
    a.add_argument("--addresses", type=int, default=1)
    a.add_argument("--seconds", type=float, default=15)
    a.add_argument("--trickle", type=float, default=1.0)
    a.add_argument("--reconnect", action="store_true")
    a.add_argument("--first-source", type=int, default=2, help="attackers from 127.0.0.N on")
    a.set_defaults(run=attack_only)
    args = ap.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
