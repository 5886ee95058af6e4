#!/usr/bin/env bash
# Compiles and lints the library with its JNI bridge for every Android ABI we ship, on a machine
# without the Android NDK:
#
# - the Rust standard library for each target comes from rustup (`rustup target add`);
# - the bundled C (SQLite, ring) is compiled by Debian's clang against a glibc cross sysroot
#   (`libc6-dev-arm64-cross`, `libc6-dev-armhf-cross`, `libc6-dev-amd64-cross`).
#
# glibc headers stand in for bionic's here: this proves that the Rust code (every
# `cfg(target_os = "android")` path included) and the C code compile and lint clean for each
# target. It does not replace an NDK build: linking against bionic and the API level's symbols,
# and running on a device, happen only where the NDK is (cargo-ndk in the Gradle build).
#
# Usage: tools/android/check.sh            clippy -D warnings for the three ABIs
#        tools/android/check.sh --size     also link the arm64 cdylib (release) and print its
#                                          stripped size (see tools/android/size.sh)
# Missing prerequisites are installed when this runs as root on Debian; otherwise it stops and
# says what to install. Nothing is skipped.
set -euo pipefail
cd "$(dirname "$0")/../.."

# target, clang's --target, sysroot, Debian package of the sysroot
TARGETS=(
  "aarch64-linux-android aarch64-linux-gnu /usr/aarch64-linux-gnu libc6-dev-arm64-cross"
  "armv7-linux-androideabi armv7-linux-gnueabihf /usr/arm-linux-gnueabihf libc6-dev-armhf-cross"
  "x86_64-linux-android x86_64-linux-gnu /usr/x86_64-linux-gnu libc6-dev-amd64-cross"
)
# The API level the Gradle module's minSdk names.
API=24

need_package() { # test-path package
  if [ -e "$1" ]; then return; fi
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "android-check: installing $2" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null ||
      { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null; }
  fi
  [ -e "$1" ] || { echo "android-check: missing $1: install it with 'apt-get install -y $2'" >&2; exit 1; }
}

need_package /usr/bin/clang clang
need_package /usr/bin/llvm-ar llvm
need_package /usr/bin/ld.lld lld
installed_targets=$(rustup target list --installed)

# Sets the cc crate's variables for target $1 (clang --target $2, sysroot $3).
cross_env() {
  local t=${1//-/_}
  export "CC_$t=clang" "AR_$t=llvm-ar"
  export "CFLAGS_$t=--target=$2 --sysroot=$3 -D__ANDROID_API__=$API"
}

for entry in "${TARGETS[@]}"; do
  read -r target clang_target sysroot package <<<"$entry"
  need_package "$sysroot/include/stdio.h" "$package"
  if ! grep -qx "$target" <<<"$installed_targets"; then
    echo "android-check: rustup target add $target" >&2
    rustup target add "$target" >/dev/null
  fi
  cross_env "$target" "$clang_target" "$sysroot"
  echo "== clippy -D warnings for $target (jni feature)"
  cargo clippy -p embedded-server --features jni --target "$target" --locked -- -D warnings
done

if [ "${1:-}" = "--size" ]; then
  tools/android/size.sh
fi
