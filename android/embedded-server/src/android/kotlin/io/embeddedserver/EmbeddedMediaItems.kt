package io.embeddedserver

import androidx.media3.common.MediaItem

/**
 * Media3 `MediaItem`s with stable `embedded://` URIs ([EmbeddedUri]) and the MIME type that
 * makes Media3 pick the right media source (HLS, DASH or progressive), for a player whose data
 * source is [EmbeddedDataSource.Factory]. The media ID is the `embedded://` URI itself, so an item
 * can be rebuilt from its ID alone (e.g. in `MediaSession.Callback.onAddMediaItems`, or for
 * playback resumption); set another with `buildUpon().setMediaId(...)`.
 */
object EmbeddedMediaItems {
    /**
     * Catalog track [trackId], played through `embedded://track/ID`. Its MIME type is [mimeType]
     * if given, else the one [MediaMimeTypes.forTrack] finds on [server] (by default
     * [RunningServer.get]): that reads the index, so without [mimeType] call this off the main
     * thread. Throws [IllegalArgumentException] for an invalid ID and [EmbeddedServerException]
     * for an unknown track or when no server is running to look it up.
     */
    @JvmStatic
    @JvmOverloads
    fun mediaItem(trackId: String, mimeType: String? = null, server: EmbeddedServer? = null): MediaItem {
        val uri = EmbeddedUri.track(trackId)
        val mime = mimeType?.let(MediaMimeTypes::normalize) ?: MediaMimeTypes.forTrack(server ?: RunningServer.get(), trackId)
        return build(uri, mime)
    }

    /**
     * Remote [url] (an HLS master or a DASH MPD too) played through the cache by
     * `embedded://url/ENCODED`, with [mimeType] if given, else by the URL's extension
     * ([MediaMimeTypes.fromUrl]). Only formats strings. Throws [IllegalArgumentException] unless
     * [url] is an absolute http(s) URL.
     */
    @JvmStatic
    @JvmOverloads
    fun mediaItemForUrl(url: String, mimeType: String? = null): MediaItem =
        build(EmbeddedUri.url(url), mimeType?.let(MediaMimeTypes::normalize) ?: MediaMimeTypes.fromUrl(url))

    private fun build(uri: String, mime: String?): MediaItem =
        MediaItem.Builder().setMediaId(uri).setUri(uri).setMimeType(mime).build()
}
