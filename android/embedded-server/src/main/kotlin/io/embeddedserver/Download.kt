package io.embeddedserver

/** Where a download is in its life. */
enum class DownloadState(val wire: String) {
    QUEUED("queued"),
    RUNNING("running"),
    WAITING_FOR_NETWORK("waiting_for_network"),
    PAUSED("paused"),
    COMPLETED("completed"),
    FAILED("failed");

    companion object {
        fun of(wire: String?): DownloadState =
            entries.firstOrNull { it.wire == wire } ?: throw EmbeddedServerException("unknown download state '$wire'")
    }
}

/** An offline download, as the library reports it. */
data class Download(
    val id: String,
    /** The catalog track, if it is one. */
    val track: String?,
    val url: String,
    val state: DownloadState,
    val bytesDone: Long,
    /** Total bytes, when known. */
    val bytesTotal: Long?,
    /** Why it failed, for a person to read. */
    val error: String?,
    val priority: Long,
    /** Its bytes are pinned: never evicted, playable offline. */
    val pinned: Boolean,
    /** For an HLS download: resources (playlists, segments, keys) cached so far. */
    val segmentsDone: Long? = null,
    /** For an HLS download: resources it needs, once its playlists have been read. */
    val segmentsTotal: Long? = null,
    /**
     * Orders the snapshots of one download: the higher is the newer. [EmbeddedServer.downloadMap]
     * keeps the highest, so a late update never overwrites a newer state.
     */
    val version: Long = 0,
    /** The app's own metadata given to [EmbeddedServer.download] or [EmbeddedServer.setDownloadData]. */
    val data: String? = null,
    /** Running, but holding back its transfer while the player lacks bytes ([LinkPolicy.YIELD]). */
    val yielding: Boolean = false,
) {
    /** 0.0 to 1.0, or null while the size is unknown. */
    val progress: Double?
        get() = bytesTotal?.takeIf { it > 0 }?.let { bytesDone.toDouble() / it }

    internal companion object {
        fun fromJson(json: String) = from(jsonObject(json))

        fun listFromJson(json: String): List<Download> {
            val list = Json.parse(json) as? List<*> ?: throw EmbeddedServerException("expected a JSON array")
            @Suppress("UNCHECKED_CAST")
            return list.map { from(it as Map<String, Any?>) }
        }

        fun from(m: Map<String, Any?>) = Download(
            id = m.str("id") ?: "",
            track = m.str("track"),
            url = m.str("url") ?: "",
            state = DownloadState.of(m.str("state")),
            bytesDone = m.long("bytes_done") ?: 0,
            bytesTotal = m.long("bytes_total"),
            error = m.str("error"),
            priority = m.long("priority") ?: 0,
            pinned = m.bool("pinned"),
            segmentsDone = m.long("segments_done"),
            segmentsTotal = m.long("segments_total"),
            version = m.long("version") ?: 0,
            data = m.str("data"),
            yielding = m.bool("yielding"),
        )
    }
}

/** A catalog track and its cache state. */
data class Track(
    val id: String,
    val url: String,
    val sha256: String?,
    val size: Long?,
    val mime: String?,
    /** Bytes cached (servable now). */
    val cachedBytes: Long,
    /** Every byte is cached: playable offline. */
    val complete: Boolean,
    /** Pinned by an offline download. */
    val pinned: Boolean,
) {
    internal companion object {
        fun fromJson(json: String): Track = from(jsonObject(json))

        fun listFromJson(json: String): List<Track> {
            val list = Json.parse(json) as? List<*> ?: throw EmbeddedServerException("expected a JSON array")
            @Suppress("UNCHECKED_CAST")
            return list.map { from(it as Map<String, Any?>) }
        }

        fun from(m: Map<String, Any?>): Track {
            return Track(
                id = m.str("id") ?: "",
                url = m.str("url") ?: "",
                sha256 = m.str("sha256"),
                size = m.long("size"),
                mime = m.str("mime"),
                cachedBytes = m.long("cached_bytes") ?: 0,
                complete = m.bool("complete"),
                pinned = m.bool("pinned"),
            )
        }
    }
}

/** A statistics snapshot; [json] holds every field, including histograms. */
data class Stats(
    val hits: Long,
    val misses: Long,
    val bytesFromCache: Long,
    val bytesFromUpstream: Long,
    val cacheBytes: Long,
    val pinnedBytes: Long,
    val entries: Long,
    val activeStreams: Long,
    val json: String,
    /** The cache limit now: [Config.maxCacheBytes], or what [EmbeddedServer.setCacheLimit] set. */
    val maxCacheBytes: Long = 0,
    /** Players short of bytes now (downloads hold back for them under [LinkPolicy.YIELD]). */
    val playbackHungry: Long = 0,
    /** Milliseconds since start during which downloads or prefetch held back for the player. */
    val yieldMs: Long = 0,
) {
    internal companion object {
        fun fromJson(json: String): Stats {
            val m = jsonObject(json)
            return Stats(
                hits = m.long("hits") ?: 0,
                misses = m.long("misses") ?: 0,
                bytesFromCache = m.long("bytes_from_cache") ?: 0,
                bytesFromUpstream = m.long("bytes_from_upstream") ?: 0,
                cacheBytes = m.long("cache_bytes") ?: 0,
                pinnedBytes = m.long("pinned_bytes") ?: 0,
                entries = m.long("entries") ?: 0,
                activeStreams = m.long("active_streams") ?: 0,
                json = json,
                maxCacheBytes = m.long("max_cache_bytes") ?: 0,
                playbackHungry = m.long("playback_hungry") ?: 0,
                yieldMs = m.long("yield_ms") ?: 0,
            )
        }
    }
}
