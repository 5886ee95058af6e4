// A Media3 ExoPlayer app playing the catalog of a `streamer origin --demo` backend through the
// embedded server, with offline downloads.
import org.jetbrains.kotlin.gradle.dsl.JvmTarget
import org.jetbrains.kotlin.gradle.tasks.KotlinCompile

plugins {
    id("com.android.application")
    id("org.jetbrains.kotlin.android")
}

android {
    namespace = "io.embeddedserver.sample"
    compileSdk = 35

    defaultConfig {
        applicationId = "io.embeddedserver.sample"
        minSdk = 24
        targetSdk = 35
        versionCode = 1
        versionName = "0.1.0"
        // The backend: `streamer origin --demo --dir /tmp/demo --port 8000` on the laptop, reached
        // from the device through `adb reverse tcp:8000 tcp:8000`.
        buildConfigField("String", "BACKEND", "\"http://127.0.0.1:8000\"")
        // src/androidTest: instrumented tests against that backend (.github/workflows/android.yml).
        testInstrumentationRunner = "androidx.test.runner.AndroidJUnitRunner"
    }

    buildFeatures { buildConfig = true }

    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }
}

// Bytecode level 17 without requiring a JDK 17 toolchain (see embedded-server/build.gradle.kts).
tasks.withType<KotlinCompile>().configureEach {
    compilerOptions { jvmTarget.set(JvmTarget.JVM_17) }
}

dependencies {
    implementation(project(":embedded-server"))
    implementation("androidx.core:core-ktx:1.15.0")
    implementation("androidx.activity:activity-ktx:1.9.3")
    implementation("androidx.lifecycle:lifecycle-runtime-ktx:2.8.7")
    implementation("androidx.lifecycle:lifecycle-service:2.8.7")
    implementation("androidx.media3:media3-exoplayer:1.5.1")
    // HLS: proxyUrl / embedded://url/ of an HLS master plays (DefaultMediaSourceFactory finds it).
    implementation("androidx.media3:media3-exoplayer-hls:1.5.1")
    // PlaybackService (MediaSessionService) and the activity's MediaController.
    implementation("androidx.media3:media3-session:1.5.1")
    implementation("androidx.media3:media3-ui:1.5.1")
    implementation("androidx.media3:media3-datasource-okhttp:1.5.1")
    implementation("com.squareup.okhttp3:okhttp:4.12.0")
    // `future { }` answers the session's ListenableFuture callbacks, `await()` the controller's.
    implementation("org.jetbrains.kotlinx:kotlinx-coroutines-guava:1.9.0")

    androidTestImplementation("androidx.test:runner:1.6.2")
    androidTestImplementation("androidx.test:core:1.6.1")
    androidTestImplementation("androidx.test.ext:junit:1.2.1")
}
