#!/usr/bin/env bash
# Runs every test of the project: formatting, lints (host, and the three Android ABIs through
# tools/android/check.sh: clang + a glibc sysroot stand in for the NDK), unit tests and the integration tests that
# drive the real `streamer` binary with curl, ffprobe, ffmpeg, nginx (TLS + HTTP/2) as a backend and
# strace (proving cached reads make no system call on the index), the churn test against the release
# build (a small cache under 32 concurrent readers, every body compared; CHURN_SECS sets its length),
# then the browser test of the dashboard (Node's test runner driving Debian's headless Chromium
# through playwright-core, installed from tests/browser/package-lock.json with `npm ci`), then the
# JVM tests of the Kotlin API over the JNI bridge (tests/jvm/run.sh: kotlinc from npm, java -Xcheck:jni).
#
# Prerequisites are checked first. A missing tool is installed with apt-get when this runs as
# root on Debian/Ubuntu; otherwise the script stops with a message saying what to install.
# Nothing is ever skipped silently.
set -euo pipefail
cd "$(dirname "$0")/.."

install_or_fail() { # tool package
  if command -v "$1" >/dev/null 2>&1; then return; fi
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "tests/run.sh: installing $2 (for $1)" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null ||
      { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null; }
  fi
  command -v "$1" >/dev/null 2>&1 || {
    echo "tests/run.sh: missing prerequisite '$1': install it with 'apt-get install -y $2'" >&2
    exit 1
  }
}

command -v cargo >/dev/null 2>&1 || { echo "tests/run.sh: cargo is missing: install Rust with rustup" >&2; exit 1; }
install_or_fail curl curl
install_or_fail ffmpeg ffmpeg
install_or_fail ffprobe ffmpeg
install_or_fail nginx nginx-light
install_or_fail openssl openssl
install_or_fail strace strace
install_or_fail chromium chromium
install_or_fail node nodejs
install_or_fail npm npm
install_or_fail java openjdk-17-jdk-headless

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo clippy -p embedded-server --all-targets --features jni --locked -- -D warnings
echo "== the library and its JNI bridge compile and lint clean for every Android ABI (tools/android/check.sh)"
tools/android/check.sh
echo "== the arm64 cdylib fits its size budget (tools/android/size.sh --check)"
tools/android/size.sh --check
echo "== the host build links no Android-only crate"
if cargo tree -p embedded-server --features jni -e normal --locked --prefix none | grep -Ei '^(tracing-android|android_log|ndk)'; then
  echo "tests/run.sh: an Android-only crate is in the host dependency tree" >&2
  exit 1
fi
# ...while the Android targets do have the logcat layer.
cargo tree -p embedded-server --features jni -e normal --locked --prefix none --target aarch64-linux-android |
  grep -q '^tracing-android' || { echo "tests/run.sh: tracing-android missing for Android" >&2; exit 1; }
# ...and trust the phone's CA store, not a bundled copy of Mozilla's (fetch/roots.rs).
if cargo tree -p embedded-server --features jni -e normal --locked --prefix none --target aarch64-linux-android | grep '^webpki-roots'; then
  echo "tests/run.sh: webpki-roots is in the Android dependency tree" >&2
  exit 1
fi
echo "== cargo build"
cargo build --workspace --locked
cargo build --release -p tools --locked
export STREAMER_BIN="$PWD/target/debug/streamer"
export STREAMER_RELEASE_BIN="$PWD/target/release/streamer"
echo "== cargo test"
cargo test --workspace --locked -- --test-threads 4 --skip churn_under_a_small_cache
echo "== churn: a small cache under 32 concurrent readers, every body compared (release build)"
CHURN_SECS="${CHURN_SECS:-90}" cargo test -p integration-tests --test churn --locked -- --nocapture
echo "== browser test (headless chromium)"
npm ci --prefix tests/browser --no-audit --no-fund --loglevel=error
node --test tests/browser/
echo "== JVM tests of the Kotlin API over JNI (java -Xcheck:jni)"
tests/jvm/run.sh
