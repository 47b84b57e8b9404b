#!/usr/bin/env bash
# Publishers and agents at once: a release manager re-assigns a FEC over and over while
# its agent syncs in a loop and another publisher publishes. Every sync must succeed (a
# generation is never seen half-written or without its signature), every publish must
# land whole, and the FEC ends on the last generation with every file right.
source "$(dirname "$0")/lib.sh"

cd "$T"
make_tree src1 1
make_tree src2 2
"$WHARF" keygen --out release >/dev/null
"$WHARF" pack src1 --name demo --version 1 --prefix /opt/demo -o out >/dev/null
"$WHARF" pack src2 --name demo --version 2 --prefix /opt/demo -o out >/dev/null
"$WHARF" publish out/demo-1.tar.zst out/demo-2.tar.zst --store store >/dev/null
"$WHARF" assign fec01 demo@1 --store store --key release.key >/dev/null
start_nginx "$T/store"

rounds=25
( for i in $(seq $rounds); do
    "$WHARF" assign fec01 demo@$((i % 2 + 1)) --store store --key release.key >/dev/null || exit 1
  done ) &
assigner=$!
( for i in $(seq 8); do
    make_tree "extra$i" 1; echo "$i" >>"extra$i/db/demo.db"
    "$WHARF" pack "extra$i" --name extra --version "$i" --prefix /opt/extra -o "xout$i" >/dev/null
    "$WHARF" publish "xout$i/extra-$i.tar.zst" --store store >/dev/null || exit 1
  done ) &
publisher=$!
syncs=0
while kill -0 $assigner 2>/dev/null; do
  "$WHARF_AGENT" sync --root fec01 --store "$STORE_URL" --fec fec01 --trust release.pub \
    >/dev/null 2>"$T/stderr" || { cat "$T/stderr" >&2; fail "a sync failed while generations were being written"; }
  syncs=$((syncs + 1))
done
wait $assigner || fail "an assign failed"
wait $publisher || fail "a publish failed"
expect_exit 0 "$WHARF_AGENT" sync --root fec01 --store "$STORE_URL" --fec fec01 --trust release.pub
last=$(python3 -c 'import json; print(json.load(open("store/fecs/fec01/generation.json"))["number"])')
[ "$last" = $((rounds + 1)) ] || fail "generation $last after $rounds assigns, wanted $((rounds + 1))"
[ "$(agent_generation fec01)" = "$last" ] || fail "the FEC is not on the last generation"
same_tree fec01/opt/demo src$((rounds % 2 + 1))
for i in $(seq 8); do
  "$WHARF" publish "xout$i/extra-$i.tar.zst" --store store | grep -q "already published" || fail "extra $i missing"
done
[ -z "$(find store -name '.*tmp-*')" ] || fail "temporaries left in the store"
pass "$syncs syncs during $rounds assigns and 8 publishes: all succeeded, nothing half-written"
