package io.embeddedserver

/** The largest app data ([Download.data]) kept with a download, in bytes of UTF-8. */
const val MAX_DOWNLOAD_DATA: Int = 16 * 1024

/** How much of one remote URL the cache holds ([EmbeddedServer.cached]). */
data class CachedResource(
    /** The URL as the cache keys it (normalised: default port and host case dropped). */
    val url: String,
    /** Bytes present: servable now, offline too. */
    val cachedBytes: Long,
    /** Total length in bytes, once the backend has told it. */
    val size: Long?,
    /** Every byte is cached: it plays offline from start to end. */
    val complete: Boolean,
    /** Pinned by a download: never evicted. */
    val pinned: Boolean,
) {
    internal companion object {
        fun fromJson(json: String): CachedResource {
            val m = jsonObject(json)
            return CachedResource(
                url = m.str("url") ?: "",
                cachedBytes = m.long("cached_bytes") ?: 0,
                size = m.long("size"),
                complete = m.bool("complete"),
                pinned = m.bool("pinned"),
            )
        }
    }
}

/** What [EmbeddedServer.clearCache] removed. */
data class ClearedCache(
    /** Resources removed. */
    val resources: Long,
    /** Their bytes. */
    val bytes: Long,
) {
    internal companion object {
        fun fromJson(json: String): ClearedCache {
            val m = jsonObject(json)
            return ClearedCache(resources = m.long("resources") ?: 0, bytes = m.long("bytes") ?: 0)
        }
    }
}
