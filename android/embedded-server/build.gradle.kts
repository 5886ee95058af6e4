// The Kotlin API over the Rust library's JNI bridge, packaged as an AAR with the native library
// for arm64-v8a, armeabi-v7a and x86_64, built by cargo-ndk.
plugins {
    id("com.android.library")
    id("org.jetbrains.kotlin.android")
}

val abis = listOf("arm64-v8a", "armeabi-v7a", "x86_64")
val cargoProfile = providers.gradleProperty("embeddedServer.cargoProfile").getOrElse("release")
val rustWorkspace = rootProject.projectDir.parentFile
val jniLibsDir = layout.buildDirectory.dir("rust/jniLibs")

android {
    namespace = "io.embeddedserver"
    compileSdk = 35

    defaultConfig {
        minSdk = 24
        consumerProguardFiles("consumer-rules.pro")
        ndk { abiFilters += abis }
    }

    sourceSets["main"].apply {
        // src/main/kotlin: pure JVM (also compiled and tested on the host, tests/jvm/run.sh);
        // src/android/kotlin: needs the Android SDK.
        kotlin.srcDirs("src/main/kotlin", "src/android/kotlin")
        jniLibs.srcDir(jniLibsDir)
    }

    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }
}

kotlin {
    jvmToolchain(17)
}

dependencies {
    api("org.jetbrains.kotlinx:kotlinx-coroutines-core:1.9.0")
    implementation("org.jetbrains.kotlinx:kotlinx-coroutines-android:1.9.0")
}

// `cargo ndk` (cargo install cargo-ndk; rustup target add aarch64-linux-android
// armv7-linux-androideabi x86_64-linux-android; ANDROID_NDK_HOME set) writes
// build/rust/jniLibs/<abi>/libembedded_server.so.
val cargoNdk by tasks.registering(Exec::class) {
    description = "Builds libembedded_server.so for $abis with cargo-ndk"
    group = "build"
    workingDir = rustWorkspace
    val args = mutableListOf("cargo", "ndk", "--platform", "24")
    abis.forEach { args += listOf("-t", it) }
    args += listOf("-o", jniLibsDir.get().asFile.absolutePath, "build", "-p", "embedded-server", "--features", "jni", "--locked")
    if (cargoProfile == "release") args += "--release"
    commandLine(args)
    inputs.files(fileTree(rustWorkspace.resolve("embedded-server")) { include("Cargo.toml", "src/**") })
    inputs.files(rustWorkspace.resolve("Cargo.toml"), rustWorkspace.resolve("Cargo.lock"))
    outputs.dir(jniLibsDir)
}

tasks.named("preBuild") { dependsOn(cargoNdk) }
