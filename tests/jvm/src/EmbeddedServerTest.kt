// Host JVM tests of the Kotlin API over the JNI bridge (run by tests/jvm/run.sh).
// Plain `main` with kotlin.test assertions: the Kotlin compiler bundles no JUnit runner.
package io.embeddedserver.test

import io.embeddedserver.Config
import io.embeddedserver.CredentialResolver
import io.embeddedserver.Credentials
import io.embeddedserver.Download
import io.embeddedserver.DownloadState
import io.embeddedserver.EmbeddedServer
import io.embeddedserver.EmbeddedServerException
import io.embeddedserver.HlsVariant
import io.embeddedserver.LinkPolicy
import java.io.File
import java.lang.ref.WeakReference
import java.net.HttpURLConnection
import java.net.Proxy
import java.net.URL
import java.nio.file.Files
import kotlin.random.Random
import kotlin.system.exitProcess
import kotlin.test.assertContentEquals
import kotlin.test.assertEquals
import kotlin.test.assertFailsWith
import kotlin.test.assertFalse
import kotlin.test.assertNull
import kotlin.test.assertTrue
import kotlin.test.fail
import kotlinx.coroutines.flow.first
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeout

val streamer: String = System.getenv("STREAMER_BIN") ?: error("STREAMER_BIN is not set")
val work: File = Files.createTempDirectory("es-jvm").toFile()

/** A `streamer origin` child serving [dir]; its first stdout line is its URL. */
class Origin(val dir: File, vararg extra: String) : AutoCloseable {
    private val process = ProcessBuilder(listOf(streamer, "origin", "--dir", dir.path) + extra)
        .redirectError(ProcessBuilder.Redirect.INHERIT)
        .start()
    val url: String = process.inputStream.bufferedReader().readLine()?.trim()?.removeSuffix("/")
        ?: error("streamer origin printed nothing")

    override fun close() {
        process.destroy()
        process.waitFor()
    }
}

fun seed(dir: File, name: String, size: Int): ByteArray {
    dir.mkdirs()
    val bytes = Random(size).nextBytes(size)
    File(dir, name).writeBytes(bytes)
    return bytes
}

/** What ExoPlayer's DefaultHttpDataSource sends: no proxy for localhost, identity encoding. */
fun get(url: String, range: String? = null): Pair<Int, ByteArray> {
    val conn = URL(url).openConnection(Proxy.NO_PROXY) as HttpURLConnection
    conn.setRequestProperty("Accept-Encoding", "identity")
    conn.setRequestProperty("User-Agent", "ExoPlayerLib/1.4.1")
    if (range != null) conn.setRequestProperty("Range", range)
    try {
        val status = conn.responseCode
        return status to conn.inputStream.use { it.readBytes() }
    } finally {
        conn.disconnect()
    }
}

/** Only the status of a GET (an error status has no readable body through `inputStream`). */
fun status(url: String): Int {
    val conn = URL(url).openConnection(Proxy.NO_PROXY) as HttpURLConnection
    conn.setRequestProperty("Accept-Encoding", "identity")
    try {
        val status = conn.responseCode
        (if (status < 400) conn.inputStream else conn.errorStream)?.use { it.readBytes() }
        return status
    } finally {
        conn.disconnect()
    }
}

/** Polls [condition] every 50 ms for up to [ms]. */
fun eventually(ms: Long = 15_000, what: () -> String, condition: () -> Boolean) {
    val deadline = System.nanoTime() + ms * 1_000_000
    while (!condition()) {
        if (System.nanoTime() > deadline) fail("timed out: ${what()}")
        Thread.sleep(50)
    }
}

/** Waits (through the download flow) until download [id] completes, failing on `failed`. */
fun awaitCompleted(server: EmbeddedServer, id: String): Download = runBlocking {
    withTimeout(30_000) {
        server.downloadMap().first { map ->
            val d = map[id]
            if (d?.state == DownloadState.FAILED) fail("download failed: ${d.error}")
            d?.state == DownloadState.COMPLETED
        }.getValue(id)
    }
}

fun config(name: String, vararg origins: String) =
    Config.Builder(File(work, name).path).apply { origins.forEach { origin(it) } }.build()

fun startStopStart() {
    val config = config("restart")
    val first = EmbeddedServer.start(config)
    assertTrue(first.baseUrl.startsWith("http://127.0.0.1:"), first.baseUrl)
    first.close()
    first.close() // idempotent
    // The directory lock was released: the same cache directory starts again.
    EmbeddedServer.start(config).use { second ->
        assertTrue(second.baseUrl.startsWith("http://127.0.0.1:"))
        assertEquals(0, second.stats().hits)
    }
}

fun trackThroughServer() {
    val dir = File(work, "origin-play")
    val truth = seed(dir, "song.bin", 3_000_000)
    Origin(dir).use { origin ->
        EmbeddedServer.start(config("play", origin.url)).use { server ->
            val track = server.registerTrack("song", "${origin.url}/song.bin", size = truth.size.toLong(), mime = "audio/mpeg")
            assertEquals("song", track.id)
            val url = server.trackUrl("song")
            val (status, body) = get(url)
            assertEquals(200, status)
            assertContentEquals(truth, body)
            val seek = 1_234_567
            val (status2, tail) = get(url, "bytes=$seek-")
            assertEquals(206, status2)
            assertContentEquals(truth.copyOfRange(seek, truth.size), tail)
            // A remote URL through the cache too.
            val (status3, again) = get(server.proxyUrl("${origin.url}/song.bin"), "bytes=0-99")
            assertEquals(206, status3)
            assertContentEquals(truth.copyOfRange(0, 100), again)
            assertTrue(server.stats().bytesFromCache > 0, server.stats().json)
            server.setHeader("Authorization", "Bearer refreshed")
            server.setHeader("Authorization", null)
        }
    }
}

fun downloadReportsProgress() {
    val dir = File(work, "origin-dl")
    val truth = seed(dir, "album.bin", 2_000_000)
    Origin(dir, "--throttle", "1000000").use { origin ->
        EmbeddedServer.start(config("dl", origin.url)).use { server ->
            server.registerTrack("album", "${origin.url}/album.bin")
            server.setNetwork(online = true, metered = false)
            val queued = server.download("album")
            val seen = ArrayList<Long>()
            val done = runBlocking {
                withTimeout(30_000) {
                    server.downloads().first { list ->
                        val d = list.firstOrNull { it.id == queued.id } ?: return@first false
                        if (seen.lastOrNull() != d.bytesDone) seen.add(d.bytesDone)
                        if (d.state == DownloadState.FAILED) fail("download failed: ${d.error}")
                        d.state == DownloadState.COMPLETED
                    }.first { it.id == queued.id }
                }
            }
            assertEquals(truth.size.toLong(), done.bytesDone)
            assertTrue(done.pinned)
            assertEquals(1.0, done.progress)
            assertTrue(seen.zipWithNext().all { (a, b) -> a <= b }, "progress went backwards: $seen")
            assertTrue(seen.count { it in 1 until truth.size } >= 1, "no intermediate progress: $seen")
            assertTrue(server.track("album").complete)
            // Served offline from the pinned bytes.
            origin.close()
            assertContentEquals(truth, get(server.trackUrl("album")).second)
            server.cancel(queued.id)
            assertTrue(server.downloadMap().value.isEmpty())
        }
    }
}

/** An HLS master with two variants, two segments each; the lowest is downloaded and plays offline. */
fun hlsVariantDownload() {
    val dir = File(work, "origin-hls")
    File(dir, "lo").mkdirs()
    File(dir, "hi").mkdirs()
    File(dir, "master.m3u8").writeText(
        "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=256000\nhi/index.m3u8\n#EXT-X-STREAM-INF:BANDWIDTH=64000\nlo/index.m3u8\n",
    )
    val media = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\nseg0.ts\n#EXTINF:2.0,\nseg1.ts\n#EXT-X-ENDLIST\n"
    File(dir, "lo/index.m3u8").writeText(media)
    File(dir, "hi/index.m3u8").writeText(media)
    val lo = seed(File(dir, "lo"), "seg0.ts", 30_000)
    seed(File(dir, "lo"), "seg1.ts", 30_001)
    seed(File(dir, "hi"), "seg0.ts", 90_000)
    seed(File(dir, "hi"), "seg1.ts", 90_001)
    assertFailsWith<IllegalArgumentException> { HlsVariant.MaxBandwidth(0) }
    Origin(dir).use { origin -> EmbeddedServer.start(config("hls", origin.url)).use { server ->
        server.setNetwork(online = true, metered = false)
        val queued = server.downloadUrl("${origin.url}/master.m3u8", variant = HlsVariant.Lowest)
        val done = runBlocking {
            withTimeout(30_000) {
                server.downloadMap().first { map ->
                    val d = map[queued.id] ?: return@first false
                    if (d.state == DownloadState.FAILED) fail("HLS download failed: ${d.error}")
                    d.state == DownloadState.COMPLETED
                }.getValue(queued.id)
            }
        }
        assertTrue(done.pinned)
        assertEquals(4L, done.segmentsTotal, "master, media playlist, two segments")
        assertEquals(done.segmentsTotal, done.segmentsDone)
        origin.close()
        assertContentEquals(lo, get(server.proxyUrl("${origin.url}/lo/seg0.ts")).second)
        assertEquals(502, status(server.proxyUrl("${origin.url}/hi/seg0.ts")), "the other variant was not downloaded")
    } }
}

/**
 * Streaming quality by network: with `meteredMaxBandwidth`, the master a player reads through the
 * server offers only the variants within the cap while the network is metered, all of them again
 * once it is not; a negative cap is refused when the Config is made.
 */
fun qualityByNetwork() {
    val dir = File(work, "origin-quality")
    dir.mkdirs()
    File(dir, "master.m3u8").writeText(
        "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=256000\nhi/index.m3u8\n#EXT-X-STREAM-INF:BANDWIDTH=64000\nlo/index.m3u8\n",
    )
    assertFailsWith<IllegalArgumentException> { config("quality-bad").copy(meteredMaxBandwidth = -1) }
    val quality = config("quality").copy(meteredMaxBandwidth = 128_000)
    assertTrue(quality.toString().contains("meteredMaxBandwidth=128000"), quality.toString())
    Origin(dir).use { origin -> EmbeddedServer.start(quality.copy(origins = listOf(origin.url))).use { server ->
        val master = server.proxyUrl("${origin.url}/master.m3u8")
        fun variants() = String(get(master).second).lines().filter { it.endsWith("index.m3u8") }
        server.setNetwork(online = true, metered = true)
        assertEquals(listOf(server.proxyUrl("${origin.url}/lo/index.m3u8")), variants(), "metered: within 128 kbit/s")
        server.setNetwork(online = true, metered = false)
        assertEquals(2, variants().size, "unmetered: every variant")
    } }
}

/**
 * Playback first: the link policy and the bytes a player must have ahead reach the native side
 * (it refuses unknown fields and values, so a start proves they were read), a value out of range
 * is refused when the Config is made, and the stats carry the yield figures.
 */
fun linkPolicyReachesTheServer() {
    assertFailsWith<IllegalArgumentException> { config("link-bad").copy(playbackAheadBytes = 0) }
    assertFailsWith<IllegalArgumentException> { config("link-bad").copy(playbackAheadBytes = (1L shl 30) + 1) }
    for (policy in LinkPolicy.entries) {
        val linked = Config.Builder(config("link-${policy.name.lowercase()}")).linkPolicy(policy).playbackAheadBytes(512 * 1024).build()
        assertTrue(linked.toString().contains("linkPolicy=$policy, playbackAheadBytes=524288"), linked.toString())
        EmbeddedServer.start(linked).use { server ->
            val stats = server.stats()
            assertEquals(0, stats.playbackHungry)
            assertEquals(0, stats.yieldMs)
            assertTrue(stats.json.contains("\"fills_yielding\":0"), stats.json)
        }
    }
}

fun errorsAreExceptions() {
    EmbeddedServer.start(config("errors", "http://127.0.0.1:9")).use { server ->
        val missing = assertFailsWith<EmbeddedServerException> { server.track("no-such-track") }
        assertTrue(missing.message!!.contains("no-such-track"), missing.message)
        val refused = assertFailsWith<EmbeddedServerException> { server.proxyUrl("https://elsewhere.example/x.mp3") }
        assertTrue(refused.message!!.contains("not allowed"), refused.message)
        assertFailsWith<EmbeddedServerException> { server.pause("nope") }
    }
    // The directory is locked by a running server.
    EmbeddedServer.start(config("locked")).use {
        val busy = assertFailsWith<EmbeddedServerException> { EmbeddedServer.start(config("locked")) }
        assertTrue(busy.message!!.contains("in use"), busy.message)
    }
}

fun closedServerThrows() {
    val server = EmbeddedServer.start(config("closed"))
    server.close()
    assertTrue(server.isClosed)
    val e = assertFailsWith<EmbeddedServerException> { server.trackUrl("x") }
    assertTrue(e.message!!.contains("closed"), e.message)
    assertFailsWith<EmbeddedServerException> { server.stats() }
    assertFailsWith<EmbeddedServerException> { server.download("x") }
    assertFailsWith<EmbeddedServerException> { server.downloadInfo("x") }
    assertFailsWith<EmbeddedServerException> { server.prefetch("x") }
    assertFailsWith<EmbeddedServerException> { server.setResolver(null) }
}

fun prefetchFillsTheCache() {
    val dir = File(work, "origin-prefetch")
    val truth = seed(dir, "intro.bin", 1_000_000)
    seed(dir, "other.bin", 500_000)
    Origin(dir).use { origin ->
        EmbeddedServer.start(config("prefetch", origin.url)).use { server ->
            server.registerTrack("intro", "${origin.url}/intro.bin")
            server.registerTrack("other", "${origin.url}/other.bin")
            assertEquals(0, server.track("intro").cachedBytes)
            server.prefetch(listOf("intro", "other"), bytes = 100_000)
            eventually(what = { "prefetch cached ${server.track("intro").cachedBytes} bytes" }) {
                server.track("intro").cachedBytes >= 100_000 && server.track("other").cachedBytes >= 100_000
            }
            val intro = server.track("intro")
            assertFalse(intro.pinned, "a prefetch must not pin")
            val stats = server.stats()
            assertTrue(stats.cacheBytes >= 200_000, stats.json)
            assertEquals(0, stats.pinnedBytes, stats.json)
            assertTrue(stats.bytesFromUpstream >= 200_000, stats.json)
            // The prefetched prefix is served from the cache, byte-exact.
            val (status, head) = get(server.trackUrl("intro"), "bytes=0-99999")
            assertEquals(206, status)
            assertContentEquals(truth.copyOfRange(0, 100_000), head)
            // Default size (Config.prefetchBytes) through the one-track overload.
            server.prefetch("intro")
            // Unknown IDs fail at once, with the ID in the message; nothing is queued for them.
            val e = assertFailsWith<EmbeddedServerException> { server.prefetch(listOf("intro", "no-such-track")) }
            assertTrue(e.message!!.contains("no-such-track"), e.message)
            assertFailsWith<IllegalArgumentException> { server.prefetch("intro", bytes = -1) }
        }
    }
}

fun downloadInfoById() {
    val dir = File(work, "origin-info")
    seed(dir, "single.bin", 300_000)
    Origin(dir).use { origin ->
        EmbeddedServer.start(config("info", origin.url)).use { server ->
            server.registerTrack("single", "${origin.url}/single.bin")
            val queued = server.download("single")
            assertEquals(queued.id, server.downloadInfo(queued.id).id)
            val done = awaitCompleted(server, queued.id)
            val info = server.downloadInfo(queued.id)
            // Snapshots of one download differ only in version, which grows with each.
            assertEquals(done.copy(version = 0), info.copy(version = 0))
            assertTrue(info.version > done.version, "${info.version} after ${done.version}")
            val listed = server.downloads().let { runBlocking { it.first() } }.single { it.id == queued.id }
            assertEquals(listed, info)
            assertEquals(server.downloadMap().value[queued.id], info)
            assertEquals(DownloadState.COMPLETED, info.state)
            assertEquals(300_000L, info.bytesTotal)
            val bad = assertFailsWith<EmbeddedServerException> { server.downloadInfo("no-such-download") }
            assertTrue(bad.message!!.contains("no-such-download"), bad.message)
            server.cancel(queued.id)
            assertFailsWith<EmbeddedServerException> { server.downloadInfo(queued.id) }
            assertNull(server.downloadMap().value[queued.id])
        }
    }
}

fun downloadsDirHoldsPinnedBytes() {
    val dir = File(work, "origin-split")
    val truth = seed(dir, "keep.bin", 400_000)
    val cacheDir = File(work, "split-cache")
    val downloadsDir = File(work, "split-downloads")
    Origin(dir).use { origin ->
        val config = Config(cacheDir = cacheDir.path, downloadsDir = downloadsDir.path, origins = listOf(origin.url))
        assertEquals(config, Config.Builder(cacheDir.path).downloadsDir(downloadsDir.path).origin(origin.url).build())
        EmbeddedServer.start(config).use { server ->
            server.registerTrack("keep", "${origin.url}/keep.bin")
            val done = awaitCompleted(server, server.download("keep").id)
            assertTrue(done.pinned)
            assertContentEquals(truth, get(server.trackUrl("keep")).second)
        }
        val data = File(downloadsDir, "data")
        val files = data.walkTopDown().filter { it.isFile && it.length() > 0 }.toList()
        assertTrue(files.isNotEmpty(), "no non-empty file under $data (downloadsDir holds: ${downloadsDir.walkTopDown().toList()})")
    }
}

/** Installs a resolver and returns a weak ref to it: the server must be its only holder. */
fun installResolver(server: EmbeddedServer, calls: MutableList<String?>): WeakReference<CredentialResolver> {
    val resolver = CredentialResolver { trackId, _ ->
        synchronized(calls) { calls.add(trackId) }
        Credentials(headers = mapOf("Authorization" to "Bearer s3cret"))
    }
    server.setResolver(resolver)
    return WeakReference(resolver)
}

fun resolverRefreshesCredentials() {
    val dir = File(work, "origin-auth")
    val truth = seed(dir, "locked.bin", 200_000)
    Origin(dir, "--require-auth", "Bearer s3cret").use { origin ->
        val calls = ArrayList<String?>()
        lateinit var weak: WeakReference<CredentialResolver>
        EmbeddedServer.start(config("auth", origin.url)).use { server ->
            server.registerTrack("locked", "${origin.url}/locked.bin")
            // No hook: the backend's refusal reaches the player.
            assertTrue(status(server.trackUrl("locked")) >= 400)
            // A hook that throws counts as "no credentials": no crash, exception cleared.
            server.setResolver { _, _ -> throw IllegalStateException("resolver failure (expected by the test)") }
            assertTrue(status(server.trackUrl("locked")) >= 400)
            // A hook with the right header: called on a native thread, then the bytes flow.
            weak = installResolver(server, calls)
            val (code, body) = get(server.trackUrl("locked"))
            assertEquals(200, code)
            assertContentEquals(truth, body)
            assertEquals(listOf<String?>("locked"), synchronized(calls) { calls.toList() })
        }
        // Closing released the global ref: the resolver can be collected.
        repeat(50) {
            if (weak.get() == null) return
            System.gc()
            Thread.sleep(20)
        }
        assertNull(weak.get(), "the resolver is still referenced after close")
    }
}

fun count(dir: String) = File(dir).list()!!.size

fun cyclesLeakNothing() {
    val config = config("cycles")
    repeat(3) { EmbeddedServer.start(config).use { it.baseUrl } } // warm up the JVM's own threads
    Thread.sleep(200)
    val threads = count("/proc/self/task")
    val fds = count("/proc/self/fd")
    repeat(50) {
        EmbeddedServer.start(config).use { s ->
            s.stats()
            s.downloads()
            s.setResolver { _, _ -> null } // its global ref is released by close
        }
    }
    Thread.sleep(200)
    val threadsAfter = count("/proc/self/task")
    val fdsAfter = count("/proc/self/fd")
    println("  threads $threads -> $threadsAfter, fds $fds -> $fdsAfter")
    assertTrue(threadsAfter <= threads, "threads grew from $threads to $threadsAfter")
    assertTrue(fdsAfter <= fds, "file descriptors grew from $fds to $fdsAfter")
}

fun main() {
    val tests = listOf(
        "start, stop, start again" to ::startStopStart,
        "a track through the server, with a seek" to ::trackThroughServer,
        "a download reports progress and completes" to ::downloadReportsProgress,
        "an HLS download keeps the variant asked for" to ::hlsVariantDownload,
        "a metered network caps the variants of a served master" to ::qualityByNetwork,
        "the link policy reaches the server" to ::linkPolicyReachesTheServer,
        "errors surface as exceptions" to ::errorsAreExceptions,
        "a closed server throws" to ::closedServerThrows,
        "failures arrive as the exception subclass of their kind" to ::failuresArriveByKind,
        "a closed server throws EmbeddedServerException.Closed, from Kotlin and from native" to ::closedIsTyped,
        "a full disk (a real tmpfs) throws EmbeddedServerException.NoSpace; freed, the server works on" to ::noSpaceIsTyped,
        "tracks listed and removed, the cache cleared, its limit changed, a URL's cached bytes" to ::cacheIsManagedFromKotlin,
        "a download's app data is kept, size-limited, and survives a restart" to ::downloadDataSurvivesRestart,
        "prefetch puts the first bytes in the cache" to ::prefetchFillsTheCache,
        "a download looked up by ID equals the listed one; a bad ID throws" to ::downloadInfoById,
        "with downloadsDir, pinned bytes live under downloadsDir/data" to ::downloadsDirHoldsPinnedBytes,
        "the credential resolver is called from a native thread and released on close" to ::resolverRefreshesCredentials,
        "50 start/stop cycles leak no threads or fds" to ::cyclesLeakNothing,
        "close() is bounded with a stuck resolver and never blocks other calls" to ::closeIsBounded,
        "every final state of 320 downloads reaches the Flow" to ::everyFinalStateReachesTheFlow,
        "an older snapshot never overwrites a newer one" to ::olderSnapshotsLose,
        "the download listener thread is a daemon" to ::listenerThreadIsDaemon,
        "the suspending calls work from a coroutine" to ::suspendingCallsWork,
        "absurd Config values are refused with the field's name" to ::absurdConfigValuesAreRefused,
        "embedded:// URIs round-trip any URL" to ::uriRoundTrips,
        "malformed embedded:// URIs fail with a clear message" to ::malformedUrisFail,
        "MIME types in Media3's spelling" to ::mimeTypesForMedia3,
        "the same embedded:// URIs resolve and play across a restart" to ::urisSurviveRestart,
        "RunningServer follows starts and closes" to ::runningServerFollowsStartsAndCloses,
        "Config and Credentials keep secrets out of toString" to ::toStringHidesSecrets,
        "the initial network state reaches the download gate" to ::initialNetworkReachesTheGate,
        "start checks that cleartext to 127.0.0.1 is permitted and says what to add" to ::cleartextToLoopbackIsChecked,
        "the downloads directory moves once, never losing or hiding a file" to ::downloadsDirMovesOnce,
        "downloads moved out of filesDir stay completed and play offline" to ::movedDownloadsStillPlay,
        "download requirements carry Media3's Requirements flags" to ::requirementsMatchMedia3Flags,
        "queued, running and waiting downloads are pending work; paused, completed, failed are not" to ::pendingWorkByState,
        "the notification's progress: counts, bytes, an average percent" to ::progressForTheNotification,
        "a work session keeps what it saw pending, finished or not" to ::sessionCountsWhatItSawPending,
        "pending work follows a real server's downloads to completion" to ::pendingWorkFollowsARealServer,
        "offline, pending work ends after the network grace; online, it completes" to ::offlineWorkEndsAfterTheGrace,
        "the worker's loop shows progress and settles once the downloads complete" to ::workerLoopFollowsTheDownloads,
        "the worker's loop ends when the server closes" to ::workerLoopEndsWhenTheServerCloses,
    )
    var failed = 0
    for ((name, test) in tests) {
        try {
            test()
            println("ok   $name")
        } catch (e: Throwable) {
            failed++
            println("FAIL $name")
            e.printStackTrace(System.out)
        }
    }
    work.deleteRecursively()
    println(if (failed == 0) "all ${tests.size} JVM tests passed" else "$failed of ${tests.size} JVM tests failed")
    exitProcess(if (failed == 0) 0 else 1)
}
