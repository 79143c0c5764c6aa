#!/usr/bin/env bash
# Checks the layering the README's "How it is built" describes, so that it
# stays true: which crate may depend on which, where tasks may be spawned,
# where wire types and sled may be named, and that sms-site has no import
# circle between its modules.
set -euo pipefail
cd "$(dirname "$0")/.."
fail=0
bad() { echo "architecture: $*" >&2; fail=1; }

# Crates that must not (even indirectly) depend on these.
forbid() { # crate, pattern of forbidden packages
    local hits
    hits=$(cargo tree -p "$1" -e normal --prefix none 2>/dev/null | awk '{print $1}' | grep -E "^($2)$" | sort -u || true)
    [ -z "$hits" ] || bad "$1 depends on $(echo $hits | tr '\n' ' ')"
}
forbid sms-types   'tokio|sled|tonic|prost|sms-proto|sms-store|sms-runtime|sms-site|sms-server'
forbid sms-store   'tonic|prost|sms-proto|sms-runtime|sms-site|sms-server'
forbid sms-runtime 'sled|tonic|prost|sms-types|sms-proto|sms-store|sms-site|sms-server'
forbid sms-site    'tonic|prost|sms-proto|sms-server'
forbid sms-proto   'sled|sms-store|sms-runtime|sms-site|sms-server'
forbid sms-trust   'tokio|sled|tonic|prost|sms-proto|sms-store|sms-runtime|sms-site|sms-server'
forbid sms-connect 'sled|prost|sms-proto|sms-store|sms-runtime|sms-site|sms-server'

# Only the store names sled; only the runtime spawns tasks; only proto and
# the server name wire types (tests excepted).
src() { find "$@" -name '*.rs' -not -path '*/tests/*' -not -name 'tests.rs' -not -name '*_tests.rs'; }
hits=$(src node controller proto -path '*' | grep -v '^node/store/' | xargs grep -ln 'sled::' || true)
[ -z "$hits" ] || bad "sled named outside node/store: $hits"
hits=$(src node controller proto | grep -v '^node/runtime/' | xargs grep -ln 'tokio::spawn\|tokio::task::spawn\b\|spawn_blocking' || true)
[ -z "$hits" ] || bad "tasks spawned outside node/runtime: $hits"
hits=$(src node/types node/store node/runtime node/site | xargs grep -ln 'pb::\|tonic::\|sms_proto' || true)
[ -z "$hits" ] || bad "wire types below the server: $hits"

# No import circle between the modules of sms-site.
python3 - <<'PY' || fail=1
import os, re, sys
root = "node/site/src"
mods = {f[:-3] for f in os.listdir(root) if f.endswith(".rs")} - {"lib"}
deps = {}
for m in mods:
    text = open(os.path.join(root, m + ".rs")).read()
    deps[m] = {d for d in re.findall(r"crate::(\w+)", text) if d in mods and d != m}
state = {}
def visit(m, path):
    if state.get(m) == 1:
        cyc = path[path.index(m):] + [m]
        print("architecture: import circle in sms-site: " + " -> ".join(cyc), file=sys.stderr)
        sys.exit(1)
    if state.get(m) == 2:
        return
    state[m] = 1
    for d in sorted(deps[m]):
        visit(d, path + [m])
    state[m] = 2
for m in sorted(mods):
    visit(m, [])
PY

[ "$fail" = 0 ] && echo "architecture: layering, spawning, wire and sled boundaries hold; no import circle"
exit "$fail"
