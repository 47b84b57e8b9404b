#!/usr/bin/env bash
# Per-service overhead of the process server: `wharf-procserv` side by side with
# procServ 2.7 (Debian package procserv) on the same children. For each server, five runs
# of DURATION seconds (after 1 s to settle), each with a new server:
#   idle child (/bin/sleep)                 without and with one console client
#   a child writing RATE bytes/s of 100-byte lines to its terminal (bench/procserv_writer.py)
#                                           without and with one console client
#   the same writer with one client and no log file for either server
# The console client (bench/procserv_client.py) reads everything from the UNIX console socket
# (wharf: ROOT/run/wharf/console/NAME.sock; procServ: its `unix:` control endpoint) and never
# writes. In the first four runs both servers keep a log file: wharf its default
# (ROOT/var/log/wharf/NAME.log, rotated at 10 MB), procServ `-L FILE` (never rotated); no
# timestamps for either. Measured for the server process only (not the child): VmRSS, VmHWM
# and RssAnon from /proc/PID/status at the end, private memory = Private_Clean+Private_Dirty
# from /proc/PID/smaps_rollup at the end, CPU = utime+stime from /proc/PID/stat over
# the interval, as % of one core, and its context switches (wake-ups). The child's own write
# rate (it counts what write() took) and what the client received are measured over the
# same interval. First, 7 starts of each server with an idle child: the time from the exec
# until its console socket accepts a connection (median, min, max).
# Usage: bench/procserv.sh          # DURATION=15 RATE=10000000 WHARF_PROCSERV=build/src/cmd/wharf-procserv
#        DURATION=5 bench/procserv.sh   # a quick check
# Needs the Debian package procserv (and /usr/bin/python3); whole run about 3 minutes.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
WHARF=${WHARF_PROCSERV:-$HERE/../build/src/cmd/wharf-procserv}
DURATION=${DURATION:-15}
RATE=${RATE:-10000000}
PROCSERV=$(command -v procServ || true)

[ -x "$WHARF" ] || { echo "error: no wharf-procserv at $WHARF (ninja -C build wharf-procserv, or set WHARF_PROCSERV)" >&2; exit 1; }
[ -n "$PROCSERV" ] || { echo "error: procServ is missing: install the Debian package procserv" >&2; exit 1; }
[ -x /usr/bin/python3 ] || { echo "error: /usr/bin/python3 is missing (Debian package python3)" >&2; exit 1; }
WHARF=$(cd "$(dirname "$WHARF")" && pwd)/$(basename "$WHARF")

SCRATCH=$(mktemp -d /tmp/wharf-procserv-bench.XXXXXX)
trap 'rm -rf "$SCRATCH"' EXIT

echo "# process server overhead: $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $(uname -r)"
echo "# wharf-procserv: $WHARF ($(git -C "$HERE" describe --always --dirty 2>/dev/null || echo '?'))"
echo "# procServ: $("$PROCSERV" --version 2>&1 | head -1) ($(dpkg-query -W -f '${Version}' procserv 2>/dev/null || echo '?'))"
echo "# $DURATION s per run, busy child at $RATE bytes/s"
echo
/usr/bin/python3 "$HERE/procserv_bench.py" "$WHARF" "$PROCSERV" "$DURATION" "$RATE" "$SCRATCH" \
  2>"$SCRATCH/runs.jsonl" || { cat "$SCRATCH/runs.jsonl" >&2; exit 1; }
