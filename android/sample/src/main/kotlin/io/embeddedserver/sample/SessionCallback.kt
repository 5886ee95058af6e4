package io.embeddedserver.sample

import androidx.annotation.OptIn
import androidx.media3.common.MediaItem
import androidx.media3.common.util.UnstableApi
import androidx.media3.session.MediaSession
import androidx.media3.session.MediaSession.MediaItemsWithStartPosition
import com.google.common.util.concurrent.ListenableFuture
import io.embeddedserver.EmbeddedMediaItems
import io.embeddedserver.EmbeddedServer
import io.embeddedserver.EmbeddedUri
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.guava.future
import kotlinx.coroutines.withContext

/**
 * The session's answers to controllers: items given by an `embedded://` media ID alone (from
 * another process, Android Auto, a restored queue) become playable items, and playback
 * resumption returns the queue [queue] saved last. Both wait for [server] first, so a request
 * that arrives while the process is still starting (a media button after process death) plays
 * once the server is up instead of failing on a missing server. Futures run in [scope].
 */
@OptIn(UnstableApi::class) // onPlaybackResumption and MediaItemsWithStartPosition are @UnstableApi
class SessionCallback(
    private val scope: CoroutineScope,
    private val server: suspend () -> EmbeddedServer,
    private val queue: QueueStore,
) : MediaSession.Callback {
    override fun onAddMediaItems(
        mediaSession: MediaSession,
        controller: MediaSession.ControllerInfo,
        mediaItems: MutableList<MediaItem>,
    ): ListenableFuture<MutableList<MediaItem>> = scope.future { playable(mediaItems).toMutableList() }

    override fun onPlaybackResumption(
        mediaSession: MediaSession,
        controller: MediaSession.ControllerInfo,
    ): ListenableFuture<MediaItemsWithStartPosition> = scope.future {
        // The first read of SharedPreferences may wait for the disk: not on the main thread.
        val saved = withContext(Dispatchers.IO) { queue.load() }
            ?: throw UnsupportedOperationException("no saved queue to resume")
        val items = playable(saved.mediaIds.map { MediaItem.Builder().setMediaId(it).build() })
        MediaItemsWithStartPosition(items, saved.index, saved.positionMs)
    }

    /**
     * [items] with a URI kept as they are, the others built from their `embedded://` media ID
     * (with the MIME type the catalog gives, which reads the index: on [Dispatchers.IO]). Throws
     * for a media ID that is not an `embedded://` URI or names an unknown track.
     */
    private suspend fun playable(items: List<MediaItem>): List<MediaItem> {
        val running = server()
        if (items.all { it.localConfiguration != null }) return items
        return withContext(Dispatchers.IO) {
            items.map { item ->
                if (item.localConfiguration != null) {
                    item
                } else {
                    fromMediaId(item.mediaId, running).buildUpon().setMediaMetadata(item.mediaMetadata).build()
                }
            }
        }
    }

    private fun fromMediaId(mediaId: String, server: EmbeddedServer): MediaItem {
        require(EmbeddedUri.isEmbedded(mediaId)) { "media ID \"$mediaId\" is not an embedded:// URI: give the item a URI" }
        return when (val uri = EmbeddedUri.parse(mediaId)) {
            is EmbeddedUri.CatalogTrack -> EmbeddedMediaItems.mediaItem(uri.id, server = server)
            is EmbeddedUri.RemoteUrl -> EmbeddedMediaItems.mediaItemForUrl(uri.url)
        }
    }
}
