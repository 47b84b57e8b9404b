#!/usr/bin/env bash
# The Yocto layer (packaging/yocto/meta-wharf) cannot be built here (no bitbake), so this
# checks what can drift without one: the recipe and scripts/cross-build configure wharf from
# the same initial cache, that cache gives an agent-only build with no GoogleTest, every file
# the recipe takes from the sources is there with the placeholders its sed replaces, the
# recipe depends on every library the agent-only build looks for, and the shipped agent.toml
# is one the agent reads, every commented setting included.
# Usage: tests/yocto_layer.sh   (WHARF_AGENT: a host wharf-agent, for the agent.toml check)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
layer=$repo/packaging/yocto/meta-wharf
recipe=$layer/recipes-wharf/wharf-agent/wharf-agent_git.bb
agent=${WHARF_AGENT:-$repo/build/src/cmd/wharf-agent}
tmp=$(mktemp -d /tmp/wharf-yocto-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok - $*"; }

# 1. One configuration for both builds.
grep -q 'EXTRA_OECMAKE = "-C ${S}/cmake/fec-agent.cmake"' "$recipe" ||
  fail "$recipe: EXTRA_OECMAKE does not configure from cmake/fec-agent.cmake"
grep -q -- '-C "$repo/cmake/fec-agent.cmake"' "$repo/scripts/cross-build" ||
  fail "scripts/cross-build does not configure from cmake/fec-agent.cmake"
ok "the recipe and scripts/cross-build configure from cmake/fec-agent.cmake"

# 2. That cache, alone, gives the FEC side without unit tests (so without GoogleTest): what
# the recipe's cmake class sees (oe-core's libraries are the host's here).
cmake -S "$repo" -B "$tmp/build" -G Ninja -C "$repo/cmake/fec-agent.cmake" >"$tmp/cmake.log" 2>&1 ||
  { tail -20 "$tmp/cmake.log" >&2; fail "configuring with -C cmake/fec-agent.cmake failed"; }
targets=$(ninja -C "$tmp/build" -t targets all | cut -d: -f1)
for want in wharf-agent wharf-procserv; do
  grep -qx "$want" <<<"$targets" || fail "no $want target in the recipe's configuration"
done
grep -qx "wharf" <<<"$targets" && fail "the recipe's configuration builds the wharf CLI too"
grep -q '_test$' <<<"$targets" && fail "the recipe's configuration builds unit tests: $(grep '_test$' <<<"$targets" | head -3 | xargs)"
grep -qi 'gtest' "$tmp/build/CMakeCache.txt" && fail "the recipe's configuration looks for GoogleTest"
ok "-C cmake/fec-agent.cmake: wharf-agent and wharf-procserv, no CLI, no unit tests, no GoogleTest"

# 3. DEPENDS names a recipe for every library the agent-only build looks for.
depends=$(sed -n 's/^DEPENDS = "\(.*\)"/\1/p' "$recipe")
declare -A recipe_of=([libarchive]=libarchive [libzstd]=zstd [libcurl]=curl [OpenSSL]=openssl
                      [nlohmann_json]=nlohmann-json [CLI11]=cli11)
found=$( { sed -n 's/.*pkg_check_modules([A-Z_]* REQUIRED IMPORTED_TARGET \([a-z]*\)).*/\1/p' "$repo/CMakeLists.txt"
           sed -n 's/^ *find_package(\([A-Za-z_0-9]*\) REQUIRED.*/\1/p' "$repo/CMakeLists.txt"; } | sort -u)
for lib in $found; do
  case $lib in libmicrohttpd|SQLiteCpp|GTest|PkgConfig|Threads) continue ;; esac  # host side, tests, toolchain
  [ -n "${recipe_of[$lib]:-}" ] || fail "CMakeLists.txt looks for $lib: add its oe recipe to $recipe's DEPENDS and to this test"
  grep -qw "${recipe_of[$lib]}" <<<"$depends" || fail "$recipe: DEPENDS lacks ${recipe_of[$lib]} (for $lib)"
done
grep -rqh '#include <toml++/' "$repo/src" && { grep -qw tomlplusplus <<<"$depends" || fail "DEPENDS lacks tomlplusplus"; }
ok "DEPENDS covers every library the agent-only build looks for: $depends"

# 4. The files the recipe installs from the sources, and what its seds replace in them.
grep -q '${S}/packaging/systemd/$unit' "$recipe" || fail "the recipe no longer installs the units from packaging/systemd"
for unit in wharf-agent.service wharf-svc@.service; do
  src=$repo/packaging/systemd/$unit
  [ -f "$src" ] || fail "the recipe installs $src, which is gone"
  sed -e 's|@WHARF_AGENT@|/usr/bin/wharf-agent|g' -e 's|@WHARF_PROCSERV@|/usr/bin/wharf-procserv|g' "$src" >"$tmp/$unit"
  grep -q '@WHARF_' "$tmp/$unit" && fail "$unit keeps a placeholder the recipe does not replace: $(grep -o '@WHARF_[A-Z_]*@' "$tmp/$unit" | head -1)"
  grep -q '^ExecStart=/usr/bin/wharf-' "$tmp/$unit" || fail "$unit: the recipe's sed leaves no ExecStart=/usr/bin/wharf-...: $(grep ExecStart "$tmp/$unit")"
done
grep -q '/usr/local/bin/wharf-agent' "$repo/packaging/sudoers.d/wharf" ||
  fail "packaging/sudoers.d/wharf no longer names /usr/local/bin/wharf-agent, which the recipe's sed replaces"
ok "units and sudoers: every placeholder replaced by the recipe's seds"

# 5. layer.conf finds the recipes.
for bb in "$layer"/recipes-*/*/*.bb; do
  [ -f "$bb" ] || fail "layer.conf's BBFILES pattern recipes-*/*/*.bb matches nothing"
done
grep -q 'LAYERDEPENDS_wharf = "core openembedded-layer"' "$layer/conf/layer.conf" || fail "layer.conf: LAYERDEPENDS_wharf"
ok "layer.conf: $(ls "$layer"/recipes-*/*/*.bb | wc -l) recipes under BBFILES"

# 6. The shipped agent.toml, as is and with every commented setting switched on, is read by
# the agent without a complaint (an unknown or mistyped key is refused by the agent).
[ -x "$agent" ] || fail "no host wharf-agent at $agent (build it, or set WHARF_AGENT)"
for variant in as-shipped all-settings; do
  root=$tmp/$variant
  mkdir -p "$root/etc/wharf"
  if [ $variant = as-shipped ]; then
    cp "$layer/recipes-wharf/wharf-agent/files/agent.toml" "$root/etc/wharf/agent.toml"
  else
    sed -E 's/^# ([a-z_]+ = )/\1/' "$layer/recipes-wharf/wharf-agent/files/agent.toml" >"$root/etc/wharf/agent.toml"
    keys=$(grep -cE '^[a-z_]+ = ' "$root/etc/wharf/agent.toml")
    [ "$keys" -ge 8 ] || fail "agent.toml: only $keys settings once uncommented"
  fi
  set +e
  out=$("$agent" status --root "$root" --fec fec01 2>&1)
  rc=$?
  set -e
  grep -q 'agent.toml' <<<"$out" && fail "$variant agent.toml: the agent complains: $out"
  [ $rc -ne 2 ] || fail "$variant agent.toml: usage error (exit 2): $out"
done
ok "agent.toml as shipped and with all $keys settings on: read without a complaint"
# ...and that check has teeth: a mistyped setting and a wrong type are refused.
for bad in 'stor = ["http://wharf.example:8080"]' 'keep = "3"'; do
  printf '%s\n' "$bad" >"$tmp/all-settings/etc/wharf/agent.toml"
  set +e
  out=$("$agent" status --root "$tmp/all-settings" --fec fec01 2>&1)
  rc=$?
  set -e
  [ $rc -eq 2 ] && grep -q 'agent.toml:1: .*fix the file' <<<"$out" || fail "agent.toml '$bad': want exit 2 and a line naming the file, got $rc: $out"
done
ok "a mistyped setting and a wrong type in agent.toml: exit 2, naming the line"
