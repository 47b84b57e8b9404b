#!/usr/bin/env bash
# A real program from Debian under the process server, restarted after kill -9: the
# TangoTest device server (Debian package tango-test, Tango 9.3) runs without a Tango
# database (-nodb -dlist sys/tg_test/1, fixed CORBA endpoint on loopback) under
# `wharf-agent procserv --holdoff 1`. A real Tango client (PyTango, Debian package
# python3-tango) reads attributes from it; then the child is killed with SIGKILL and must be
# reported as such (console, status file), restarted as a new PID and serving again, and
# `wharf-agent list --json` must count the restart.
# Needs the Debian packages tango-test and python3-tango (scripts/install-deps), no database
# server. Usage: WHARF_AGENT=build/src/cmd/wharf-agent tests/e2e/tango.sh
set -euo pipefail
: "${WHARF_AGENT:?set WHARF_AGENT to the wharf-agent binary}"
: "${WHARF:=$WHARF_AGENT}"  # lib.sh wants both; this test only runs wharf-agent
source "$(dirname "$0")/lib.sh"

TANGOTEST=/usr/lib/tango/TangoTest
TANGO_PY=/usr/bin/python3  # PyTango is Debian's: the system python, not a pyenv one
[ -x "$TANGOTEST" ] || fail "$TANGOTEST is missing: install the Debian package tango-test (apt-get install --no-install-recommends tango-test)"
"$TANGO_PY" -c 'import tango' 2>/dev/null \
  || fail "PyTango is missing: install the Debian package python3-tango (apt-get install --no-install-recommends python3-tango)"
command -v ss >/dev/null || fail "ss is missing: install the Debian package iproute2"

ROOT=$T/root
NAME=tangotest
DEVICE=sys/tg_test/1
PORT=$(free_port)
STATUS=$ROOT/run/wharf/status/$NAME.json
CONSOLE=$ROOT/run/wharf/console/$NAME.sock
CONSOLE_OUT=$T/console.out
CHECKS=0
READER_PID=""
ok() { CHECKS=$((CHECKS + 1)); pass "$*"; }

finish() {
  [ -n "$READER_PID" ] && kill "$READER_PID" 2>/dev/null || true
  cleanup
}
trap finish EXIT

# status KEY: one field of the status file (nested with dots: last_exit.signal).
status() {
  python3 - "$STATUS" "$1" <<'PY'
import json, sys
v = json.load(open(sys.argv[1]))
for k in sys.argv[2].split("."):
    v = v[k] if v is not None else None
print("null" if v is None else v)
PY
}

# tango_read: reads the device through a real Tango client without a database; prints
# "STATE server_id double_scalar".
tango_read() {
  timeout 10 "$TANGO_PY" - "$PORT" "$DEVICE" <<'PY'
import sys, tango
d = tango.DeviceProxy(f"tango://127.0.0.1:{sys.argv[1]}/{sys.argv[2]}#dbase=no")
d.set_timeout_millis(2000)
print(d.state(), d.info().server_id, d.read_attribute("double_scalar").value)
PY
}

# listener_pid: the PID that listens on the device server's port (empty if none).
listener_pid() {
  ss -Hltnp "sport = :$PORT" 2>/dev/null | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2
}

# wait_serving SECONDS: until the console says "Ready to accept request" (COUNT times in
# all), the port's listener is the status file's PID and the client reads the device.
wait_serving() {
  local seconds=$1 count=$2 deadline pid
  deadline=$(($(date +%s) + seconds))
  while [ "$(date +%s)" -lt "$deadline" ]; do
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$T/procserv.err" >&2; fail "the process server ended"; }
    pid=$(status pid 2>/dev/null || echo null)
    if [ "$(grep -o 'Ready to accept request' "$CONSOLE_OUT" | wc -l)" -ge "$count" ] \
       && [ "$pid" != null ] && [ "$(listener_pid)" = "$pid" ] \
       && tango_read >"$T/read.out" 2>"$T/read.err"; then
      return 0
    fi
    sleep 0.2
  done
  echo "--- console:" >&2; tr -d '\r' <"$CONSOLE_OUT" >&2
  echo "--- status:" >&2; cat "$STATUS" >&2 || true
  echo "--- client:" >&2; cat "$T/read.err" >&2 || true
  fail "TangoTest did not serve on 127.0.0.1:$PORT within ${seconds}s"
}

# The device server under the process server; a console client records everything.
"$WHARF_AGENT" procserv --root "$ROOT" --name "$NAME" --holdoff 1 --chdir "$T" -- \
  "$TANGOTEST" test -nodb -dlist "$DEVICE" -ORBendPoint "giop:tcp:127.0.0.1:$PORT" \
  >"$T/procserv.out" 2>"$T/procserv.err" &
SERVER_PID=$!  # lib.sh's cleanup stops it (SIGTERM) at exit
for _ in $(seq 100); do
  [ -S "$CONSOLE" ] && break
  kill -0 "$SERVER_PID" 2>/dev/null || { cat "$T/procserv.err" >&2; fail "the process server did not start"; }
  sleep 0.05
done
[ -S "$CONSOLE" ] || fail "no console socket $CONSOLE"
python3 - "$CONSOLE" "$CONSOLE_OUT" <<'PY' &
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
with open(sys.argv[2], "wb", buffering=0) as out:
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        out.write(chunk)
PY
READER_PID=$!

wait_serving 20 1
FIRST=$(status pid)
[ "$(status state)" = running ] || fail "state $(status state), wanted running"
ok "TangoTest (PID $FIRST) serves $DEVICE without a database on 127.0.0.1:$PORT: $(cat "$T/read.out")"

# kill -9 the child, as a crash would.
KILLED_AT=$(date +%s.%N)
kill -9 "$FIRST"
deadline=$(($(date +%s) + 5))
until grep -q "PID $FIRST killed by signal 9 (SIGKILL)" "$CONSOLE_OUT"; do
  [ "$(date +%s)" -lt "$deadline" ] || { tr -d '\r' <"$CONSOLE_OUT" >&2; fail "the console does not report the SIGKILL"; }
  sleep 0.05
done
ok "the console says: $(grep -ao "@@@ [^\r]*PID $FIRST killed by signal 9 (SIGKILL)[^\r]*" "$CONSOLE_OUT" | head -1)"

wait_serving 10 2
SERVED_AT=$(date +%s.%N)
SECOND=$(status pid)
[ "$SECOND" != "$FIRST" ] || fail "the PID did not change: $SECOND"
kill -0 "$SECOND" 2>/dev/null || fail "the new PID $SECOND is not running"
[ "$(cat "/proc/$SECOND/comm")" = TangoTest ] || fail "PID $SECOND is $(cat "/proc/$SECOND/comm"), not TangoTest"
kill -0 "$FIRST" 2>/dev/null && fail "the killed PID $FIRST still runs"
[ "$(status last_exit.signal)" = SIGKILL ] || { cat "$STATUS" >&2; fail "status last_exit.signal is $(status last_exit.signal), wanted SIGKILL"; }
[ "$(status last_exit.code)" = null ] || { cat "$STATUS" >&2; fail "status last_exit.code is $(status last_exit.code) for a signal"; }
ok "status: last exit SIGKILL; new PID $SECOND (TangoTest) serves again $(python3 -c "print(f'{$SERVED_AT - $KILLED_AT:.1f}')") s after kill -9 (hold-off: 1 s between starts): $(cat "$T/read.out")"

"$WHARF_AGENT" list --root "$ROOT" --json >"$T/list.json"
python3 - "$T/list.json" "$NAME" "$SECOND" <<'PY' || { cat "$T/list.json" >&2; fail "wharf-agent list --json"; }
import json, sys
rows = {r["name"]: r for r in json.load(open(sys.argv[1]))}
r = rows[sys.argv[2]]
assert r["state"] == "running", r["state"]
assert r["pid"] == int(sys.argv[3]), r["pid"]
assert r["restarts"] >= 1, r["restarts"]
assert r["last_exit"]["signal"] == "SIGKILL", r["last_exit"]
PY
ok "wharf-agent list --json: running, PID $SECOND, restarts $(status restarts), last exit SIGKILL"

# SIGTERM to the process server stops the device server first.
kill -TERM "$SERVER_PID"
wait "$SERVER_PID" || fail "the process server exited $? on SIGTERM"
SERVER_PID=""
kill -0 "$SECOND" 2>/dev/null && fail "TangoTest PID $SECOND outlived the process server"
[ -z "$(listener_pid)" ] || fail "port $PORT is still served after the stop"
# TangoTest catches SIGTERM and exits with status 0 after shutting its device down.
LOG=$ROOT/var/log/wharf/$NAME.log
grep -q "stopping: sending signal 15 to the child" "$LOG" \
  && grep -Eq "child PID $SECOND (exited with status 0|killed by signal 15)" "$LOG" \
  || { cat "$LOG" >&2; fail "the log does not show the child stopped by SIGTERM"; }
ok "SIGTERM to the process server stops TangoTest first: $(grep -ao "child PID $SECOND [^\r]*" "$LOG" | tail -1)"

echo "tango: $CHECKS checks passed"
