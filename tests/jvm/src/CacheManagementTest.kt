// Host JVM tests of cache management through Kotlin and the JNI bridge: tracks listed and
// removed, the evictable cache cleared, the cache limit changed at run time, how much of a URL is
// cached, and the app's own data on a download, kept across a restart.
package io.embeddedserver.test

import io.embeddedserver.EmbeddedServer
import io.embeddedserver.EmbeddedServerException
import io.embeddedserver.MAX_DOWNLOAD_DATA
import java.io.File
import kotlin.test.assertContentEquals
import kotlin.test.assertEquals
import kotlin.test.assertFailsWith
import kotlin.test.assertFalse
import kotlin.test.assertNull
import kotlin.test.assertTrue
import kotlinx.coroutines.runBlocking

/** Waits until no response is streaming (a response ends just after its last byte is handed over). */
fun awaitIdle(server: EmbeddedServer) =
    eventually(what = { "active streams: ${server.stats().activeStreams}" }) { server.stats().activeStreams == 0L }

fun cacheIsManagedFromKotlin() {
    val dir = File(work, "origin-manage")
    val kept = seed(dir, "kept.bin", 600_000)
    val played = seed(dir, "played.bin", 500_000)
    val other = seed(dir, "other.bin", 400_000)
    Origin(dir).use { origin ->
        EmbeddedServer.start(config("manage", origin.url)).use { server ->
            server.registerTrack("kept", "${origin.url}/kept.bin")
            server.registerTrack("played", "${origin.url}/played.bin")
            assertEquals(listOf("kept", "played"), server.tracks().map { it.id })
            awaitCompleted(server, server.download("kept").id)
            assertContentEquals(played, get(server.trackUrl("played")).second)
            val otherUrl = "${origin.url}/other.bin"
            assertFalse(server.isCached(otherUrl))
            assertEquals(0, server.cached(otherUrl).cachedBytes)
            assertContentEquals(other, get(server.proxyUrl(otherUrl)).second)
            val cached = server.cached(otherUrl)
            assertEquals(other.size.toLong(), cached.cachedBytes)
            assertEquals(other.size.toLong(), cached.size)
            assertTrue(cached.complete && !cached.pinned, cached.toString())
            assertTrue(server.isCached(otherUrl))
            assertFailsWith<EmbeddedServerException.OriginNotAllowed> { server.cached("https://elsewhere.example/x") }
            assertFailsWith<EmbeddedServerException.InvalidArgument> { server.cached("not a url") }
            val all = (kept.size + played.size + other.size).toLong()
            assertEquals(all, server.stats().cacheBytes)

            // Clearing takes every evictable byte, exactly, and never the download (once the
            // responses above have let their resources go).
            awaitIdle(server)
            val cleared = server.clearCache()
            assertEquals(2, cleared.resources)
            assertEquals((played.size + other.size).toLong(), cleared.bytes)
            val stats = server.stats()
            assertEquals(kept.size.toLong(), stats.cacheBytes, stats.json)
            assertEquals(kept.size.toLong(), stats.pinnedBytes, stats.json)
            assertEquals(1, stats.entries, stats.json)
            assertTrue(server.track("kept").complete)
            assertEquals(0, server.track("played").cachedBytes)
            assertFalse(server.isCached(otherUrl))

            // A limit below what is cached evicts at once, least recently used first.
            assertContentEquals(played, get(server.trackUrl("played")).second)
            assertContentEquals(other, get(server.proxyUrl(otherUrl)).second)
            awaitIdle(server)
            runBlocking { server.suspending.setCacheLimit(kept.size.toLong() + other.size) }
            assertEquals(kept.size.toLong() + other.size, server.stats().maxCacheBytes)
            assertEquals(0, server.track("played").cachedBytes, "the least recently used goes")
            assertTrue(server.isCached(otherUrl), "the most recently used stays")
            assertEquals(kept.size.toLong() + other.size, server.stats().cacheBytes)
            assertFailsWith<EmbeddedServerException.InvalidArgument> { server.setCacheLimit(-1) }

            // Removing a track cancels its download and frees its bytes.
            server.removeTrack("kept")
            assertFailsWith<EmbeddedServerException.NotFound> { server.track("kept") }
            assertTrue(server.downloadMap().value.values.none { it.track == "kept" })
            assertEquals(listOf("played"), runBlocking { server.suspending.tracks() }.map { it.id })
            assertEquals(0, server.stats().pinnedBytes)
            assertFailsWith<EmbeddedServerException.NotFound> { server.removeTrack("kept") }
            assertEquals(1, runBlocking { server.suspending.clearCache() }.resources)
            assertEquals(0, server.stats().cacheBytes)
        }
    }
}

fun downloadDataSurvivesRestart() {
    val dir = File(work, "origin-data")
    val truth = seed(dir, "song.bin", 200_000)
    val data = """{"title": "Ünïcödé ♫", "album": 42}"""
    Origin(dir).use { origin ->
        val config = config("data", origin.url)
        val id = EmbeddedServer.start(config).use { server ->
            server.registerTrack("song", "${origin.url}/song.bin")
            val queued = server.download("song", data = data)
            assertEquals(data, queued.data)
            val done = awaitCompleted(server, queued.id)
            assertEquals(data, done.data)
            assertNull(server.setDownloadData(queued.id, null).data)
            assertNull(server.downloadMap().value.getValue(queued.id).data)
            val most = "x".repeat(MAX_DOWNLOAD_DATA)
            assertEquals(most, runBlocking { server.suspending.setDownloadData(queued.id, most) }.data)
            val tooBig = assertFailsWith<EmbeddedServerException.InvalidArgument> {
                server.setDownloadData(queued.id, most + "x")
            }
            assertTrue(tooBig.message!!.contains("at most $MAX_DOWNLOAD_DATA bytes"), tooBig.message)
            assertFailsWith<EmbeddedServerException.InvalidArgument> { server.downloadUrl("${origin.url}/song.bin", data = most + "x") }
            assertFailsWith<EmbeddedServerException.NotFound> { server.setDownloadData("dnope", "x") }
            assertEquals(data, server.setDownloadData(queued.id, data).data)
            queued.id
        }
        EmbeddedServer.start(config).use { server ->
            val info = server.downloadInfo(id)
            assertEquals(data, info.data)
            assertEquals(data, server.downloadMap().value.getValue(id).data)
            assertContentEquals(truth, get(server.trackUrl("song")).second)
        }
    }
}
