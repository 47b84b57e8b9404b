# Sourced by the tests/cross scripts: the target ARCH's qemu-user, sysroot and cross-built
# binaries (scripts/cross-build ARCH). Not in .ci/run or ctest yet (docs/embedded.md).
set -euo pipefail
ARCH=${1:?usage: $0 powerpc|armhf|arm64}
case $ARCH in
  powerpc) TRIPLET=powerpc-linux-gnu   QEMU=qemu-ppc ;;
  armhf)   TRIPLET=arm-linux-gnueabihf QEMU=qemu-arm ;;
  arm64)   TRIPLET=aarch64-linux-gnu   QEMU=qemu-aarch64 ;;
  *) echo "unknown architecture '$ARCH': use powerpc, armhf or arm64" >&2; exit 2 ;;
esac
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
SYSROOT=/usr/$TRIPLET
OUT=$REPO/build-cross/$ARCH
[ -x "$OUT/wharf-agent" ] || { echo "no $OUT/wharf-agent: run scripts/cross-build $ARCH first" >&2; exit 1; }
command -v "$QEMU" >/dev/null || { echo "no $QEMU: run scripts/install-deps --cross" >&2; exit 1; }
# Wrappers with the binaries' names, so the end-to-end tests run the target's agent under
# qemu-user as if it were the host's (no binfmt registration needed). exec: the test's PID
# is qemu's, so kill reaches the emulated agent.
WRAP=$(mktemp -d /tmp/wharf-cross-XXXXXX)
trap 'rm -rf "$WRAP"' EXIT
# -L here (not qemu-run's loader form): /proc/self/exe stays the agent. LOCPATH: qemu-run's
# C.UTF-8 in the target's byte order (made on first use).
"$REPO/tests/cross/qemu-run" "$ARCH" --version >/dev/null 2>&1 || true
case $ARCH in powerpc) order=big ;; *) order=little ;; esac
export LOCPATH=${WHARF_CROSS_CACHE:-$HOME/.cache/wharf-cross}/locale-$order
for b in wharf-agent wharf-procserv; do
  printf '#!/bin/sh\nexec %s -L %s %s "$@"\n' "$QEMU" "$SYSROOT" "$OUT/$b" >"$WRAP/$b"
  chmod +x "$WRAP/$b"
done
