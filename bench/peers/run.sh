#!/usr/bin/env bash
# wharf against its peers in one run on this machine, every server on loopback:
# full deploy of v1 and update v1->v2 of a ~SIZE_MB MB install tree of real ELF files, for
# wharf (nginx), curl | tar --zstd -x (nginx), rsync -az (daemon), OSTree (archive repo over
# nginx, with and without static deltas) and casync (HTTP chunk store, v1 tree as seed).
# Usage: SIZE_MB=200 bench/peers/run.sh          (quick: SIZE_MB=30)
#   env: METHODS=wharf,curl,rsync,ostree,casync  RTT_MS=0.5  KEEP=1 (keep the scratch folder)
#        OSTREE_EMPTY_DELTA=0 (no from-scratch static delta for OSTree's full deploy)
# Needs (Debian 12): nginx curl zstd tar rsync ostree casync python3; root or a user that
# may run nginx on a high port. Copies the wharf binaries first (others may rebuild them).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
size_mb=${SIZE_MB:-200}
for t in nginx:/usr/sbin/nginx curl zstd rsync ostree casync python3; do
  p=${t#*:}; command -v "$p" >/dev/null || { echo "missing: ${t%%:*} (apt-get install ${t%%:*})" >&2; exit 1; }
done
T=$(mktemp -d /tmp/wharf-peers.XXXXXX)
chmod 755 "$T"
cleanup() {
  [ -f "$T/nginx/nginx.pid" ] && kill "$(cat "$T/nginx/nginx.pid")" 2>/dev/null || true
  for _ in $(seq 50); do [ -f "$T/nginx/nginx.pid" ] || break; sleep 0.1; done
  if [ "${KEEP:-0}" = 1 ]; then echo "kept $T"; else chmod -R u+w "$T" 2>/dev/null || true; rm -rf "$T" || true; fi
}
trap cleanup EXIT
mkdir -p "$T/bin"
cp "${WHARF:-$top/build/src/cmd/wharf}" "$T/bin/wharf"
cp "${WHARF_AGENT:-$top/build/src/cmd/wharf-agent}" "$T/bin/wharf-agent"
echo "$(date -u +%F) $(nproc) cores, $(uname -r); wharf $(git -C "$top" rev-parse --short HEAD 2>/dev/null || echo '?')" \
  "$(git -C "$top" diff --quiet -- src 2>/dev/null || echo '(src has uncommitted changes)')"
echo "rsync $(rsync --version | head -1 | awk '{print $3}'), ostree $(ostree --version | sed -n "s/.*Version: '\(.*\)'/\1/p"), $(casync --version | head -1), $(/usr/sbin/nginx -v 2>&1 | sed 's/.*: //'), $(curl --version | head -1 | cut -d' ' -f1-2)"
python3 "$here/gen_tree.py" "$size_mb" "$T"
sync
T=$T WHARF=$T/bin/wharf WHARF_AGENT=$T/bin/wharf-agent python3 "$here/peers.py"
