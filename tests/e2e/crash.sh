#!/usr/bin/env bash
# Crash safety: the agent is killed with SIGKILL at every named step of a sync from v1 to
# v2 (packages changed whole and incrementally, added and dropped; old ones collected). Each time the FEC must run
# the old or the new generation, every file right, and the next sync must complete.
# Acceptance 4 of the foundation issue.
source "$(dirname "$0")/lib.sh"

cd "$T"
"$WHARF" keygen --out release >/dev/null
pack() { "$WHARF" pack "$1" --name "$2" --version "$3" --prefix "$4" -o out >/dev/null; }
make_tree a1 1; make_tree a2 2; make_tree b1 2; make_tree c2 1; make_tree d1 2
for t in a1 a2 b1 c2 d1; do echo "$t" >>$t/lib/libdemo.so; done  # no two trees share their big file
cp -a b1 b2; echo "# patched" >>b2/db/demo.db  # lib: an incremental update
pack a1 app 1 /opt/app;   pack a2 app 2 /opt/app
pack b1 lib 1 /opt/lib;   pack b2 lib 2 /opt/lib
pack c2 tool 2 /opt/tool  # new in v2
pack d1 old 1 /opt/old    # dropped in v2
"$WHARF" publish out/*.tar.zst --store store >/dev/null
"$WHARF" assign fec app@1 lib@1 old@1 --store store --key release.key >/dev/null
URL="file://$T/store"
sync() { "$WHARF_AGENT" sync --root "$1" --store "$URL" --fec fec --trust release.pub --keep 1; }
sync base >/dev/null 2>&1 || fail "first sync"
"$WHARF" assign fec app@2 lib@2 tool@2 --store store --key release.key >/dev/null
"$WHARF" unassign fec old --store store --key release.key >/dev/null

check_whole() {  # ROOT: runs generation 1 or 3 with every file right
  local root=$1 gen
  gen=$(agent_generation "$root")
  case "$gen" in
    1) same_tree "$root/opt/app" a1; same_tree "$root/opt/lib" b1; same_tree "$root/opt/old" d1
       [ ! -e "$root/opt/tool" ] || fail "tool present on generation 1" ;;
    3) same_tree "$root/opt/app" a2; same_tree "$root/opt/lib" b2; same_tree "$root/opt/tool" c2
       [ ! -e "$root/opt/old" ] || fail "old still linked on generation 3" ;;
    *) fail "$root runs generation '$gen', neither the old (1) nor the new (3)" ;;
  esac
  echo "$gen"
}

# Every abort point a sync from the base state passes through.
cp -a base trace
WHARF_TEST_TRACE_POINTS=1 sync trace >/dev/null 2>trace.err || { cat trace.err >&2; fail "traced sync"; }
mapfile -t points < <(sed -n 's/^abort-point: //p' trace.err | awk '!seen[$0]++')
[ "${#points[@]}" -ge 20 ] || fail "only ${#points[@]} abort points: ${points[*]}"

for point in "${points[@]}"; do
  remove_tree fec && cp -a base fec
  code=0
  WHARF_TEST_ABORT_AT="$point" sync fec >/dev/null 2>&1 || code=$?
  [ "$code" -eq 137 ] || fail "agent was not killed at $point (exit $code)"
  gen=$(check_whole fec)
  sync fec >/dev/null 2>"$T/stderr" || { cat "$T/stderr" >&2; fail "sync after a kill at $point"; }
  [ "$(check_whole fec)" = 3 ] || fail "sync after a kill at $point did not reach generation 3"
  leftovers=$("$WHARF_AGENT" status --root fec --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["half_done"]))')
  [ "$leftovers" = 0 ] || fail "leftovers after recovery from $point"
  pass "killed at $point: on generation $gen, whole; next sync completes"
done
echo "e2e crash: ${#points[@]} kill points, all passed"

# Cuts at random moments too (inside unpacking, between fsyncs): the same guarantees.
duration=$(python3 - "$WHARF_AGENT" "$URL" <<'PY'
import shutil, subprocess, sys, time
shutil.copytree("base", "timing", symlinks=True)
t = time.monotonic()
subprocess.run([sys.argv[1], "sync", "--root", "timing", "--store", sys.argv[2], "--fec", "fec",
                "--trust", "release.pub", "--keep", "1"], check=True, capture_output=True)
print(time.monotonic() - t)
PY
)
for i in $(seq 12); do
  remove_tree fec && cp -a base fec
  delay=$(python3 -c "print(f\"{$duration * $i / 13:.3f}\")")
  # The binary itself in the background (not the shell function), so the kill reaches it.
  "$WHARF_AGENT" sync --root fec --store "$URL" --fec fec --trust release.pub --keep 1 >/dev/null 2>&1 &
  pid=$!
  sleep "$delay"
  kill -KILL $pid 2>/dev/null || true
  wait $pid 2>/dev/null || true
  gen=$(check_whole fec)
  sync fec >/dev/null 2>"$T/stderr" || { cat "$T/stderr" >&2; fail "sync after a kill at ${delay}s"; }
  [ "$(check_whole fec)" = 3 ] || fail "sync after a kill at ${delay}s did not reach generation 3"
  pass "killed after ${delay}s: on generation $gen, whole; next sync completes"
done
echo "e2e crash: random cuts passed"
