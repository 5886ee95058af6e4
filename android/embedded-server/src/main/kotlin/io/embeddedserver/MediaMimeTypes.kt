package io.embeddedserver

/**
 * MIME types for a player's media items, spelled as Media3's `MimeTypes` spells them: Media3
 * compares them exactly, and [HLS] (`MimeTypes.APPLICATION_M3U8`) or [DASH]
 * (`MimeTypes.APPLICATION_MPD`) is what makes it choose its HLS or DASH media source for a URI
 * (such as an `embedded://` one) whose extension it cannot see.
 */
object MediaMimeTypes {
    /** An HLS playlist: `application/x-mpegURL`, Media3's `MimeTypes.APPLICATION_M3U8`. */
    const val HLS = "application/x-mpegURL"

    /** A DASH manifest: `application/dash+xml`, Media3's `MimeTypes.APPLICATION_MPD`. */
    const val DASH = "application/dash+xml"

    /** The other names servers give HLS playlists (RFC 8216 and older ones). */
    private val HLS_ALIASES = setOf("application/x-mpegurl", "application/vnd.apple.mpegurl", "audio/mpegurl", "audio/x-mpegurl")

    /** By file extension, in Media3's spelling (`MimeTypes.AUDIO_MPEG`, `VIDEO_MP4`...). */
    private val BY_EXTENSION = mapOf(
        "m3u8" to HLS,
        "mpd" to DASH,
        "mp3" to "audio/mpeg",
        "m4a" to "audio/mp4",
        "mp4" to "video/mp4",
        "flac" to "audio/flac",
        "ogg" to "audio/ogg",
        "oga" to "audio/ogg",
        "opus" to "audio/ogg",
        "wav" to "audio/wav",
        "webm" to "video/webm",
        "mkv" to "video/x-matroska",
        "mka" to "audio/x-matroska",
        "ts" to "video/mp2t",
    )

    /** [mime] without parameters, in lower case, with every HLS alias as [HLS]. */
    @JvmStatic
    fun normalize(mime: String): String {
        val base = mime.substringBefore(';').trim().lowercase()
        return if (base in HLS_ALIASES) HLS else base
    }

    /** The MIME type of [url] by the extension of its path (query and fragment ignored), or null. */
    @JvmStatic
    fun fromUrl(url: String): String? {
        val path = url.substringBefore('#').substringBefore('?')
        val name = path.substringAfterLast('/')
        if (!name.contains('.')) return null
        return BY_EXTENSION[name.substringAfterLast('.').lowercase()]
    }

    /**
     * The MIME type of catalog track [trackId] on [server]: the one it was registered with, else
     * by the extension of its URL, else null. Reads the index ([EmbeddedServer.track]): not on
     * the main thread. A registered `application/octet-stream` says nothing: the extension wins.
     * Throws [EmbeddedServerException] for an unknown track.
     */
    @JvmStatic
    fun forTrack(server: EmbeddedServer, trackId: String): String? {
        val track = server.track(trackId)
        return track.mime?.let(::normalize)?.takeIf { it != "application/octet-stream" } ?: fromUrl(track.url)
    }
}
