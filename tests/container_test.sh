#!/usr/bin/env bash
# Builds deploy/Dockerfile for real and runs what it built.
#
# No registry is reachable here, so the base image is made from Debian
# packages: mmdebstrap writes a minbase bookworm root file system (what
# debian:12-slim is), `podman import` names it debian:12-slim, and
# `podman build --isolation=chroot` builds the unchanged Dockerfile (both
# stages, apt-get and all). `podman run` needs a runtime this machine does not
# have, so the image is entered with `buildah run --isolation chroot`, which
# applies the image's own USER.
#
# Checked: the image runs as uid 65532 and not as root; its entrypoint and
# exposed admin port are the ones the manifests use; `dbward --version` inside
# prints the version of this tree; `dbward check-config` inside accepts every
# shipped configuration (deploy/examples/*.yaml and the ones embedded in the
# Kubernetes ConfigMaps, with the throwaway certificates deploy_check.sh makes);
# the image is small (the runtime stage adds at most MAX_ADDED_MB to the base).
#
# Exit 77 (a skip, with the reason printed) only when podman, buildah or
# mmdebstrap is missing; scripts/install-deps.sh installs all three, so the
# README's test command always runs this.
#
# Usage: DBWARD_BINARY=build/dbward tests/container_test.sh
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
binary=${DBWARD_BINARY:-$root/build/dbward}
work=${CONTAINER_WORK:-$root/build/container}
image=localhost/dbward:test
max_added_mb=${MAX_ADDED_MB:-25}
base_label=org.dbward.base=mmdebstrap

for tool in podman buildah mmdebstrap; do
  if ! command -v $tool > /dev/null; then
    echo "container_test: SKIP: $tool is not installed (scripts/install-deps.sh installs podman, buildah and mmdebstrap)"
    exit 77
  fi
done
[[ -x $binary ]] || { echo "container_test: error: $binary is not built (bash scripts/build.sh)" >&2; exit 1; }

failed=0
ok() { echo "ok:   $*"; }
fail() { echo "FAIL: $*"; failed=$((failed + 1)); }
mkdir -p "$work"

# ---------------------------------------------------------------- base image
# A debian:12-slim that is not ours (pulled from a registry) is used as it is.
if podman image exists docker.io/library/debian:12-slim &&
  [[ $(podman image inspect --format '{{index .Labels "org.dbward.base"}}' docker.io/library/debian:12-slim) != mmdebstrap ]]; then
  echo "container_test: using the existing docker.io/library/debian:12-slim"
elif ! podman image exists docker.io/library/debian:12-slim; then
  echo "container_test: making debian:12-slim with mmdebstrap (minbase, bookworm)"
  mmdebstrap --variant=minbase --quiet \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-include=/usr/share/locale/locale.alias' \
    bookworm "$work/base.tar" \
    'deb http://deb.debian.org/debian bookworm main' \
    'deb http://deb.debian.org/debian bookworm-updates main' \
    'deb http://deb.debian.org/debian-security bookworm-security main'
  podman import --quiet --change "LABEL $base_label" --change 'CMD ["bash"]' \
    "$work/base.tar" docker.io/library/debian:12-slim > /dev/null
  rm -f "$work/base.tar"
fi
base_size=$(podman image inspect --format '{{.Size}}' docker.io/library/debian:12-slim)

# ------------------------------------------------------------------- build it
start=$SECONDS
previous=$(podman image inspect --format '{{.Id}}' "$image" 2> /dev/null || true)
if podman build --isolation=chroot --pull=never --layers=false \
  --ignorefile "$root/deploy/Dockerfile.dockerignore" \
  -f "$root/deploy/Dockerfile" -t "$image" "$root" > "$work/build.log" 2>&1; then
  ok "podman build --isolation=chroot -f deploy/Dockerfile . ($((SECONDS - start)) s)"
else
  tail -40 "$work/build.log"
  fail "podman build -f deploy/Dockerfile failed (log: $work/build.log)"
  exit 1
fi
# The image of the previous run is untagged now: remove it, so runs do not pile up.
if [[ -n $previous && $previous != "$(podman image inspect --format '{{.Id}}' "$image")" ]]; then
  podman rmi "$previous" > /dev/null 2>&1 || true
fi

# ----------------------------------------------------------- image metadata
inspect() { podman image inspect --format "$1" "$image"; }
user=$(inspect '{{.Config.User}}')
[[ ${user%%:*} == 65532 ]] && ok "image USER is $user" || fail "image USER is '$user', want 65532"
entry=$(inspect '{{json .Config.Entrypoint}}')
[[ $entry == '["/usr/local/bin/dbward"]' ]] && ok "entrypoint $entry" || fail "entrypoint is $entry"
cmd=$(inspect '{{json .Config.Cmd}}')
[[ $cmd == '["run","--config","/etc/dbward/dbward.yaml"]' ]] && ok "cmd $cmd" || fail "cmd is $cmd"
ports=$(inspect '{{json .Config.ExposedPorts}}')
[[ $ports == *'"9090/tcp"'* ]] && ok "exposes $ports" || fail "exposed ports are $ports, want 9090/tcp"
size=$(inspect '{{.Size}}')
added_mb=$(((size - base_size) / 1000000))
echo "      image $((size / 1000000)) MB = base $((base_size / 1000000)) MB + $added_mb MB"
((added_mb <= max_added_mb)) && ok "the runtime stage adds $added_mb MB (limit $max_added_mb MB)" ||
  fail "the runtime stage adds $added_mb MB to the base, more than $max_added_mb MB"
# The build stage's compilers must not be in the final image.
layers=$(podman history --format '{{.CreatedBy}}' "$image")
[[ $layers != *build-essential* ]] && ok "no build-stage layer in the image" || fail "the image contains the build stage"

# ------------------------------------------------------------- run inside it
ctr=$(buildah from --pull-never "$image")
trap 'buildah rm "$ctr" > /dev/null 2>&1 || true' EXIT
inside() { buildah run --isolation chroot "$ctr" -- "$@"; }

uid=$(inside id -u)
[[ $uid == 65532 ]] && ok "processes in the image run as uid $uid" || fail "processes in the image run as uid $uid"
want_version=$("$binary" --version)
got_version=$(inside /usr/local/bin/dbward --version 2>&1) || true
[[ $got_version == "$want_version" ]] && ok "dbward --version in the image: $got_version" ||
  fail "dbward --version in the image printed '$got_version', this tree's build prints '$want_version'"
if inside sh -c 'ldd /usr/local/bin/dbward' | grep -q "not found"; then
  fail "a shared library of dbward is missing in the image"
else
  ok "every shared library of dbward resolves in the image"
fi

# Every shipped configuration, with deploy_check.sh's generated certificates,
# copied into the image at the same absolute path (owned by the image's user,
# as a Kubernetes fsGroup would make them readable).
configs="$work/configs"
DBWARD_BINARY=$binary DEPLOY_CHECK_KEEP=$configs "$root/tests/deploy_check.sh" > "$work/deploy_check.log" 2>&1 ||
  { tail -20 "$work/deploy_check.log"; fail "tests/deploy_check.sh failed on the host (log: $work/deploy_check.log)"; }
buildah copy --quiet --chown 65532:65532 "$ctr" "$configs" "$configs" > /dev/null
count=0
while IFS=$'\t' read -r label path; do
  count=$((count + 1))
  # Audit files named by a config go to /var/log/dbward, which only the
  # systemd unit creates; check-config does not write them.
  if out=$(inside /usr/local/bin/dbward check-config "$path" 2>&1 < /dev/null); then
    ok "check-config in the image: $label"
  else
    fail "check-config in the image rejects $label: $out"
  fi
done < "$configs/configs.txt"
((count >= 5)) && ok "$count shipped configurations checked in the image" || fail "only $count configurations found to check"

echo "container_test: $failed failed"
((failed == 0))
