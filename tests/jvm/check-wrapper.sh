#!/usr/bin/env bash
# Checks the committed Gradle wrapper of android/: gradle-wrapper.jar must be the official Gradle
# 8.11.1 wrapper (by SHA-256), the distribution must be pinned by distributionSha256Sum, and
# gradlew must be executable. Fails loudly otherwise. Called by tests/jvm/run.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."

JAR=android/gradle/wrapper/gradle-wrapper.jar
PROPS=android/gradle/wrapper/gradle-wrapper.properties
WANT=2db75c40782f5e8ba1fc278a5574bab070adccb2d21ca5a6e5ed840888448046 # gradle-8.11.1 wrapper jar

fail() {
  echo "tests/jvm/check-wrapper.sh: FAILED: $*" >&2
  exit 1
}

[ -f "$JAR" ] || fail "$JAR is missing"
got=$(sha256sum "$JAR" | cut -d' ' -f1)
[ "$got" = "$WANT" ] || fail "$JAR has SHA-256 $got, expected $WANT (the official Gradle 8.11.1 wrapper jar)"
[ -f android/gradlew ] || fail "android/gradlew is missing"
[ -x android/gradlew ] || fail "android/gradlew is not executable (chmod +x android/gradlew)"
# Once committed, the mode recorded in git is what a fresh clone gets.
if mode=$(git ls-files -s android/gradlew 2>/dev/null | cut -d' ' -f1) && [ -n "$mode" ]; then
  [ "$mode" = 100755 ] || fail "android/gradlew is committed with mode $mode, not 100755 (git update-index --chmod=+x android/gradlew)"
fi
grep -q '^distributionUrl=.*gradle-8\.11\.1-bin\.zip$' "$PROPS" || fail "$PROPS does not point at gradle-8.11.1-bin.zip"
grep -Eq '^distributionSha256Sum=[0-9a-f]{64}$' "$PROPS" || fail "$PROPS does not pin the distribution (distributionSha256Sum)"
echo "ok   Gradle wrapper: $JAR is the 8.11.1 jar, gradlew is executable, distribution pinned"
