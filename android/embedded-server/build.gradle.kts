// The Kotlin API over the Rust library's JNI bridge, packaged as an AAR with the native library
// for arm64-v8a, armeabi-v7a and x86_64, built by cargo-ndk.
import org.jetbrains.kotlin.gradle.dsl.JvmTarget
import org.jetbrains.kotlin.gradle.tasks.KotlinCompile

plugins {
    id("com.android.library")
    id("org.jetbrains.kotlin.android")
}

val abis = listOf("arm64-v8a", "armeabi-v7a", "x86_64")
val minSdkLevel = 24
// `android` (the workspace's size-first profile: opt-level z, fat LTO, one codegen unit, stripped),
// `release`, or `dev`.
val cargoProfile = providers.gradleProperty("embeddedServer.cargoProfile").getOrElse("android")
// `cargo` from PATH unless given (Android Studio's Gradle daemon may not see ~/.cargo/bin).
val cargo = providers.gradleProperty("embeddedServer.cargo").getOrElse("cargo")
// The Rust workspace (Cargo.toml, Cargo.lock, embedded-server/) is the parent of android/.
val rustWorkspace: File = rootProject.projectDir.parentFile
// cargo-ndk's output: <abi>/libembedded_server.so, the layout of a jniLibs source dir.
val jniLibsDir: File = layout.buildDirectory.dir("rust/jniLibs").get().asFile

android {
    namespace = "io.embeddedserver"
    compileSdk = 35

    defaultConfig {
        minSdk = minSdkLevel
        consumerProguardFiles("consumer-rules.pro")
        ndk { abiFilters += abis }
    }

    sourceSets["main"].apply {
        // src/main/kotlin: pure JVM (also compiled and tested on the host, tests/jvm/run.sh);
        // src/android/kotlin: needs the Android SDK (AndroidConfig). AGP copies these Kotlin
        // source dirs into the Kotlin plugin's `main` source set when it creates its tasks.
        kotlin.srcDirs("src/main/kotlin", "src/android/kotlin")
        // What the cargoNdk task writes; merge*JniLibFolders depend on it (below).
        jniLibs.srcDir(jniLibsDir)
    }

    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }
}

// Bytecode level 17 without a toolchain requirement: `jvmToolchain(17)` fails on a machine whose
// only JDK is newer (e.g. Android Studio's bundled JDK 21) unless a toolchain resolver is set up.
tasks.withType<KotlinCompile>().configureEach {
    compilerOptions { jvmTarget.set(JvmTarget.JVM_17) }
}

dependencies {
    // The public API exposes Flow/StateFlow.
    api("org.jetbrains.kotlinx:kotlinx-coroutines-core:1.9.0")
    implementation("org.jetbrains.kotlinx:kotlinx-coroutines-android:1.9.0")
    // EmbeddedDataSource and EmbeddedMediaItems (stable embedded:// URIs) use Media3: apps that use
    // them already depend on it (media3-exoplayer brings both), so it is not forced on others.
    // The version the sample uses; the app's own (newer) Media3 is the one that runs.
    compileOnly("androidx.media3:media3-datasource:1.5.1")
    compileOnly("androidx.media3:media3-common:1.5.1")
    // DownloadWorker and DownloadScheduler (downloads that survive process death). The -ktx
    // artifact brings work-runtime with CoroutineWorker whichever release moved it there. The
    // 2.10 line and core 1.15 match this build's AGP 8.7 / compileSdk 35 (newer releases may ask
    // for a newer compileSdk and AGP: bump them together).
    implementation("androidx.work:work-runtime-ktx:2.10.1")
    // DownloadNotifications: NotificationCompat, NotificationChannelCompat.
    implementation("androidx.core:core:1.15.0")
}

// `cargo ndk` (cargo install cargo-ndk; rustup target add aarch64-linux-android
// armv7-linux-androideabi x86_64-linux-android; ANDROID_NDK_HOME set, or the NDK under
// $ANDROID_HOME/ndk/) writes build/rust/jniLibs/<abi>/libembedded_server.so. cargo-ndk 4 also
// links the 64-bit ABIs for 16 KB pages when the NDK is older than r28.
// Configuration-cache safe: only strings, files and providers are captured, no script object.
val cargoNdk by tasks.registering(Exec::class) {
    description = "Builds libembedded_server.so for $abis with cargo-ndk"
    group = "build"
    workingDir(rustWorkspace)
    val args = mutableListOf(cargo, "ndk", "--platform", minSdkLevel.toString())
    abis.forEach { args += listOf("-t", it) }
    args += listOf("-o", jniLibsDir.absolutePath, "build", "-p", "embedded-server", "--features", "jni", "--locked")
    when (cargoProfile) {
        "dev", "debug" -> {}
        "release" -> args += "--release"
        else -> args += listOf("--profile", cargoProfile)
    }
    commandLine(args)
    inputs.files(fileTree(rustWorkspace.resolve("embedded-server")) { include("Cargo.toml", "build.rs", "src/**") })
        .withPropertyName("crateSources")
        .withPathSensitivity(PathSensitivity.RELATIVE)
    inputs.files(rustWorkspace.resolve("Cargo.toml"), rustWorkspace.resolve("Cargo.lock"), rustWorkspace.resolve(".cargo/config.toml"))
        .withPropertyName("workspaceManifests")
        .withPathSensitivity(PathSensitivity.RELATIVE)
    outputs.dir(jniLibsDir).withPropertyName("jniLibs")
}

// The .so files must be in jniLibsDir before AGP merges the jniLibs folders (mergeDebugJniLibFolders,
// mergeReleaseJniLibFolders...): an explicit dependency of those tasks, plus preBuild so that any
// build of the module produces them first. configureEach stays lazy (no task is realized here).
tasks.configureEach {
    if (name.startsWith("merge") && name.endsWith("JniLibFolders")) dependsOn(cargoNdk)
}
tasks.named("preBuild") { dependsOn(cargoNdk) }
