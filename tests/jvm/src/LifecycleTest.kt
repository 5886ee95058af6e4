// Host JVM tests of the handle's lifecycle and the download Flow under load: close() is bounded
// and never blocks other calls, every final state arrives, the newest snapshot wins, and the
// library's thread never keeps the JVM alive.
package io.embeddedserver.test

import io.embeddedserver.Download
import io.embeddedserver.DownloadState
import io.embeddedserver.EmbeddedServer
import io.embeddedserver.EmbeddedServerException
import io.embeddedserver.keepNewest
import io.embeddedserver.startSuspending
import java.io.File
import java.util.concurrent.CountDownLatch
import java.util.concurrent.TimeUnit
import kotlin.concurrent.thread
import kotlin.test.assertEquals
import kotlin.test.assertFailsWith
import kotlin.test.assertFalse
import kotlin.test.assertTrue
import kotlin.test.fail
import kotlinx.coroutines.flow.MutableStateFlow
import kotlinx.coroutines.flow.first
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeout

fun closeIsBounded() {
    val dir = File(work, "origin-stuck")
    seed(dir, "locked.bin", 100_000)
    Origin(dir, "--require-auth", "Bearer s3cret").use { origin ->
        val entered = CountDownLatch(1)
        val release = CountDownLatch(1)
        val server = EmbeddedServer.start(config("stuck", origin.url).copy(resolverTimeoutMs = 120_000))
        try {
            server.registerTrack("locked", "${origin.url}/locked.bin")
            // A resolver that never answers (until the test ends), with a player waiting on it.
            server.setResolver { _, _ ->
                entered.countDown()
                release.await()
                null
            }
            val url = server.trackUrl("locked")
            val player = thread(isDaemon = true) { runCatching { status(url) } }
            assertTrue(entered.await(15, TimeUnit.SECONDS), "the resolver was never called")

            val closer = thread { server.close() }
            eventually(what = { "close() began" }) { server.isClosed }
            // While close() is still stopping the server, other calls fail at once as closed.
            assertFailsWith<EmbeddedServerException> { server.trackUrl("locked") }
            assertFailsWith<EmbeddedServerException> { server.baseUrl }
            assertTrue(closer.isAlive, "close() ended before the calls made during it: nothing was proven")
            closer.join(20_000)
            assertFalse(closer.isAlive, "close() did not return within 20 s while the resolver was stuck")
            player.join(20_000)
            assertFalse(player.isAlive, "the player's request outlived close()")
        } finally {
            release.countDown()
            server.close()
        }
    }
}

fun everyFinalStateReachesTheFlow() {
    val dir = File(work, "origin-many")
    val count = 320
    repeat(count) { seed(dir, "f$it.bin", 1_000 + it) }
    Origin(dir).use { origin ->
        EmbeddedServer.start(config("many", origin.url).copy(downloadWorkers = 4)).use { server ->
            val ids = (0 until count).map { server.downloadUrl("${origin.url}/f$it.bin").id }
            val final = runBlocking {
                withTimeout(120_000) {
                    server.downloadMap().first { map ->
                        map.values.firstOrNull { it.state == DownloadState.FAILED }?.let { fail("a download failed: $it") }
                        ids.all { map[it]?.state == DownloadState.COMPLETED }
                    }
                }
            }
            assertEquals(count, ids.count { final[it]?.state == DownloadState.COMPLETED })
        }
    }
}

fun olderSnapshotsLose() {
    fun snapshot(state: DownloadState, version: Long) =
        Download("d1", null, "http://x/y", state, 10, 10, null, 0, state == DownloadState.COMPLETED, version = version)
    val flow = MutableStateFlow<Map<String, Download>>(emptyMap())
    keepNewest(flow, emptySet(), snapshot(DownloadState.COMPLETED, 7))
    // A call's return value read before the download completed arrives after the update.
    keepNewest(flow, emptySet(), snapshot(DownloadState.RUNNING, 5))
    assertEquals(DownloadState.COMPLETED, flow.value.getValue("d1").state)
    keepNewest(flow, emptySet(), snapshot(DownloadState.QUEUED, 9))
    assertEquals(9, flow.value.getValue("d1").version)
    // A cancelled download never comes back.
    keepNewest(flow, setOf("d2"), snapshot(DownloadState.RUNNING, 10).copy(id = "d2"))
    assertFalse("d2" in flow.value)
}

fun listenerThreadIsDaemon() {
    val before = Thread.getAllStackTraces().keys
    EmbeddedServer.start(config("daemon")).use {
        // The listener thread attaches to the JVM as soon as the server starts.
        eventually(what = { "the listener thread attached" }) { (Thread.getAllStackTraces().keys - before).isNotEmpty() }
        val started = Thread.getAllStackTraces().keys - before
        assertTrue(started.all { it.isDaemon }, "non-daemon threads: ${started.filter { !it.isDaemon }.map { it.name }}")
    }
}

fun suspendingCallsWork() {
    val dir = File(work, "origin-suspend")
    val truth = seed(dir, "s.bin", 120_000)
    Origin(dir).use { origin ->
        runBlocking {
            val server = EmbeddedServer.startSuspending(config("suspend", origin.url))
            val calls = server.suspending
            calls.registerTrack("s", "${origin.url}/s.bin")
            assertEquals("s", calls.track("s").id)
            val queued = calls.download("s")
            val done = withTimeout(30_000) {
                server.downloadMap().first { it[queued.id]?.state == DownloadState.COMPLETED }.getValue(queued.id)
            }
            assertEquals(truth.size.toLong(), done.bytesDone)
            assertEquals(DownloadState.COMPLETED, calls.downloadInfo(queued.id).state)
            assertTrue(calls.stats().pinnedBytes >= truth.size, "pinned bytes")
            calls.cancel(queued.id)
            calls.close()
            assertTrue(server.isClosed)
            assertFailsWith<EmbeddedServerException> { calls.track("s") }
        }
    }
}

fun absurdConfigValuesAreRefused() {
    val tooLong = assertFailsWith<EmbeddedServerException> {
        EmbeddedServer.start(config("absurd").copy(readTimeoutMs = Long.MAX_VALUE)).close()
    }
    assertTrue(tooLong.message!!.contains("read_timeout"), tooLong.message)
    val none = assertFailsWith<EmbeddedServerException> {
        EmbeddedServer.start(config("absurd").copy(downloadWorkers = 0)).close()
    }
    assertTrue(none.message!!.contains("download_workers"), none.message)
    // The directory was not locked by the refused starts: a valid config starts on it.
    EmbeddedServer.start(config("absurd")).close()
}
