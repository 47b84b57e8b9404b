#!/usr/bin/env bash
# wharf gc: keeps the newest N versions of each package and every version a FEC's
# generations within the retention (its last 3 releases) name; --dry-run removes nothing; through the server (admin only);
# and gc running while FECs sync never breaks a sync.
source "$(dirname "$0")/lib.sh"

cd "$T"
"$WHARF" keygen --out k >/dev/null
mkdir -p out
for v in 1 2 3 4 5 6; do
  mkdir -p src/$v/bin && printf '#!/bin/sh\necho demo %s\n' $v >src/$v/bin/demo && chmod 755 src/$v/bin/demo
  "$WHARF" pack src/$v --name demo --version $v --prefix /opt/demo -o out >/dev/null
  "$WHARF" publish out/demo-$v.tar.zst --store store 2>"$T/publish.err" >/dev/null
done
grep -q "demo has 6 versions; \`wharf gc\` keeps the newest 3" "$T/publish.err" || fail "publish warns past 3 versions: $(cat "$T/publish.err")"
ch() { "$WHARF" "$@" --store store --key k.key >/dev/null; }
# fec01: 1, 3, 6, 5, then a rollback (to 6): its last 3 releases (different releases,
# back from the current generation) name 6, 5 and 3; 1 is a fourth.
ch assign fec01 demo@1; ch assign fec01 demo@3; ch assign fec01 demo@6; ch assign fec01 demo@5; ch rollback fec01
# fec02 runs an old version: 2.
ch assign fec02 demo@2
versions() { ls store/software/demo | tr '\n' ' '; }
[ "$(versions)" = "1 2 3 4 5 6 " ] || fail "setup: $(versions)"

expect_exit 0 "$WHARF" gc --store store --dry-run --json
python3 - "$T/stdout" <<'PY' || fail "dry run plan: $(cat "$T/stdout")"
import json, sys
r = json.load(open(sys.argv[1]))
assert sorted(v["version"] for v in r["removed"]) == ["1"], r
assert sorted(v["version"] for v in r["kept_assigned"]) == ["2", "3"], r
assert r["dry_run"] and r["freed_bytes"] > 0, r
PY
[ "$(versions)" = "1 2 3 4 5 6 " ] || fail "--dry-run removed something: $(versions)"
pass "gc --dry-run plans to remove 1 (2 is fec02's, 3 within fec01's retention, 4-6 the newest 3), removes nothing"

expect_exit 0 "$WHARF" gc --store store
grep -q "^removed demo@1 " "$T/stdout" && ! grep -q "^removed demo@3 " "$T/stdout" || fail "gc output: $(cat "$T/stdout")"
grep -q "^kept demo@2: a FEC" "$T/stdout" || fail "gc says why 2 stays"
[ "$(versions)" = "2 3 4 5 6 " ] || fail "after gc: $(versions)"
[ -z "$(ls -A store/software/demo | grep '^\.')" ] || fail "gc left hidden folders"
expect_exit 0 "$WHARF" gc --store store --json
python3 -c "import json,sys; r=json.load(open(sys.argv[1])); assert r['removed']==[], r" "$T/stdout" || fail "a second gc removes nothing"
for f in fec01 fec02; do
  expect_exit 0 "$WHARF_AGENT" sync --root "$T/$f" --store "file://$T/store" --fec $f --trust k.pub
done
pass "gc removes exactly demo@1; both FECs still sync; a second gc removes nothing"

# through the server: admin only
start_server "$T/store" --key "$T/k.key"
ADMIN=$(make_token admin admin "" "$T/store")
OP=$(make_token op operator "" "$T/store")
expect_refused "lacks the right to administer" "$WHARF" gc --server "$SERVER_URL" --token "$OP"
expect_exit 0 "$WHARF" gc --server "$SERVER_URL" --token "$ADMIN" --keep 1 --dry-run
grep -q "would remove demo@4" "$T/stdout" || fail "gc --keep 1 over the API: $(cat "$T/stdout")"
[ "$(versions)" = "2 3 4 5 6 " ] || fail "dry run over the API removed something"
stop_server
pass "gc through the server: operators refused, admins served"

# gc while FECs sync: each round publishes and assigns a new version, starts a sync and a gc
# that keeps only 1 version at once; every sync must succeed.
for v in 7 8 9 10 11; do
  mkdir -p src/$v/bin && head -c 3000000 /dev/urandom >src/$v/bin/blob && echo $v >src/$v/bin/v
  "$WHARF" pack src/$v --name demo --version $v --prefix /opt/demo -o out >/dev/null
  "$WHARF" publish out/demo-$v.tar.zst --store store >/dev/null 2>&1
  ch assign fec03 demo@$v
  "$WHARF_AGENT" sync --root "$T/fec03" --store "file://$T/store" --fec fec03 --trust k.pub >"$T/sync.out" 2>&1 &
  sync_pid=$!
  "$WHARF" gc --store store --keep 1 >/dev/null
  wait $sync_pid || { cat "$T/sync.out" >&2; fail "a sync broke while gc ran (round $v)"; }
  [ "$(cat "$T/fec03/opt/demo/bin/v")" = "$v" ] || fail "fec03 runs $v"
done
pass "5 rounds of gc --keep 1 while a FEC syncs a new version: every sync succeeds"
echo "gc: all checks passed"
