#!/usr/bin/env bash
# Versions and generations agree (issue 18, acceptance 6): six versions assigned in turn, gc,
# then `rollback --to` a generation naming a removed version is refused with the fix and
# writes nothing; a FEC wiped and synced on every generation the store offers works;
# `history` marks the generations that cannot be rolled back to; a release prunes by the
# store's retention, reports what it removed and never removes what a FEC runs.
# Also: `history --at` names the dev versions that ran; a FEC's name defaults to its host's.
source "$(dirname "$0")/lib.sh"

cd "$T"
"$WHARF" keygen --out k >/dev/null
mkdir -p out
# pack_version NAME VERSION: bin/NAME prints "NAME VERSION".
pack_version() {
  mkdir -p "src/$1-$2/bin"
  printf '#!/bin/sh\necho %s %s\n' "$1" "$2" >"src/$1-$2/bin/$1" && chmod 755 "src/$1-$2/bin/$1"
  "$WHARF" pack "src/$1-$2" --name "$1" --version "$2" --prefix "/opt/$1" -o out >/dev/null
}
ch() { "$WHARF" "$@" --store store --key k.key >/dev/null; }
versions() { ls "store/software/$1" | tr '\n' ' '; }
# sync_wiped FEC ROOT: a FEC that boots afresh (nothing on disk) syncs the current generation.
sync_wiped() {
  remove_tree "$2"
  "$WHARF_AGENT" sync --root "$2" --store "file://$T/store" --fec "$1" --trust k.pub >"$T/sync.out" 2>&1 \
    || { cat "$T/sync.out" >&2; fail "$1: a wiped FEC does not sync: $(tail -1 "$T/sync.out")"; }
}

# --- six versions, assigned in turn: generations 1..6 name demo@1..6 ---
for v in 1 2 3 4 5 6; do
  pack_version demo $v
  "$WHARF" publish out/demo-$v.tar.zst --store store >/dev/null 2>&1
  ch assign fec01 demo@$v
done
expect_exit 0 "$WHARF" gc --store store --json
python3 - "$T/stdout" <<'PY' || fail "gc: $(cat "$T/stdout")"
import json, sys
r = json.load(open(sys.argv[1]))
assert sorted(v["version"] for v in r["removed"]) == ["1", "2", "3"], r
assert (r["keep"], r["generations"]) == (3, 3), r
PY
[ "$(versions demo)" = "4 5 6 " ] || fail "after gc: $(versions demo)"
pass "gc after six versions assigned in turn keeps 4, 5, 6 (the last 3 releases of fec01)"

# history marks what cannot be rolled back to (store folder and server alike)
expect_exit 0 "$WHARF" history fec01 --store store
grep -q "^     2  created .*  demo@2  (cannot be rolled back to: demo@2 no longer in the store)$" "$T/stdout" \
  || fail "history does not mark generation 2: $(cat "$T/stdout")"
grep -q "^     4  created .*  demo@4$" "$T/stdout" || fail "history marks generation 4: $(cat "$T/stdout")"
expect_exit 0 "$WHARF" history fec01 --store store --json
usable() { python3 -c "import json,sys; print(' '.join(str(g['number']) for g in json.load(open(sys.argv[1]))['generations'] if not g['missing']))" "$1"; }
[ "$(usable "$T/stdout")" = "4 5 6" ] || fail "history --json usable: $(usable "$T/stdout")"
pass "history marks generations 1-3 (versions removed), not 4-6"

# --- rollback to a generation naming a removed version: refused, the fix named, nothing written ---
cp store/fecs/fec01/generation.json before.json
count_before=$(ls store/fecs/fec01/generations | wc -l)
expect_refused "^wharf: error: fec01: generation 2 names demo@2, which this store no longer holds \(removed by gc or republished with other bytes\); republish it, or roll back to a generation within the retention \(\`wharf history fec01\` marks those that cannot be\)$" \
  "$WHARF" rollback fec01 --to 2 --store store --key k.key
cmp -s before.json store/fecs/fec01/generation.json || fail "a refused rollback changed generation.json"
[ "$(ls store/fecs/fec01/generations | wc -l)" = "$count_before" ] || fail "a refused rollback wrote a generation"
# through the server: the same refusal, nothing written
start_server "$T/store" --key "$T/k.key"
OP=$(make_token op operator "" "$T/store")
expect_refused "generation 1 names demo@1, which this store no longer holds.*wharf history fec01" \
  "$WHARF" rollback fec01 --to 1 --server "$SERVER_URL" --token "$OP"
cmp -s before.json store/fecs/fec01/generation.json || fail "a refused rollback over the API changed generation.json"
expect_exit 0 "$WHARF" history fec01 --server "$SERVER_URL" --token "$OP" --json
[ "$(usable "$T/stdout")" = "4 5 6" ] || fail "server history usable: $(usable "$T/stdout")"
stop_server
pass "rollback --to 2 (and 1 over the API) refused with the fix; nothing written"

# --- every generation the store offers: rollback accepts exactly the usable ones, and a wiped
# FEC syncs each of them and runs its version ---
accepted=""
for n in 1 2 3 4 5 6; do
  if "$WHARF" rollback fec01 --to $n --store store --dry-run >/dev/null 2>&1; then accepted="$accepted $n"; fi
done
[ "$accepted" = " 4 5 6" ] || fail "rollback --dry-run accepts:$accepted"
for n in 4 5 6; do
  ch rollback fec01 --to $n
  sync_wiped fec01 "$T/fec01"
  [ "$("$T/fec01/opt/demo/bin/demo")" = "demo $n" ] || fail "after rollback to $n: $("$T/fec01/opt/demo/bin/demo")"
done
# and the generations those rollbacks wrote: every one history calls usable
expect_exit 0 "$WHARF" history fec01 --store store --json
for n in $(usable "$T/stdout"); do
  ch rollback fec01 --to $n
  want=$(python3 -c "import json,sys; print([g['packages'] for g in json.load(open(sys.argv[1]))['generations'] if g['number']==$n][0])" "$T/stdout")
  sync_wiped fec01 "$T/fec01"
  [ "demo@$("$T/fec01/opt/demo/bin/demo" | cut -d' ' -f2)" = "$want" ] || fail "generation $n on a wiped FEC runs $("$T/fec01/opt/demo/bin/demo"), wanted $want"
done
pass "rollback accepts exactly generations 4-6; a wiped FEC syncs every usable generation and runs its version"

# --- pruning on release ---
for v in 1 2 3; do pack_version tool $v; "$WHARF" publish out/tool-$v.tar.zst --store store >/dev/null 2>&1; done
ch assign fec02 tool@1
sync_wiped fec02 "$T/fec02"
expect_exit 0 "$WHARF" retention --store store
grep -q "only \`wharf gc\` (or publish/assign --prune) prunes" "$T/stdout" || fail "retention default: $(cat "$T/stdout")"
pack_version tool 4
expect_exit 0 "$WHARF" publish out/tool-4.tar.zst --store store
grep -q pruned "$T/stdout" && fail "a store not set to prune pruned: $(cat "$T/stdout")"
[ "$(versions tool)" = "1 2 3 4 " ] || fail "tool: $(versions tool)"
expect_exit 0 "$WHARF" retention --store store --prune-on-release true
grep -q "publish and assign prune the released packages" "$T/stdout" || fail "retention set: $(cat "$T/stdout")"
pack_version tool 5
expect_exit 0 "$WHARF" publish out/tool-5.tar.zst --store store
grep -q "^  pruned tool@2 (.*): older than the newest 3, and no FEC's generation within the retention names it$" "$T/stdout" \
  || fail "publish does not report what it pruned: $(cat "$T/stdout")"
grep -q "^  kept tool@1: a FEC's generation within the retention names it$" "$T/stdout" || fail "publish: $(cat "$T/stdout")"
[ "$(versions tool)" = "1 3 4 5 " ] || fail "after publish 5: $(versions tool)"
[ "$(versions demo)" = "4 5 6 " ] || fail "a release of tool pruned demo: $(versions demo)"
sync_wiped fec02 "$T/fec02"
[ "$("$T/fec02/opt/tool/bin/tool")" = "tool 1" ] || fail "fec02 runs $("$T/fec02/opt/tool/bin/tool")"
pass "publish on a store set to prune removes tool@2, keeps tool@1 (fec02 runs it); fec02 still syncs"

pack_version tool 6
expect_exit 0 "$WHARF" publish out/tool-6.tar.zst --store store --no-prune --json
python3 -c "import json,sys; r=json.load(open(sys.argv[1])); assert 'pruned' not in r[0], r" "$T/stdout" || fail "--no-prune pruned"
expect_exit 0 "$WHARF" assign fec02 tool@6 --store store --key k.key --keep 1 --json
python3 - "$T/stdout" <<'PY' || fail "assign --keep 1: $(cat "$T/stdout")"
import json, sys
r = json.load(open(sys.argv[1]))["pruned"]
assert sorted(v["version"] for v in r["removed"]) == ["3", "4", "5"], r
assert [v["version"] for v in r["kept_assigned"]] == ["1"], r
assert r["keep"] == 1 and r["freed_bytes"] > 0, r
PY
[ "$(versions tool)" = "1 6 " ] || fail "after assign --keep 1: $(versions tool)"
pass "assign --keep 1 prunes tool 3-5, keeps 6 (assigned) and 1 (the release before, and what fec02 still runs)"

# through the server: a publisher's release prunes by the store's setting; only an admin picks --keep
# or changes the setting
start_server "$T/store" --key "$T/k.key"
CI=$(make_token ci publisher "" "$T/store")
expect_refused "lacks the right to administer" "$WHARF" retention --keep 1 --server "$SERVER_URL" --token "$CI"
expect_exit 0 "$WHARF" retention --server "$SERVER_URL" --token "$CI" --json
python3 -c "import json,sys; r=json.load(open(sys.argv[1])); assert r=={'keep':3,'generations':3,'prune_on_release':True}, r" "$T/stdout" \
  || fail "retention over the API: $(cat "$T/stdout")"
pack_version tool 7
expect_refused "keep: how many versions a release keeps is the store's retention .*needs an admin token" \
  "$WHARF" publish out/tool-7.tar.zst --server "$SERVER_URL" --token "$CI" --keep 1
expect_exit 0 "$WHARF" publish out/tool-7.tar.zst --server "$SERVER_URL" --token "$CI" --json
python3 -c "import json,sys; r=json.load(open(sys.argv[1]))[0]['pruned']; assert r['removed']==[] and r['keep']==3, r" "$T/stdout" \
  || fail "publish over the API: $(cat "$T/stdout")"
[ "$(versions tool)" = "1 6 7 " ] || fail "over the API: $(versions tool)"
stop_server
pass "publish over the API prunes by the store's retention; --keep and a new setting from a publisher refused"

# --- history --at: dev versions that ran ---
start_server "$T/store" --key "$T/k.key"
OP=$(make_token op2 operator "" "$T/store")
AG=$(make_token fec02 agent fec02 "$T/store")
beat() { "$WHARF_AGENT" sync --root "$T/fec02" --store "file://$T/store" --fec fec02 --trust k.pub \
           --server "$SERVER_URL" --token "$AG" >/dev/null 2>&1 || fail "fec02 sync with heartbeat"; }
beat
mkdir -p devtree/bin && printf '#!/bin/sh\necho tool dev\n' >devtree/bin/tool && chmod 755 devtree/bin/tool
expect_exit 0 "$WHARF" dev-deploy devtree --name tool --prefix /opt/tool --root "$T/fec02"
beat
sleep 2
expect_exit 0 "$WHARF_AGENT" drop-dev tool --root "$T/fec02"
beat
expect_exit 0 "$WHARF" history fec02 --server "$SERVER_URL" --token "$OP" --json
read -r since until < <(python3 -c "import json,sys; d=json.load(open(sys.argv[1]))['dev']; assert len(d)==1 and d[0]['name']=='tool' and d[0]['replaces']=='6', d; print(d[0]['since'], d[0]['until'])" "$T/stdout") \
  || fail "history dev runs: $(cat "$T/stdout")"
expect_exit 0 "$WHARF" history fec02 --at "$since" --server "$SERVER_URL" --token "$OP"
grep -q "^fec02 at $since: running generation 2 since .*: tool@dev$" "$T/stdout" || fail "history --at (dev): $(cat "$T/stdout")"
grep -Eq "^fec02 at $since: dev version tool@dev \(sha256 [0-9a-f]{8}\) in place of tool@6, since $since$" "$T/stdout" \
  || fail "history --at names the dev version: $(cat "$T/stdout")"
expect_exit 0 "$WHARF" history fec02 --at "$until" --server "$SERVER_URL" --token "$OP"
grep -q "^fec02 at $until: running generation 2 since .*: tool@6$" "$T/stdout" || fail "history --at (after): $(cat "$T/stdout")"
grep -q "dev version" "$T/stdout" && fail "history --at after drop-dev: $(cat "$T/stdout")"
stop_server
pass "history --at names tool@dev while it ran (sha256, what it replaced), and tool@6 after drop-dev"

# --- a FEC's name defaults to the host name ---
host=$(hostname -s)
ch assign "$host" tool@7
remove_tree "$T/host"
expect_exit 0 "$WHARF_AGENT" sync --root "$T/host" --store "file://$T/store" --trust k.pub --json
python3 -c "import json,sys; r=json.load(open(sys.argv[1])); assert r['fec']==sys.argv[2], r" "$T/stdout" "$host" \
  || fail "sync without --fec: $(cat "$T/stdout")"
[ "$("$T/host/opt/tool/bin/tool")" = "tool 7" ] || fail "the host-named FEC runs $("$T/host/opt/tool/bin/tool")"
"$WHARF_AGENT" sync --help | grep -q "else the host name" || fail "wharf-agent sync --help does not say the default"
pass "without --fec or agent.toml fec, the agent is the FEC named as its host ($host)"
echo "retention: all checks passed"
