#!/usr/bin/env bash
# End-to-end test of the hierarchy on containers (see deploy/README.md, "The
# end-to-end test"). Builds the image the local way (deploy/build-image.sh),
# starts deploy/compose.yaml + deploy/compose.s02.yaml under a unique project
# name on its own private network, and checks from the host, over gRPC:
#
#   1. create S01 across containers: Active, site control at PRI and at S01;
#   2. a second secondary S02 whose container is cut off mid-install (its path
#      to the parent is blocked from the moment the bootstrap is delivered,
#      then `docker network disconnect`): PRI shows Pending and holds no status
#      message from S02; `docker network connect` again: S02 goes Active;
#   3. sever-link PRI-S01 holds probe jobs queued both ways; restore-link,
#      `docker kill` of s01 while they flow (frozen first with `docker pause`
#      so the kill provably lands mid-flow), `docker start`: every job
#      arrives, exactly once.
#
# Everything is torn down (containers, volumes, network, the test's image tag)
# on success and on failure. Prints exactly `SKIPPED: no Docker engine` and
# exits 0 when `docker info` fails; exits non-zero on any failure.
#
#   deploy/e2e.sh               # build (cargo + image) and run
#   deploy/e2e.sh --no-cargo    # reuse the static binaries already built
#   E2E_KEEP=1 deploy/e2e.sh    # leave the hierarchy running, even after a failure
#   E2E_PROBES=N deploy/e2e.sh  # probes queued each way for the kill step (default 40000)
#
# Needs: docker with `docker compose` or `docker-compose`, python3, and root
# (or passwordless sudo) for nsenter + iptables in S02's network namespace.
set -euo pipefail
# The hierarchy runs with TLS, as deployed: the host controller uses the
# central site's administrator certificate, copied out of its volume.
unset SMS_INSECURE

if ! docker info >/dev/null 2>&1; then
    echo "SKIPPED: no Docker engine"
    exit 0
fi

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
t_start=$(date +%s.%N)
project="smse2e$$$(date +%s | tail -c 5)"
image="sms-hierarchy:e2e-$project"
target_dir=${SMS_STATIC_TARGET_DIR:-$root/target/static}
ctl_bin=$target_dir/x86_64-unknown-linux-gnu/release/controller
build_args=()
[ "${1:-}" = "--no-cargo" ] && build_args+=(--no-cargo)
probes=${E2E_PROBES:-40000}
passed=0

# ---------------------------------------------------------------- helpers

elapsed() { python3 -c "import time; print(f'{time.time() - $t_start:6.1f}s')"; }
log() { printf '[%s] %s\n' "$(elapsed)" "$*"; }
fail() {
    printf '[%s] FAILED: %s\n' "$(elapsed)" "$*" >&2
    exit 1
}
pass() {
    passed=$((passed + 1))
    log "ok: $*"
}
need() { command -v "$1" >/dev/null 2>&1 || fail "$1 is required ($2)"; }

need python3 "to read the controller's JSON"
if docker compose version >/dev/null 2>&1; then
    compose=(docker compose)
elif command -v docker-compose >/dev/null 2>&1; then
    compose=(docker-compose)
else
    fail "neither 'docker compose' nor 'docker-compose' is installed"
fi
if [ "$(id -u)" = 0 ]; then
    as_root=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    as_root=(sudo -n)
else
    fail "root or passwordless sudo is needed to run iptables in a container's network namespace"
fi
need nsenter "util-linux: enters S02's network namespace"
iptables_bin=$(command -v iptables || echo /usr/sbin/iptables)
[ -x "$iptables_bin" ] || fail "iptables is required (to hold S02's reports back during its install)"

dc() { "${compose[@]}" -p "$project" -f "$here/compose.yaml" -f "$here/compose.s02.yaml" "$@"; }
# Container id of a service (looked up once; `docker start` keeps the id).
declare -A cids=()
cid() {
    if [ -z "${cids[$1]:-}" ]; then
        cids[$1]=$(dc ps -q "$1" 2>/dev/null | head -1)
    fi
    [ -n "${cids[$1]}" ] || fail "no container for service $1"
    echo "${cids[$1]}"
}
# The host address of a service's published gRPC port (looked up every time:
# a restarted container gets a new ephemeral host port).
hostaddr() { docker port "$(cid "$1")" 8500/tcp | grep -m1 '^127\.0\.0\.1:'; }
# controller on the host, over the published port: hctl SERVICE ARGS...
hctl() {
    local svc=$1
    shift
    "$ctl_bin" --node "$(hostaddr "$svc")" "$@"
}
# controller in a container's network namespace (works while it is cut off),
# talking to that container's node unless --node comes first: xctl SERVICE ARGS...
# It is the host's controller with the host's copy of the administrator
# certificate: no node container holds an administrator key.
xctl() {
    local svc=$1
    shift
    local pid node=(--node 127.0.0.1:8500)
    pid=$(docker inspect -f '{{.State.Pid}}' "$(cid "$svc")")
    [ "${1:-}" = --node ] && node=()
    "${as_root[@]}" nsenter -t "$pid" -n "$ctl_bin" --tls-dir "$work/admin" "${node[@]}" "$@"
}
# json EXPR: evaluate a Python expression over the JSON document `d` on stdin.
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
# wait_for DESCRIPTION SECONDS COMMAND...: until COMMAND succeeds.
wait_for() {
    local what=$1 secs=$2
    shift 2
    local deadline=$(($(date +%s) + secs))
    until "$@" >/dev/null 2>&1; do
        [ "$(date +%s)" -lt "$deadline" ] || fail "timed out after ${secs}s waiting for $what"
        sleep 0.5
    done
}
site_status() { hctl pri sites --json | json "next((s['status'] for s in d['sites'] if s['site_code']=='$1'), 'absent')"; }
site_is() { [ "$(site_status "$1")" = "$2" ]; }
net_of() { docker inspect -f '{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}' "$1" | awk '{print $1}'; }
ip_on() { docker inspect -f "{{(index .NetworkSettings.Networks \"$2\").IPAddress}}" "$1"; }
received() { "$@" probe received --summary --json | json "d['count']"; }

cleanup() {
    local rc=$?
    set +e
    if [ "$rc" != 0 ] && [ -n "$(dc ps -q 2>/dev/null)" ]; then
        echo "---- diagnostics (project $project)" >&2
        dc ps >&2
        for s in pri s01 s02; do
            echo "---- $s: status and last log lines" >&2
            xctl "$s" status 2>&1 | tail -20 >&2
            docker logs --tail 15 "$(dc ps -q "$s" 2>/dev/null)" 2>&1 | sed 's/\x1b\[[0-9;]*m//g' >&2
        done
    fi
    if [ "${E2E_KEEP:-0}" = 1 ]; then
        log "kept: ${compose[*]} -p $project -f deploy/compose.yaml -f deploy/compose.s02.yaml down -v; docker rmi $image"
    else
        dc down -v --remove-orphans >/dev/null 2>&1 || echo "e2e: could not remove project $project" >&2
        docker image rm "$image" >/dev/null 2>&1
    fi
    rm -rf "$work"
    if [ "$rc" = 0 ]; then
        log "e2e: PASSED in $(elapsed | tr -d ' ')"
        echo "e2e: $passed passed, 0 failed"
    else
        echo "e2e: $passed passed, 1 failed"
    fi
    exit "$rc"
}
work=$(mktemp -d "${TMPDIR:-/tmp}/sms-e2e.XXXXXX")
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- image

log "building the image the local way: deploy/build-image.sh --tag $image ${build_args[*]}"
"$here/build-image.sh" --tag "$image" "${build_args[@]}"
[ -x "$ctl_bin" ] || fail "$ctl_bin is missing"
size=$(docker image inspect -f '{{.Size}}' "$image")
[ "$(docker image inspect -f '{{.Config.User}}' "$image")" = "10001:10001" ] || fail "the image does not run as user 10001"
pass "image $image: $size bytes, FROM scratch, user 10001:10001"

# ---------------------------------------------------------------- hierarchy

export SMS_IMAGE=$image SMS_PRI_PORT="" SMS_S01_PORT=""   # empty: Docker picks free loopback ports
log "starting project $project: pri, s01, m1, m2, s02 (${compose[*]})"
dc up -d >"$work/up.log" 2>&1 || { cat "$work/up.log" >&2; fail "compose up failed"; }
for s in pri s01 m1 m2 s02; do cid "$s" >/dev/null; done   # fills the cache in this shell
net=$(net_of "$(cid pri)")
[ "$net" = "${project}_sms" ] || fail "pri is on network '$net', expected ${project}_sms"
for s in pri s01 m1 m2 s02; do
    wait_for "$s to serve gRPC health" 60 docker exec "$(cid "$s")" /sms-node health --addr 127.0.0.1:8500
done
healthy() { [ "$(docker inspect -f '{{.State.Health.Status}}' "$(cid "$1")")" = healthy ]; }
for s in pri s01 m1 m2 s02; do
    wait_for "Docker to report $s healthy (HEALTHCHECK)" 60 healthy "$s"
done
# The administrator certificate the central install wrote to its own volume.
mkdir -p "$work/admin"
wait_for "PRI's administrator certificate" 60 docker cp "$(cid pri):/admin/admin.key" "$work/admin/admin.key"
docker cp "$(cid pri):/admin/." "$work/admin/" || fail "cannot copy PRI's administrator certificate"
export SMS_TLS_DIR=$work/admin
[ "$(hctl pri status --json | json "d['site_code']")" = PRI ] || fail "pri is not site PRI"
[ "$(hctl pri certs --json | json "d['tls']")" = True ] || fail "PRI does not run with TLS"
tokens=$(hctl pri certs --json | json "sorted(t['label'] for t in d['tokens'] if t['used_unix'])")
[ "$tokens" = "['S01', 'S02', 'm1', 'm2']" ] || fail "the bare nodes did not all join with their tokens: $tokens"
if "$ctl_bin" --insecure --node "$(hostaddr pri)" status >/dev/null 2>&1; then fail "PRI answered a plaintext client"; fi
for s in s01 m1 m2 s02; do
    [ "$(xctl "$s" status --json | json "d['role']")" = bare ] || fail "$s is not a bare node"
done
# The members' shared alias is the domain's browse list: it reaches a node
# (resolved by Docker's DNS, so asked from inside m1).
docker exec "$(cid m1)" /sms-node health --addr smsdom:8500 >/dev/null || fail "smsdom:8500 does not answer"
pass "5 containers healthy on private network $net with TLS; PRI installed; 4 bare nodes joined with tokens; smsdom:8500 answers"

# ---------------------------------------------------------------- S01

log "create-secondary S01 on s01:8500, from the host through PRI's published port"
hctl pri create-secondary --site-code S01 --server s01:8500 --wait --timeout 60 >/dev/null
[ "$(site_status S01)" = Active ] || fail "S01 is $(site_status S01), not Active"
[ "$(hctl pri sites --json | json "next(s['server'] for s in d['sites'] if s['site_code']=='S01')")" = s01:8500 ] \
    || fail "PRI does not record S01 at s01:8500"
hctl pri site-control --site S01 --json | json "d['site_code']=='S01' and d['serial']>=1 and d['parent_site_code']=='PRI' or sys.exit(1)" >/dev/null \
    || fail "PRI's copy of S01's site control is wrong"
hctl s01 site-control --json | json "d['site_code']=='S01' and d['serial']==1 and d['parent_site_code']=='PRI' or sys.exit(1)" >/dev/null \
    || fail "S01's own site control (CT0) is wrong"
[ "$(hctl pri status-messages --site S01 --json | json "sorted({m['id'] for m in d['messages']} & {3300,3301,3302,3303})")" = "[3300, 3301, 3302, 3303]" ] \
    || fail "PRI does not hold S01's four phase reports"
pass "S01 Active across containers; site control serial 1 at S01 and at PRI; phase reports 3300-3303 at PRI"

# ---------------------------------------------------------------- S02 cut off mid-install

s02=$(cid s02)
s02_pid=$(docker inspect -f '{{.State.Pid}}' "$s02")
pri_ip=$(ip_on "$(cid pri)" "$net")
{ [ -n "$pri_ip" ] && [ "$s02_pid" -gt 0 ]; } || fail "cannot find PRI's address or S02's process"
# Connections S02 opens to PRI are dropped (SYN only); PRI's own connection
# to S02, which delivers the bootstrap, still works. This makes the cut land
# deterministically between "bootstrap delivered" and "first report sent".
block_rule=(OUTPUT -p tcp --syn -d "$pri_ip" --dport 8500 -j DROP)
"${as_root[@]}" nsenter -t "$s02_pid" -n "$iptables_bin" -I "${block_rule[@]}" \
    || fail "cannot add an iptables rule in S02's network namespace"
log "S02's connections to PRI ($pri_ip:8500) blocked; create-secondary S02 on s02:8500"
hctl pri create-secondary --site-code S02 --server s02:8500 >/dev/null
s02_installed() {
    xctl s02 status --json | json "d['bootstrap']['state']=='complete' and any(l['to']=='PRI' and l['queued_jobs']>0 for l in d['links']) or sys.exit(1)"
}
wait_for "S02 to finish its bootstrap with its reports queued for PRI" 30 s02_installed
docker network disconnect "$net" "$s02"
"${as_root[@]}" nsenter -t "$s02_pid" -n "$iptables_bin" -D "${block_rule[@]}"
log "s02 disconnected from $net (docker network disconnect); the iptables rule is gone"
[ -z "$(net_of "$s02")" ] || fail "s02 is still on network $(net_of "$s02")"
if xctl s02 --node "$pri_ip:8500" status >/dev/null 2>&1; then fail "s02 still reaches PRI at $pri_ip:8500"; fi
queued=$(xctl s02 status --json | json "next(l['queued_jobs'] for l in d['links'] if l['to']=='PRI')")
for check in 1 2; do
    [ "$(site_status S02)" = Pending ] || fail "S02 is $(site_status S02) at PRI, expected Pending"
    n=$(hctl pri status-messages --site S02 --json | json "len(d['messages'])")
    [ "$n" = 0 ] || fail "PRI holds $n status messages from S02, expected none"
    [ "$check" = 2 ] || sleep 3
done
pass "S02 cut off mid-install: PRI shows Pending with no status message from S02; $queued jobs wait at S02"

t_conn=$(date +%s)
docker network connect --alias s02 "$net" "$s02"
log "s02 reconnected (docker network connect --alias s02)"
wait_for "S02 to become Active after the reconnect" 90 site_is S02 Active
ids=$(hctl pri status-messages --site S02 --json | json "sorted({m['id'] for m in d['messages']} & {3300,3301,3302,3303})")
[ "$ids" = "[3300, 3301, 3302, 3303]" ] || fail "PRI holds S02 reports $ids, expected 3300-3303"
[ "$(xctl s02 status --json | json "sum(l['failed_jobs'] for l in d['links'])")" = 0 ] || fail "S02 has failed jobs"
pass "reconnected: S02 Active $(($(date +%s) - t_conn))s later, its queued phase reports 3300-3303 arrived at PRI"

# ---------------------------------------------------------------- sever, then kill S01 mid-flow

link_state() { hctl pri status --json | json "next(l['state'] for l in d['links'] if l['to']=='S01')"; }
hctl pri sever-link --to S01 >/dev/null
log "PRI's link to S01 severed; queueing $probes probes PRI -> S01 and $probes S01 -> PRI"
hctl pri probe send --to S01 --count "$probes" --json >"$work/down.json"
xctl s01 probe send --to PRI --count "$probes" --json >"$work/up.json"
sleep 2
[ "$(link_state)" = severed ] || fail "PRI's link to S01 is $(link_state), expected severed"
{ [ "$(received hctl s01)" = 0 ] && [ "$(received hctl pri)" = 0 ]; } || fail "probes crossed a severed link"
pass "sever-link: $probes probes held at each end of the PRI-S01 link"

hctl pri restore-link --to S01 >/dev/null
# The backlog drains in about a second, so s01 is frozen (docker pause)
# the moment PRI's queue to it starts to shrink, and killed while frozen: the
# kill provably lands with jobs in flight, at whatever instruction s01 was.
unacked() { hctl pri status --json | json "next(l['queued_jobs'] for l in d['links'] if l['to']=='S01')"; }
python3 - "$ctl_bin" "$(hostaddr pri)" "$probes" "$(cid s01)" <<'PY' || fail "the backlog did not start to move within 30s of restore-link"
import json, subprocess, sys, time
ctl, addr, n, ctr = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
deadline = time.time() + 30
while time.time() < deadline:  # a tight loop: the whole backlog drains in about a second
    r = subprocess.run([ctl, "--node", addr, "status", "--json"], capture_output=True, text=True)
    if r.returncode == 0:
        links = json.loads(r.stdout)["links"]
        if next(l["queued_jobs"] for l in links if l["to"] == "S01") < n:
            subprocess.run(["docker", "pause", ctr], check=True, stdout=subprocess.DEVNULL)
            sys.exit(0)
sys.exit(1)
PY
left=$(unacked)
got_up=$(received hctl pri)
docker kill "$(cid s01)" >/dev/null
log "restore-link; s01 frozen and killed mid-flow: $left of PRI's $probes probes not yet acknowledged by S01, $got_up of S01's $probes in at PRI"
[ "$left" -gt 0 ] \
    || fail "PRI's probes had all arrived before the kill; raise E2E_PROBES so the kill lands while jobs flow"
sleep 2
docker start "$(cid s01)" >/dev/null
wait_for "s01 to serve again after the restart" 60 docker exec "$(cid s01)" /sms-node health --addr 127.0.0.1:8500
all_in() { [ "$(received hctl s01)" -ge "$probes" ] && [ "$(received hctl pri)" -ge "$probes" ]; }
wait_for "every probe to arrive after the restart" 180 all_in
same_ids() {
    python3 - "$1" "$2" <<'PY'
import json, sys
sent = json.load(open(sys.argv[1]))["job_ids"]
got = [p["job_id"] for p in json.load(open(sys.argv[2]))["probes"]]
if sorted(sent) != sorted(got):
    missing = len(set(sent) - set(got))
    print(f"sent {len(sent)}, received {len(got)} ({len(set(got))} distinct), {missing} missing")
    sys.exit(1)
PY
}
hctl s01 probe received --json >"$work/down-got.json"
hctl pri probe received --json >"$work/up-got.json"
same_ids "$work/down.json" "$work/down-got.json" || fail "probes PRI -> S01 lost or duplicated"
same_ids "$work/up.json" "$work/up-got.json" || fail "probes S01 -> PRI lost or duplicated"
[ "$(site_status S01)" = Active ] || fail "S01 is $(site_status S01) after the restart"
[ "$(hctl s01 status --json | json "d['site_code']")" = S01 ] || fail "s01 is not site S01 after the restart"
pass "docker kill + start of s01 mid-flow: all $probes probes each way arrived, exactly once"
