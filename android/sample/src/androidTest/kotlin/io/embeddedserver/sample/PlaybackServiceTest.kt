package io.embeddedserver.sample

import android.content.ComponentName
import android.content.Context
import androidx.media3.common.MediaItem
import androidx.media3.session.MediaController
import androidx.media3.session.SessionToken
import androidx.test.core.app.ApplicationProvider
import androidx.test.ext.junit.runners.AndroidJUnit4
import io.embeddedserver.EmbeddedServerHost
import io.embeddedserver.EmbeddedUri
import java.util.concurrent.TimeUnit
import kotlinx.coroutines.runBlocking
import org.junit.After
import org.junit.Assert.assertEquals
import org.junit.Before
import org.junit.Test
import org.junit.runner.RunWith

/**
 * The sample's [PlaybackService] through a MediaController, as the activity and System UI use
 * it: the app's own server, items given by their `embedded://` media ID alone, and playback
 * resumption of the saved queue.
 */
@RunWith(AndroidJUnit4::class)
class PlaybackServiceTest {
    private val context: Context = ApplicationProvider.getApplicationContext()
    private lateinit var track: DemoBackend.Track
    private lateinit var controller: MediaController

    @Before
    fun setUp() {
        DemoBackend.resetFaults()
        track = DemoBackend.shortestTrack()
        // The app's server knows the catalog once MainActivity has loaded it; register it here.
        val server = runBlocking { (context as EmbeddedServerHost).embeddedServer() }
        server.registerTrack(track.id, track.url, sha256 = track.sha256, size = track.size, mime = track.mime)
        val token = SessionToken(context, ComponentName(context, PlaybackService::class.java))
        // Built from this (looper-less) thread, the controller lives on the main looper.
        controller = MediaController.Builder(context, token).buildAsync().get(30, TimeUnit.SECONDS)
    }

    @After
    fun tearDown() {
        onMain {
            controller.stop()
            controller.clearMediaItems() // also forgets the saved queue
            controller.release()
        }
    }

    @Test
    fun playsAnItemGivenByItsEmbeddedMediaIdAlone() {
        val uri = EmbeddedUri.track(track.id)
        onMain {
            controller.setMediaItem(MediaItem.Builder().setMediaId(uri).build())
            controller.prepare()
            controller.play()
        }
        waitFor(controller, "playing $uri", 30_000) { isPlaying && currentPosition > 1_000 }
    }

    @Test
    fun resumesTheSavedQueueOnPlay() {
        val uri = EmbeddedUri.track(track.id)
        QueueStore(context).save(SavedQueue(listOf(uri), index = 0, positionMs = 20_000))
        // play() with an empty player asks the session for playback resumption, as a media button
        // or the System UI's media controls do after process death.
        onMain { controller.play() }
        waitFor(controller, "resumed playback of $uri", 30_000) { isPlaying && currentPosition > 20_000 }
        assertEquals(uri, onMain { controller.currentMediaItem?.mediaId })
    }
}
