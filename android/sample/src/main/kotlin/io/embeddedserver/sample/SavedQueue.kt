package io.embeddedserver.sample

import android.content.Context
import androidx.media3.common.Player
import io.embeddedserver.EmbeddedUri

/**
 * A play queue as playback resumption needs it after process death: the `embedded://` media IDs
 * (stable across server restarts, unlike `http://127.0.0.1:PORT/TOKEN/...` URLs), the index of
 * the current item and its position.
 */
data class SavedQueue(val mediaIds: List<String>, val index: Int, val positionMs: Long) {
    companion object {
        /**
         * The embedded:// items of [player]'s queue and where it is; null if it has none. Items
         * with other media IDs are left out: they could not be played again after a restart.
         */
        @JvmStatic
        fun of(player: Player): SavedQueue? {
            val ids = ArrayList<String>()
            var index = 0
            var positionMs = 0L
            for (i in 0 until player.mediaItemCount) {
                val id = player.getMediaItemAt(i).mediaId
                if (!EmbeddedUri.isEmbedded(id)) continue
                if (i == player.currentMediaItemIndex) {
                    index = ids.size
                    positionMs = player.currentPosition
                }
                ids.add(id)
            }
            return if (ids.isEmpty()) null else SavedQueue(ids, index, positionMs)
        }
    }
}

/**
 * Keeps the last [SavedQueue] in the app's SharedPreferences. `save` writes in the background
 * (`apply`), so it may be called on the main thread at every queue or play/pause change.
 */
class QueueStore(context: Context) {
    private val prefs = context.getSharedPreferences(FILE, Context.MODE_PRIVATE)

    /** Replaces the saved queue; null forgets it. */
    fun save(queue: SavedQueue?) {
        val editor = prefs.edit()
        if (queue == null) {
            editor.remove(IDS)
        } else {
            // An embedded:// URI never contains a line break (its URL part is percent-encoded).
            editor.putString(IDS, queue.mediaIds.joinToString("\n"))
                .putInt(INDEX, queue.index)
                .putLong(POSITION, queue.positionMs)
        }
        editor.apply()
    }

    /** The saved queue, or null if there is none. */
    fun load(): SavedQueue? {
        val ids = prefs.getString(IDS, null)?.split('\n')?.filter { it.isNotEmpty() }
        if (ids.isNullOrEmpty()) return null
        val index = prefs.getInt(INDEX, 0).coerceIn(0, ids.size - 1)
        return SavedQueue(ids, index, prefs.getLong(POSITION, 0).coerceAtLeast(0))
    }

    /** A player listener that saves the queue whenever it changes, an item ends or playback pauses. */
    fun saver(): Player.Listener = object : Player.Listener {
        override fun onEvents(player: Player, events: Player.Events) {
            if (events.containsAny(
                    Player.EVENT_TIMELINE_CHANGED,
                    Player.EVENT_MEDIA_ITEM_TRANSITION,
                    Player.EVENT_IS_PLAYING_CHANGED,
                    Player.EVENT_POSITION_DISCONTINUITY,
                )
            ) {
                save(SavedQueue.of(player))
            }
        }
    }

    private companion object {
        const val FILE = "playback_queue"
        const val IDS = "media_ids"
        const val INDEX = "index"
        const val POSITION = "position_ms"
    }
}
