package io.embeddedserver

/**
 * The JNI exports of the Rust library (`embedded-server/src/jni/`, feature `jni`). Internal: use
 * [EmbeddedServer]. Handles are IDs in the native side's registry (never addresses; 0 is none); structured results are JSON.
 * Every function throws [EmbeddedServerException] on failure, never crashes the process.
 */
internal object NativeBridge {
    init {
        System.loadLibrary("embedded_server")
    }

    /** Receives download updates (JSON of one download) on a native thread. */
    interface Listener {
        fun onDownload(json: String)
    }

    /**
     * Asked on a native thread for fresh credentials after a 401/403: returns JSON
     * `{"url": String?, "headers": [[name, value], ...]}`, or null to give up.
     */
    interface Resolver {
        fun refresh(trackId: String?, url: String): String?
    }

    @JvmStatic external fun start(configJson: String, listener: Listener?): Long
    @JvmStatic external fun stop(handle: Long)
    @JvmStatic external fun destroy(handle: Long)
    @JvmStatic external fun baseUrl(handle: Long): String
    @JvmStatic external fun trackUrl(handle: Long, id: String): String
    @JvmStatic external fun streamUrl(handle: Long, url: String): String
    @JvmStatic external fun putTrack(handle: Long, id: String, url: String, sha256: String?, size: Long, mime: String?): String
    @JvmStatic external fun track(handle: Long, id: String): String
    @JvmStatic external fun prefetch(handle: Long, tracksJson: String, bytes: Long)
    @JvmStatic external fun stats(handle: Long): String
    @JvmStatic external fun setHeader(handle: Long, name: String, value: String?)
    @JvmStatic external fun setResolver(handle: Long, resolver: Resolver?)
    @JvmStatic external fun download(handle: Long, target: String, isUrl: Boolean, priority: Long, variant: String?, data: String?): String
    @JvmStatic external fun setDownloadData(handle: Long, id: String, data: String?): String
    @JvmStatic external fun tracks(handle: Long): String
    @JvmStatic external fun removeTrack(handle: Long, id: String)
    @JvmStatic external fun cached(handle: Long, url: String): String
    @JvmStatic external fun clearCache(handle: Long): String
    @JvmStatic external fun setCacheLimit(handle: Long, bytes: Long)
    @JvmStatic external fun downloads(handle: Long): String
    @JvmStatic external fun downloadInfo(handle: Long, id: String): String
    @JvmStatic external fun pauseDownload(handle: Long, id: String): String
    @JvmStatic external fun resumeDownload(handle: Long, id: String): String
    @JvmStatic external fun cancelDownload(handle: Long, id: String)
    @JvmStatic external fun setNetwork(handle: Long, online: Boolean, metered: Boolean)
}
