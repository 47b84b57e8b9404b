#!/usr/bin/env bash
# Issue 13, class 5: a hostile store or mirror (it holds no key) serves inputs the agent
# reads before it can verify them: a huge, deeply nested or many-entry deltas.json (not
# signed: see docs/agent.md), a package.json.zst that decodes to a gigabyte, a huge
# generation.json and signature. Each costs the agent nothing but a failed optimisation
# (deltas: frames are fetched instead) or a refused sync (the active generation stays);
# its peak RSS stays near a normal sync's.
source "$(dirname "$0")/lib.sh"

cd "$T"
make_tree src1 1
make_tree src2 2
"$WHARF" keygen --out release >/dev/null
for v in 1.0 2.0; do
  "$WHARF" pack "${SMALL_FRAMES[@]}" src${v%%.*} --name demo --version $v --prefix /opt/demo -o out >/dev/null
  "$WHARF" publish out/demo-$v.tar.zst --store store >/dev/null
done
"$WHARF" assign fec01 demo@1.0 --store store --key release.key >/dev/null
start_nginx "$T/store"
V2=store/software/demo/2.0
[ -f $V2/deltas.json ] || fail "publish wrote deltas.json for 2.0"

# sync ROOT: a sync measured; PEAK_KB is its peak RSS.
sync() {
  local got=0
  /usr/bin/time -f '%M' -o "$T/rss" "$WHARF_AGENT" sync --root "$1" --store "$STORE_URL" --fec fec01 \
    --trust "$T/release.pub" >"$T/stdout" 2>"$T/stderr" || got=$?
  PEAK_KB=$(tail -1 "$T/rss")
  return $got
}
sync "$T/v1" || fail "the first sync: $(cat "$T/stderr")"
same_tree v1/opt/demo src1
"$WHARF" assign fec01 demo@2.0 --store store --key release.key >/dev/null
cp -a "$T/v1" "$T/normal"
sync "$T/normal" || fail "a normal sync to 2.0: $(cat "$T/stderr")"
same_tree normal/opt/demo src2
NORMAL_KB=$PEAK_KB
LIMIT_KB=$((NORMAL_KB + 12 * 1024))
echo "# normal sync 1.0 -> 2.0: peak RSS ${NORMAL_KB} kB; a hostile input may add at most 12 MiB"
pass "setup: a normal incremental sync to 2.0 peaks at ${NORMAL_KB} kB"

cp $V2/deltas.json "$T/deltas.good"
hostile_deltas() {  # NAME: writes the hostile deltas.json
  python3 - "$1" $V2/deltas.json <<'PY'
import json, sys
name, out = sys.argv[1], sys.argv[2]
sha = "a" * 64
entry = {"path": "opt/demo/x", "base_sha256": sha, "target_sha256": sha, "file": "deltas/0.zst", "size": 1, "sha256": sha}
with open(out, "w") as f:
    if name == "huge": f.write('{"deltas": [' + " " * (40 << 20) + "]}")
    elif name == "deep": f.write('{"deltas": [' + "[" * (15 << 20) + "]" * (15 << 20) + "]}")
    elif name == "empty-entries": f.write('{"deltas": [' + ",".join(["{}"] * (5 << 20)) + "]}")
    elif name == "many-entries":
        line = json.dumps(entry)
        f.write('{"deltas": [' + ",".join([line] * ((15 << 20) // len(line))) + "]}")
    elif name == "long-string": f.write('{"deltas": [{"path": "' + "x" * (15 << 20) + '"}]}')
    elif name == "huge-size": f.write(json.dumps({"deltas": [dict(entry, path="package.json", size=1 << 40)]}))
PY
}
for name in huge deep empty-entries many-entries long-string huge-size; do
  hostile_deltas $name
  rm -rf "$T/h" && cp -a "$T/v1" "$T/h"
  sync "$T/h" || fail "deltas.json $name: the sync falls back to frames: $(cat "$T/stderr")"
  same_tree h/opt/demo src2
  [ "$PEAK_KB" -le "$LIMIT_KB" ] || fail "deltas.json $name: peak RSS $PEAK_KB kB, normal $NORMAL_KB kB"
  echo "# hostile deltas.json ($name): peak RSS ${PEAK_KB} kB"
done
cp "$T/deltas.good" $V2/deltas.json
pass "a huge, deep, many-entry or lying deltas.json only costs the optimisation: 2.0 installed from frames, memory bounded"

# package.json.zst: a zstd bomb (1 GiB of zeros, its size in the frame header, and one
# without a size), and one far bigger than the signed package.json. package.json is fetched.
cp $V2/package.json.zst "$T/zst.good"
for bomb in sized unsized big; do
  case $bomb in
    sized) head -c 1073741824 /dev/zero | zstd -q -19 --content-size --stream-size=1073741824 -o $V2/package.json.zst -f ;;
    unsized) head -c 1073741824 /dev/zero | zstd -q -19 --no-content-size -c >$V2/package.json.zst ;;
    big) head -c 50000000 /dev/urandom >$V2/package.json.zst ;;
  esac
  rm -rf "$T/h" && cp -a "$T/v1" "$T/h"
  sync "$T/h" || fail "package.json.zst ($bomb): $(cat "$T/stderr")"
  same_tree h/opt/demo src2
  [ "$PEAK_KB" -le "$LIMIT_KB" ] || fail "package.json.zst $bomb: peak RSS $PEAK_KB kB, normal $NORMAL_KB kB"
  echo "# package.json.zst ($bomb): peak RSS ${PEAK_KB} kB"
done
cp "$T/zst.good" $V2/package.json.zst
pass "a package.json.zst bomb is never decoded: package.json is fetched, memory bounded"

# generation.json and its signature, huge or deeply nested: refused, generation 1 stays.
G=store/fecs/fec01
cp -a $G "$T/gen.good"
SIG=$(ls $G/generations/*.json.sig | tail -1)
for what in huge-generation deep-generation wide-generation huge-signature; do
  rm -rf $G && cp -a "$T/gen.good" $G
  case $what in
    huge-generation) head -c 300000000 /dev/zero | tr '\0' ' ' >$G/generation.json ;;
    deep-generation) python3 -c "import sys; sys.stdout.write('[' * (1 << 20))" >$G/generation.json ;;
    wide-generation) python3 -c "import sys; sys.stdout.write('{\"a\": [' + '[],' * 300000 + '[]]}')" >$G/generation.json ;;
    huge-signature) head -c 300000000 /dev/urandom >"$SIG" ;;
  esac
  rm -rf "$T/h" && cp -a "$T/v1" "$T/h"
  sync "$T/h" && fail "$what: the sync is refused"
  [ "$(agent_generation h)" = 1 ] || fail "$what: generation 1 stays active"
  same_tree h/opt/demo src1
  [ "$PEAK_KB" -le "$LIMIT_KB" ] || fail "$what: peak RSS $PEAK_KB kB, normal $NORMAL_KB kB"
  echo "# $what: peak RSS ${PEAK_KB} kB; $(tail -1 "$T/stderr")"
done
rm -rf $G && cp -a "$T/gen.good" $G
pass "a huge or nested generation.json or signature is refused early; generation 1 stays, memory bounded"
