#!/usr/bin/env bash
# A linker for measuring the size of an Android cdylib without the NDK: clang + lld for the
# matching glibc target, with bionic's libraries (liblog, libc, libdl, libm...) left out of the
# link and their symbols left unresolved. The code and data are the real build for the target, so
# the stripped size approximates what an APK carries per ABI; the library cannot be loaded.
# Set ANDROID_APPROX_TARGET to clang's target (default aarch64-linux-gnu).
set -euo pipefail
args=()
for a in "$@"; do
  case "$a" in
    -l*) ;; # bionic's libraries are not here
    *) args+=("$a") ;;
  esac
done
exec clang --target="${ANDROID_APPROX_TARGET:-aarch64-linux-gnu}" -fuse-ld=lld -nostdlib \
  -Wl,--unresolved-symbols=ignore-all "${args[@]}"
