#!/usr/bin/env bash
# No lock-out by expiry (issue 18, acceptance 4; docs/agent.md "Expiry", docs/security.md
# "Expiry and offline stores"), with real processes and lifetimes of seconds:
# a. A FEC whose root is a scratch folder (tmpfs when the test runs as root and may mount),
#    whose generation expired while its agent was off and its services were gone, with the
#    store unreachable: `wharf-agent run` starts its services and says why (log, status);
#    `wharf-agent sync` exits 3 (offline) and stops nothing.
# b. An offline store (a copied folder marked with `wharf store offline`): a FEC booting
#    afresh from it on an expired offline generation runs its services and says so; the same
#    generation over http is refused, and so is an expired online generation from a folder.
# c. `wharf serve` re-signs a generation close to expiring on its own (number + 1, same
#    packages, later expiry, in the audit log as actor "server"); an agent syncing after the
#    original expiry accepts it.
source "$(dirname "$0")/lib.sh"

MOUNTS=()
RUN_PID=""
finish() {
  [ -n "$RUN_PID" ] && { kill -TERM "$RUN_PID" 2>/dev/null || true; wait "$RUN_PID" 2>/dev/null || true; }
  cleanup_services
  for m in "${MOUNTS[@]}"; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done
  cleanup
}
trap finish EXIT
# The process servers this test's agents started, by PID (they outlive the agents).
SERVICE_PIDS=()
cleanup_services() {
  local pid
  for pid in "${SERVICE_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${SERVICE_PIDS[@]}"; do
    for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  done
}

# fec_root NAME: a fresh FEC root in $ROOT: tmpfs when root may mount one, else a plain folder.
fec_root() {
  ROOT=$T/$1
  mkdir -p "$ROOT"
  if [ "$(id -u)" -eq 0 ] && mount -t tmpfs -o size=64m "wharf-e2e-$1" "$ROOT" 2>/dev/null; then
    MOUNTS+=("$ROOT")
  fi
  mkdir -p "$ROOT/etc/wharf"
}
# start_run ROOT TOKEN NAME: `wharf-agent run` on ROOT in the background ($RUN_PID), its
# output appended to $T/NAME.out and $T/NAME.err ($RUN_ERR, shown when a wait_for fails).
start_run() {
  RUN_ERR=$T/$3.err
  "$WHARF_AGENT" run --root "$1" --interval 1 --heartbeat 1 --token "$2" >>"$T/$3.out" 2>>"$RUN_ERR" &
  RUN_PID=$!
}

# agent_config ROOT FEC STORE_URL PUB...: agent.toml and trusted keys under ROOT.
agent_config() {
  local r=$1 fec=$2 url=$3 trust="" pub; shift 3
  for pub in "$@"; do
    cp "$pub" "$r/etc/wharf/$(basename "$pub")"
    trust+="${trust:+, }\"/etc/wharf/$(basename "$pub")\""
  done
  printf 'fec = "%s"\nstore = "%s"\ntrust = [%s]\n' "$fec" "$url" "$trust" >"$r/etc/wharf/agent.toml"
  [ -z "${HEARTBEATS:-}" ] || printf 'server = "%s"\n' "$HEARTBEATS" >>"$r/etc/wharf/agent.toml"
}
# server_error FEC: the error line the server holds from FEC's heartbeats.
server_error() {
  "$WHARF" status "$1" --json --server "$SERVER_URL" --token "$ADMIN" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["status"]["last_error"])'
}
server_says() { server_error "$1" | grep -Eq -- "$2"; }  # server_says FEC PATTERN
# service_pid ROOT: the PID of service a under ROOT ('' when not running).
service_pid() { service_field "$1" a pid; }
alive() { [ -n "$1" ] && kill -0 "$1" 2>/dev/null; }
# remember ROOT: the process server of service a under ROOT, for the cleanup.
remember() {
  local pid ppid
  pid=$(service_pid "$1")
  [ -n "$pid" ] || return 0
  ppid=$(ps -o ppid= -p "$pid" | tr -d ' ')
  [ -n "$ppid" ] && [ "$ppid" != 1 ] && SERVICE_PIDS+=("$ppid")
  SERVICE_PIDS+=("$pid")
}
status_json() {  # status_json ROOT KEY
  "$WHARF_AGENT" status --root "$1" --json | python3 -c "import json,sys; v=json.load(sys.stdin).get('$2'); print('' if v is None else v)"
}
gen_field() {  # gen_field STORE FEC KEY: a field of `wharf show --json`
  "$WHARF" show "$2" --store "$1" --json | python3 -c "import json,sys; print(json.load(sys.stdin)['$3'])"
}
epoch() { date -u -d "$1" +%s; }
wait_until() {  # wait_until EPOCH: sleeps until the clock is past EPOCH
  while [ "$(date -u +%s)" -le "$1" ]; do sleep 0.5; done
}

# --- the package: one service ---
dir=$T/src/alpha
mkdir -p "$dir/bin" "$T/out"
printf '#!/bin/sh\necho "alpha 1"\nexec sleep 1000\n' >"$dir/bin/run"
chmod 755 "$dir/bin/run"
"$WHARF" pack "$dir" --name alpha --version 1 --prefix /opt/alpha -o "$T/out" --service "a=bin/run" >/dev/null
"$WHARF" keygen --out "$T/release" >/dev/null
for s in store-a store-c; do
  mkdir -p "$T/$s"
  "$WHARF" publish "$T/out/alpha-1.tar.zst" --store "$T/$s" >/dev/null
done
KEY=(--key "$T/release.key")

# --- c, begun: the server watches fec03, whose generation lives 20 s ---
start_server "$T/store-c" --refresh-before 15s --refresh-every 1s
SERVER_PUB=$(state_dir "$T/store-c")/signing.pub
ADMIN=$(make_token admin admin "" "$T/store-c")
"$WHARF" assign fec03 alpha@1 --store "$T/store-c" "${KEY[@]}" --expires-in 20s >/dev/null
C_EXPIRES=$(epoch "$(gen_field "$T/store-c" fec03 expires)")
# A copy taken before the server re-signs it: the expired online generation, from a folder.
cp -a "$T/store-c" "$T/store-c-copy"
[ "$(gen_field "$T/store-c-copy" fec03 number)" = 1 ] || fail "the copy was taken after the refresh"

# --- a. store unreachable, generation expired while the agent was off ---
"$WHARF" assign fec01 alpha@1 --store "$T/store-a" "${KEY[@]}" --expires-in 12s >/dev/null
A_EXPIRES=$(epoch "$(gen_field "$T/store-a" fec01 expires)")
start_nginx "$T/store-a"
fec_root fec01; RA=$ROOT
# Heartbeats go to the server (up while fec01's own store is not).
HEARTBEATS=$SERVER_URL agent_config "$RA" fec01 "$STORE_URL" "$T/release.pub"
TOKEN_A=$(make_token fec01 agent fec01 "$T/store-c")
start_run "$RA" "$TOKEN_A" run-a
wait_for "fec01 applies generation 1 and runs a" eval '[ "$(agent_generation "$RA")" = 1 ] && alive "$(service_pid "$RA")"'
remember "$RA"
FIRST=$(service_pid "$RA")
kill -TERM "$RUN_PID"; wait "$RUN_PID" 2>/dev/null || true
RUN_PID=""
# The FEC goes off: its services end with it; the store becomes unreachable.
cleanup_services
for _ in $(seq 50); do alive "$FIRST" || break; sleep 0.1; done
alive "$FIRST" && fail "service a (PID $FIRST) did not end"
SERVICE_PIDS=()
stop_nginx
wait_until "$A_EXPIRES"

start_run "$RA" "$TOKEN_A" run-a
wait_for "service a started again with the store unreachable" eval 'alive "$(service_pid "$RA")"'
remember "$RA"
SECOND=$(service_pid "$RA")
[ "$SECOND" != "$FIRST" ] || fail "service a has its old PID"
wait_for "the log saying why" grep -q "fec01: store unreachable (.*); running generation 1, expired at .*; its services keep running" "$RUN_ERR"
wait_for "the server hearing why" server_says fec01 '^store unreachable \(.*\); running generation 1, expired at '
[ "$(status_json "$RA" expiry)" = "running generation 1, expired at $(gen_field "$T/store-a" fec01 expires)" ] \
  || fail "status --json expiry: $(status_json "$RA" expiry)"
"$WHARF_AGENT" status --root "$RA" | grep -q "^running generation 1, expired at .*: its services keep running" \
  || fail "status does not say the generation expired"
# sync by hand in that state: the documented offline exit code, nothing stopped.
expect_exit 3 "$WHARF_AGENT" sync --root "$RA" --token "$TOKEN_A"
grep -q "no store answered: store unreachable (.*); running generation 1, expired at" "$T/stdout" \
  || fail "offline sync said: $(cat "$T/stdout")"
sleep 2  # two syncs of the running agent, both offline
alive "$SECOND" && [ "$(service_pid "$RA")" = "$SECOND" ] || fail "service a was stopped or restarted while offline"
kill -TERM "$RUN_PID"; wait "$RUN_PID" 2>/dev/null || true
RUN_PID=""
alive "$SECOND" || fail "service a ended with the agent"
pass "a: expired generation, store unreachable, root on $(stat -f -c %T "$RA"): a restarted (PID $SECOND), log and status say why; sync exits 3, stops nothing"

# --- b. an offline store: a copied folder marked offline ---
cp -a "$T/store-a" "$T/dvd"
expect_exit 0 "$WHARF" store offline --store "$T/dvd" "${KEY[@]}" --expires-in 6s
grep -q "store is offline: generations written for it are signed offline" "$T/stdout" || fail "store offline said: $(cat "$T/stdout")"
grep -q "fec01: re-signed as generation 2: alpha@1 (expires .*, offline)" "$T/stdout" || fail "store offline did not re-sign fec01: $(cat "$T/stdout")"
"$WHARF" store show --store "$T/dvd" --json | python3 -c 'import json,sys; j=json.load(sys.stdin); assert j["offline"] and j["offline_lifetime_seconds"] == 6, j' \
  || fail "store show does not record the setting"
[ "$(gen_field "$T/dvd" fec01 offline)" = True ] || fail "the offline store's generation is not marked offline"
"$WHARF" show fec01 --store "$T/dvd" | grep -q "2 .* alpha@1  (offline)" || fail "show does not mark generation 2 offline"
"$WHARF" store show --store "$T/store-a" | grep -q "store is online" || fail "the original store became offline"
# A change on the offline store is signed offline with its lifetime too.
"$WHARF" assign fec02 alpha@1 --store "$T/dvd" "${KEY[@]}" --expires-in 30d >/dev/null
[ "$(gen_field "$T/dvd" fec02 offline)" = True ] || fail "a new generation on the offline store is not offline"
B_EXPIRES=$(epoch "$(gen_field "$T/dvd" fec02 expires)")
[ $((B_EXPIRES - $(epoch "$(gen_field "$T/dvd" fec02 created)"))) -eq 6 ] || fail "the offline store's lifetime was not used"
wait_until "$B_EXPIRES"

fec_root fec02; RB=$ROOT
HEARTBEATS=$SERVER_URL agent_config "$RB" fec02 "file://$T/dvd" "$T/release.pub"
TOKEN_B=$(make_token fec02 agent fec02 "$T/store-c")
start_run "$RB" "$TOKEN_B" run-b
wait_for "fec02 boots on the expired offline generation and runs a" \
  eval '[ "$(agent_generation "$RB")" = 1 ] && alive "$(service_pid "$RB")"'
remember "$RB"
B_PID=$(service_pid "$RB")
wait_for "the log saying why" grep -q "fec02: running expired offline generation 1 (expired at .*); its services keep running" "$RUN_ERR"
wait_for "the server hearing it" server_says fec02 '^running expired offline generation 1 \(expired at '
[ "$(status_json "$RB" offline)" = True ] || fail "status does not say the generation is offline"
"$WHARF_AGENT" status --root "$RB" | grep -q "^running expired offline generation 1 (expired at" || fail "status does not say it"
sleep 2
[ "$(service_pid "$RB")" = "$B_PID" ] || fail "later syncs from the offline store restarted a"
kill -TERM "$RUN_PID"; wait "$RUN_PID" 2>/dev/null || true
RUN_PID=""
# fec01, booting afresh from the offline store on its re-signed (and expired) generation 2.
fec_root fec01-dvd; RB1=$ROOT
agent_config "$RB1" fec01 "file://$T/dvd" "$T/release.pub"
expect_exit 0 "$WHARF_AGENT" sync --root "$RB1"
grep -q "fec01: running expired offline generation 2 (expired at .*); its services run" "$T/stdout" \
  || fail "sync from the offline store said: $(cat "$T/stdout")"
pass "b: an expired offline generation from a file:// store: a runs (PID $B_PID); log, status and sync say so"

# The refused sides: the same offline bytes over http, an expired online generation from a folder.
start_nginx "$T/dvd"
fec_root fec02-http; RX=$ROOT
agent_config "$RX" fec02 "$STORE_URL" "$T/release.pub"
expect_refused "fec02: generation 1 expired at .* \(an offline generation runs past its expiry only from a file:// store\)" \
  "$WHARF_AGENT" sync --root "$RX"
[ "$(agent_generation "$RX")" = None ] || [ "$(agent_generation "$RX")" = null ] || fail "fec02 over http applied something"
stop_nginx
wait_until "$C_EXPIRES"
fec_root fec03-copy; RY=$ROOT
agent_config "$RY" fec03 "file://$T/store-c-copy" "$T/release.pub"
expect_refused "fec03: generation 1 expired at .*; run \`wharf refresh fec03\`" "$WHARF_AGENT" sync --root "$RY"
pass "b: refused: the expired offline generation over http, an expired online generation from a folder"

# --- c. the server re-signed fec03 before it expired ---
[ "$(gen_field "$T/store-c" fec03 number)" = 2 ] || fail "the server did not re-sign fec03: $(cat "$SERVER_LOG")"
C2_CREATED=$(epoch "$(gen_field "$T/store-c" fec03 created)")
C2_EXPIRES=$(epoch "$(gen_field "$T/store-c" fec03 expires)")
[ "$C2_CREATED" -lt "$C_EXPIRES" ] || fail "re-signed at $C2_CREATED, after the expiry $C_EXPIRES"
[ "$C2_EXPIRES" -gt $((C_EXPIRES + 86400)) ] || fail "the re-signed generation does not live longer"
"$WHARF" show fec03 --store "$T/store-c" | grep -q "^  *2  .*  alpha@1$" || fail "generation 2 does not name alpha@1 alone"
grep -q "wharf serve: fec03: re-signed as generation 2: alpha@1 (automatic: expires" "$SERVER_LOG" || fail "no log line: $(cat "$SERVER_LOG")"
[ "$(grep -c "fec03: re-signed" "$SERVER_LOG")" = 1 ] || fail "re-signed more than once: $(cat "$SERVER_LOG")"
"$WHARF" audit --target fec03 --json --server "$SERVER_URL" --token "$ADMIN" |
  python3 -c 'import json,sys; e=[r for r in json.load(sys.stdin) if r["action"]=="refresh"]; assert len(e)==1 and e[0]["actor"]=="server" and e[0]["status"]==200, e' \
  || fail "the audit log does not show the server's refresh"
"$WHARF" history fec03 --server "$SERVER_URL" --token "$ADMIN" | grep -q "^ *2  created .*  expires .*  alpha@1$" \
  || fail "history does not show generation 2"
fec_root fec03; RC=$ROOT
# The store setting through the server: shown to readers, changed by admins only.
"$WHARF" store show --server "$SERVER_URL" --token "$ADMIN" | grep -q "^store is online" || fail "store show over the API"
OPERATOR=$(make_token op operator "" "$T/store-c")
expect_refused "lacks the right to administer" "$WHARF" store offline --server "$SERVER_URL" --token "$OPERATOR"
[ "$(gen_field "$T/store-c" fec03 number)" = 2 ] || fail "a refused store offline re-signed fec03"
agent_config "$RC" fec03 "$SERVER_URL" "$T/release.pub" "$SERVER_PUB"
expect_exit 0 "$WHARF_AGENT" sync --root "$RC"
grep -q "fec03: generation none -> 2 applied" "$T/stdout" || fail "sync after the original expiry: $(cat "$T/stdout")"
pass "c: the server re-signed fec03 $((C_EXPIRES - C2_CREATED)) s before it expired (generation 2, audit actor server); a sync after accepts it"
remember "$RA"; remember "$RB"
