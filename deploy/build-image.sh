#!/usr/bin/env bash
# Builds the sms-hierarchy image without pulling anything: the static binaries
# are built on this host, then the final stage of deploy/docker/Dockerfile
# (FROM scratch) is built from them. The result is the image the multi-stage
# Dockerfile produces, minus the builder.
#
#   deploy/build-image.sh                    # build binaries + image sms-hierarchy:local
#   deploy/build-image.sh --tag NAME:TAG     # another tag
#   deploy/build-image.sh --no-cargo         # reuse the binaries already built
#
# Binaries go to target/static/x86_64-unknown-linux-gnu/release (a target dir
# of their own, so this never fights a normal `cargo build` for its cache).
# Environment: SMS_STATIC_TARGET_DIR overrides that target dir.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
image=sms-hierarchy:local
run_cargo=1
while [ $# -gt 0 ]; do
    case "$1" in
        --tag) image=${2:?--tag needs NAME:TAG}; shift 2 ;;
        --no-cargo) run_cargo=0; shift ;;
        -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "build-image.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
    esac
done

target=x86_64-unknown-linux-gnu
target_dir=${SMS_STATIC_TARGET_DIR:-$root/target/static}
bin_dir=$target_dir/$target/release
dockerfile=$here/docker/Dockerfile

if [ "$run_cargo" = 1 ]; then
    if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
        export PATH="$HOME/.cargo/bin:$PATH"
    fi
    echo "build-image: building static binaries into $bin_dir" >&2
    # The same flags as the builder stage of the Dockerfile. --target keeps
    # +crt-static away from build scripts and proc macros; --locked never
    # rewrites Cargo.lock.
    (cd "$root" && \
        CARGO_TARGET_DIR="$target_dir" \
        RUSTFLAGS="-C target-feature=+crt-static" \
        CARGO_PROFILE_RELEASE_DEBUG=false \
        CARGO_PROFILE_RELEASE_STRIP=symbols \
        nice cargo build --release --locked --target "$target" --bins)
fi

for b in sms-node controller; do
    if [ ! -x "$bin_dir/$b" ]; then
        echo "build-image: $bin_dir/$b is missing (run without --no-cargo)" >&2
        exit 1
    fi
done
# A scratch image has no dynamic loader: refuse anything that asks for one.
if command -v readelf >/dev/null 2>&1; then
    if readelf -l "$bin_dir/sms-node" "$bin_dir/controller" | grep -q 'program interpreter'; then
        echo "build-image: the binaries are dynamically linked; they would not start in a scratch image" >&2
        exit 1
    fi
else
    echo "build-image: readelf not found; not checking that the binaries are static" >&2
fi

# The build context: the two binaries, an empty data dir, and the final stage
# of the Dockerfile with its sources taken from this context.
ctx=$(mktemp -d "${TMPDIR:-/tmp}/sms-image.XXXXXX")
trap 'rm -rf "$ctx"' EXIT
cp "$bin_dir/sms-node" "$bin_dir/controller" "$ctx/"
mkdir "$ctx/data"
awk '/^FROM /{n=NR} {line[NR]=$0} END{for(i=n;i<=NR;i++) print line[i]}' "$dockerfile" \
    | sed -e 's#--from=builder ##g' -e 's#/out/#./#g' > "$ctx/Dockerfile"
if ! head -1 "$ctx/Dockerfile" | grep -qx 'FROM scratch' || grep -q -- '--from=\|/out/' "$ctx/Dockerfile"; then
    echo "build-image: unexpected final stage in $dockerfile:" >&2
    cat "$ctx/Dockerfile" >&2
    exit 1
fi

echo "build-image: building $image (FROM scratch, nothing pulled)" >&2
docker build --quiet --tag "$image" "$ctx" >/dev/null
size=$(docker image inspect --format '{{.Size}}' "$image")
echo "build-image: built $image, $size bytes ($(( (size + 524288) / 1048576 )) MiB)" >&2
