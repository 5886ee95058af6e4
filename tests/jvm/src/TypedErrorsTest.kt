// Host JVM tests of the typed exceptions: each kind of failure, provoked for real through the
// Kotlin API and the JNI bridge, arrives as its EmbeddedServerException subclass with the
// message, still catchable as EmbeddedServerException.
package io.embeddedserver.test

import io.embeddedserver.Config
import io.embeddedserver.EmbeddedServer
import io.embeddedserver.EmbeddedServerException
import io.embeddedserver.NativeBridge
import java.io.File
import java.io.FileOutputStream
import java.io.IOException
import kotlin.test.assertEquals
import kotlin.test.assertFailsWith
import kotlin.test.assertFalse
import kotlin.test.assertIs
import kotlin.test.assertNull
import kotlin.test.assertTrue
import kotlin.test.fail

fun failuresArriveByKind() {
    EmbeddedServer.start(config("typed", "http://127.0.0.1:9")).use { server ->
        val missing = assertFailsWith<EmbeddedServerException.NotFound> { server.track("no-such-track") }
        assertTrue(missing.message!!.contains("no-such-track"), missing.message)
        assertFalse(missing.isRetryable)
        assertFailsWith<EmbeddedServerException.NotFound> { server.downloadInfo("no-such-download") }
        assertFailsWith<EmbeddedServerException.NotFound> { server.pause("no-such-download") }
        assertFailsWith<EmbeddedServerException.NotFound> { server.download("no-such-track") }

        val badUrl = assertFailsWith<EmbeddedServerException.InvalidArgument> { server.registerTrack("t", "not a url") }
        assertTrue(badUrl.message!!.contains("bad URL"), badUrl.message)
        assertFailsWith<EmbeddedServerException.InvalidArgument> { server.proxyUrl("ftp://127.0.0.1:9/x") }
        assertFailsWith<EmbeddedServerException.InvalidArgument> { server.setHeader("bad name", "x") }
        assertFailsWith<EmbeddedServerException.InvalidArgument> {
            server.registerTrack("t", "http://127.0.0.1:9/t.mp3", sha256 = "not hex")
        }

        val elsewhere = assertFailsWith<EmbeddedServerException.OriginNotAllowed> {
            server.proxyUrl("https://elsewhere.example/x.mp3")
        }
        assertTrue(elsewhere.message!!.contains("https://elsewhere.example"), elsewhere.message)

        // Every kind is still an EmbeddedServerException: existing catch sites keep working.
        try {
            server.track("no-such-track")
            fail("no exception")
        } catch (e: EmbeddedServerException) {
            assertIs<EmbeddedServerException.NotFound>(e)
        }
    }
    // A directory in use by a running server: the configuration cannot work.
    EmbeddedServer.start(config("typed-locked")).use {
        val busy = assertFailsWith<EmbeddedServerException.InvalidConfig> { EmbeddedServer.start(config("typed-locked")) }
        assertTrue(busy.message!!.contains("in use"), busy.message)
    }
}

fun closedIsTyped() {
    val server = EmbeddedServer.start(config("typed-closed"))
    server.close()
    // Refused by the Kotlin layer (the handle is gone)...
    val e = assertFailsWith<EmbeddedServerException.Closed> { server.track("x") }
    assertTrue(e.message!!.contains("closed"), e.message)
    assertFailsWith<EmbeddedServerException.Closed> { server.stats() }
    assertFailsWith<EmbeddedServerException.Closed> { server.baseUrl }
    // ...and by the native side, for a call that raced close() with the stale handle.
    val handle = NativeBridge.start(config("typed-native").toJson(), null)
    NativeBridge.destroy(handle)
    val native = assertFailsWith<EmbeddedServerException.Closed> { NativeBridge.track(handle, "x") }
    assertTrue(native.message!!.contains("closed"), native.message)
    // Stopped but not yet destroyed: the server's own "stopped" error, the same kind.
    val stopped = NativeBridge.start(config("typed-stopped").toJson(), null)
    try {
        NativeBridge.stop(stopped)
        val again = assertFailsWith<EmbeddedServerException.Closed> { NativeBridge.downloads(stopped) }
        assertTrue(again.message!!.contains("stopped"), again.message)
    } finally {
        NativeBridge.destroy(stopped)
    }
}

/** A real tmpfs of [size] (mount's syntax) on a new directory; needs root, as the Rust disk-full test. */
class Tmpfs(size: String) : AutoCloseable {
    val dir: File = File(work, "tmpfs-${System.nanoTime()}").apply { mkdirs() }

    init {
        val mount = ProcessBuilder("mount", "-t", "tmpfs", "-o", "size=$size", "tmpfs", dir.path)
            .redirectErrorStream(true).start()
        val output = mount.inputStream.bufferedReader().readText()
        if (mount.waitFor() != 0) {
            fail("the no-space test mounts a $size tmpfs to fill a real disk and needs root (CAP_SYS_ADMIN): $output")
        }
    }

    override fun close() {
        val umount = ProcessBuilder("umount", dir.path).redirectErrorStream(true).start()
        val output = umount.inputStream.bufferedReader().readText()
        if (umount.waitFor() != 0) fail("umount ${dir.path} failed: $output")
    }
}

/** Writes [file] until the disk is full (ENOSPC); returns the bytes written. */
fun fillDisk(file: File): Long {
    var written = 0L
    val chunk = ByteArray(64 * 1024)
    FileOutputStream(file).use { out ->
        try {
            while (true) {
                out.write(chunk)
                written += chunk.size
            }
        } catch (e: IOException) {
            assertTrue(e.message.orEmpty().contains("No space left"), "filling the disk failed otherwise: $e")
        }
        // The last partial chunk may have gone in: write single bytes until none fits.
        try {
            while (true) {
                out.write(0)
                written++
                out.flush()
            }
        } catch (_: IOException) {
        }
    }
    return written
}

fun noSpaceIsTyped() {
    Tmpfs("4m").use { disk ->
        val cache = File(disk.dir, "cache")
        val filler = File(disk.dir, "filler")
        EmbeddedServer.start(Config.Builder(cache.path).origin("http://127.0.0.1:9").build()).use { server ->
            server.registerTrack("before", "http://127.0.0.1:9/before.mp3")
            server.setNetwork(online = false, metered = false) // the download waits, writing nothing
            val download = server.download("before", data = "as queued")
            assertTrue(fillDisk(filler) > 0)
            // Each registration writes a row to the index; once SQLite needs a page the full disk
            // has not got, the call fails as NoSpace (never as another kind).
            var noSpace: EmbeddedServerException.NoSpace? = null
            for (i in 0 until 2_000) {
                try {
                    server.registerTrack("t$i", "http://127.0.0.1:9/" + "x".repeat(1_000) + "/$i.mp3")
                } catch (e: EmbeddedServerException.NoSpace) {
                    noSpace = e
                    break
                }
            }
            assertTrue(noSpace != null, "2,000 registrations on a full disk all succeeded")
            assertEquals("no space left on device", noSpace.message)
            assertFalse(noSpace.isRetryable)
            // App data that cannot be recorded is not kept in memory either.
            assertFailsWith<EmbeddedServerException.NoSpace> { server.setDownloadData(download.id, "x".repeat(4_000)) }
            assertEquals("as queued", server.downloadInfo(download.id).data)
            // Space freed: the same server works again, and what it had is intact.
            assertTrue(filler.delete())
            server.registerTrack("after", "http://127.0.0.1:9/after.mp3")
            assertEquals("http://127.0.0.1:9/before.mp3", server.track("before").url)
            assertNull(server.track("after").sha256)
        }
    }
}
