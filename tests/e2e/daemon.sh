#!/usr/bin/env bash
# The FEC daemon (docs/agent.md, "The daemon"), with real processes:
# 1. `kill -9` of `wharf-agent run`, then a new `run`: every service keeps its process
#    server and child (same PIDs), `list --json` keeps their restart counts, and the new
#    agent says it adopted them; READY=1 comes within 2 s of its start.
# 2. While a sync downloads a 3 MB package from a store throttled to 20 kB/s: a killed
#    child is restarted within its hold-off + 2 s, a killed process server too; heartbeats
#    (to a recording listener) keep their interval within 2 s and say "syncing"; systemd's
#    watchdog pings (to a real notify socket) keep theirs.
source "$(dirname "$0")/lib.sh"

mk_pkg() {  # mk_pkg NAME VERSION SERVICE
  local name=$1 version=$2 service=$3 dir=$T/src/$1-$2
  mkdir -p "$dir/bin"
  printf '#!/bin/sh\necho "%s %s"\nexec sleep 1000\n' "$name" "$version" >"$dir/bin/run"
  chmod 755 "$dir/bin/run"
  printf '[%s]\nholdoff = 1\n' "$service" >"$dir/services.toml"
  "$WHARF" pack "$dir" --name "$name" --version "$version" --prefix "/opt/$name" -o "$T/out" \
    --service "$service=bin/run" >/dev/null
}
mkdir -p "$T/out" "$T/src/bulk-1"
mk_pkg alpha 1 a
mk_pkg beta 1 b
mk_pkg gamma 1 c
head -c 3000000 /dev/urandom >"$T/src/bulk-1/data.bin"  # incompressible: 3 MB on the wire
"$WHARF" pack "$T/src/bulk-1" --name bulk --version 1 --prefix /opt/bulk -o "$T/out" >/dev/null

STORE=$T/store
mkdir -p "$STORE"
"$WHARF" keygen --out "$T/release" >/dev/null
for p in alpha-1 beta-1 gamma-1 bulk-1; do "$WHARF" publish "$T/out/$p.tar.zst" --store "$STORE" >/dev/null; done
"$WHARF" assign fec01 alpha@1 beta@1 gamma@1 --store "$STORE" --key "$T/release.key" >/dev/null
NGINX_EXTRA='location /software/bulk/ { limit_rate 20k; }'
start_nginx "$STORE"

# Heartbeats go to a listener that notes when each arrives and what it says.
start_heartbeat_listener "$T/beats.log" activity --time
# systemd's side of the notify protocol: a datagram socket noting each message's time.
python3 - "$T/notify.sock" "$T/notify.log" <<'PY' &
import socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
with open(sys.argv[2], "a") as log:
    while True:
        msg = s.recv(4096).decode()
        log.write(f"{time.monotonic():.3f} {msg.replace(chr(10), ' ')}\n"); log.flush()
PY
NOTIFY_PID=$!
trap 'kill $HB_PID $NOTIFY_PID ${RUN_PID:-} 2>/dev/null || true; cleanup' EXIT
for _ in $(seq 50); do [ -S "$T/notify.sock" ] && break; sleep 0.05; done

R=$T/fec01
mkdir -p "$R/etc/wharf"
cat >"$R/etc/wharf/agent.toml" <<EOF
fec = "fec01"
store = "$STORE_URL"
trust = ["/etc/wharf/release.pub"]
server = "http://127.0.0.1:$HB_PORT"
EOF
cp "$T/release.pub" "$R/etc/wharf/release.pub"
run_agent() {  # the agent as systemd would start it: NOTIFY_SOCKET, WATCHDOG_USEC (1 s pings)
  NOTIFY_SOCKET=$T/notify.sock WATCHDOG_USEC=2000000 "$WHARF_AGENT" run --root "$R" --interval 1 \
    --heartbeat 2 --token t >>"$T/run.out" 2>>"$T/run.err" &
  RUN_PID=$!
}
RUN_ERR=$T/run.err
field() { service_field "$R" "$@"; }
now() { python3 -c 'import time; print(f"{time.monotonic():.3f}")'; }
running() { [ "$(field "$1" state)" = running ]; }

run_agent
wait_for "a, b and c running" eval 'running a && running b && running c'
kill -9 "$(field a pid)"
wait_for "a's child restarted" eval 'running a && [ "$(field a restarts)" = 1 ]'
declare -A PID SERVER
for s in a b c; do PID[$s]=$(field $s pid); SERVER[$s]=$(field $s server_pid); done

# --- 1. kill -9 of the agent: the services do not notice ---
kill -9 "$RUN_PID"; wait "$RUN_PID" 2>/dev/null || true
sleep 1
for s in a b c; do
  kill -0 "${SERVER[$s]}" 2>/dev/null || fail "the process server of $s died with the agent"
  kill -0 "${PID[$s]}" 2>/dev/null || fail "service $s died with the agent"
done
: >"$T/notify.log"
START=$(now)
run_agent
wait_for "READY=1 from the new agent" grep -q "READY=1" "$T/notify.log"
READY_AT=$(grep -m1 "READY=1" "$T/notify.log" | cut -d' ' -f1)
python3 -c "import sys; d=$READY_AT-$START; sys.exit(0 if d <= 2 else f'READY=1 came {d:.2f} s after the start')" || fail "READY late"
sleep 3  # a few rounds of the new agent's loop and a sync
for s in a b c; do
  [ "$(field $s server_pid)" = "${SERVER[$s]}" ] || fail "$s: process server ${SERVER[$s]} replaced by $(field $s server_pid)"
  [ "$(field $s pid)" = "${PID[$s]}" ] || fail "$s: child ${PID[$s]} replaced by $(field $s pid)"
done
[ "$(field a restarts)" = 1 ] || fail "a's restart count was lost: $(field a restarts)"
for s in a b c; do grep -q "adopted $s (process server ${SERVER[$s]})" "$T/run.err" || fail "no adoption of $s: $(cat "$T/run.err")"; done
pass "kill -9 of the agent, then a new run: a, b, c keep their PIDs and restart counts; READY=1 in $(python3 -c "print(f'{$READY_AT-$START:.2f}')") s"

# --- 2. a slow sync does not hold up supervision, heartbeats or the watchdog ---
"$WHARF" assign fec01 alpha@1 beta@1 gamma@1 bulk@1 --store "$STORE" --key "$T/release.key" >/dev/null
wait_for "a heartbeat saying syncing: N of M bytes" grep -Eq " syncing: [0-9]+ of [0-9]+ bytes" "$T/beats.log"
SYNC_SEEN=$(now)
# kill_and_time SERVICE FIELD WHAT: kill -9 the process in FIELD (pid: the child, server_pid:
# its process server); fails unless a new one runs within the hold-off (1 s) + 2 s; prints the time.
kill_and_time() {
  local service=$1 key=$2 what=$3 old killed took
  old=$(field "$service" "$key")
  killed=$(now)
  kill -9 "$old"
  wait_for "$what of $service started again" eval '[ "$(field '"$service"' '"$key"')" != "'"$old"'" ] && running '"$service"
  took=$(python3 -c "print(f'{$(now)-$killed:.2f}')")
  python3 -c "import sys; sys.exit(0 if $took <= 1 + 2 else 1)" || fail "$what of $service came back after $took s (hold-off 1 s)"
  echo "$took"
}
took=$(kill_and_time b pid "the child")
took_c=$(kill_and_time c server_pid "the process server")
sleep 12
tail -1 "$T/beats.log" | grep -q " syncing" || fail "the sync ended before the measurement did: $(tail -3 "$T/beats.log")"
[ "$(agent_generation "$R")" = 1 ] || fail "the sync of generation 2 finished already: the store is not throttled"
python3 - "$T/beats.log" "$T/notify.log" "$SYNC_SEEN" <<'PY' || fail "intervals during the sync"
import sys
since = float(sys.argv[3]) - 2
def times(path, word):
    return [float(l.split()[0]) for l in open(path) if word in l and float(l.split()[0]) >= since]
for what, path, word, interval in (("heartbeat", sys.argv[1], "", 2), ("watchdog ping", sys.argv[2], "WATCHDOG=1", 1)):
    t = times(path, word)
    gaps = [b - a for a, b in zip(t, t[1:])]
    if len(t) < 5 or max(gaps) > interval + 2:
        sys.exit(f"{what}s during the sync: {len(t)}, largest gap {max(gaps, default=0):.2f} s (interval {interval} s)")
    print(f"{what}s during the sync: {len(t)}, gaps {min(gaps):.2f}..{max(gaps):.2f} s")
PY
pass "during a 20 kB/s sync: b's child back in $took s, c's process server in $took_c s; heartbeats and watchdog on time"

kill -TERM "$RUN_PID"; wait "$RUN_PID" || fail "run exits 0 on SIGTERM"
RUN_PID=
for s in a b c; do running $s || fail "$s stopped with the agent (stop_services is off)"; done
grep -q "the services keep running" "$T/run.err" || fail "the agent did not say the services keep running"
pass "SIGTERM stops the agent only; the services keep running"
echo "daemon: all checks passed"
