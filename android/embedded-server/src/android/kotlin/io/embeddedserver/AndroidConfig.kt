package io.embeddedserver

import android.content.Context
import java.io.File

/**
 * A [Config] for an Android app.
 *
 * The library keeps one directory: the evictable cache and the pinned offline downloads share its
 * index. With [offline] true (the default) it lives under `filesDir`, because Android may delete
 * anything under `cacheDir` when storage runs low, which would silently lose downloads the user
 * asked for. An app that never downloads can pass false to place it under `cacheDir`.
 */
object AndroidConfig {
    @JvmStatic
    @JvmOverloads
    fun builder(context: Context, offline: Boolean = true): Config.Builder {
        val base = if (offline) context.filesDir else context.cacheDir
        return Config.Builder(File(base, "embedded-server").absolutePath)
    }
}
