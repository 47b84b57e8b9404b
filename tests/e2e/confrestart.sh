#!/usr/bin/env bash
# Configuration restarts exactly its readers (issue 18, acceptance 1), under a real
# `wharf-agent run` (built-in supervisor) against a real `wharf serve`:
# - reader (package app) reads conf by default (conf's `--matches app@1`); bystander
#   (package other) reads nothing; picky (package tool) declares `configuration = ["site"]`;
# - assign conf@2 only: reader restarts (new PID, its log shows the new file), the others
#   keep their PIDs; site@2 restarts picky only;
# - a re-signed generation (refresh), a new configuration nobody reads, and an agent
#   restart (adoption) restart nothing;
# - the restart waits out the reader's hold-off, and meanwhile `list -v` shows it on the
#   old version ("OLD"); `list --json` has the versions.
source "$(dirname "$0")/lib.sh"

R=$T/fec01
HOLDOFF=15
mkdir -p "$T/out"
mk_app() {  # mk_app NAME SERVICE TOML_EXTRA: a package whose service prints the config files it finds
  local name=$1 service=$2 extra=$3 dir=$T/src/$1
  mkdir -p "$dir/bin"
  printf '#!/bin/sh\necho "%s sees app=$(cat %s/etc/app/settings 2>/dev/null) site=$(cat %s/etc/site/settings 2>/dev/null)"\nexec sleep 1000\n' \
    "$service" "$R" "$R" >"$dir/bin/run"
  chmod 755 "$dir/bin/run"
  printf '[%s]\ncommand = "bin/run"\n%s\n' "$service" "$extra" >"$dir/services.toml"
  "$WHARF" pack "$dir" --name "$name" --version 1 --prefix "/opt/$name" -o "$T/out" >/dev/null
}
mk_conf() {  # mk_conf NAME VERSION PREFIX [--matches N@V]
  local name=$1 version=$2 prefix=$3 dir=$T/src/$1-$2; shift 3
  mkdir -p "$dir"
  echo "$name-$version" >"$dir/settings"
  "$WHARF" pack "$dir" --configuration "$@" --name "$name" --version "$version" --prefix "$prefix" -o "$T/out" >/dev/null
}
mk_app app reader "holdoff = $HOLDOFF"
mk_app other bystander "holdoff = 1"
mk_app tool picky "holdoff = 1
configuration = [\"site\"]"
for v in 1 2; do mk_conf conf $v /etc/app --matches app@1; done
for v in 1 2; do mk_conf site $v /etc/site; done
mk_conf misc 1 /etc/misc

STORE=$T/store
mkdir -p "$STORE"
start_server "$STORE"
CI=$(make_token ci publisher "" "$STORE")
OP=$(make_token op operator "" "$STORE")
for f in "$T"/out/*.tar.zst; do "$WHARF" publish "$f" --server "$SERVER_URL" --token "$CI" >/dev/null; done
assign() { "$WHARF" assign fec01 "$@" --server "$SERVER_URL" --token "$OP" >/dev/null; }
assign app@1 other@1 tool@1 conf@1 site@1

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
RUN_PID=""
start_agent() {  # start_agent [--stop-services]
  "$WHARF_AGENT" run --root "$R" --interval 1 --heartbeat 1 "$@" >>"$T/run.out" 2>>"$T/run.err" &
  RUN_PID=$!
}
stop_agent() {  # stop_agent [SIGNAL]: the launcher, and the delegate it takes with it
  local delegate
  delegate=$(pgrep -P "$RUN_PID" || true)
  kill "-${1:-TERM}" "$RUN_PID" 2>/dev/null || true
  wait "$RUN_PID" 2>/dev/null || true
  for pid in $delegate; do
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  done
  RUN_PID=""
}
# The first agent leaves the services running when it ends (the second one adopts them);
# the second stops them when it ends. Either way lib.sh's cleanup ends what is left.
trap '[ -n "$RUN_PID" ] && stop_agent; cleanup' EXIT
start_agent

field() { service_field "$R" "$@"; }
RUN_ERR=$T/run.err
running() { [ "$(field "$1" state)" = running ]; }
# wait_long SECONDS DESCRIPTION COMMAND...: like wait_for, for waits past a hold-off.
wait_long() {
  local limit=$1 what=$2; shift 2
  local end=$((SECONDS + limit))
  while [ $SECONDS -lt $end ]; do "$@" && return 0; sleep 0.1; done
  cat "$RUN_ERR" >&2
  fail "timed out after $limit s: $what"
}
logs() { "$WHARF_AGENT" logs "$1" --root "$R"; }
pids() { echo "$(field reader pid) $(field bystander pid) $(field picky pid)"; }
generation_is() { [ "$(agent_generation "$R")" = "$1" ]; }

wait_for "three services running" eval 'running reader && running bystander && running picky'
wait_for "reader logged" eval 'logs reader | grep -q "reader sees app=conf-1"'
logs picky | grep -q "picky sees app=conf-1 site=site-1" || fail "picky: $(logs picky)"
[ "$(field reader configuration)" = "['conf@1']" ] || fail "reader's configuration: $(field reader configuration)"
[ "$(field picky configuration)" = "['site@1']" ] || fail "picky declares site only: $(field picky configuration)"
[ "$(field bystander configuration)" = "[]" ] || fail "bystander reads none: $(field bystander configuration)"
"$WHARF_AGENT" list --root "$R" -v >"$T/list"
grep -A1 '^reader ' "$T/list" | grep -qx '    configuration conf@1' || fail "list -v: $(cat "$T/list")"
grep -A1 '^bystander ' "$T/list" | grep -q 'configuration' && fail "bystander shows a configuration: $(cat "$T/list")"
pass "reader reads conf@1 by default (matches app), picky only the declared site@1, bystander none; list -v and --json say so"
read -r R1 B1 P1 <<<"$(pids)"

# --- conf@2 only: reader restarts after its hold-off; bystander and picky keep their PIDs ---
started_at() { date -d "$(field reader started)" +%s; }
R1_START=$(started_at)
assign conf@2
# Until its hold-off has passed, reader runs on conf@1 and list -v says it is behind.
shows_old() {
  "$WHARF_AGENT" list --root "$R" -v >"$T/list"
  grep -A1 '^reader ' "$T/list" | grep -qx '    configuration conf@1 (OLD: the active generation has conf@2)'
}
wait_long 20 "list -v shows reader on the old conf@1" shows_old
[ "$(field reader pid)" = "$R1" ] || fail "reader changed while list -v said OLD"
wait_long $((HOLDOFF + 10)) "reader restarted on conf@2" eval '[ "$(field reader pid)" != "$R1" ] && running reader'
RESTART_AFTER=$(($(started_at) - R1_START))
[ "$RESTART_AFTER" -ge $((HOLDOFF - 1)) ] || fail "reader restarted $RESTART_AFTER s after its start, hold-off is $HOLDOFF s"
grep -q "restarting reader (app@1) in [0-9]* s, after its hold-off" "$RUN_ERR" || fail "the agent says it waits: $(cat "$RUN_ERR")"
wait_for "reader logs conf-2" eval 'logs reader | grep -q "reader sees app=conf-2"'
[ "$(field bystander pid)" = "$B1" ] || fail "bystander restarted for conf@2"
[ "$(field picky pid)" = "$P1" ] || fail "picky restarted for conf@2 (it reads site only)"
[ "$(field reader configuration)" = "['conf@2']" ] || fail "reader's configuration now: $(field reader configuration)"
"$WHARF_AGENT" list --root "$R" -v >"$T/list"
grep -A1 '^reader ' "$T/list" | grep -qx '    configuration conf@2' || fail "list -v after the restart: $(cat "$T/list")"
pass "conf@2 restarts reader only (new PID, sees conf-2; ${RESTART_AFTER} s after its start, hold-off ${HOLDOFF} s); bystander and picky keep theirs"

# --- the declared configuration: site@2 restarts picky only ---
read -r R2 B1b P1b <<<"$(pids)"
assign site@2
wait_for "picky restarted on site@2" eval '[ "$(field picky pid)" != "$P1" ] && running picky'
wait_for "picky logs site-2" eval 'logs picky | grep -q "picky sees app=conf-2 site=site-2"'
[ "$(field reader pid)" = "$R2" ] && [ "$(field bystander pid)" = "$B1" ] \
  || fail "site@2 restarted another service: $(pids) (was $R2 $B1)"
[ "$(field picky configuration)" = "['site@2']" ] || fail "picky's configuration: $(field picky configuration)"
pass "configuration = [\"site\"]: site@2 restarts picky only"

# --- generations that change nothing a service reads restart nothing ---
read -r R3 B3 P3 <<<"$(pids)"
before=$(agent_generation "$R")
"$WHARF" refresh fec01 --store "$STORE" --key "$(state_dir "$STORE")/signing.key" >/dev/null
wait_long 20 "the agent runs the refreshed generation" eval '[ "$(agent_generation "$R")" -gt "$before" ]'
assign misc@1
wait_long 20 "misc installed" eval '[ -e "$R/etc/misc/settings" ]'
sleep 2
[ "$(pids)" = "$R3 $B3 $P3" ] || fail "a generation that changes nothing read restarted a service: $(pids) (was $R3 $B3 $P3)"
pass "a re-signed generation and a configuration nobody reads restart nothing"

# --- an agent restart adopts them all: the fingerprints are stable ---
stop_agent KILL
start_agent --stop-services
wait_long 20 "the new agent adopted the services" eval 'grep -q "adopted reader" "$RUN_ERR"'
sleep 3
[ "$(pids)" = "$R3 $B3 $P3" ] || fail "a new agent restarted services: $(pids) (was $R3 $B3 $P3)"
pass "a new agent adopts all three without a restart"

# --- a per-FEC override of the list: bystander reads site from now on ---
MT=$(make_token mt maintainer "" "$STORE")
"$WHARF" service set fec01 bystander configuration=site --server "$SERVER_URL" --token "$MT" >/dev/null
wait_for "bystander restarted for its definition" eval '[ "$(field bystander pid)" != "$B3" ] && running bystander'
[ "$(field bystander configuration)" = "['site@2']" ] || fail "bystander after the override: $(field bystander configuration)"
B4=$(field bystander pid); P4=$(field picky pid)
[ "$(field reader pid)" = "$R3" ] || fail "the override of bystander restarted reader"
assign site@1
wait_for "bystander and picky restarted on site@1" eval \
  '[ "$(field bystander pid)" != "$B4" ] && [ "$(field picky pid)" != "$P4" ] && running bystander && running picky'
[ "$(field reader pid)" = "$R3" ] || fail "site@1 restarted reader"
pass "wharf service set bystander configuration=site: it then restarts with site (and reader does not)"

LAST=$(pids)
stop_agent TERM
for pid in $LAST; do [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && fail "service $pid still runs"; done
pass "--stop-services: nothing left running"
echo "confrestart: all checks passed"
