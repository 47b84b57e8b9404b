#!/usr/bin/env bash
# Pack, publish and sync a ~200 MB install tree of real ELF files through nginx on loopback,
# and `curl | tar --zstd -x` of the same archive in the same run.
# Usage: bench/sync.sh [SIZE_MB]      (after scripts/test or a build in ./build)
# Prints one line per measure; the numbers go in the issue notes.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
size_mb=${1:-200}
export WHARF=${WHARF:-$top/build/src/cmd/wharf} WHARF_AGENT=${WHARF_AGENT:-$top/build/src/cmd/wharf-agent}
source "$top/tests/e2e/lib.sh"
cd "$T"

# run_measured LABEL CMD...: wall seconds and peak RSS (kB) of CMD, into $wall and $rss.
run_measured() {
  local label=$1; shift
  read -r wall rss < <(python3 - "$@" <<'PY'
import resource, subprocess, sys, time
t = time.monotonic()
subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)
wall = time.monotonic() - t
print(f"{wall:.3f} {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}")
PY
)
}
rate() { python3 -c "print(f'{$1/1e6/$2:.1f}')"; }

# The tree: real shared libraries and programs of this machine, in a deterministic order,
# laid out like an EPICS/FESA install (bin/, lib/, db/ with text configs).
mkdir -p tree/bin tree/lib tree/db
budget=$((size_mb * 1000000)); used=0; n=0
while IFS= read -r f; do
  s=$(stat -c %s "$f"); [ $((used + s)) -gt $budget ] && continue
  case "$f" in *.so*) dest=tree/lib ;; *) dest=tree/bin ;; esac
  cp "$f" "$dest/$(basename "$f").$n" 2>/dev/null || continue
  used=$((used + s)); n=$((n + 1))
  [ $used -ge $((budget - 2000000)) ] && break
done < <(find /usr/lib/x86_64-linux-gnu /usr/bin /usr/libexec -type f -size +4k 2>/dev/null | sort)
for i in $(seq 500); do printf 'record(ai, "BENCH:%d") { field(SCAN, "1 second") }\n' $i >tree/db/r$i.db; done
raw=$(du -sb tree | cut -f1)
echo "tree: $n binaries + 500 configs, $(python3 -c "print(round($raw/1e6,1))") MB"

"$WHARF" keygen --out k >/dev/null
run_measured pack "$WHARF" pack tree --name bench --version 1 --prefix /opt/bench -o out
pack_wall=$wall
archive=out/bench-1.tar.zst
asize=$(stat -c %s $archive)
echo "pack:        $(rate $raw $pack_wall) MB/s ($pack_wall s; archive $(python3 -c "print(round($asize/1e6,1))") MB, ratio $(python3 -c "print(round($raw/$asize,2))"))"
run_measured publish "$WHARF" publish $archive --store store
echo "publish:     $(rate $raw $wall) MB/s ($wall s, every frame and file checked)"
"$WHARF" assign fec bench@1 --store store --key k.key >/dev/null
start_nginx "$T/store"
run_measured sync "$WHARF_AGENT" sync --root fec --store "$STORE_URL" --fec fec --trust k.pub
sync_wall=$wall
echo "first sync:  $(rate $raw $sync_wall) MB/s ($sync_wall s; agent peak RSS $((rss / 1024)) MB)"
run_measured noop "$WHARF_AGENT" sync --root fec --store "$STORE_URL" --fec fec --trust k.pub
echo "no-op sync:  $(python3 -c "print(round($wall*1000))") ms (agent peak RSS $((rss / 1024)) MB)"
# A small release: 8 configs edited, 3 binaries rebuilt with small changes (a few bytes
# patched in the middle, as a one-line fix does), one binary added.
cp -a tree tree2
for i in 1 2 3 4 5 6 7 8; do echo "# edited" >>tree2/db/r$i.db; done
for victim in $(find tree2/bin tree2/lib -type f -size +1M | sort | sed -n '1p;5p;9p'); do
  python3 - "$victim" <<'PY'
import sys
p = sys.argv[1]; data = bytearray(open(p, "rb").read())
mid = len(data) // 2; data[mid:mid + 64] = bytes((b + 1) % 256 for b in data[mid:mid + 64])
open(p, "wb").write(bytes(data))
PY
done
cp /usr/bin/zstd tree2/bin/added-tool
"$WHARF" pack tree2 --name bench --version 2 --prefix /opt/bench -o out >/dev/null
run_measured publish2 "$WHARF" publish out/bench-2.tar.zst --store store
echo "publish v2:  $wall s (with deltas against v1: $(ls store/software/bench/2/deltas 2>/dev/null | wc -l) patches, $(du -sb store/software/bench/2/deltas 2>/dev/null | cut -f1) bytes)"
"$WHARF" assign fec bench@2 --store store --key k.key >/dev/null
run_measured update "$WHARF_AGENT" sync --root fec --store "$STORE_URL" --fec fec --trust k.pub --json
"$WHARF_AGENT" status --root fec --json >/dev/null
moved=$(awk '/software\/bench\/2\// {n += $10} END {print n+0}' "$NGINX_LOG")
a2=$(stat -c %s out/bench-2.tar.zst)
echo "update v1->v2: $wall s, $(python3 -c "print(round($moved/1e3,1))") kB on the wire for a $(python3 -c "print(round($a2/1e6,1))") MB archive (agent peak RSS $((rss / 1024)) MB)"
same_tree tree2 fec/opt/bench && echo "result: identical trees after the update"

mkdir plain
run_measured curl bash -c "curl -s $STORE_URL/software/bench/1/bench-1.tar.zst | tar --zstd -x -C plain"
echo "curl | tar --zstd -x: $(rate $raw $wall) MB/s ($wall s, no verification)"
echo "ratio first sync / curl|tar: $(python3 -c "print(round($sync_wall/$wall,2))")x the time"
same_tree plain/opt/bench tree && echo "result: curl|tar gives the same tree"
