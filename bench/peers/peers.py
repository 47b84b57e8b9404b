#!/usr/bin/env python3
"""bench/peers runner (called by run.sh): wharf against curl|tar, rsync, OSTree and casync,
full deploy of v1 and update v1->v2, all servers on loopback, in one run. Each method's
full deploy and update are measured RUNS times, each time from an empty client; the table
gives the median wall and CPU time (and the range of the wall time), bytes from the last.

Env: T (scratch folder with tree/ and tree2/), WHARF, WHARF_AGENT, RTT_MS (0.5), RUNS (3).
"""
import hashlib, json, os, re, resource, shutil, signal, socket, stat, subprocess, sys, time

T = os.environ["T"]
WHARF, AGENT = os.environ["WHARF"], os.environ["WHARF_AGENT"]
RTT = float(os.environ.get("RTT_MS", "0.5")) / 1000
LINKS = [(100e6, "100M"), (1e9, "1G")]
TREE1, TREE2 = f"{T}/tree", f"{T}/tree2"
WWW = f"{T}/www"
HZ = os.sysconf("SC_CLK_TCK")
RUNS = int(os.environ.get("RUNS", "3"))
rows = []
info = []
cleanup_pids = []


def sh(*cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def proc_cpu(pid, children=False):
    """utime+stime (+ reaped children's) of pid, seconds."""
    try:
        f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    t = int(f[11]) + int(f[12])
    if children:
        t += int(f[13]) + int(f[14])
    return t / HZ


def manifest(root):
    """type, mode less write bits, sha256 or link target, for every entry below root."""
    rows_ = []
    for base, dirs, files in os.walk(root):
        for name in dirs + files:
            p = os.path.join(base, name)
            rel = os.path.relpath(p, root)
            st = os.lstat(p)
            mode = oct(stat.S_IMODE(st.st_mode) & 0o555)
            if stat.S_ISLNK(st.st_mode):
                rows_.append(f"l {rel} -> {os.readlink(p)}")
            elif stat.S_ISDIR(st.st_mode):
                rows_.append(f"d {mode} {rel}")
            else:
                h = hashlib.sha256()
                with open(p, "rb") as fh:
                    for blk in iter(lambda: fh.read(1 << 20), b""):
                        h.update(blk)
                rows_.append(f"f {mode} {rel} {h.hexdigest()}")
    return sorted(rows_)


_man = {}


def verify(src, dest):
    if src not in _man:
        _man[src] = manifest(src)
    got = manifest(dest)
    if got == _man[src]:
        return "yes"
    a, b = set(_man[src]), set(got)
    print(f"   verify {dest}: {len(a - b)} entries missing/different, {len(b - a)} extra; "
          f"e.g. {sorted(a - b)[:2]} {sorted(b - a)[:2]}", flush=True)
    return "NO"


# --- nginx, one instance for every HTTP method, its own log format ---------------------
class Nginx:
    def __init__(self):
        self.port = free_port()
        d = f"{T}/nginx"
        os.makedirs(d, exist_ok=True)
        self.log = f"{d}/access.log"
        conf = f"{d}/nginx.conf"
        user = "user root;\n" if os.getuid() == 0 else ""
        open(conf, "w").write(f"""{user}worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log;
events {{ worker_connections 1024; }}
http {{
  log_format bench '$request_length $bytes_sent $status $request_method $request_uri';
  access_log {self.log} bench;
  client_body_temp_path {d}/body; proxy_temp_path {d}/proxy; fastcgi_temp_path {d}/fastcgi;
  uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
  sendfile on;
  keepalive_requests 100000;
  types {{ }}
  default_type application/octet-stream;
  server {{
    listen 127.0.0.1:{self.port};
    root {WWW};
    location ~ /\\.wharf {{ deny all; }}
  }}
}}
""")
        open(self.log, "w").close()
        sh("/usr/sbin/nginx", "-p", d, "-c", conf, "-e", f"{d}/error.log")
        for _ in range(50):
            if os.path.exists(f"{d}/nginx.pid"):
                break
            time.sleep(0.1)
        self.master = int(open(f"{d}/nginx.pid").read())
        cleanup_pids.append(self.master)
        time.sleep(0.2)
        self.url = f"http://127.0.0.1:{self.port}"

    def workers(self):
        out = subprocess.run(["pgrep", "-P", str(self.master)], capture_output=True, text=True).stdout
        return [int(x) for x in out.split()]

    def mark(self):
        return os.path.getsize(self.log), sum(proc_cpu(p) for p in [self.master] + self.workers())

    def since(self, m):
        time.sleep(0.1)
        off, cpu0 = m
        with open(self.log) as f:
            f.seek(off)
            lines = f.read().splitlines()
        up = down = bad = 0
        for ln in lines:
            req_len, sent, status = ln.split()[:3]
            up += int(req_len)
            down += int(sent)
            if status not in ("200", "206", "304"):
                bad += 1
        cpu = sum(proc_cpu(p) for p in [self.master] + self.workers()) - cpu0
        return dict(down=down, up=up, reqs=len(lines), non2xx=bad, server_cpu=cpu)


def run_client(cmds, env=None):
    """runs commands one after another; wall seconds and client CPU (user+sys of all the
    waited-for processes), and their stdout. Each method starts on a quiet disk: what
    earlier steps wrote is flushed first, so that a client that syncs (wharf) does not pay
    for the writeback of the packing and publishing before it."""
    os.sync()
    time.sleep(1)
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.monotonic()
    outs = []
    for c in cmds:
        p = subprocess.run(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                           shell=isinstance(c, str), executable="/bin/bash" if isinstance(c, str) else None)
        if p.returncode != 0:
            print(f"   command failed ({p.returncode}): {c}\n{p.stderr[-2000:]}", flush=True)
            raise subprocess.CalledProcessError(p.returncode, c)
        outs.append(p.stdout + p.stderr)
    wall = time.monotonic() - t
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    return wall, cpu, outs


def add(method, phase, wall, cpu, net, verified, note=""):
    row = dict(method=method, phase=phase, wall=wall, client_cpu=cpu, verified=verified, note=note, **net)
    for rate, name in LINKS:
        # the sum: what the client did on loopback, plus the bytes (both ways) at link rate,
        # plus one round trip per request
        row[name] = wall + (row["down"] + row["up"]) * 8 / rate + row["reqs"] * RTT
    rows.append(row)
    print(f"   {method} {phase}: {row['down']/1e6:.2f} MB down, {row['up']/1e3:.1f} kB up, "
          f"{row['reqs']} req, {wall:.2f} s wall, {cpu:.2f} s client CPU, "
          f"{row['server_cpu']:.2f} s server CPU, verified {verified} {note}", flush=True)


def timed(label, *cmd, **kw):
    t = time.monotonic()
    with open(f"{T}/prep.log", "a") as log:
        sh(*cmd, stdout=log, stderr=log, **kw)
    dt = time.monotonic() - t
    info.append(f"{label}: {dt:.1f} s")
    print(f"   prep {label}: {dt:.1f} s", flush=True)


def main():
    os.makedirs(WWW, exist_ok=True)
    os.chdir(T)
    only = os.environ.get("METHODS", "wharf,curl,rsync,ostree,casync").split(",")
    ng = Nginx()
    U = ng.url
    measures = []  # each method's full deploy and update, from an empty client
    print(f"nginx on {U}", flush=True)

    # ---------------- wharf ----------------
    if "wharf" in only or "curl" in only:
        store = f"{WWW}/wharf"
        sh(WHARF, "keygen", "--out", "k", stdout=subprocess.DEVNULL)
        # wharf pack's defaults (zstd 19, 8 MiB frames); WHARF_PACK="--level 12 --frame-size
        # 1048576" measures the fast packing of earlier sessions (docs/formats.md).
        pack_args = os.environ.get("WHARF_PACK", "").split()
        timed("wharf pack v1 " + " ".join(pack_args), WHARF, "pack", TREE1, "--name", "bench", "--version", "1",
              "--prefix", "/opt/bench", "-o", "out", *pack_args)
        timed("wharf pack v2", WHARF, "pack", TREE2, "--name", "bench", "--version", "2",
              "--prefix", "/opt/bench", "-o", "out", *pack_args)
        if os.environ.get("REFERENCE", "1") == "1":
            t = time.monotonic()
            ref = subprocess.run(f"tar -C {TREE1} --sort=name -cf - . | zstd -19 -T0 -q -c | wc -c", shell=True,
                                 check=True, stdout=subprocess.PIPE, text=True).stdout
            a1 = os.path.getsize("out/bench-1.tar.zst")
            info.append(f"reference: tar | zstd -19 of v1 {int(ref)/1e6:.2f} MB ({time.monotonic() - t:.0f} s); "
                        f"wharf's v1 archive {a1/1e6:.2f} MB: {100 * (a1 / int(ref) - 1):+.1f}%")
            print("   " + info[-1], flush=True)
        timed("wharf publish v1", WHARF, "publish", "out/bench-1.tar.zst", "--store", store)
        timed("wharf publish v2 (+deltas)", WHARF, "publish", "out/bench-2.tar.zst", "--store", store)
        a1, a2 = os.path.getsize("out/bench-1.tar.zst"), os.path.getsize("out/bench-2.tar.zst")
        dd = f"{store}/software/bench/2/deltas"
        dsz = sum(os.path.getsize(os.path.join(b, f)) for b, _, fs in os.walk(dd) for f in fs) if os.path.isdir(dd) else 0
        info.append(f"wharf archives: v1 {a1/1e6:.1f} MB, v2 {a2/1e6:.1f} MB; v2 deltas {dsz/1e3:.1f} kB")
        print("   " + info[-1], flush=True)
    if "wharf" in only:
        def wharf_run(run):
            if os.path.exists("fec"):
                sh("chmod", "-R", "u+w", "fec")
                shutil.rmtree("fec")
            sh(WHARF, "assign", "fec", "bench@1", "--store", store, "--key", "k.key", stdout=subprocess.DEVNULL)
            sync = [AGENT, "sync", "--root", "fec", "--store", f"{U}/wharf", "--fec", "fec", "--trust", "k.pub", "--json"]
            m = ng.mark()
            wall, cpu, outs = run_client([sync])
            net = ng.since(m)
            j = json.loads(outs[0][outs[0].index("{"):outs[0].rindex("}") + 1])
            add("wharf", "full", wall, cpu, net, verify(TREE1, "fec/opt/bench"), f"(agent bytes_fetched {j.get('bytes_fetched')})")
            sh(WHARF, "assign", "fec", "bench@2", "--store", store, "--key", "k.key", stdout=subprocess.DEVNULL)
            m = ng.mark()
            wall, cpu, outs = run_client([sync])
            net = ng.since(m)
            j = json.loads(outs[0][outs[0].index("{"):outs[0].rindex("}") + 1])
            add("wharf", "update", wall, cpu, net, verify(TREE2, "fec/opt/bench"), f"(agent bytes_fetched {j.get('bytes_fetched')})")
            open(f"{T}/wharf-update.json", "w").write(outs[0])
        measures.append(wharf_run)

    # ---------------- curl | tar ----------------
    if "curl" in only:
        def curl_run(run):
            for phase, v, src in (("full", 1, TREE1), ("update", 2, TREE2)):
                d = f"{T}/plain{v}"
                shutil.rmtree(d, ignore_errors=True)
                os.makedirs(d)
                m = ng.mark()
                wall, cpu, _ = run_client([f"set -o pipefail; curl -sf {U}/wharf/software/bench/{v}/bench-{v}.tar.zst | tar --zstd -x -C {d}"])
                add("curl | tar --zstd", phase, wall, cpu, ng.since(m), verify(src, f"{d}/opt/bench"),
                    "(whole v2 archive)" if v == 2 else "")
        measures.append(curl_run)

    # ---------------- rsync ----------------
    if "rsync" in only:
        port = free_port()
        conf = f"{T}/rsyncd.conf"
        open(conf, "w").write(f"""port = {port}
address = 127.0.0.1
use chroot = no
read only = yes
uid = root
gid = root
log file = {T}/rsyncd.log
[v1]
path = {TREE1}
[v2]
path = {TREE2}
""")
        daemon = subprocess.Popen(["rsync", "--daemon", "--no-detach", f"--config={conf}"])
        cleanup_pids.append(daemon.pid)
        for _ in range(50):
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        def rsync_run(run):
            shutil.rmtree(f"{T}/rs", ignore_errors=True)
            os.makedirs(f"{T}/rs")
            for phase, mod, src in (("full", "v1", TREE1), ("update", "v2", TREE2)):
                c0 = proc_cpu(daemon.pid, children=True)
                wall, cpu, outs = run_client([["rsync", "-az", "--delete", "--stats",
                                               f"rsync://127.0.0.1:{port}/{mod}/", f"{T}/rs/"]])
                time.sleep(0.3)  # the daemon reaps its per-connection child
                scpu = proc_cpu(daemon.pid, children=True) - c0
                st = outs[0]
                recv = int(re.search(r"Total bytes received: ([\d,.]+)", st).group(1).replace(",", "").replace(".", ""))
                sent = int(re.search(r"Total bytes sent: ([\d,.]+)", st).group(1).replace(",", "").replace(".", ""))
                add("rsync -az", phase, wall, cpu, dict(down=recv, up=sent, reqs=1, non2xx=0, server_cpu=scpu),
                    verify(src, f"{T}/rs"))
        measures.append(rsync_run)

    # ---------------- OSTree ----------------
    if "ostree" in only:
        R = f"{WWW}/ostree"
        sh("ostree", f"--repo={R}", "init", "--mode=archive")
        timed("ostree commit v1", "ostree", f"--repo={R}", "commit", "-b", "bench", "-s", "v1", f"--tree=dir={TREE1}")
        rev1 = subprocess.run(["ostree", f"--repo={R}", "rev-parse", "bench"], capture_output=True, text=True, check=True).stdout.strip()
        timed("ostree commit v2", "ostree", f"--repo={R}", "commit", "-b", "bench", "-s", "v2", f"--tree=dir={TREE2}")
        rev2 = subprocess.run(["ostree", f"--repo={R}", "rev-parse", "bench"], capture_output=True, text=True, check=True).stdout.strip()
        timed("ostree static-delta v1->v2", "ostree", f"--repo={R}", "static-delta", "generate", f"--from={rev1}", f"--to={rev2}")
        if os.environ.get("OSTREE_EMPTY_DELTA", "1") == "1":
            timed("ostree static-delta empty->v1", "ostree", f"--repo={R}", "static-delta", "generate", "--empty", f"--to={rev1}")
        sh("ostree", f"--repo={R}", "summary", "-u", stdout=subprocess.DEVNULL)
        objs = sum(os.path.getsize(os.path.join(b, f)) for b, _, fs in os.walk(f"{R}/objects") for f in fs)
        dl = sum(os.path.getsize(os.path.join(b, f)) for b, _, fs in os.walk(f"{R}/deltas") for f in fs) if os.path.isdir(f"{R}/deltas") else 0
        info.append(f"ostree repo: objects {objs/1e6:.1f} MB, deltas {dl/1e6:.1f} MB")
        print("   " + info[-1], flush=True)
        def ostree_run(run):
            for variant, extra in (("ostree (objects)", ["--disable-static-deltas"]), ("ostree (static delta)", [])):
                C = f"{T}/oc-{len(extra)}-{run}"
                os.makedirs(C)
                sh("ostree", f"--repo={C}/repo", "init", "--mode=bare-user")
                sh("ostree", f"--repo={C}/repo", "remote", "add", "--no-gpg-verify", "origin", f"{U}/ostree")
                for phase, rev, src in (("full", rev1, TREE1), ("update", rev2, TREE2)):
                    co = f"{C}/co-{phase}"
                    m = ng.mark()
                    wall, cpu, _ = run_client([
                        ["ostree", f"--repo={C}/repo", "pull", *extra, "origin", rev],
                        ["ostree", f"--repo={C}/repo", "checkout", "-U", rev, co]])
                    add(variant, phase, wall, cpu, ng.since(m), verify(src, co))
                sh("chmod", "-R", "u+w", C)
                shutil.rmtree(C)
        measures.append(ostree_run)

    # ---------------- casync ----------------
    if "casync" in only:
        S = f"{WWW}/casync"
        os.makedirs(S)
        timed("casync make v1", "casync", "make", "--compression=zstd", f"--store={S}/default.castr", f"{S}/v1.caidx", TREE1)
        timed("casync make v2", "casync", "make", "--compression=zstd", f"--store={S}/default.castr", f"{S}/v2.caidx", TREE2)
        st = sum(os.path.getsize(os.path.join(b, f)) for b, _, fs in os.walk(f"{S}/default.castr") for f in fs)
        nch = sum(len(fs) for _, _, fs in os.walk(f"{S}/default.castr"))
        info.append(f"casync store: {nch} chunks, {st/1e6:.1f} MB (zstd)")
        print("   " + info[-1], flush=True)
        def casync_run(run):
            for phase, v, src, seed in (("full", 1, TREE1, []), ("update", 2, TREE2, [f"--seed={T}/cas1"])):
                shutil.rmtree(f"{T}/cas{v}", ignore_errors=True)
                m = ng.mark()
                wall, cpu, _ = run_client([["casync", "extract", f"--store={U}/casync/default.castr", *seed,
                                            f"{U}/casync/v{v}.caidx", f"{T}/cas{v}"]])
                add("casync", phase, wall, cpu, ng.since(m), verify(src, f"{T}/cas{v}"),
                    "(seed: the v1 tree)" if seed else "")
        measures.append(casync_run)

    # Round-robin: run k of every method before run k+1 of any, so that the machine's drift
    # (a shared virtual disk) falls on all of them alike.
    for run in range(RUNS):
        print(f"   run {run + 1} of {RUNS}", flush=True)
        for measure in measures:
            measure(run)

    table()


def table():
    hdr = ("method", "phase", "MB down", "kB up", "requests", "wall s", "client CPU s",
           "server CPU s", "verified", "100 Mbit/s s", "1 Gbit/s s")
    runs = rows
    rows_by = {}
    for r in runs:
        rows_by.setdefault((r["method"], r["phase"]), []).append(r)
    med = lambda xs: sorted(xs)[len(xs) // 2]
    summary = []
    for (method, phase), rs in rows_by.items():
        last = dict(rs[-1])
        for k in ("wall", "client_cpu", "server_cpu", "100M", "1G"):
            last[k] = med([r[k] for r in rs])
        last["wall_range"] = f"{min(r['wall'] for r in rs):.2f}-{max(r['wall'] for r in rs):.2f}"
        last["verified"] = "yes" if all(r["verified"] == "yes" for r in rs) else "NO"
        last["runs"] = len(rs)
        summary.append(last)
    hdr = hdr[:5] + ("wall s (median)", "wall s (range)") + hdr[6:]
    out = []
    for r in summary:
        out.append((r["method"].replace("|", "\\|"), r["phase"], f"{r['down']/1e6:.3f}", f"{r['up']/1e3:.1f}", str(r["reqs"]),
                    f"{r['wall']:.2f}", r["wall_range"], f"{r['client_cpu']:.2f}", f"{r['server_cpu']:.2f}", r["verified"],
                    f"{r['100M']:.2f}", f"{r['1G']:.2f}"))
    print()
    print("| " + " | ".join(hdr) + " |")
    print("|" + "|".join("---" for _ in hdr) + "|")
    for o in out:
        print("| " + " | ".join(o) + " |")
    print()
    print(f"modelled s = wall on loopback + (down+up bytes)*8/link rate + requests*{RTT*1000:g} ms "
          "(sum, every request counted as a serial round trip; rsync = 1 session)")
    print(f"{RUNS} runs of each; medians (modelled times from each run's wall time, then the median)")
    for ph in ("full", "update"):
        rk = sorted((r for r in summary if r["phase"] == ph), key=lambda r: r["100M"])
        print(f"rank at 100 Mbit/s, {ph}: " + ", ".join(f"{r['method']} {r['100M']:.2f}" for r in rk))
    for i in info:
        print("prep " + i)
    json.dump(dict(runs=runs, summary=summary), open(f"{T}/results.json", "w"), indent=1)


if __name__ == "__main__":
    try:
        main()
    finally:
        for p in cleanup_pids:
            try:
                os.kill(p, signal.SIGTERM)
            except OSError:
                pass
        for p in cleanup_pids:  # gone before run.sh removes the folder (rsyncd logs on exit)
            for _ in range(50):
                try:
                    if os.waitpid(p, os.WNOHANG)[0] == p:
                        break
                except ChildProcessError:
                    if not os.path.exists(f"/proc/{p}"):
                        break
                time.sleep(0.1)
