#!/usr/bin/env python3
"""Driver of bench/procserv.sh (see there): the per-service overhead of `wharf-procserv`
and of procServ 2.7 on the same children, measured on the server process only.
Usage: procserv_bench.py WHARF_PROCSERV PROCSERV DURATION RATE SCRATCH"""
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time

WHARF, PROCSERV = sys.argv[1], sys.argv[2]
DURATION, RATE = float(sys.argv[3]), float(sys.argv[4])
SCRATCH = sys.argv[5]
WARMUP = 1.0
HERE = os.path.dirname(os.path.abspath(__file__))
PY = "/usr/bin/python3"  # the children's interpreter: Debian's, the same for both servers
TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def cpu_seconds(pid):
    """utime + stime of the process (all its threads, not its children)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def memory(pid):
    """VmRSS, VmHWM and the parts of VmRSS (RssAnon, RssFile, RssShmem), in bytes; and the
    context switches (wake-ups), which /proc/PID/status gives for the main thread."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem"):
                out[key] = int(value.split()[0]) * 1024
            elif key in ("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches"):
                out[key] = int(value)
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("Private_Clean", "Private_Dirty"):
                out[key] = int(value.split()[0]) * 1024
    return out


def read_count(path):
    try:
        with open(path) as f:
            text = f.read().strip()
        return int(text) if text else 0
    except FileNotFoundError:
        return 0


def children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except FileNotFoundError:
        return []


def wait_for(what, check, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.02)
    sys.exit(f"procserv bench: timed out waiting for {what}")


def server_command(server, d, child, log):
    """The command line, console socket and log file of `server` in folder `d`."""
    if server == "wharf":
        sock = os.path.join(d, "run/wharf/console/bench.sock")
        logfile = os.path.join(d, "var/log/wharf/bench.log")  # the default; rotated at 10 MB
        cmd = [WHARF, "--root", d, "--name", "bench", "--holdoff", "1",
               *([] if log else ["--log-file", "none"]), "--", *child]
    else:
        sock = os.path.join(d, "console.sock")
        logfile = os.path.join(d, "procserv.log")  # not rotated by procServ
        cmd = [PROCSERV, "-f", "-q", *(["-L", logfile] if log else []), "--holdoff", "1", "-n", "bench",
               f"unix:{sock}", *child]
    return cmd, sock, logfile


def stop(proc):
    """SIGTERM, then SIGKILL after 5 s; returns the seconds it took to end, or None."""
    proc.send_signal(signal.SIGTERM)
    start = time.monotonic()
    try:
        proc.wait(5)
        return time.monotonic() - start
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return None


def start_time(server):
    """Seconds from the exec of a new server (idle child) until its console socket accepts a
    connection: connect() tried every 0.2 ms."""
    d = os.path.join(SCRATCH, f"{server}-start")
    os.makedirs(d)
    cmd, sock, _ = server_command(server, d, ["/bin/sleep", "100000"], True)
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    while True:
        s = socket.socket(socket.AF_UNIX)
        try:
            s.connect(sock)
            seconds = time.monotonic() - t0
            break
        except OSError:
            if time.monotonic() - t0 > 10:
                sys.exit(f"procserv bench: {server}'s console socket did not accept a connection in 10 s")
            time.sleep(0.0002)
        finally:
            s.close()
    kid = wait_for(f"{server}'s child", lambda: children(proc.pid))[0]
    stop(proc)
    try:
        os.kill(kid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    subprocess.run(["rm", "-rf", d])
    return seconds


def run(server, scenario, client, log=True):
    d = os.path.join(SCRATCH, f"{server}-{scenario}-{'client' if client else 'noclient'}-{'log' if log else 'nolog'}")
    os.makedirs(d)
    count_file = os.path.join(d, "writer.count")
    if scenario == "idle":  # else "busy": the paced writer
        child = ["/bin/sleep", "100000"]
    else:
        child = [PY, os.path.join(HERE, "procserv_writer.py"), str(int(RATE)), count_file]
    cmd, sock, logfile = server_command(server, d, child, log)
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=open(os.path.join(d, "server.err"), "wb"), start_new_session=True)
    wait_for(f"{server}'s console socket", lambda: os.path.exists(sock))
    kid = wait_for(f"{server}'s child", lambda: children(proc.pid))[0]
    client_proc = None
    client_count = os.path.join(d, "client.count")
    if client:
        client_proc = subprocess.Popen([PY, os.path.join(HERE, "procserv_client.py"), sock, client_count])
    time.sleep(WARMUP)
    if proc.poll() is not None:
        sys.exit(f"procserv bench: {server} ended: {open(os.path.join(d, 'server.err')).read()}")
    t0, c0 = time.monotonic(), cpu_seconds(proc.pid)
    w0, r0 = read_count(count_file), read_count(client_count)
    kid_c0 = cpu_seconds(kid)
    m0 = memory(proc.pid)
    time.sleep(DURATION)
    t1, c1 = time.monotonic(), cpu_seconds(proc.pid)
    w1, r1 = read_count(count_file), read_count(client_count)
    kid_c1 = cpu_seconds(kid)
    mem = memory(proc.pid)
    alive = children(proc.pid)
    row = {
        "server": server, "scenario": scenario, "client": bool(client), "log": log,
        "seconds": t1 - t0,
        "cpu_percent": 100 * (c1 - c0) / (t1 - t0),
        "rss_mb": mem["VmRSS"] / 1e6, "hwm_mb": mem["VmHWM"] / 1e6,
        "anon_mb": mem["RssAnon"] / 1e6, "file_mb": mem["RssFile"] / 1e6,
        "private_mb": (mem["Private_Clean"] + mem["Private_Dirty"]) / 1e6,
        "private_dirty_mb": mem["Private_Dirty"] / 1e6,
        "written_mb_s": (w1 - w0) / (t1 - t0) / 1e6,
        "client_mb": (r1 - r0) / 1e6 if client else None,
        "client_mb_s": (r1 - r0) / (t1 - t0) / 1e6 if client else None,
        "wakeups_s": (mem["voluntary_ctxt_switches"] + mem["nonvoluntary_ctxt_switches"]
                      - m0["voluntary_ctxt_switches"] - m0["nonvoluntary_ctxt_switches"]) / (t1 - t0),
        "cpu_s": c1 - c0,
        "child_cpu_percent": 100 * (kid_c1 - kid_c0) / (t1 - t0),
        "same_child": alive == [kid],
        "log_bytes": sum(os.path.getsize(os.path.join(dirpath, f))
                         for dirpath, _, files in os.walk(os.path.dirname(logfile))
                         for f in files if f.startswith(os.path.basename(logfile))),
    }
    if client_proc:
        client_proc.terminate()
        client_proc.wait()
    row["stop_s"] = stop(proc)
    if row["stop_s"] is None:
        row["note"] = "did not stop on SIGTERM in 5 s (SIGKILL)"
    stopped = time.monotonic()
    while time.monotonic() < stopped + 2:  # the child must not outlive its server
        try:
            os.kill(kid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.02)
    else:
        os.kill(kid, signal.SIGKILL)
        row.setdefault("note", f"child {kid} outlived the server by 2 s")
    subprocess.run(["rm", "-rf", d])
    return row


def report(rows, starts):
    rate = f"{RATE / 1e6:g}MB/s"
    print(f"| server | child | console client | log file | RSS MB | peak RSS MB | anon RSS MB | private MB "
          f"| private dirty MB | CPU % of one core "
          f"| wake-ups/s | child wrote MB/s | client received MB | server CPU ms per MB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        per_mb = (f"{10 * r['cpu_percent'] / r['written_mb_s']:.1f}" if r["written_mb_s"] > 0.01 else "-")
        got = "-" if r["client_mb"] is None else f"{r['client_mb']:.1f}"
        print(f"| {r['server']} | {'idle (sleep)' if r['scenario'] == 'idle' else 'writer ' + rate} "
              f"| {'one' if r['client'] else 'none'} | {'yes' if r['log'] else 'none'} | {r['rss_mb']:.1f} | {r['hwm_mb']:.1f} | {r['anon_mb']:.2f} "
              f"| {r['private_mb']:.2f} | {r['private_dirty_mb']:.2f} "
              f"| {r['cpu_percent']:.2f} | {r['wakeups_s']:.1f} | {r['written_mb_s']:.2f} | {got} | {per_mb} |")
    print()
    print("| child | console client | log file | RSS wharf/procServ | anon RSS wharf/procServ "
          "| private wharf/procServ | CPU wharf/procServ | CPU per MB wharf/procServ |")
    print("|---|---|---|---|---|---|---|---|")
    for scenario, client, log in RUNS:
        w, p = (next(r for r in rows if r["server"] == s and r["scenario"] == scenario
                     and r["client"] == client and r["log"] == log) for s in ("wharf", "procServ"))
        cpu = f"{w['cpu_percent'] / p['cpu_percent']:.2f}" if p["cpu_percent"] > 0 else "- (both 0.00)"
        if scenario == "busy" and w["written_mb_s"] > 0 and p["written_mb_s"] > 0:
            per_mb = f"{(w['cpu_percent'] / w['written_mb_s']) / (p['cpu_percent'] / p['written_mb_s']):.2f}"
        else:
            per_mb = "-"
        print(f"| {'idle (sleep)' if scenario == 'idle' else 'writer ' + rate} | {'one' if client else 'none'} "
              f"| {'yes' if log else 'none'} "
              f"| {w['rss_mb'] / p['rss_mb']:.2f} | {w['anon_mb'] / p['anon_mb']:.2f} "
              f"| {w['private_mb'] / p['private_mb']:.2f} | {cpu} | {per_mb} |")
    print()
    print(f"| server | exec to console accepting, ms: median of {len(starts['wharf'])} | min | max |")
    print("|---|---|---|---|")
    for server in ("wharf", "procServ"):
        ms = [1000 * s for s in starts[server]]
        print(f"| {server} | {statistics.median(ms):.1f} | {min(ms):.1f} | {max(ms):.1f} |")
    notes = [f"{r['server']} {r['scenario']} client={r['client']} log={r['log']}: {r['note']}" for r in rows if "note" in r]
    notes += [f"{r['server']} {r['scenario']} client={r['client']}: the child was restarted during the run"
              for r in rows if not r["same_child"]]
    for n in notes:
        print(f"note: {n}")


# (child, console client, log file); the last one shows what the log file costs each server
RUNS = [("idle", False, True), ("idle", True, True), ("busy", False, True), ("busy", True, True),
        ("busy", True, False)]
STARTS = 7  # start-time runs per server


def main():
    starts = {"wharf": [], "procServ": []}
    for _ in range(STARTS):
        for server in ("wharf", "procServ"):
            starts[server].append(start_time(server))
    print(json.dumps({"start_seconds": starts}), file=sys.stderr, flush=True)
    rows = []
    for scenario, client, log in RUNS:
        for server in ("wharf", "procServ"):
            row = run(server, scenario, client, log)
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    with open(os.path.join(SCRATCH, "rows.json"), "w") as f:
        json.dump({"rows": rows, "start_seconds": starts}, f)
    report(rows, starts)


if __name__ == "__main__":
    main()
