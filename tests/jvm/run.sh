#!/usr/bin/env bash
# Host JVM tests of the Kotlin API (android/embedded-server, its pure-JVM sources) over the JNI
# bridge: builds the host cdylib with `--features jni`, compiles the Kotlin sources and tests with
# the Kotlin compiler from npm (tests/jvm/package-lock.json, `npm ci`), and runs them on
# `java -Xcheck:jni`. Any JNI warning from -Xcheck:jni fails the run. Needs java (JDK 17+) and npm.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT="$PWD"

echo "== Gradle wrapper (android/)"
bash tests/jvm/check-wrapper.sh

command -v java >/dev/null 2>&1 || { echo "tests/jvm/run.sh: java is missing: apt-get install -y openjdk-17-jdk-headless" >&2; exit 1; }
command -v npm >/dev/null 2>&1 || { echo "tests/jvm/run.sh: npm is missing: apt-get install -y npm" >&2; exit 1; }

KOTLIN=tests/jvm/node_modules/kotlin-compiler
if [ ! -x "$KOTLIN/bin/kotlinc" ]; then
  npm ci --prefix tests/jvm --no-audit --no-fund --loglevel=error
fi
[ -x "$KOTLIN/bin/kotlinc" ] || { echo "tests/jvm/run.sh: kotlinc missing from $KOTLIN after npm ci" >&2; exit 1; }
LIB="$KOTLIN/lib"
CP="$LIB/kotlin-stdlib.jar:$LIB/kotlinx-coroutines-core-jvm.jar:$LIB/kotlin-test.jar"
for jar in ${CP//:/ }; do [ -f "$jar" ] || { echo "tests/jvm/run.sh: $jar is missing" >&2; exit 1; }; done

echo "== cargo build (streamer, then the host cdylib with --features jni)"
# In this order: a build without the feature would overwrite target/debug/libembedded_server.so.
cargo build --locked -p tools
cargo build --locked -p embedded-server --features jni
nm -D --defined-only target/debug/libembedded_server.so | grep -q Java_io_embeddedserver_NativeBridge_start ||
  { echo "tests/jvm/run.sh: target/debug/libembedded_server.so has no JNI exports" >&2; exit 1; }
export STREAMER_BIN="$ROOT/target/debug/streamer"

# The pure-JVM sources only: the Android-only ones (AndroidConfig.kt...) live under src/android/.
SRC=android/embedded-server/src/main/kotlin/io/embeddedserver
OUT=target/jvm-tests
mkdir -p "$OUT"
# The Kotlin language and API version of the Gradle build (its Kotlin Gradle plugin), not only
# the newest compiler's: code that needs a newer Kotlin than the app's build fails here.
KOTLIN_VERSION=$(sed -n 's/.*id("org.jetbrains.kotlin.android") version "\([0-9]*\.[0-9]*\).*/\1/p' android/build.gradle.kts)
[ -n "$KOTLIN_VERSION" ] || { echo "tests/jvm/run.sh: no Kotlin plugin version in android/build.gradle.kts" >&2; exit 1; }
# src/android (AndroidConfig, the Media3 data source...) is type-checked too, against compile-time
# stubs of exactly the Android and Media3 APIs it calls (tests/jvm/android-stubs and
# tests/jvm/media3-stubs, from the published reference; never run). The Java stubs go through
# javac; androidx.annotation.OptIn is a Kotlin annotation, so its stub is compiled with the rest.
STUBS="$OUT/android-stubs"
rm -rf "$STUBS" "$OUT/sample-classes"
mkdir -p "$STUBS"
javac -nowarn -d "$STUBS" $(find tests/jvm/android-stubs tests/jvm/media3-stubs -name '*.java')
# The stub of the library's generated R class names only resources that exist in its res/.
for name in $(sed -n 's/.*public static int \([a-z_]*\);.*/\1/p' tests/jvm/android-stubs/io/embeddedserver/R.java); do
  grep -rq "name=\"$name\"" android/embedded-server/src/main/res ||
    { echo "tests/jvm/run.sh: the R stub names $name, which android/embedded-server/src/main/res does not define" >&2; exit 1; }
done
# Runnable fakes of Android classes the pure-JVM sources reach by reflection (tests/jvm/fakes):
# on the test classpath only, so that a test decides what "Android" answers.
FAKES="$OUT/fakes"
mkdir -p "$FAKES"
javac -nowarn -d "$FAKES" $(find tests/jvm/fakes -name '*.java')
echo "== kotlinc -language-version $KOTLIN_VERSION (API, src/android against stubs, tests)"
# Kotlin stubs (OptIn; CoroutineWorker, whose members are suspend functions) compile with the rest.
"$KOTLIN/bin/kotlinc" -nowarn -language-version "$KOTLIN_VERSION" -api-version "$KOTLIN_VERSION" \
  -cp "$CP:$STUBS:$FAKES" -d "$OUT/classes" "$SRC"/*.kt android/embedded-server/src/android/kotlin/io/embeddedserver/*.kt \
  $(find tests/jvm/android-stubs -name '*.kt') tests/jvm/media3-stubs/androidx/annotation/OptIn.kt tests/jvm/src/*.kt

# The sample's playback service and the helpers it uses, type-checked against the same stubs
# (Media3 session/exoplayer, Guava's ListenableFuture, OkHttp, kotlinx-coroutines-guava's
# `future`, and the framework's Service and SharedPreferences) and the library compiled above.
# MainActivity, SampleApp and TransferService (widgets, notifications, connectivity) are compiled
# only by the Gradle build.
SAMPLE=android/sample/src/main/kotlin/io/embeddedserver/sample
echo "== kotlinc: the sample's PlaybackService and its helpers against stubs"
"$KOTLIN/bin/kotlinc" -nowarn -language-version "$KOTLIN_VERSION" -api-version "$KOTLIN_VERSION" \
  -cp "$CP:$STUBS:$OUT/classes" -d "$OUT/sample-classes" \
  "$SAMPLE"/{SamplePlayer,SavedQueue,SessionCallback,PlaybackService}.kt \
  tests/jvm/media3-stubs/kotlinx/coroutines/guava/ListenableFuture.kt

echo "== javac: the API as a Java app calls it (@JvmOverloads, no Kotlin default arguments)"
javac -nowarn -cp "$OUT/classes:$CP" -d "$OUT/java-classes" $(find tests/jvm/java -name '*.java')

echo "== consumer-rules.pro keeps every name the native side and WorkManager need (javap + the JNI sources)"
command -v python3 >/dev/null 2>&1 || { echo "tests/jvm/run.sh: python3 is missing: apt-get install -y python3" >&2; exit 1; }
python3 tests/jvm/keep_rules.py "$OUT/classes" --self-test

echo "== java -Xcheck:jni"
LOG="$OUT/run.log"
set +e
java -Xcheck:jni -Djava.library.path="$ROOT/target/debug" -cp "$OUT/classes:$FAKES:$CP" \
  io.embeddedserver.test.EmbeddedServerTestKt 2>&1 | tee "$LOG"
status=${PIPESTATUS[0]}
set -e
# Every form HotSpot's -Xcheck:jni reports in: a warning or fatal error in a native method, and
# the local reference capacity warning ("WARNING: JNI local refs: 40, exceeds capacity: 32").
JNI_PROBLEM='WARNING in native method|FATAL ERROR in native method|WARNING: JNI |JNI local refs: [0-9]+, exceeds capacity'
for sample in "WARNING in native method: JNI call made with exception pending" \
  "WARNING: JNI local refs: 40, exceeds capacity: 32" "FATAL ERROR in native method: Bad global or local ref"; do
  grep -qE "$JNI_PROBLEM" <<<"$sample" || { echo "tests/jvm/run.sh: the JNI check misses: $sample" >&2; exit 1; }
done
if grep -qE "$JNI_PROBLEM" "$LOG"; then
  echo "tests/jvm/run.sh: -Xcheck:jni reported a problem (see above)" >&2
  exit 1
fi
exit "$status"
