package io.embeddedserver

import android.content.Context
import java.io.File

/**
 * A [Config] for an Android app, with the two directories where Android expects them:
 *
 * - [Config.cacheDir] = `cacheDir/embedded-server`: the evictable cache. The system may delete it
 *   when storage runs low and the user may empty it with "Clear cache"; what goes is fetched again.
 * - [Config.downloadsDir] = `filesDir/embedded-server`: the pinned bytes of offline downloads and
 *   the index (with the download queue). Only the app (or "Clear storage") empties it, so
 *   downloads and the queue survive "Clear cache" and low storage.
 *
 * Both are created at start if missing. Start the server off the main thread: it opens the index.
 *
 * [Config.initialNetwork] is the device's connectivity now ([NetworkWatcher.currentState]), so
 * queued downloads do not start on mobile data before the app reports the network; keep it current
 * with a [NetworkWatcher].
 */
object AndroidConfig {
    /** The directory name used under both `cacheDir` and `filesDir`. */
    const val DIR_NAME = "embedded-server"

    @JvmStatic
    fun builder(context: Context): Config.Builder =
        Config.Builder(File(context.cacheDir, DIR_NAME).absolutePath)
            .downloadsDir(File(context.filesDir, DIR_NAME).absolutePath)
            .initialNetwork(NetworkWatcher.currentState(context))
}
