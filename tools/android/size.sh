#!/usr/bin/env bash
# Prints the stripped size of the arm64 (aarch64-linux-android) cdylib with the JNI bridge, in the
# `android` profile the Gradle build uses, linked by tools/android/link-approx.sh (bionic's
# libraries left out: the code and data are the real arm64 build, so the figure approximates the
# APK's per-ABI .so), against the 4 MiB budget (SPEC §10). Run tools/android/check.sh first once
# on a new machine (it installs clang, lld, the sysroot and the Rust target). `--check` fails
# (exit 1) when the budget is exceeded; `--crates` adds a breakdown by crate.
set -euo pipefail
cd "$(dirname "$0")/../.."
target=aarch64-linux-android
t=${target//-/_}
export "CC_$t=clang" "AR_$t=llvm-ar"
export "CFLAGS_$t=--target=aarch64-linux-gnu --sysroot=/usr/aarch64-linux-gnu -D__ANDROID_API__=24"
export CARGO_TARGET_AARCH64_LINUX_ANDROID_LINKER="$PWD/tools/android/link-approx.sh"
profile=${ANDROID_PROFILE:-android}
# The breakdown by crate needs the symbols the profile strips.
[ "${1:-}" = "--crates" ] && export CARGO_PROFILE_ANDROID_STRIP=none CARGO_PROFILE_RELEASE_STRIP=none
cargo build -p embedded-server --features jni --profile "$profile" --target "$target" --locked
so="${CARGO_TARGET_DIR:-target}/$target/$profile/libembedded_server.so"
stripped=$(mktemp)
trap 'rm -f "$stripped"' EXIT
# link-approx.sh leaves every unresolved symbol unresolved, so a symbol nothing will provide (a
# SQLite function compiled out by an OMIT but still called) would link here and fail dlopen on
# a phone. Every undefined symbol must be one the system provides: the C library (the cross
# sysroot's glibc stands in for bionic), liblog, or the NDK's libunwind.
sysroot_libs=(/usr/aarch64-linux-gnu/lib/{libc.so.6,libm.so.6,libdl.so.2,libpthread.so.0})
unknown=$(comm -23 \
  <(llvm-nm -D --undefined-only "$so" | awk '{print $NF}' | sed 's/@.*//' | sort -u) \
  <(for lib in "${sysroot_libs[@]}"; do llvm-nm -D --defined-only "$lib"; done | awk '{print $NF}' | sed 's/@.*//' | sort -u) |
  grep -vE '^(_Unwind_[A-Za-z]+|__android_log_[a-z_]+|__errno)$' || true)
if [ -n "$unknown" ]; then
  echo "tools/android/size.sh: the cdylib needs symbols no Android system library provides (it would fail to load):" >&2
  echo "$unknown" | sed 's/^/  /' >&2
  exit 1
fi
llvm-strip --strip-all -o "$stripped" "$so"
size=$(stat -c %s "$stripped")
budget=$((4 * 1024 * 1024))
echo "arm64 cdylib ($profile profile), stripped: $size bytes ($(awk "BEGIN{printf \"%.2f\", $size/1048576}") MiB); budget $budget bytes"
if [ "${1:-}" = "--check" ] && [ "$size" -gt "$budget" ]; then
  echo "tools/android/size.sh: the arm64 cdylib is $((size - budget)) bytes over the budget" >&2
  exit 1
fi
if [ "${1:-}" = "--crates" ]; then
  # Where the bytes go, by crate: symbol sizes of the unstripped build, grouped by the first path
  # segment of the demangled name; C (SQLite, ring) and anonymous data fall under "(C / other)".
  llvm-nm --size-sort -S --demangle "$so" | python3 -c '
import collections, re, sys
sums = collections.Counter()
for line in sys.stdin:
    parts = line.split(None, 3)
    if len(parts) < 4:
        continue
    name = re.sub(r"^[<&*(\[ ]+|^(dyn|impl) ", "", parts[3])
    crate = name.split("::")[0] if "::" in name and not name.startswith("_") else "(C / other)"
    sums[crate] += int(parts[1], 16)
for crate, size in sums.most_common(25):
    print(f"{size:10d}  {crate}")
'
  llvm-size -A "$so" | sort -k2 -n | tail -8
fi
