#!/usr/bin/env bash
# Prints the Debian/Ubuntu packages that provide the shared libraries the given binaries load,
# one per line, sorted: what a runtime image must install to run binaries built on this machine
# (deploy/docker/*.Dockerfile run it in their build stage). Fails when a library is missing or
# belongs to no package.
#   scripts/runtime-packages.sh [--exclude REGEX] BINARY...
# --exclude drops packages the runtime base image already provides (the CUDA ones).
set -euo pipefail
exclude='^$'
if [[ ${1:-} == --exclude ]]; then
  exclude=$2
  shift 2
fi
(($#)) || { echo "usage: $0 [--exclude REGEX] BINARY..." >&2; exit 2; }

deps=$(ldd "$@")
if grep -q "not found" <<<"$deps"; then
  echo "runtime-packages: unresolved libraries:" >&2
  grep "not found" <<<"$deps" >&2
  exit 1
fi

# Every name a library may be listed under (merged-/usr systems list a file under /lib or
# /usr/lib), asked of dpkg in one call: it reads its whole file database each time.
libs=$(awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// && $2 ~ /^\(0x/ {print $1}' \
         <<<"$deps" | sort -u)
declare -A candidates
all=()
for lib in $libs; do
  names=("$lib" "$(readlink -f "$lib")")
  for path in "${names[@]}"; do
    case $path in
      /usr/*) names+=("${path#/usr}") ;;
      *) names+=("/usr$path") ;;
    esac
  done
  candidates[$lib]="${names[*]}"
  all+=("${names[@]}")
done
declare -A owner_of
while IFS= read -r line; do
  # "pkg:arch, other:arch: /path"
  [[ $line == *": /"* && $line != diversion* ]] || continue
  path=${line##*: }
  package=${line%%: /*}
  package=${package%%,*}
  owner_of[$path]=${package%%:*}
done < <(dpkg-query -S "${all[@]}" 2>/dev/null || true)

packages=()
for lib in $libs; do
  package=""
  for path in ${candidates[$lib]}; do
    if [[ -n ${owner_of[$path]:-} ]]; then
      package=${owner_of[$path]}
      break
    fi
  done
  if [[ -z $package ]]; then
    echo "runtime-packages: no package owns $lib" >&2
    exit 1
  fi
  packages+=("$package")
done
printf '%s\n' "${packages[@]}" | sort -u | grep -Ev -- "$exclude" || true
