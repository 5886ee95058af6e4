package io.embeddedserver

import android.content.Context
import java.io.File

/**
 * A [Config] for an Android app, with the two directories where Android expects them:
 *
 * - [Config.cacheDir] = `cacheDir/embedded-server`: the evictable cache. The system may delete it
 *   when storage runs low and the user may empty it with "Clear cache"; what goes is fetched again.
 * - [Config.downloadsDir] = `noBackupFilesDir/embedded-server`: the pinned bytes of offline
 *   downloads and the index (with the download queue). Only the app (or "Clear storage") empties
 *   it, so downloads and the queue survive "Clear cache" and low storage; and Auto Backup skips it,
 *   so downloads neither blow the app's 25 MB backup quota nor come back from a restore as an
 *   index without its bytes. An install that kept them under `filesDir/embedded-server` (before
 *   this version) has them moved there once, by a rename, at the first call in the process.
 *
 * Both are created at start if missing. Call [builder] and start the server off the main thread:
 * they touch the disk (the one-time move, the index).
 *
 * [Config.initialNetwork] is the device's connectivity now ([NetworkWatcher.currentState]), so
 * queued downloads do not start on mobile data before the app reports the network; keep it current
 * with a [NetworkWatcher].
 */
object AndroidConfig {
    /** The directory name used under `cacheDir` and `noBackupFilesDir` (and formerly `filesDir`). */
    const val DIR_NAME = "embedded-server"

    /** The downloads directory chosen by the first call in this process (after the move, if any). */
    @Volatile
    private var downloadsDir: File? = null

    @JvmStatic
    fun builder(context: Context): Config.Builder =
        Config.Builder(File(context.cacheDir, DIR_NAME).absolutePath)
            .downloadsDir(downloadsDir(context).absolutePath)
            .initialNetwork(NetworkWatcher.currentState(context))

    /** Once per process: a server may already be running on what a second move would rename. */
    private fun downloadsDir(context: Context): File = downloadsDir ?: synchronized(this) {
        downloadsDir ?: DirectoryMove.moveOnce(File(context.filesDir, DIR_NAME), File(context.noBackupFilesDir, DIR_NAME))
            .also { downloadsDir = it }
    }
}
