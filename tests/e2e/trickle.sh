#!/usr/bin/env bash
# Transfers that cannot be stretched (issue 19, acceptance 3): a mirror that sends just
# above curl's low-speed limit (1.2 kB/s, so stall detection never fires) holds a file no
# longer than its deadline, base + size / floor rate; then the next mirror, or a clean
# failure with the active generation kept.
source "$(dirname "$0")/lib.sh"

TRICKLE_PID=""
stop_trickle() {
  if [ -n "$TRICKLE_PID" ]; then
    kill "$TRICKLE_PID" 2>/dev/null || true
    wait "$TRICKLE_PID" 2>/dev/null || true
    TRICKLE_PID=""
  fi
}
trap 'stop_trickle; cleanup' EXIT

BASE=2          # --transfer-base: small, so that the test runs in well under a minute
FLOOR=300000    # --floor-rate, bytes/s
RATE=1200       # the trickle: above the low-speed limit (1024 B/s for 30 s)
SLACK=2         # seconds: curl's timer, the server noticing the close, process start

cd "$T"
"$WHARF" keygen --out release >/dev/null
mkdir -p small/etc big1/lib big2/lib
echo base >small/etc/base.conf
head -c 3000000 /dev/urandom >big1/lib/blob   # incompressible: the archive is ~3 MB
head -c 3000000 /dev/urandom >big2/lib/blob
"$WHARF" pack small --name base --version 1 --prefix /opt/base -o out >/dev/null
"$WHARF" pack big1 --name big --version 1 --prefix /opt/big -o out >/dev/null
"$WHARF" pack big2 --name big --version 2 --prefix /opt/big -o out >/dev/null
"$WHARF" publish out/base-1.tar.zst out/big-1.tar.zst out/big-2.tar.zst --store store >/dev/null

start_nginx "$T/store"
port=$(free_port)
TRICKLE_URL=http://127.0.0.1:$port
python3 "$E2E_DIR/trickle_server.py" "$T/store" "$port" "$RATE" "$T/trickle.log" &
TRICKLE_PID=$!
for _ in $(seq 50); do curl -s -o /dev/null "$TRICKLE_URL/" && break; sleep 0.1; done

# (timeout: without a deadline the trickle would hold the sync for 40 minutes)
agent() { timeout 120 "$WHARF_AGENT" sync --root "$T/fec01" --fec fec01 --trust release.pub \
            --transfer-base "$BASE" --floor-rate "$FLOOR" "$@"; }
# deadline_ms BYTES: the formula of fetch.h, DeadlineMs
deadline_ms() { echo $(( BASE * 1000 + $1 * 1000 / FLOOR )); }
now_ms() { date +%s%3N; }

"$WHARF" assign fec01 base@1 --store store --key release.key >/dev/null
expect_exit 0 agent --store "$STORE_URL"
[ "$(agent_generation fec01)" = 1 ] || fail "fec01 should run generation 1"

# 1. Trickling mirror first, nginx second: the archive comes from nginx once its deadline
#    on the first has passed.
"$WHARF" assign fec01 base@1 big@1 --store store --key release.key >/dev/null
size1=$(stat -c %s store/software/big/1/big-1.tar.zst)
limit1=$(deadline_ms "$size1")
start=$(now_ms)
expect_exit 0 agent --store "$TRICKLE_URL,$STORE_URL"
took=$(( $(now_ms) - start ))
[ "$(agent_generation fec01)" = 2 ] || fail "fec01 should run generation 2"
cmp big1/lib/blob fec01/opt/big/lib/blob || fail "big@1 installed with other bytes"
read -r _ t0 t1 sent < <(grep '^/software/big/1/big-1.tar.zst ' trickle.log)
held=$(python3 -c "print(int(($t1 - $t0) * 1000))")
echo "archive $size1 bytes: deadline $limit1 ms; the trickling mirror held it $held ms ($sent bytes sent), sync $took ms"
[ "$held" -le $(( limit1 + SLACK * 1000 )) ] || fail "the trickling mirror held the archive $held ms, deadline $limit1 ms"
[ "$held" -ge $(( limit1 - 500 )) ] || fail "given up after $held ms, before the deadline $limit1 ms"
[ "$sent" -lt "$size1" ] || fail "the trickle should not have finished"
grep -q 'GET /software/big/1/big-1.tar.zst HTTP/1.1" 200' "$NGINX_LOG" || fail "archive not fetched from nginx"
[ "$took" -le $(( limit1 + 10000 )) ] || fail "sync took $took ms"
pass "a trickling first mirror costs the archive's deadline, then the next mirror"

# 2. Only the trickling mirror: the sync fails cleanly within the deadline, generation 2 stays.
"$WHARF" assign fec01 base@1 big@2 --store store --key release.key >/dev/null
size2=$(stat -c %s store/software/big/2/big-2.tar.zst)
limit2=$(deadline_ms "$size2")
# the same settings from agent.toml this time (a bad value is a usage error)
mkdir -p fec01/etc/wharf
printf 'transfer_floor_rate = -5\n' >fec01/etc/wharf/agent.toml
expect_exit 2 "$WHARF_AGENT" sync --root "$T/fec01" --fec fec01 --trust release.pub --store "$TRICKLE_URL"
grep -q "transfer_floor_rate = -5: expected bytes per second" "$T/stderr" || fail "bad floor rate: $(cat "$T/stderr")"
printf 'transfer_base_seconds = %s\ntransfer_floor_rate = %s\n' "$BASE" "$FLOOR" >fec01/etc/wharf/agent.toml
start=$(now_ms)
expect_refused "big-2\.tar\.zst: not done within its deadline of [0-9.]+ s \(${BASE} s \+ ${size2} bytes at ${FLOOR} bytes/s\), [0-9]+ of ${size2} bytes received" \
  timeout 120 "$WHARF_AGENT" sync --root "$T/fec01" --fec fec01 --trust release.pub --store "$TRICKLE_URL"
took=$(( $(now_ms) - start ))
grep error: "$T/stderr" | grep -q "$TRICKLE_URL/" || fail "the error should name the mirror"
echo "trickle only: sync failed after $took ms (deadline $limit2 ms): $(grep error: "$T/stderr")"
[ "$took" -le $(( limit2 + 5000 )) ] || fail "the failed sync took $took ms, deadline $limit2 ms"
[ "$(agent_generation fec01)" = 2 ] || fail "generation 2 should stay active"
cmp big1/lib/blob fec01/opt/big/lib/blob || fail "the active big@1 changed"
# Once the deadline cut it, the mirror is not asked again (a request cut short by another
# error, e.g. a refused connection on a loaded machine, may be retried: it costs no deadline).
held_to_deadline=$(awk -v limit="$limit2" '$1 == "/software/big/2/big-2.tar.zst" && ($3 - $2) * 1000 >= limit - 1000' trickle.log | wc -l)
[ "$held_to_deadline" = 1 ] || fail "the archive was held to its deadline $held_to_deadline times: $(grep big-2.tar.zst trickle.log)"
# what the failed sync left is cleared by the next one, from a mirror that delivers
expect_exit 0 agent --store "$STORE_URL"
[ "$(agent_generation fec01)" = 3 ] || fail "fec01 should run generation 3"
cmp big2/lib/blob fec01/opt/big/lib/blob || fail "big@2 installed with other bytes"
[ -z "$(find fec01/var/lib/wharf -name '.*.unpacking')" ] || fail "a staging folder was left"
rm fec01/etc/wharf/agent.toml
pass "with only the trickling mirror the sync fails within the deadline; the active generation stays"

stop_trickle
