package io.embeddedserver.sample

import android.content.Context
import androidx.media3.common.Player
import androidx.media3.exoplayer.ExoPlayer
import androidx.test.core.app.ApplicationProvider
import androidx.test.ext.junit.runners.AndroidJUnit4
import io.embeddedserver.Config
import io.embeddedserver.DownloadState
import io.embeddedserver.EmbeddedMediaItems
import io.embeddedserver.EmbeddedServer
import io.embeddedserver.EmbeddedServerHost
import io.embeddedserver.EmbeddedUri
import io.embeddedserver.EmbeddedUriResolver
import io.embeddedserver.RunningServer
import java.io.File
import java.net.HttpURLConnection
import java.net.URL
import java.util.UUID
import kotlin.math.abs
import kotlinx.coroutines.flow.first
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeout
import org.junit.After
import org.junit.Assert.assertEquals
import org.junit.Assert.assertNotEquals
import org.junit.Assert.assertSame
import org.junit.Assert.assertTrue
import org.junit.Before
import org.junit.Test
import org.junit.runner.RunWith

/**
 * The library on a device: a server of its own (fresh directories, the demo backend as its only
 * origin) played by the sample's ExoPlayer ([SamplePlayer]) through `embedded://` URIs.
 */
@RunWith(AndroidJUnit4::class)
class EmbeddedPlaybackTest {
    private val context: Context = ApplicationProvider.getApplicationContext()
    private val dirs = File(context.cacheDir, "instrumented-${UUID.randomUUID()}")
    private lateinit var track: DemoBackend.Track
    private lateinit var server: EmbeddedServer
    private var player: ExoPlayer? = null

    @Before
    fun setUp() {
        // The app's own server first, so that the one started here is RunningServer.current().
        runBlocking { (context as EmbeddedServerHost).embeddedServer() }
        DemoBackend.resetFaults()
        track = DemoBackend.shortestTrack()
        server = start()
        server.registerTrack(track.id, track.url, sha256 = track.sha256, size = track.size, mime = track.mime)
    }

    @After
    fun tearDown() {
        player?.let { onMain { it.release() } }
        DemoBackend.resetFaults()
        server.close()
        dirs.deleteRecursively()
    }

    @Test
    fun startsOnLoopbackWithATokenAndAnswersHealthz() {
        val base = server.baseUrl
        assertTrue(base, Regex("""http://127\.0\.0\.1:\d+/[^/]+/""").matches(base))
        val healthz = URL(URL(base), "/healthz").openConnection() as HttpURLConnection
        try {
            assertEquals(200, healthz.responseCode)
        } finally {
            healthz.disconnect()
        }
    }

    @Test
    fun playsATrackToTheEnd() {
        val player = play(EmbeddedUriResolver { server })
        waitFor(player, "the end of ${track.id}", track.durationMs + 60_000) { playbackState == Player.STATE_ENDED }
        val duration = onMain { player.duration }
        assertTrue("duration $duration ms, catalog ${track.durationMs} ms", abs(duration - track.durationMs) < 1_000)
    }

    @Test
    fun seeksForwardAndBack() {
        val player = play(EmbeddedUriResolver { server })
        waitFor(player, "ready", 30_000) { playbackState == Player.STATE_READY }
        val nearEnd = track.durationMs - 3_000
        onMain { player.seekTo(nearEnd) }
        waitFor(player, "playing after the seek to $nearEnd ms", 15_000) { isPlaying && currentPosition >= nearEnd }
        onMain { player.seekTo(5_000) }
        waitFor(player, "playing after the seek back to 5 s", 15_000) { isPlaying && currentPosition in 5_000..10_000 }
        onMain { player.seekTo(nearEnd) }
        waitFor(player, "the end after seeking", 20_000) { playbackState == Player.STATE_ENDED }
    }

    @Test
    fun downloadsThenPlaysOffline() {
        val download = server.download(track.id)
        runBlocking {
            withTimeout(120_000) {
                server.downloadMap().first { downloads ->
                    val now = downloads[download.id]
                    check(now?.state != DownloadState.FAILED) { "download failed: ${now?.error}" }
                    now?.state == DownloadState.COMPLETED
                }
            }
        }
        assertTrue(server.track(track.id).complete)

        DemoBackend.failEveryRequest()
        DemoBackend.clearRequestLog()
        val player = play(EmbeddedUriResolver { server })
        waitFor(player, "ready offline", 30_000) { playbackState == Player.STATE_READY }
        onMain { player.seekTo(track.durationMs - 5_000) }
        waitFor(player, "the end offline", 30_000) { playbackState == Player.STATE_ENDED }
        assertEquals("requests that reached the backend", 0L, DemoBackend.requestLog().length().toLong())
    }

    /**
     * A process cannot be restarted inside an instrumented test; closing the server and starting
     * a new one on the same directories in the same process is the closest: a new port and token,
     * the index read again. The same `embedded://` URI, resolved by the default resolver (the
     * running server), then plays from the new server. PlaybackServiceTest covers the other half
     * of a restart: the saved queue comes back through playback resumption.
     */
    @Test
    fun aRestartedServerResolvesTheSameEmbeddedUri() {
        val uri = EmbeddedUri.track(track.id)
        val resolver = EmbeddedUriResolver()
        assertSame(server, RunningServer.current())
        val before = resolver.resolve(uri)

        server.close()
        server = start()
        assertSame(server, RunningServer.current())
        val after = resolver.resolve(uri)
        assertNotEquals(before, after)
        assertEquals(server.trackUrl(track.id), after)

        // The track is known from the index alone (not registered again): its MIME type comes from there.
        val item = EmbeddedMediaItems.mediaItem(track.id)
        player = onMain { SamplePlayer.build(context) }
        val player = checkNotNull(player)
        onMain {
            player.setMediaItem(item)
            player.prepare()
            player.play()
        }
        waitFor(player, "2 s played from the restarted server", 30_000) { isPlaying && currentPosition > 2_000 }
    }

    private fun start(): EmbeddedServer = EmbeddedServer.start(
        Config(
            cacheDir = File(dirs, "cache").path,
            downloadsDir = File(dirs, "downloads").path,
            origins = listOf(BuildConfig.BACKEND),
        ),
    )

    /** A new player, playing [track] as `embedded://track/ID` resolved by [resolver]. */
    private fun play(resolver: EmbeddedUriResolver): ExoPlayer {
        val item = EmbeddedMediaItems.mediaItem(track.id, mimeType = track.mime)
        val player = onMain { SamplePlayer.build(context, resolver) }
        this.player = player
        onMain {
            player.setMediaItem(item)
            player.prepare()
            player.play()
        }
        return player
    }
}
