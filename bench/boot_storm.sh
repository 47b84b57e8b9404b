#!/usr/bin/env bash
# Boot storm: AGENTS wharf-agents sync a SIZE_MB generation at once, from `wharf serve` and
# from nginx serving the same store folder, in the same run (rounds in ABBA order).
# Usage: [AGENTS=200] [SIZE_MB=100] [THREADS=4] [SCRATCH=/tmp] [ORDER="wharf nginx"]
#        [ROUNDS=2] [WARMUP=1] [CURL=1] [TIMEOUT=1500] bench/boot_storm.sh
#   ROUNDS: storms per server and client kind; even rounds run the servers in reverse order.
#   WARMUP=1 first runs one agent storm from nginx that is not counted: the first storm of a
#   run was slower whichever server served it (2026-11-25: 114-130 s against 85-88 s).
#   THREADS: `wharf serve --threads`; nginx runs worker_processes auto (one per core).
#   CURL=1 also times AGENTS parallel `curl -o /dev/null` of the archive from each server:
#   the server alone, without the agents' hashing, unpacking and disk writes.
#   TIMEOUT: seconds after which a server's remaining agents are killed (counted as failed).
# Binaries: $WHARF and $WHARF_AGENT, default ./build/src/cmd/{wharf,wharf-agent}.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
WHARF=${WHARF:-$top/build/src/cmd/wharf}
WHARF_AGENT=${WHARF_AGENT:-$top/build/src/cmd/wharf-agent}
AGENTS=${AGENTS:-200}
SIZE_MB=${SIZE_MB:-100}
THREADS=${THREADS:-4}
SCRATCH=${SCRATCH:-/tmp}
ORDER=${ORDER:-wharf nginx}
CURL=${CURL:-1}
TIMEOUT=${TIMEOUT:-1500}
ROUNDS=${ROUNDS:-2}
WARMUP=${WARMUP:-1}
[ -x "$WHARF" ] && [ -x "$WHARF_AGENT" ] || { echo "no binaries at $WHARF, $WHARF_AGENT (build first)" >&2; exit 2; }
[ -x /usr/sbin/nginx ] || { echo "needs /usr/sbin/nginx" >&2; exit 2; }

# Disk: every agent holds the archive and its unpacked tree until it finishes, and in the worst
# case all of them do at once: 2 x SIZE_MB per agent, plus the tree, archive and store.
need_mb=$((AGENTS * SIZE_MB * 2 + SIZE_MB * 4 + 500))
mkdir -p "$SCRATCH"
free_mb=$(df -Pm "$SCRATCH" | awk 'NR == 2 {print $4}')
echo "machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), $(free -g | awk '/^Mem:/ {print $2}') GB RAM, kernel $(uname -r), load average $(cut -d" " -f1-3 /proc/loadavg)"
echo "disk: $SCRATCH has $free_mb MB free; this run needs up to $need_mb MB"
[ "$free_mb" -gt "$need_mb" ] || { echo "not enough disk under $SCRATCH: set SCRATCH, AGENTS or SIZE_MB" >&2; exit 2; }
echo "wharf: $("$WHARF" --version 2>/dev/null || echo "$WHARF"); nginx: $(/usr/sbin/nginx -v 2>&1 | sed 's/^nginx version: //')"

T=$(mktemp -d "$SCRATCH/wharf-boot-storm.XXXXXX")
chmod 755 "$T"
SERVER_PID=""
NGINX_PID_FILE=$T/nginx/nginx.pid
cleanup() {
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  if [ -f "$NGINX_PID_FILE" ]; then kill "$(cat "$NGINX_PID_FILE")" 2>/dev/null || true; fi
  chmod -R u+w "$T" 2>/dev/null || true
  rm -rf "$T"
}
trap cleanup EXIT
cd "$T"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
secs() { python3 -c 'import time; print(f"{time.monotonic():.3f}")'; }

# The package: incompressible data in four files, so that the archive is as big as the tree.
mkdir -p tree/data tree/etc
quarter=$((SIZE_MB * 1000000 / 4))
for i in 0 1 2 3; do head -c "$quarter" /dev/urandom >"tree/data/blob$i.bin"; done
echo "fec = boot storm" >tree/etc/app.conf
"$WHARF" keygen --out store.state/signing >/dev/null
"$WHARF" pack tree --name storm --version 1 --prefix /opt/storm --level 1 -o out >/dev/null
ARCHIVE=out/storm-1.tar.zst
ASIZE=$(stat -c %s "$ARCHIVE")
"$WHARF" publish "$ARCHIVE" --store store >/dev/null
rm -rf tree out
t0=$(secs)
for i in $(seq 1 "$AGENTS"); do
  "$WHARF" assign "$(printf 'fec%03d' "$i")" storm@1 --store store --key store.state/signing.key >/dev/null
done
t1=$(secs)
echo "package: storm@1, archive $ASIZE bytes ($(python3 -c "print(round($ASIZE/1e6,1))") MB); assigned to $AGENTS FECs in $(python3 -c "print(round($t1-$t0,1))") s"
ARCHIVE_PATH=/software/storm/1/storm-1.tar.zst
[ -f "store$ARCHIVE_PATH" ] || ARCHIVE_PATH=/$(cd store && find software -name storm-1.tar.zst | head -1)

start_wharf() {
  local port; port=$(free_port)
  "$WHARF" serve --store store --listen "127.0.0.1:$port" --threads "$THREADS" --per-ip-connections 0 2>>"$T/serve.log" &
  SERVER_PID=$!
  URL="http://127.0.0.1:$port"
  for _ in $(seq 100); do
    curl -s -o /dev/null "$URL/api/v1" && break
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$T/serve.log" >&2; echo "wharf serve did not start" >&2; exit 1; }
    sleep 0.05
  done
  SERVER_PIDS=$SERVER_PID
}
stop_wharf() { kill -TERM "$SERVER_PID"; wait "$SERVER_PID" || true; SERVER_PID=""; }
wharf_bytes() { curl -s "$URL/metrics" | awk '$1 == "wharf_http_response_bytes_total" {print $2}'; }

start_nginx() {
  local port; port=$(free_port)
  mkdir -p "$T/nginx"
  rm -f "$T/nginx/access.log"
  {
    [ "$(id -u)" -eq 0 ] && echo "user root;"
    cat <<CONF
worker_processes auto;
worker_rlimit_nofile 8192;
pid $NGINX_PID_FILE;
error_log $T/nginx/error.log;
events { worker_connections 2048; }
http {
  access_log $T/nginx/access.log;
  client_body_temp_path $T/nginx/body;
  proxy_temp_path $T/nginx/proxy;
  fastcgi_temp_path $T/nginx/fastcgi;
  uwsgi_temp_path $T/nginx/uwsgi;
  scgi_temp_path $T/nginx/scgi;
  sendfile on;
  tcp_nopush on;
  keepalive_timeout 65;
  server {
    listen 127.0.0.1:$port backlog=1024;
    root $T/store;
    location /.wharf { deny all; }
  }
}
CONF
  } >"$T/nginx/nginx.conf"
  /usr/sbin/nginx -p "$T/nginx" -c "$T/nginx/nginx.conf" -e "$T/nginx/error.log"
  URL="http://127.0.0.1:$port"
  for _ in $(seq 50); do curl -s -o /dev/null "$URL/" && break; sleep 0.1; done
  SERVER_PIDS="$(cat "$NGINX_PID_FILE") $(pgrep -P "$(cat "$NGINX_PID_FILE")" | tr '\n' ' ')"
}
stop_nginx() {
  kill "$(cat "$NGINX_PID_FILE")" 2>/dev/null || true
  for _ in $(seq 50); do [ -f "$NGINX_PID_FILE" ] || break; sleep 0.1; done
}
nginx_bytes() { awk '{n += $10} END {printf "%.0f\n", n}' "$T/nginx/access.log" 2>/dev/null || echo 0; }

# cpu_seconds PID...: user + system CPU seconds of the processes (all their threads).
cpu_seconds() {
  local total=0 p
  for p in "$@"; do
    total=$(awk -v t="$total" -v hz="$(getconf CLK_TCK)" '{print t + ($14 + $15) / hz}' "/proc/$p/stat" 2>/dev/null || echo "$total")
  done
  echo "$total"
}

# storm MODE: launches AGENTS processes at once (MODE agent: wharf-agent sync, each in its own
# root, removed as soon as it exits; MODE curl: curl -o /dev/null of the archive) and prints
# "failed wall_s ok_count p50_s max_s client_cpu_s".
storm() {
  python3 - "$1" "$AGENTS" "$URL" "$T" "$WHARF_AGENT" "$ARCHIVE_PATH" "$TIMEOUT" <<'PY'
import os, queue, shutil, signal, subprocess, sys, threading, time
mode, n, url, top, agent, archive_path, timeout = sys.argv[1:8]
n, timeout = int(n), float(timeout)
logs = os.path.join(top, "logs", os.path.basename(url.rsplit(":", 1)[1]) + "-" + mode)
os.makedirs(logs, exist_ok=True)
roots = os.path.join(top, "agents")
os.makedirs(roots, exist_ok=True)

def chmod_and_retry(func, path, _):
    os.chmod(os.path.dirname(path), 0o755)
    try: os.chmod(path, 0o755)
    except OSError: pass
    func(path)

removals = queue.Queue()
def remover():  # deletes finished agents' roots off the reaping path
    while (root := removals.get()) is not None:
        shutil.rmtree(root, onerror=chmod_and_retry)
thread = threading.Thread(target=remover, daemon=True); thread.start()

procs = {}
start = time.monotonic()
for i in range(1, n + 1):
    fec = f"fec{i:03d}"
    root = os.path.join(roots, fec)
    if mode == "agent":
        cmd = [agent, "sync", "--root", root, "--store", url, "--fec", fec,
               "--trust", os.path.join(top, "store.state/signing.pub")]
    else:
        cmd = ["curl", "-sS", "--fail", "-o", "/dev/null", url + archive_path]
    log = open(os.path.join(logs, fec + ".log"), "wb")
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    log.close()
    procs[p.pid] = (fec, root, p)  # keep p: a dropped Popen gets reaped by subprocess itself
launched = time.monotonic() - start
times, failed, cpu = [], [], 0.0
deadline = start + timeout
while procs:
    pid, status, usage = os.wait4(-1, os.WNOHANG)
    if pid == 0:
        if time.monotonic() > deadline:
            for p in procs: os.kill(p, signal.SIGKILL)
            deadline = float("inf")
        time.sleep(0.01)
        continue
    if pid not in procs: continue
    fec, root, p = procs.pop(pid)
    p.returncode = os.waitstatus_to_exitcode(status)
    elapsed = time.monotonic() - start
    cpu += usage.ru_utime + usage.ru_stime
    code = os.waitstatus_to_exitcode(status)
    if code == 0: times.append(elapsed)
    else: failed.append((fec, code))
    if mode == "agent": removals.put(root)
wall = time.monotonic() - start
removals.put(None); thread.join()
for fec, code in failed[:3]:
    print(f"FAILED {fec} exit {code}:", open(os.path.join(logs, fec + ".log"), errors="replace").read()[-600:].strip(),
          file=sys.stderr)
times.sort()
p50 = times[len(times) // 2] if times else 0
mx = times[-1] if times else 0
print(f"{len(failed)} {wall:.3f} {len(times)} {p50:.2f} {mx:.2f} {cpu:.1f} {launched:.2f}")
PY
}

declare -A R
# run_server SERVER MODE KEY: one storm; its numbers go in R[KEY].
run_server() {
  local server=$1 mode=$2 key=$3 b0 b1 c0 c1
  sync; sleep 2   # the previous storm's writes on disk before this one starts
  "start_$server"
  b0=$("${server}_bytes"); c0=$(cpu_seconds $SERVER_PIDS)
  read -r failed wall ok p50 mx ccpu launched < <(storm "$mode")
  c1=$(cpu_seconds $SERVER_PIDS); b1=$("${server}_bytes")
  "stop_$server"
  R[$key]="$server $mode $failed $wall $ok $p50 $mx $ccpu $((b1 - b0)) $((ok * ASIZE)) $(python3 -c "print(round($c1-$c0,1))") $launched"
}

report_line() {
  python3 - "$1" "$AGENTS" ${R[$1]} <<'PY'
import sys
label, n, server, mode, failed, wall, ok, p50, mx, ccpu, moved, ok_bytes, scpu, launched = sys.argv[1:]
wall = float(wall)
print(f"| {label} | {server} | {mode} | {ok}/{n} | {failed} | {wall:.1f} | {int(ok_bytes)/1e6:.0f} | {int(moved)/1e6:.0f} "
      f"| {int(ok_bytes)/1e6/wall:.1f} | {p50} / {mx} | {scpu} | {ccpu} |")
PY
}

# The first storm of a run is slower whatever the server (the file system's first writes to
# fresh blocks), so a discarded warm-up storm comes first, and with ROUNDS=2 the second round
# runs the servers in the reverse order (ABBA).
reversed=$(echo "$ORDER" | awk '{for (i = NF; i > 0; i--) printf "%s%s", $i, (i > 1 ? " " : "\n")}')
keys=()
if [ "$WARMUP" = 1 ]; then
  echo "running: warm-up, $AGENTS x agent from nginx (not counted) ..." >&2
  run_server nginx agent warmup
fi
modes=agent
[ "$CURL" = 1 ] && modes="agent curl"
for mode in $modes; do
  for round in $(seq 1 "$ROUNDS"); do
    order=$ORDER; [ $((round % 2)) = 0 ] && order=$reversed
    for server in $order; do
      echo "running: round $round, $AGENTS x $mode from $server ..." >&2
      run_server "$server" "$mode" "$mode-$round-$server"
      keys+=("$mode-$round-$server")
    done
  done
done

echo
echo "boot storm: $AGENTS agents, archive $(python3 -c "print(round($ASIZE/1e6,1))") MB, wharf serve --threads $THREADS, nginx worker_processes auto ($(nproc)), $ROUNDS round(s) from order: $ORDER"
echo "| storm | server | client | ok | failed | wall s | delivered MB (ok x archive) | server-side body MB | MB/s | client done p50 / max s | server CPU s | clients' CPU s |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
[ "$WARMUP" = 1 ] && report_line warmup
for k in "${keys[@]}"; do report_line "$k"; done
# Per client mode: each server's MB/s over all its rounds (bytes / wall time summed), the ratio.
for mode in $modes; do
  args=()
  for k in "${keys[@]}"; do case $k in "$mode"-*) args+=("${R[$k]}") ;; esac; done
  python3 - "$mode" "${args[@]}" <<'PY'
import sys
mode, rows = sys.argv[1], [r.split() for r in sys.argv[2:]]
rate = {}
for server in ("wharf", "nginx"):
    mine = [r for r in rows if r[0] == server]
    wall = sum(float(r[3]) for r in mine)
    rate[server] = sum(int(r[9]) for r in mine) / 1e6 / wall if wall else 0
line = f"{mode}: wharf {rate['wharf']:.1f} MB/s, nginx {rate['nginx']:.1f} MB/s"
if rate["nginx"]:
    line += f", ratio wharf/nginx {rate['wharf'] / rate['nginx']:.2f}"
print(line)
PY
done
total_failed=0
for k in "${!R[@]}"; do read -r _ _ f _ <<<"${R[$k]}"; total_failed=$((total_failed + f)); done
grep -iv '^wharf serve:' "$T/serve.log" | head -5 || true
echo "failed syncs/downloads in all (warm-up included): $total_failed"
[ "$total_failed" -eq 0 ]
