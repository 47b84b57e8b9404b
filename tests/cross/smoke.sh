#!/usr/bin/env bash
# The cross-built agent is for ARCH, needs only the C library, and runs under qemu-user.
# Usage: tests/cross/smoke.sh ARCH
source "$(dirname "$0")/env.sh"
fail() { echo "FAIL: $*" >&2; exit 1; }
case $ARCH in
  powerpc) want='ELF 32-bit MSB (pie )?executable, PowerPC' ;;
  armhf)   want='ELF 32-bit LSB (pie )?executable, ARM, EABI5' ;;
  arm64)   want='ELF 64-bit LSB (pie )?executable, ARM aarch64' ;;
esac
for b in wharf-agent wharf-procserv; do
  file -b "$OUT/$b" | grep -Eq "^$want" || fail "$b is not '$want': $(file -b "$OUT/$b")"
  needed=$(readelf -d "$OUT/$b" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | sort | tr '\n' ' ')
  for lib in $needed; do
    case $lib in libc.so.*|libm.so.*|ld*.so*) ;; *) fail "$b needs $lib (only the C library is allowed): $needed" ;; esac
  done
  echo "ok - $b: $(file -b "$OUT/$b" | cut -d, -f1-2); needs $needed($(stat -c %s "$OUT/$b") bytes stripped)"
done
"$WRAP/wharf-agent" --help | grep -q 'sync' || fail "wharf-agent --help under $QEMU"
echo "ok - wharf-agent --help under $QEMU"
"$WRAP/wharf-procserv" --help >/dev/null 2>&1 || "$WRAP/wharf-procserv" 2>&1 | grep -qi 'usage\|spec' ||
  fail "wharf-procserv does not start under $QEMU"
echo "ok - wharf-procserv starts under $QEMU"
