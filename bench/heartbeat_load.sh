#!/usr/bin/env bash
# Heartbeat load on `wharf serve`: AGENTS simulated agents (bench/heartbeat_load.py), one
# keep-alive connection and one heartbeat a second each, for SECONDS seconds.
# Usage: [AGENTS=1000] [SECONDS=60 (or DURATION=60)] [THREADS=4] [TOKENS=auto|agent|admin] [SCRATCH=/tmp]
#        bench/heartbeat_load.sh
#   TOKENS=agent: one agent token per simulated FEC (made with `wharf token create`, as in a
#   real fleet); admin: one admin token for all; auto: agent tokens unless making them would
#   take over TOKEN_BUDGET seconds (default 120), measured on the first 20.
# Binary: $WHARF, default ./build/src/cmd/wharf. The generator runs on the same machine and
# shares its cores with the server.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
WHARF=${WHARF:-$top/build/src/cmd/wharf}
AGENTS=${AGENTS:-1000}
# bash's own $SECONDS counts up from the shell's start: read the caller's value from the
# environment, now, before any time passes (DURATION works too).
DURATION=${DURATION:-$(printenv SECONDS || echo 60)}
THREADS=${THREADS:-4}
TOKENS=${TOKENS:-auto}
TOKEN_BUDGET=${TOKEN_BUDGET:-120}
SCRATCH=${SCRATCH:-/tmp}
[ -x "$WHARF" ] || { echo "no binary at $WHARF (build first)" >&2; exit 2; }

echo "machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), $(free -g | awk '/^Mem:/ {print $2}') GB RAM, kernel $(uname -r), load average $(cut -d" " -f1-3 /proc/loadavg); $("$WHARF" --version)"
mkdir -p "$SCRATCH"
T=$(mktemp -d "$SCRATCH/wharf-heartbeat.XXXXXX")
SERVER_PID=""
cleanup() {
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  rm -rf "$T"
}
trap cleanup EXIT
cd "$T"
secs() { python3 -c 'import time; print(f"{time.monotonic():.3f}")'; }
fec() { printf 'fec%04d' "$1"; }

"$WHARF" keygen --out store.state/signing >/dev/null
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
URL="http://127.0.0.1:$port"
"$WHARF" serve --store store --listen "127.0.0.1:$port" --threads "$THREADS" --per-ip-connections 0 2>>serve.log &
SERVER_PID=$!
for _ in $(seq 100); do
  curl -s -o /dev/null "$URL/api/v1" && break
  kill -0 "$SERVER_PID" 2>/dev/null || { cat serve.log >&2; echo "wharf serve did not start" >&2; exit 1; }
  sleep 0.05
done

ADMIN=$("$WHARF" token create bench-admin --role admin --store store 2>>tokens.log)
# Agent tokens: time the first 20, then decide.
t0=$(secs)
for i in $(seq 1 $((AGENTS < 20 ? AGENTS : 20))); do
  echo "$(fec "$i") $("$WHARF" token create "agent-$(fec "$i")" --role agent --fec "$(fec "$i")" --store store 2>>tokens.log)" >>tokens.txt
done
t1=$(secs)
per_token=$(python3 -c "print(($t1-$t0)/$((AGENTS < 20 ? AGENTS : 20)))")
estimate=$(python3 -c "print(round($per_token*$AGENTS,1))")
echo "token create: $(python3 -c "print(round($per_token*1000,1))") ms each (CLI, one process each); $AGENTS would take ~$estimate s"
if [ "$TOKENS" = agent ] || { [ "$TOKENS" = auto ] && python3 -c "import sys; sys.exit(0 if $estimate <= $TOKEN_BUDGET else 1)"; }; then
  for i in $(seq 21 "$AGENTS"); do
    echo "$(fec "$i") $("$WHARF" token create "agent-$(fec "$i")" --role agent --fec "$(fec "$i")" --store store 2>>tokens.log)" >>tokens.txt
  done
  t2=$(secs)
  echo "tokens: one agent token per simulated FEC ($AGENTS made in $(python3 -c "print(round($t2-$t0,1))") s)"
  auth=(--tokens tokens.txt)
else
  echo "tokens: ONE ADMIN TOKEN for all $AGENTS simulated FECs (agent tokens would take ~$estimate s to make)"
  auth=(--token "$ADMIN" --fec-format 'fec{:04d}')
fi

clk=$(getconf CLK_TCK)
cpu() { awk -v hz="$clk" '{printf "%.2f\n", ($14 + $15) / hz}' "/proc/$SERVER_PID/stat"; }
c0=$(cpu)
echo "load: $AGENTS agents x 1 heartbeat/s for $DURATION s against wharf serve --threads $THREADS (generator on the same $(nproc) cores)"
python3 "$top/bench/heartbeat_load.py" --url "$URL" --agents "$AGENTS" --seconds "$DURATION" "${auth[@]}" | tee load.out
c1=$(cpu)
rss=$(awk '/^VmRSS/ {print $2, $3}' "/proc/$SERVER_PID/status")
hwm=$(awk '/^VmHWM/ {print $2, $3}' "/proc/$SERVER_PID/status")
threads=$(awk '/^Threads/ {print $2}' "/proc/$SERVER_PID/status")
python3 - "$c0" "$c1" "$DURATION" <<'PY'
import sys
c0, c1, d = map(float, sys.argv[1:])
print(f"server CPU: {c1 - c0:.1f} s over the run ({100 * (c1 - c0) / (d + 1):.1f}% of one core)")
PY
echo "server memory at the end: VmRSS $rss (peak VmHWM $hwm), $threads threads"
# What the server recorded: FECs with a heartbeat, and its request counters for the route.
seen=$(curl -s -H "Authorization: Bearer $ADMIN" "$URL/api/v1/fecs" |
  python3 -c 'import json,sys; print(sum(1 for f in json.load(sys.stdin) if f.get("last_heartbeat")))')
echo "server: $seen FECs with a recorded heartbeat (of $AGENTS)"
curl -s "$URL/metrics" | grep 'requests_total.*heartbeat' || true
grep -iv '^wharf serve:' serve.log | head -5 || true
errors=$(tail -1 load.out | python3 -c 'import json,sys; print(json.load(sys.stdin)["errors"])')
[ "$errors" -eq 0 ] && [ "$seen" -eq "$AGENTS" ]
