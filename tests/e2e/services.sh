#!/usr/bin/env bash
# The FEC's services under `wharf-agent run` (the built-in supervisor): services defined by
# the packages start in order; an upgrade restarts only the service whose package changed;
# a per-FEC setting restarts only its service; stop/start/restart; a killed child and a
# killed process server come back; heartbeats carry the services' states; SIGTERM stops all.
source "$(dirname "$0")/lib.sh"

mk_pkg() {  # mk_pkg NAME VERSION SERVICE
  local name=$1 version=$2 service=$3 dir=$T/src/$1-$2
  mkdir -p "$dir/bin"
  printf '#!/bin/sh\necho "%s %s running in $(pwd) MODE=${MODE:-none}"\nexec sleep 1000\n' "$name" "$version" >"$dir/bin/run"
  chmod 755 "$dir/bin/run"
  printf '[%s]\nholdoff = 1\nlevel = %s\n' "$service" "$([ "$service" = a ] && echo 10 || echo 20)" >"$dir/services.toml"
  "$WHARF" pack "$dir" --name "$name" --version "$version" --prefix "/opt/$name" -o "$T/out" \
    --service "$service=bin/run" >/dev/null
}
mkdir -p "$T/out"
mk_pkg alpha 1 a
mk_pkg beta 1 b
mk_pkg alpha 2 a
grep -q '"holdoff": 1' "$T/out/alpha-1.package.json" || fail "services.toml fields in package.json"

STORE=$T/store
mkdir -p "$STORE"
start_server "$STORE"
CI=$(make_token ci publisher "" "$STORE")
OP=$(make_token op operator "" "$STORE")
for p in alpha-1 beta-1 alpha-2; do "$WHARF" publish "$T/out/$p.tar.zst" --server "$SERVER_URL" --token "$CI" >/dev/null; done
"$WHARF" assign fec01 alpha@1 beta@1 --server "$SERVER_URL" --token "$OP" >/dev/null

R=$T/fec01
mkdir -p "$R/etc/wharf"
cp "$STORE.state/signing.pub" "$R/etc/wharf/trusted.pub"
make_token fec01 agent fec01 "$STORE" >"$R/etc/wharf/token"
cat >"$R/etc/wharf/agent.toml" <<EOF
fec = "fec01"
store = "$SERVER_URL"
trust = ["/etc/wharf/trusted.pub"]
server = "$SERVER_URL"
token_file = "/etc/wharf/token"
EOF
"$WHARF_AGENT" run --root "$R" --interval 1 --heartbeat 1 --stop-services >"$T/run.out" 2>"$T/run.err" &
RUN_PID=$!
trap 'kill $RUN_PID 2>/dev/null || true; wait $RUN_PID 2>/dev/null || true; cleanup' EXIT

field() { service_field "$R" "$@"; }
RUN_ERR=$T/run.err
running() { [ "$(field "$1" state)" = running ]; }
wait_for "a and b running" eval 'running a && running b'
A1=$(field a pid); B1=$(field b pid); AS1=$(field a server_pid)
grep -q "started a (alpha@1)" "$T/run.err" || fail "start order: $(cat "$T/run.err")"
[ "$(grep -n 'started a' "$T/run.err" | cut -d: -f1)" -lt "$(grep -n 'started b' "$T/run.err" | cut -d: -f1)" ] \
  || fail "level 10 (a) starts before level 20 (b)"
"$WHARF_AGENT" logs a --root "$R" | grep -q "alpha 1 running in $R/var/lib/wharf/packages/alpha/1-" \
  || fail "a runs in its package's folder: $("$WHARF_AGENT" logs a --root "$R")"
pass "the generation's services start by level, each in its package's folder"
# Each process server is wharf-procserv, run from the spec the agent wrote for it.
[ "$(basename "$(readlink "/proc/$AS1/exe")")" = wharf-procserv ] || fail "a's server is $(readlink "/proc/$AS1/exe")"
[ "$(stat -c %a "$R/run/wharf/services")" = 700 ] && [ "$(stat -c %a "$R/run/wharf/services/a.args")" = 600 ] \
  || fail "specs: $(ls -la "$R/run/wharf/services")"
tr '\0' '\n' <"$R/run/wharf/services/a.args" | grep -qx -- "$R/opt/alpha/bin/run" \
  || fail "a's spec names its command: $(tr '\0' ' ' <"$R/run/wharf/services/a.args")"
pass "each service runs under wharf-procserv from its spec (ROOT/run/wharf/services/NAME.args, 0600)"

# --- heartbeats carry the services ---
wait_for "services up on the server" eval \
  "curl -sf -H 'Authorization: Bearer $OP' $SERVER_URL/api/v1/fecs/fec01 | grep -q '\"services_up\": 2'"
pass "heartbeats report both services up"

# --- an upgrade restarts only the service whose package changed ---
"$WHARF" assign fec01 alpha@2 --server "$SERVER_URL" --token "$OP" >/dev/null
wait_for "a restarted on alpha 2" eval '[ "$(field a pid)" != "$A1" ] && running a'
[ "$(field b pid)" = "$B1" ] || fail "b was restarted by an upgrade of alpha"
"$WHARF_AGENT" logs a --root "$R" | grep -q "alpha 2 running" || fail "a runs alpha 2"
pass "upgrade of alpha restarts a only (b keeps PID $B1)"

# --- a per-FEC setting restarts only its service ---
A2=$(field a pid)
# A service's settings decide what runs as root: a maintainer's right, not an operator's.
MT=$(make_token mt maintainer "" "$STORE")
refused=$("$WHARF" service set fec01 b env.MODE=test --server "$SERVER_URL" --token "$OP" 2>&1 >/dev/null) \
  && fail "an operator changed a service's settings"
echo "$refused" | grep -q "lacks the right to configure" || fail "operator's service set: $refused"
"$WHARF" service set fec01 b env.MODE=test --server "$SERVER_URL" --token "$MT" >/dev/null
wait_for "b restarted with MODE=test" eval '[ "$(field b pid)" != "$B1" ] && running b'
[ "$(field a pid)" = "$A2" ] || fail "a was restarted by a setting of b"
sleep 0.3
"$WHARF_AGENT" logs b --root "$R" | grep -q "MODE=test" || fail "b sees env.MODE"
pass "wharf service set b env.MODE=test restarts b only"

# --- stop, start, restart ---
"$WHARF_AGENT" stop b --root "$R" 2>/dev/null
wait_for "b stopped" eval '[ "$(field b state)" = stopped ]'
sleep 1.5
[ "$(field b state)" = stopped ] || fail "a stopped service must stay stopped"
"$WHARF_AGENT" start b --root "$R" 2>/dev/null
wait_for "b started" running b
B3=$(field b pid)
"$WHARF_AGENT" restart b --root "$R" 2>/dev/null
wait_for "b restarted" eval '[ "$(field b pid)" != "$B3" ] && running b'
pass "stop keeps b down; start and restart bring it back"

# --- a killed child, and a killed process server, come back ---
kill -9 "$(field a pid)"
wait_for "a's child restarted" eval 'running a && [ "$(field a restarts)" -ge 1 ]'
[ "$(field a last_exit | grep -o SIGKILL)" = SIGKILL ] || fail "last exit of a: $(field a last_exit)"
AS2=$(field a server_pid)
kill -9 "$AS2"
wait_for "a's process server restarted" eval '[ "$(field a server_pid)" != "$AS2" ] && running a'
pass "kill -9 of a's child (restarted, reported as SIGKILL) and of its process server (started again)"

# --- SIGTERM stops everything ---
A_LAST=$(field a pid); B_LAST=$(field b pid)
kill -TERM $RUN_PID
wait $RUN_PID || fail "run must exit 0 on SIGTERM"
for pid in "$A_LAST" "$B_LAST"; do
  kill -0 "$pid" 2>/dev/null && fail "service child $pid still runs after the agent stopped"
done
pass "SIGTERM to the agent stops every service"
echo "services: all checks passed"
