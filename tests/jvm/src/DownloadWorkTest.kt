// Host JVM tests of what the Android download worker decides in plain Kotlin: the requirements
// and their Media3 flags, whether work is left (over made-up downloads and over a real server's
// downloads), and what its notification shows.
package io.embeddedserver.test

import io.embeddedserver.Download
import io.embeddedserver.DownloadProgress
import io.embeddedserver.DownloadRequirements
import io.embeddedserver.DownloadSession
import io.embeddedserver.DownloadState
import io.embeddedserver.DownloadWork
import io.embeddedserver.EmbeddedServer
import io.embeddedserver.PendingWork
import java.io.File
import kotlin.test.assertEquals
import kotlin.test.assertFailsWith
import kotlin.test.assertFalse
import kotlin.test.assertNull
import kotlin.test.assertTrue
import kotlinx.coroutines.CompletableDeferred
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.async
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeout

private fun download(
    id: String,
    state: DownloadState,
    done: Long = 0,
    total: Long? = null,
    segmentsDone: Long? = null,
    segmentsTotal: Long? = null,
) = Download(id, id, "http://origin/$id", state, done, total, null, 0, state == DownloadState.COMPLETED, segmentsDone, segmentsTotal)

fun requirementsMatchMedia3Flags() {
    // Media3's values (androidx.media3.exoplayer.scheduler.Requirements).
    assertEquals(listOf(1, 2, 4, 8, 16), with(DownloadRequirements) {
        listOf(NETWORK, NETWORK_UNMETERED, DEVICE_IDLE, DEVICE_CHARGING, DEVICE_STORAGE_NOT_LOW)
    })
    // The default follows the server's own default (no downloads on metered networks).
    assertEquals(DownloadRequirements.Network.UNMETERED, DownloadRequirements().network)
    assertEquals(DownloadRequirements.NETWORK or DownloadRequirements.NETWORK_UNMETERED, DownloadRequirements().flags)
    for (flags in 0 until 32) {
        val requirements = DownloadRequirements.fromFlags(flags)
        // Media3's Requirements(flags) adds NETWORK to NETWORK_UNMETERED: so does the round trip.
        val media3 = if (flags and DownloadRequirements.NETWORK_UNMETERED != 0) flags or DownloadRequirements.NETWORK else flags
        assertEquals(media3, requirements.flags, "flags $flags")
        assertEquals(requirements, DownloadRequirements.fromFlags(requirements.flags))
    }
    val all = DownloadRequirements.fromFlags(31)
    assertEquals(DownloadRequirements(DownloadRequirements.Network.UNMETERED, charging = true, storageNotLow = true, idle = true), all)
    assertEquals(DownloadRequirements.Network.ANY, DownloadRequirements.fromFlags(DownloadRequirements.NETWORK).network)
    assertEquals(DownloadRequirements.Network.NOT_REQUIRED, DownloadRequirements.fromFlags(DownloadRequirements.DEVICE_CHARGING).network)
    assertFailsWith<IllegalArgumentException> { DownloadRequirements.fromFlags(32) }
}

fun pendingWorkByState() {
    val pending = DownloadState.entries.filter { PendingWork.isPending(download("x", it)) }
    assertEquals(listOf(DownloadState.QUEUED, DownloadState.RUNNING, DownloadState.WAITING_FOR_NETWORK), pending)
    assertEquals(PendingWork.NONE, PendingWork.of(emptyList()))
    val settled = listOf(download("p", DownloadState.PAUSED), download("c", DownloadState.COMPLETED), download("f", DownloadState.FAILED))
    assertEquals(PendingWork.NONE, PendingWork.of(settled))
    assertEquals(PendingWork.ACTIVE, PendingWork.of(settled + download("q", DownloadState.QUEUED)))
    assertEquals(PendingWork.ACTIVE, PendingWork.of(settled + download("r", DownloadState.RUNNING)))
    val waiting = download("w", DownloadState.WAITING_FOR_NETWORK)
    assertEquals(PendingWork.WAITING_FOR_NETWORK, PendingWork.of(settled + waiting))
    // Queued downloads behind a closed gate wait too; a running one means the gate is open.
    assertEquals(PendingWork.WAITING_FOR_NETWORK, PendingWork.of(listOf(waiting, download("q", DownloadState.QUEUED))))
    assertEquals(PendingWork.ACTIVE, PendingWork.of(listOf(waiting, download("r", DownloadState.RUNNING))))
}

fun progressForTheNotification() {
    val progress = DownloadProgress.of(
        listOf(
            download("done", DownloadState.COMPLETED, done = 1_000_000), // size never reported: its bytes are its total
            download("half", DownloadState.RUNNING, done = 500_000, total = 1_000_000),
            download("hls", DownloadState.QUEUED, done = 0, segmentsDone = 1, segmentsTotal = 4),
            download("paused", DownloadState.PAUSED, done = 7, total = 10),
            download("failed", DownloadState.FAILED, done = 3, total = 10),
        ),
    )
    assertEquals(2, progress.pending)
    assertEquals(1, progress.completed)
    assertEquals(1, progress.failed)
    assertEquals(1, progress.paused)
    assertEquals(4, progress.total, "paused downloads are not counted in the total")
    assertFalse(progress.waitingForNetwork)
    assertEquals(1_500_000, progress.bytesDone)
    assertNull(progress.bytesTotal, "the HLS download's byte total is unknown")
    // Each download weighs the same: (1.0 + 0.5 + 0.25) / 3.
    assertEquals(58, progress.percent)
    assertEquals("1 of 4 · 1.5 MB · 1 failed", progress.summary())

    val sized = DownloadProgress.of(
        listOf(
            download("a", DownloadState.WAITING_FOR_NETWORK, done = 999, total = 2_000),
            download("b", DownloadState.QUEUED, done = 0, total = 40_000_000_000),
        ),
    )
    assertTrue(sized.waitingForNetwork)
    assertEquals(40_000_002_000, sized.bytesTotal)
    assertEquals("0 of 2 · 999 B / 40.0 GB · waiting for network", sized.summary())
    // A pending download with no known size or segment count: an indeterminate bar.
    assertNull(DownloadProgress.of(listOf(download("u", DownloadState.RUNNING, done = 10))).percent)
    assertNull(DownloadProgress.of(emptyList()).percent)
    assertEquals("", DownloadProgress.of(emptyList()).summary(), "nothing to count yet")
    assertEquals(100, DownloadProgress.of(listOf(download("c", DownloadState.COMPLETED, done = 5, total = 5))).percent)
    assertEquals("1 of 1 · 1.0 MB / 1.0 MB", DownloadProgress.of(listOf(download("k", DownloadState.COMPLETED, 999_999, 999_999))).summary())
}

fun sessionCountsWhatItSawPending() {
    val session = DownloadSession()
    val old = download("old", DownloadState.COMPLETED, done = 5, total = 5)
    val first = session.update(mapOf("old" to old, "a" to download("a", DownloadState.RUNNING, 1, 4), "b" to download("b", DownloadState.QUEUED, 0, 4)))
    assertEquals(2, first.total, "a download completed before the session is not part of it")
    assertEquals(12, first.percent)
    // a completes, b runs, c is queued: a stays in the session, so the bar does not jump back.
    val second = session.update(
        mapOf(
            "old" to old,
            "a" to download("a", DownloadState.COMPLETED, 4, 4),
            "b" to download("b", DownloadState.RUNNING, 2, 4),
            "c" to download("c", DownloadState.QUEUED, 0, 4),
        ),
    )
    assertEquals(3, second.total)
    assertEquals(1, second.completed)
    assertEquals(50, second.percent)
    // c is cancelled (gone from the map), b completes.
    val last = session.update(mapOf("old" to old, "a" to download("a", DownloadState.COMPLETED, 4, 4), "b" to download("b", DownloadState.COMPLETED, 4, 4)))
    assertEquals("2 of 2 · 8 B / 8 B", last.summary())
    assertEquals(100, last.percent)
}

/** Downloads queued from a throttled origin: the work is active until each one completes. */
fun pendingWorkFollowsARealServer() {
    val dir = File(work, "origin-work")
    val sizes = listOf(300_000, 400_000, 500_000, 600_000)
    sizes.forEachIndexed { i, size -> seed(dir, "t$i.bin", size) }
    Origin(dir, "--throttle", "2000000").use { origin ->
        EmbeddedServer.start(config("work", origin.url)).use { server ->
            server.setNetwork(online = true, metered = false)
            sizes.indices.forEach { server.registerTrack("t$it", "${origin.url}/t$it.bin") }
            assertEquals(PendingWork.NONE, PendingWork.of(server.downloadMap().value.values))
            val session = DownloadSession()
            val ids = sizes.indices.map { server.download("t$it").id }
            assertEquals(PendingWork.ACTIVE, PendingWork.of(server.downloadMap().value.values))
            assertEquals(4, session.update(server.downloadMap().value).total)
            // A paused download is the user's choice: the work ends without it.
            server.pause(ids.last())
            val settled = runBlocking {
                withTimeout(30_000) { PendingWork.awaitSettled(server.downloadMap(), networkGraceMs = 5_000) }
            }
            assertEquals(PendingWork.NONE, settled)
            val downloads = server.downloadMap().value
            for (id in ids.dropLast(1)) assertEquals(DownloadState.COMPLETED, downloads.getValue(id).state, downloads.getValue(id).toString())
            assertEquals(DownloadState.PAUSED, downloads.getValue(ids.last()).state)
            val progress = session.update(downloads)
            assertEquals(1, progress.paused)
            assertEquals(100, progress.percent)
            assertEquals("3 of 3 · 1.2 MB / 1.2 MB", progress.summary())
            // Resumed, the work is active again and settles once it completes.
            server.resume(ids.last())
            assertEquals(PendingWork.ACTIVE, PendingWork.of(server.downloadMap().value.values))
            runBlocking { withTimeout(30_000) { assertEquals(PendingWork.NONE, PendingWork.awaitSettled(server.downloadMap(), 5_000)) } }
            val done = session.update(server.downloadMap().value)
            assertEquals("4 of 4 · 1.8 MB / 1.8 MB", done.summary())
            assertEquals(100, done.percent)
        }
    }
}

/** Offline, the work ends as waiting for the network once the grace runs out; back online, it completes. */
fun offlineWorkEndsAfterTheGrace() {
    val dir = File(work, "origin-offline-work")
    seed(dir, "a.bin", 200_000)
    seed(dir, "b.bin", 200_000)
    seed(dir, "c.bin", 200_000)
    Origin(dir).use { origin ->
        EmbeddedServer.start(config("offline-work", origin.url)).use { server ->
            server.setNetwork(online = false, metered = false)
            val ids = listOf("a", "b", "c").map {
                server.registerTrack(it, "${origin.url}/$it.bin")
                server.download(it).id
            }
            val settled = runBlocking { withTimeout(30_000) { PendingWork.awaitSettled(server.downloadMap(), networkGraceMs = 300) } }
            assertEquals(PendingWork.WAITING_FOR_NETWORK, settled)
            assertTrue(DownloadProgress.of(server.downloadMap().value.values).summary().endsWith("waiting for network"))
            server.setNetwork(online = true, metered = false)
            val done = runBlocking { withTimeout(30_000) { PendingWork.awaitSettled(server.downloadMap(), networkGraceMs = 300) } }
            assertEquals(PendingWork.NONE, done)
            assertTrue(ids.all { server.downloadMap().value.getValue(it).state == DownloadState.COMPLETED })
        }
    }
}

/** The worker's loop against a real server: it shows progress while downloads run and settles once they complete. */
fun workerLoopFollowsTheDownloads() {
    val dir = File(work, "origin-follow")
    (0 until 3).forEach { seed(dir, "f$it.bin", 400_000 + it) }
    Origin(dir, "--throttle", "2000000").use { origin ->
        EmbeddedServer.start(config("follow", origin.url)).use { server ->
            server.setNetwork(online = true, metered = false)
            val shown = ArrayList<DownloadProgress>()
            // Nothing pending: it settles at once and shows nothing (no notification).
            val idle = runBlocking { withTimeout(10_000) { DownloadWork.follow(server, updateIntervalMs = 50) { shown += it } } }
            assertEquals(PendingWork.NONE, idle)
            assertTrue(shown.isEmpty(), shown.toString())
            val ids = (0 until 3).map {
                server.registerTrack("f$it", "${origin.url}/f$it.bin")
                server.download("f$it").id
            }
            val settled = runBlocking { withTimeout(30_000) { DownloadWork.follow(server, updateIntervalMs = 50) { shown += it } } }
            assertEquals(PendingWork.NONE, settled)
            assertTrue(ids.all { server.downloadMap().value.getValue(it).state == DownloadState.COMPLETED })
            assertTrue(shown.isNotEmpty(), "no progress shown")
            assertTrue(shown.all { it.pending > 0 && it.total == 3 }, shown.toString())
            assertTrue(shown.zipWithNext().all { (a, b) -> a != b }, "an unchanged progress was shown again: $shown")
            val percents = shown.mapNotNull { it.percent }
            assertTrue(percents.zipWithNext().all { (a, b) -> a <= b }, "the bar went back: $percents")
        }
    }
}

/** Closing the server ends the loop, which would otherwise wait for a download map that no longer changes. */
fun workerLoopEndsWhenTheServerCloses() {
    val dir = File(work, "origin-follow-close")
    seed(dir, "x.bin", 100_000)
    Origin(dir).use { origin ->
        val server = EmbeddedServer.start(config("follow-close", origin.url))
        server.use {
            server.setNetwork(online = false, metered = false)
            server.registerTrack("x", "${origin.url}/x.bin")
            server.download("x")
            runBlocking {
                withTimeout(15_000) {
                    val first = CompletableDeferred<DownloadProgress>()
                    val result = async(Dispatchers.Default) {
                        DownloadWork.follow(server, networkGraceMs = 60_000, updateIntervalMs = 50) { first.complete(it) }
                    }
                    assertEquals(1, first.await().pending)
                    server.close()
                    assertNull(result.await(), "closed: neither done nor waiting")
                }
            }
        }
    }
}
