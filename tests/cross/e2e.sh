#!/usr/bin/env bash
# The host's end-to-end tests (tests/e2e) with the ARCH agent under qemu-user, against
# stores made by the host's wharf. Usage: tests/cross/e2e.sh ARCH [NAME...] (default: sync
# refusals). WHARF: the host's wharf (default build/src/cmd/wharf).
source "$(dirname "$0")/env.sh"
shift
names=("$@")
[ ${#names[@]} -gt 0 ] || names=(sync refusals)
export WHARF=${WHARF:-$REPO/build/src/cmd/wharf}
[ -x "$WHARF" ] || { echo "no host wharf at $WHARF: build it (ninja -C build wharf) or set WHARF" >&2; exit 1; }
export WHARF_AGENT=$WRAP/wharf-agent WHARF_PROCSERV=$WRAP/wharf-procserv
failed=()
for name in "${names[@]}"; do
  echo "== e2e $name, $ARCH agent under $QEMU"
  bash "$REPO/tests/e2e/$name.sh" || failed+=("$name")
done
[ ${#failed[@]} -eq 0 ] || { echo "FAIL ($ARCH): ${failed[*]}" >&2; exit 1; }
echo "ok - ${names[*]} with the $ARCH agent"
