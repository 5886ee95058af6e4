package io.embeddedserver.sample

import androidx.media3.session.MediaSession
import androidx.media3.session.MediaSessionService
import io.embeddedserver.EmbeddedServerHost
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.SupervisorJob
import kotlinx.coroutines.cancel

/**
 * Playback in the background: a Media3 `MediaSessionService` (foreground service type
 * `mediaPlayback`, its notification and media buttons handled by Media3) around the sample's
 * player ([SamplePlayer]: audio focus, becoming-noisy, network wake mode). The activity and any
 * other controller (System UI, Bluetooth, Android Auto) connect to its session. The queue is saved
 * as `embedded://` media IDs ([QueueStore]) and restored by playback resumption
 * ([SessionCallback]) after the process has died, through whatever port the server has then.
 * When the app's task is removed while nothing plays, Media3's default `onTaskRemoved` stops it.
 */
class PlaybackService : MediaSessionService() {
    private val scope = CoroutineScope(SupervisorJob() + Dispatchers.Main.immediate)
    private var session: MediaSession? = null
    private lateinit var queue: QueueStore

    override fun onCreate() {
        super.onCreate()
        queue = QueueStore(this)
        val player = SamplePlayer.build(this)
        player.addListener(queue.saver())
        val callback = SessionCallback(scope, (application as EmbeddedServerHost)::embeddedServer, queue)
        session = MediaSession.Builder(this, player).setCallback(callback).build()
    }

    override fun onGetSession(controllerInfo: MediaSession.ControllerInfo): MediaSession? = session

    override fun onDestroy() {
        session?.let {
            SavedQueue.of(it.player)?.let(queue::save) // the position at the moment the service ends
            it.player.release()
            it.release()
        }
        session = null
        scope.cancel()
        super.onDestroy()
    }
}
