#!/usr/bin/env bash
# Local rollback and the parent hash chain (docs/agent.md, "Local rollback", "The hash
# chain"), with real processes:
# 1. Under a running `wharf-agent run`: `wharf-agent rollback` goes back to the kept
#    generation without any store; the changed service restarts (new PID), the other does
#    not; heartbeats say "local rollback to 1 (from 2)"; later syncs do not undo it; `status`
#    shows it; a kept generation that is not there is refused with the kept ones listed.
# 2. A newer signed generation from the store supersedes it (the heartbeat stops saying it).
# 3. A correctly signed generation with a wrong parent hash is refused, also when it sits
#    between the FEC's generation and the store's, and so is a store lacking a link;
#    skipped numbers and a store rollback are accepted.
# 4. A kept generation that expired is rolled back to; the store's generation it left is
#    not taken again; a kept generation whose bytes were altered is refused.
# 5. A kill at each of the rollback's abort points leaves the old or the new generation,
#    whole, and the rollback done again completes.
source "$(dirname "$0")/lib.sh"
FORGE=(python3 "$E2E_DIR/forge.py")

mk_pkg() {  # mk_pkg NAME VERSION SERVICE
  local name=$1 version=$2 service=$3 dir=$T/src/$1-$2
  mkdir -p "$dir/bin"
  printf '#!/bin/sh\necho "%s %s"\nexec sleep 1000\n' "$name" "$version" >"$dir/bin/run"
  chmod 755 "$dir/bin/run"
  printf '[%s]\nholdoff = 1\n' "$service" >"$dir/services.toml"
  "$WHARF" pack "$dir" --name "$name" --version "$version" --prefix "/opt/$name" -o "$T/out" \
    --service "$service=bin/run" >/dev/null
}
mkdir -p "$T/out"
mk_pkg alpha 1 a
mk_pkg alpha 2 a
mk_pkg alpha 3 a
mk_pkg beta 1 b
STORE=$T/store
mkdir -p "$STORE"
"$WHARF" keygen --out "$T/release" >/dev/null
for p in alpha-1 alpha-2 alpha-3 beta-1; do "$WHARF" publish "$T/out/$p.tar.zst" --store "$STORE" >/dev/null; done
assign() { "$WHARF" assign fec01 "$@" --store "$STORE" --key "$T/release.key" >/dev/null; }
assign alpha@1 beta@1
start_nginx "$STORE"

# Heartbeats go to a real `wharf serve`; `wharf status` shows what it heard.
start_server "$STORE"
ADMIN=$(make_token admin admin "" "$STORE")
AGENT_TOKEN=$(make_token fec01 agent fec01 "$STORE")
trap 'kill ${RUN_PID:-} 2>/dev/null || true; cleanup' EXIT
# server_says: "<running generation> <error line>" of fec01 in `wharf status --json`.
server_says() {
  "$WHARF" status fec01 --json --server "$SERVER_URL" --token "$ADMIN" |
    python3 -c 'import json,sys; s=json.load(sys.stdin)["status"]; print(s["running"], s["last_error"] or "")'
}

R=$T/fec01
mkdir -p "$R/etc/wharf"
cat >"$R/etc/wharf/agent.toml" <<EOF
fec = "fec01"
store = "$STORE_URL"
trust = ["/etc/wharf/release.pub"]
server = "$SERVER_URL"
EOF
cp "$T/release.pub" "$R/etc/wharf/release.pub"
RUN_ERR=$T/run.err
field() { service_field "$R" "$@"; }
running() { [ "$(field "$1" state)" = running ]; }
gen() { agent_generation "$R"; }
status_field() {  # status_field KEY: a top-level field of `status --json`
  "$WHARF_AGENT" status --root "$R" --json | python3 -c "import json,sys; v=json.load(sys.stdin)['$1']; print('' if v is None else v)"
}
alpha_runs() { grep -q "alpha $1" "$R/opt/alpha/bin/run"; }
sync() { "$WHARF_AGENT" sync --root "$R" --token "$AGENT_TOKEN"; }
rollback() { "$WHARF_AGENT" rollback --root "$R" --token "$AGENT_TOKEN" "$@"; }

expect_exit 0 sync
assign alpha@2
"$WHARF_AGENT" run --root "$R" --interval 1 --heartbeat 1 --token "$AGENT_TOKEN" >>"$T/run.out" 2>>"$RUN_ERR" &
RUN_PID=$!
wait_for "generation 2 applied, a and b running" eval '[ "$(gen)" = 2 ] && running a && running b'
wait_for "a runs alpha 2" eval 'alpha_runs 2 && [ "$(field a pid)" != "" ]'
sleep 2  # a restarted on generation 2 by now
A_PID=$(field a pid)
B_PID=$(field b pid)

# --- 1. rollback under a running agent ---
expect_refused "no kept generation 7; kept: 1, 2" rollback --to 7
expect_exit 0 rollback
grep -q "generation 2 -> 1 (local rollback" "$T/stdout" || fail "rollback said: $(cat "$T/stdout")"
[ "$(gen)" = 1 ] && alpha_runs 1 || fail "the rollback did not activate generation 1"
[ "$(status_field local_rollback)" = "local rollback to 1 (from 2)" ] || fail "status --json: $(status_field local_rollback)"
"$WHARF_AGENT" status --root "$R" | grep -q "^local rollback to 1 (from 2)" || fail "status does not show the rollback"
wait_for "a restarted on generation 1" eval '[ "$(field a pid)" != "$A_PID" ] && running a'
wait_for "the server showing the local rollback" eval '[ "$(server_says)" = "1 local rollback to 1 (from 2)" ]'
sleep 3  # three syncs of the running agent: the store's generation 2 does not undo the rollback
[ "$(gen)" = 1 ] || fail "a sync undid the local rollback (generation $(gen))"
[ "$(field b pid)" = "$B_PID" ] || fail "b was restarted though its package did not change"
[ "$(server_says)" = "1 local rollback to 1 (from 2)" ] || fail "the server shows: $(server_says)"
expect_refused "no kept generation older than the active 1; kept: 1, 2" rollback
pass "rollback 2 -> 1 under run: a restarted, b kept PID $B_PID; heartbeats and status say it; syncs keep it"

# Forward again and back: --to the floor ends the local rollback.
expect_exit 0 rollback --to 2
[ "$(gen)" = 2 ] && [ "$(status_field local_rollback)" = "" ] || fail "rollback --to 2 did not end the local rollback"
expect_exit 0 rollback --to 2
grep -q "generation 2 is already active; nothing to do" "$T/stdout" || fail "rollback to the active one: $(cat "$T/stdout")"
expect_exit 0 rollback
[ "$(gen)" = 1 ] || fail "a second rollback did not go back to 1"

# --- 2. a newer signed generation supersedes it ---
assign alpha@3
wait_for "generation 3 applied by run" eval '[ "$(gen)" = 3 ] && alpha_runs 3'
[ "$(status_field local_rollback)" = "" ] || fail "generation 3 did not end the local rollback"
wait_for "the server showing generation 3 without the rollback" eval '[ "$(server_says)" = "3 " ]'
pass "the store's generation 3 supersedes the local rollback"
kill -TERM "$RUN_PID"; wait "$RUN_PID" 2>/dev/null || true
RUN_PID=""

# --- 3. the hash chain ---
ZERO=$(printf '0%.0s' $(seq 64))
cp -a "$STORE/fecs/fec01" "$T/saved-fec01"
restore_store() { rm -rf "$STORE/fecs/fec01" && cp -a "$T/saved-fec01" "$STORE/fecs/fec01"; }
"${FORGE[@]}" sign-generation --store "$STORE" --fec fec01 --key "$T/release.key" --package alpha@1 --package beta@1 \
  --parent "$ZERO" >/dev/null
expect_refused "generation 4 does not descend from generation 3, the newest this FEC applied: the parent hash of generation 4 names other bytes than the generation applied here" sync
[ "$(gen)" = 3 ] && alpha_runs 3 || fail "a forged parent changed the active generation"
# The forged link below a genuine one: the walk finds it.
assign alpha@2
expect_refused "generation 5 does not descend from generation 3.*parent hash of generation 4" sync
[ "$(gen)" = 3 ] || fail "a forged link in the chain changed the active generation"
restore_store
# Skipped numbers and a store rollback are links like any other.
assign alpha@2
"$WHARF" rollback fec01 --store "$STORE" --key "$T/release.key" >/dev/null
mv "$STORE/fecs/fec01/generations/4.json" "$T/4.json"
expect_refused "the store lacks generation 4 .*which links generation 5 to generation 3" sync
[ "$(gen)" = 3 ] || fail "a store lacking a link changed the active generation"
mv "$T/4.json" "$STORE/fecs/fec01/generations/4.json"
expect_exit 0 sync
[ "$(gen)" = 5 ] || fail "generation 5 (two numbers on, a store rollback) was not applied"
pass "a correctly signed generation with a wrong parent is refused, directly and two links down; skips and store rollbacks pass"

# --- 4. expiry does not stop a local rollback; tampering does ---
"${FORGE[@]}" sign-generation --store "$STORE" --fec fec01 --key "$T/release.key" --package alpha@1 --package beta@1 \
  --expires-in 2 >/dev/null
expect_exit 0 sync
[ "$(gen)" = 6 ] || fail "generation 6 was not applied"
sleep 3
assign alpha@2
expect_exit 0 sync
[ "$(gen)" = 7 ] || fail "generation 7 was not applied"
expect_exit 0 rollback
[ "$(gen)" = 6 ] && alpha_runs 1 || fail "the rollback to expired generation 6 was refused"
expect_exit 0 sync
[ "$(gen)" = 6 ] || fail "a sync took generation 7 again"
grep -q "local rollback to 6 (from 7) holds" "$T/stdout" || fail "sync said: $(cat "$T/stdout")"
cp "$R/var/lib/wharf/profiles/5/.generation.json" "$T/gen5.json"
sed -i 's/"alpha"/"alphb"/' "$R/var/lib/wharf/profiles/5/.generation.json"
expect_refused "kept generation 5.*signature" rollback --to 5
[ "$(gen)" = 6 ] || fail "an altered kept generation changed the active one"
cp "$T/gen5.json" "$R/var/lib/wharf/profiles/5/.generation.json"
expect_exit 0 rollback --to 5 --dry-run --json
python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); assert (j["from"], j["to"], j["changed"], j["dry_run"], j["kept"]) == (6, 5, True, True, [5, 6, 7]), j' \
  "$T/stdout" || fail "rollback --dry-run --json: $(cat "$T/stdout")"
[ "$(gen)" = 6 ] || fail "a dry run changed the active generation"
pass "an expired kept generation is rolled back to and kept; an altered one is refused"

# --- 5. a kill at each abort point of a rollback ---
check_whole() {  # the active generation's alpha is the one linked at /opt/alpha
  local v
  v=$("$WHARF_AGENT" status --root "$R" --json |
      python3 -c 'import json,sys; print([p["version"] for p in json.load(sys.stdin)["packages"] if p["name"]=="alpha"][0])')
  alpha_runs "$v" || fail "$1: generation $(gen) names alpha@$v but /opt/alpha holds $(sed -n 2p "$R/opt/alpha/bin/run")"
}
WHARF_TEST_TRACE_POINTS=1 "$WHARF_AGENT" rollback --root "$R" --to 5 >/dev/null 2>"$T/points" || fail "traced rollback failed"
expect_exit 0 rollback --to 6
mapfile -t POINTS < <(sed -n 's/^abort-point: //p' "$T/points" | sort -u)
[ "${#POINTS[@]}" -ge 3 ] || fail "too few abort points: ${POINTS[*]}"
for point in "${POINTS[@]}"; do
  expect_exit 137 env WHARF_TEST_ABORT_AT="$point" "$WHARF_AGENT" rollback --root "$R" --to 5
  g=$(gen)
  [ "$g" = 5 ] || [ "$g" = 6 ] || fail "$point: generation $g after the kill"
  check_whole "$point"
  expect_exit 0 rollback --to 5
  [ "$(gen)" = 5 ] && check_whole "$point, done again" || fail "$point: the rollback done again did not complete"
  expect_exit 0 rollback --to 6
done
pass "a kill at each of ${#POINTS[@]} abort points (${POINTS[*]}) leaves a whole generation; done again, it completes"

# A kept generation whose package is gone from the disk is refused, the active one stays.
ALPHA3=$(ls -d "$R"/var/lib/wharf/packages/alpha/3-* | grep -v -e '\.package\.json$' -e '\.stamp$')
mv "$ALPHA3" "$T/alpha3-aside"
expect_refused "kept generation 5 names alpha@3, no longer on disk" rollback --to 5
[ "$(gen)" = 6 ] && check_whole "a package gone" || fail "a kept generation with a package gone changed the active one"
pass "a kept generation whose package is gone is refused"
