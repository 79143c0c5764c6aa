#!/usr/bin/env bash
# Gives bare-node pods their join tokens (deploy/README.md, "Kubernetes").
#
#   deploy/k8s/join-tokens.sh [-n NAMESPACE] [--ttl 1h] POD[=SITE]...
#
#   secondary-0=S01    a token for secondary site S01, for pod secondary-0
#   smsdom-member-0    a member-server token named after the pod
#
# For each POD it runs `controller token create` in the central primary's pod
# (kubectl exec, with the administrator certificate PRI keeps in its `admin`
# volume) and stores the token as key POD.token of the Secret
# <statefulset>-join-tokens (secondary-0 -> secondary-join-tokens), created if
# missing, else patched: other pods' keys are kept, this pod's is replaced.
# The StatefulSets mount that Secret at /tokens and the node reads
# /tokens/$(POD_NAME).token (SMS_JOIN_TOKEN_FILE).
#
# Tokens travel from `kubectl exec` into files in a private temporary
# directory (mode 0700, removed on exit), never on a command line.
#
# Environment: KUBECTL (default kubectl), SMS_NAMESPACE (default sms),
# SMS_PRI_POD (default pri-0).
set -euo pipefail

kubectl=${KUBECTL:-kubectl}
ns=${SMS_NAMESPACE:-sms}
pri=${SMS_PRI_POD:-pri-0}
ttl=()
pods=()

usage() {
    sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

while [ $# -gt 0 ]; do
    case $1 in
        -n|--namespace) [ $# -ge 2 ] || usage; ns=$2; shift 2 ;;
        --ttl) [ $# -ge 2 ] || usage; ttl=(--ttl "$2"); shift 2 ;;
        -h|--help) usage ;;
        -*) echo "join-tokens: unknown option $1" >&2; usage ;;
        *) pods+=("$1"); shift ;;
    esac
done
[ ${#pods[@]} -gt 0 ] || usage

umask 077
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

secrets=()
for spec in "${pods[@]}"; do
    pod=${spec%%=*}
    # A StatefulSet pod: <statefulset>-<ordinal>.
    if ! [[ $pod =~ ^[a-z0-9]([a-z0-9-]*[a-z0-9])?-[0-9]+$ ]]; then
        echo "join-tokens: $pod is not a StatefulSet pod name (NAME-N)" >&2
        exit 2
    fi
    secret="${pod%-*}-join-tokens"
    if [ "$spec" != "$pod" ]; then
        what=(--site "${spec#*=}")
    else
        what=(--member "$pod")
    fi
    mkdir -p "$tmp/$secret"
    [[ " ${secrets[*]+"${secrets[*]}"} " == *" $secret "* ]] || secrets+=("$secret")
    file="$tmp/$secret/$pod.token"
    "$kubectl" -n "$ns" exec "$pri" -- /controller token create "${what[@]}" ${ttl[@]+"${ttl[@]}"} >"$file"
    if ! [ -s "$file" ]; then
        echo "join-tokens: no token came back for $pod" >&2
        exit 1
    fi
    echo "token for $pod (${what[*]}) -> secret $secret, key $pod.token"
done

for secret in "${secrets[@]}"; do
    if "$kubectl" -n "$ns" get secret "$secret" >/dev/null 2>&1; then
        # A JSON merge patch: adds or replaces these keys, keeps the others.
        patch="$tmp/$secret.patch.json"
        {
            printf '{"data":{'
            sep=
            for f in "$tmp/$secret"/*.token; do
                printf '%s"%s":"%s"' "$sep" "$(basename "$f")" "$(base64 <"$f" | tr -d '\n')"
                sep=,
            done
            printf '}}\n'
        } >"$patch"
        "$kubectl" -n "$ns" patch secret "$secret" --type merge --patch-file "$patch"
    else
        "$kubectl" -n "$ns" create secret generic "$secret" --from-file="$tmp/$secret"
        "$kubectl" -n "$ns" label secret "$secret" app.kubernetes.io/part-of=sms-hierarchy >/dev/null
    fi
done

cat <<EOF
The kubelet fills a pod's /tokens within about a minute; a node waiting for its
token joins as soon as its file appears. A pod in restart back-off picks it up on
its next start; \`$kubectl -n $ns delete pod POD\` starts it at once. Tokens work
once and expire (default 1 h): once every pod has joined, the Secrets can go:
  $kubectl -n $ns delete secret ${secrets[*]}
EOF
