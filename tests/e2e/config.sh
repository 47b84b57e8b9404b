#!/usr/bin/env bash
# Configuration packages (issue 5): shared ones under configuration/, a FEC's own under
# fecs/<FEC>/configuration/; both unpack to their prefixes and switch with the software in
# one step. A configuration made for another software version is refused by assign unless
# --force, which the generation records (and keeps recording while the mismatch lasts).
source "$(dirname "$0")/lib.sh"

cd "$T"
"$WHARF" keygen --out k >/dev/null
ch() { "$WHARF" "$@" --store store --key k.key; }
sync_fec() { expect_exit 0 "$WHARF_AGENT" sync --root "$T/$1" --store "file://$T/store" --fec "$1" --trust k.pub; }
gen_of() { python3 -c "import json,sys; print(json.load(open('store/fecs/$1/generation.json'))['number'])"; }

# The FESA class binary in two versions, its instance file for each, and fec01's own settings.
for v in 2.1 2.2; do
  mkdir -p "sw$v/bin" && printf '#!/bin/sh\necho ps %s\n' "$v" >"sw$v/bin/ps" && chmod 755 "sw$v/bin/ps"
  "$WHARF" pack "sw$v" --name fesa-ps --version "$v" --prefix /opt/fesa/ps -o out >/dev/null
done
for n in 1 2; do
  v=$([ $n = 1 ] && echo 2.1 || echo 2.2)
  mkdir -p "conf$n" && printf '<instance class="PowerSupply" version="%s"><device name="PS%s"/></instance>\n' "$v" "$n" >"conf$n/PS.instance"
  "$WHARF" pack "conf$n" --configuration --matches "fesa-ps@$v" --name ps-conf --version "$n" --prefix /opt/fesa/ps-conf -o out >/dev/null
  mkdir -p "local$n" && echo "gain=$n" >"local$n/settings"
  "$WHARF" pack "local$n" --fec fec01 --name ps-local --version "$n" --prefix /etc/fesa/ps -o out >/dev/null
done
for a in out/*.tar.zst; do "$WHARF" publish "$a" --store store >/dev/null; done
[ -f store/configuration/ps-conf/2/ps-conf-2.tar.zst ] && [ -f store/fecs/fec01/configuration/ps-local/1/package.json ] \
  && [ -f store/software/fesa-ps/2.2/package.json ] && [ ! -e store/software/ps-conf ] \
  || fail "configuration packages land in configuration/ and fecs/fec01/configuration/: $(find store -name package.json)"
grep -q '"kind": "configuration"' store/configuration/ps-conf/1/package.json && grep -q '"matches"' store/configuration/ps-conf/1/package.json \
  || fail "package.json says kind and matches"
expect_exit 0 "$WHARF" list --packages --store store
grep -Eq '^ps-conf +configuration +1 2$' "$T/stdout" && grep -Eq '^ps-local +configuration of fec01 +1 2$' "$T/stdout" \
  && grep -Eq '^fesa-ps +software +2.1 2.2$' "$T/stdout" || fail "list --packages: $(cat "$T/stdout")"
pass "shared and per-FEC configuration packages are published under their own folders"

# One name is one package: no software called like a configuration, no FEC's own
# configuration called like a shared one; fec02 cannot be given fec01's own.
mkdir -p clash && echo x >clash/x
"$WHARF" pack clash --name ps-conf --version 9 --prefix /opt/clash -o out2 >/dev/null
expect_refused "ps-conf is already published as shared configuration" "$WHARF" publish out2/ps-conf-9.tar.zst --store store
"$WHARF" pack clash --fec fec02 --name ps-conf --version 9 --prefix /opt/clash -o out3 >/dev/null
expect_refused "already published as shared configuration" "$WHARF" publish out3/ps-conf-9.tar.zst --store store
expect_refused "ps-local is not published in this store \(nor as a configuration of fec02\)" ch assign fec02 ps-local@1
expect_exit 2 "$WHARF" pack clash --configuration --service 'x=bin/x' --name c --version 1 --prefix /opt/c -o out2
grep -q "a configuration package runs no services" "$T/stderr" || fail "services in a configuration: $(cat "$T/stderr")"
expect_exit 2 "$WHARF" pack clash --matches 'fesa-ps' --name c --version 1 --prefix /opt/c -o out2
expect_exit 2 "$WHARF" pack clash --fec ../x --name c --version 1 --prefix /opt/c -o out2
pass "name clashes between kinds, another FEC's configuration and bad --matches/--fec are refused"

# Release 1: software, shared and own configuration land under their prefixes.
ch assign fec01 fesa-ps@2.1 ps-conf@1 ps-local@1 >/dev/null
sync_fec fec01
[ "$(fec01/opt/fesa/ps/bin/ps)" = "ps 2.1" ] && grep -q 'version="2.1"' fec01/opt/fesa/ps-conf/PS.instance \
  && [ "$(cat fec01/etc/fesa/ps/settings)" = "gain=1" ] || fail "release 1 under its prefixes"
[ -L store/fecs/fec01/configuration/ps-conf.tar.zst ] && [ -d store/fecs/fec01/configuration/ps-local/1 ] \
  || fail "the store's view of fec01 links its configurations and keeps its own packages"

# Release 2: all three switch together (one `current` link makes them visible at once).
ch assign fec01 fesa-ps@2.2 ps-conf@2 ps-local@2 >/dev/null
sync_fec fec01
[ "$(fec01/opt/fesa/ps/bin/ps)" = "ps 2.2" ] && grep -q 'version="2.2"' fec01/opt/fesa/ps-conf/PS.instance \
  && [ "$(cat fec01/etc/fesa/ps/settings)" = "gain=2" ] || fail "release 2 under its prefixes"
for p in opt/fesa/ps opt/fesa/ps-conf etc/fesa/ps; do
  readlink "fec01/$p" | grep -q "var/lib/wharf/current/" || fail "$p does not go through the one current link"
done
ch rollback fec01 >/dev/null
sync_fec fec01
[ "$(fec01/opt/fesa/ps/bin/ps)" = "ps 2.1" ] && grep -q 'version="2.1"' fec01/opt/fesa/ps-conf/PS.instance \
  && [ "$(cat fec01/etc/fesa/ps/settings)" = "gain=1" ] || fail "rollback brings back software and configuration together"
pass "shared and per-FEC configuration unpack to their prefixes and switch (and roll back) with the software"

# The version check: ps-conf@2 is made for fesa-ps@2.2.
before=$(gen_of fec01)
expect_refused "configuration ps-conf@2 is made for fesa-ps@2.2, but the FEC gets fesa-ps@2.1; .*--force" ch assign fec01 ps-conf@2
[ "$(gen_of fec01)" = "$before" ] || fail "a refused assign wrote a generation"
expect_refused "made for fesa-ps@2.2, but the FEC has no fesa-ps" ch assign fec03 ps-conf@2
ch assign fec01 fesa-ps@2.2 ps-conf@2 >/dev/null   # matching: accepted
expect_refused "made for fesa-ps@2.2, but the FEC gets fesa-ps@2.1" ch assign fec01 fesa-ps@2.1
expect_refused "made for fesa-ps@2.2, but the FEC has no fesa-ps" ch unassign fec01 fesa-ps
pass "assign (and unassign) refuse a configuration next to another software version, and write nothing"

expect_exit 0 "$WHARF" assign fec01 fesa-ps@2.1 --force --store store --key k.key
grep -q "FORCED: configuration ps-conf@2 is made for fesa-ps@2.2, the FEC runs fesa-ps@2.1" "$T/stdout" || fail "assign --force says so: $(cat "$T/stdout")"
python3 - <<'PY' || fail "the generation records the override"
import json
g = json.load(open("store/fecs/fec01/generation.json"))
assert g["forced"] == [{"configuration": "ps-conf@2", "wanted": "fesa-ps@2.2", "found": "fesa-ps@2.1"}], g.get("forced")
PY
expect_exit 0 "$WHARF" show fec01 --store store
grep -q "FORCED: configuration ps-conf@2" "$T/stdout" || fail "show says FORCED"
ch refresh fec01 >/dev/null   # the same mismatch, already forced: no --force needed again
grep -q '"forced"' store/fecs/fec01/generation.json || fail "the record carries over"
sync_fec fec01
[ "$(fec01/opt/fesa/ps/bin/ps)" = "ps 2.1" ] && grep -q 'version="2.2"' fec01/opt/fesa/ps-conf/PS.instance || fail "the forced generation applies"
ch assign fec01 fesa-ps@2.2 >/dev/null
! grep -q '"forced"' store/fecs/fec01/generation.json || fail "a resolved mismatch leaves the record"
pass "--force accepts the mismatch and the generation records it (shown by assign and show, kept while it lasts)"

# Through the server: the same refusal, --force in the audit log.
start_server "$T/store" --key "$T/k.key"
OP=$(make_token op operator "" "$T/store")
expect_refused "made for fesa-ps@2.2, but the FEC gets fesa-ps@2.1" "$WHARF" assign fec01 fesa-ps@2.1 --server "$SERVER_URL" --token "$OP"
expect_exit 0 "$WHARF" assign fec01 fesa-ps@2.1 --force --server "$SERVER_URL" --token "$OP"
grep -q "FORCED: configuration ps-conf@2" "$T/stdout" || fail "the server's answer shows FORCED"
ADMIN=$(make_token adm admin "" "$T/store")
expect_exit 0 "$WHARF" audit --server "$SERVER_URL" --token "$ADMIN" --target fec01 --json
grep -q "FORCED ps-conf@2 (made for fesa-ps@2.2)" "$T/stdout" || fail "the audit log records the forced assign: $(cat "$T/stdout")"
stop_server
pass "through the API: refused without force, accepted and audited with it"

# Retention covers configurations: gc --keep 1 drops unused old versions of each kind.
ch unassign fec01 ps-local >/dev/null
expect_exit 0 "$WHARF" gc --keep 1 --generations 1 --store store --json
python3 - "$T/stdout" <<'PY' || fail "gc over configurations: $(cat "$T/stdout")"
import json, sys
r = json.load(open(sys.argv[1]))
removed = sorted((v["area"], v["name"], v["version"]) for v in r["removed"])
assert removed == [("configuration", "ps-conf", "1"), ("fecs/fec01/configuration", "ps-local", "1")], removed
kept = sorted((v["area"], v["name"], v["version"]) for v in r["kept_assigned"])
assert kept == [("software", "fesa-ps", "2.1")], kept
PY
[ ! -e store/fecs/fec01/configuration/ps-local/1 ] && [ -d store/fecs/fec01/configuration/ps-local/2 ] \
  && [ ! -e store/configuration/ps-conf/1 ] && [ -d store/configuration/ps-conf/2 ] || fail "gc removed the old configurations"
pass "gc keeps the newest configuration versions and those a FEC names, per FEC too"
