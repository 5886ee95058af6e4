// Host JVM tests of the Android defects of issue #13 that the JVM can exercise: the cleartext
// check at start, the one-time move of downloads out of Auto Backup's reach, secrets kept out of
// toString(), the initial network state reaching the native gate (registered at the end of `main`
// in EmbeddedServerTest.kt).
package io.embeddedserver.test

import android.security.NetworkSecurityPolicy
import io.embeddedserver.Config
import io.embeddedserver.Credentials
import io.embeddedserver.DirectoryMove
import io.embeddedserver.DownloadState
import io.embeddedserver.EmbeddedServer
import io.embeddedserver.EmbeddedServerException
import io.embeddedserver.LoopbackCleartext
import io.embeddedserver.NetworkState
import java.io.File
import kotlin.test.assertContentEquals
import kotlin.test.assertEquals
import kotlin.test.assertFailsWith
import kotlin.test.assertFalse
import kotlin.test.assertNotEquals
import kotlin.test.assertTrue
import kotlinx.coroutines.flow.first
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeout

/** `Config` and `Credentials` print header names, never the token, header values or a URL's signature. */
fun toStringHidesSecrets() {
    val secrets = listOf("tok3n-s3cret", "Bearer hunter2", "sid=cookie-s3cret", "sig=url-s3cret")
    val config = Config.Builder("/cache").token(secrets[0]).header("Authorization", secrets[1])
        .header("Cookie", secrets[2]).origin("https://cdn.example").build()
    val credentials = Credentials(
        url = "https://cdn.example/t.mp3?${secrets[3]}",
        headers = mapOf("Authorization" to secrets[1]),
    )
    for (text in listOf(config.toString(), credentials.toString())) {
        secrets.forEach { assertFalse(text.contains(it), "a secret in: $text") }
        assertTrue(text.contains("Authorization"), "the header name is missing from: $text")
    }
    assertTrue(config.toString().contains("https://cdn.example"), config.toString())
    assertTrue(credentials.toString().contains("https://cdn.example/t.mp3"), credentials.toString())
    // Still data classes: equality and copy see the values.
    assertEquals(config, config.copy())
    assertNotEquals(config, config.copy(token = "other"))
    assertNotEquals(credentials, credentials.copy(headers = mapOf("Authorization" to "Bearer other")))
}

/** A server configured as started on mobile data holds its download until told it is unmetered. */
fun initialNetworkReachesTheGate() {
    val dir = File(work, "origin-initial-network")
    seed(dir, "metered.bin", 200_000)
    Origin(dir).use { origin ->
        val metered = NetworkState(online = true, metered = true)
        val config = Config.Builder(File(work, "initial-network").path).origin(origin.url).initialNetwork(metered).build()
        assertEquals(metered, config.initialNetwork)
        EmbeddedServer.start(config).use { server ->
            server.registerTrack("metered", "${origin.url}/metered.bin")
            val id = server.download("metered").id
            val parked = runBlocking {
                withTimeout(15_000) { server.downloadMap().first { it[id]?.state == DownloadState.WAITING_FOR_NETWORK } }
            }.getValue(id)
            assertEquals(0, parked.bytesDone)
            server.setNetwork(online = true, metered = false)
            assertEquals(DownloadState.COMPLETED, awaitCompleted(server, id).state)
        }
    }
}

/** The `<domain-config>` block of [xml], each line trimmed. */
fun domainConfig(xml: String): String {
    val lines = xml.lines().map { it.trim() }
    val start = lines.indexOfFirst { it.startsWith("<domain-config") }
    val end = lines.indexOfFirst { it == "</domain-config>" }
    assertTrue(start >= 0 && end > start, "no <domain-config> in:\n$xml")
    return lines.subList(start, end + 1).joinToString("\n")
}

/**
 * The library sets no network security config; start asks the platform's policy (a fake here,
 * tests/jvm/fakes) about 127.0.0.1 and, when refused, says exactly what to add: the ready file's
 * `<domain-config>` lines, or a reference to the ready file.
 */
fun cleartextToLoopbackIsChecked() {
    val library = File("android/embedded-server/src/main")
    assertFalse(File(library, "AndroidManifest.xml").readText().contains("android:networkSecurityConfig="),
        "the library manifest must not set a network security config")
    val ready = File(library, "res/xml/embedded_server_network_security_config.xml").readText()
    val config = config("cleartext")
    NetworkSecurityPolicy.cleartextPermitted = false
    val refused = try {
        assertFailsWith<EmbeddedServerException> { EmbeddedServer.start(config) }
    } finally {
        NetworkSecurityPolicy.cleartextPermitted = true
    }
    assertEquals("127.0.0.1", NetworkSecurityPolicy.lastHostname)
    val message = refused.message!!
    assertTrue(message.lines().map { it.trim() }.joinToString("\n").contains(domainConfig(ready)), message)
    assertTrue(message.contains("android:networkSecurityConfig=\"@xml/embedded_server_network_security_config\""), message)
    NetworkSecurityPolicy.lastHostname = null
    EmbeddedServer.start(config).use { assertTrue(it.baseUrl.startsWith("http://127.0.0.1:")) }
    assertEquals("127.0.0.1", NetworkSecurityPolicy.lastHostname, "a permitted start is checked too")
    // A desktop JVM has no policy class: nothing to check.
    LoopbackCleartext.requirePermitted("android.security.NoSuchPolicy")
}

/** Every file under [dir], by relative path, with its content. */
fun files(dir: File): Map<String, String> =
    dir.walkTopDown().filter { it.isFile }.associate { it.relativeTo(dir).path to it.readText() }

/** [DirectoryMove.moveOnce] in each case it meets on a phone; it never loses or hides a file. */
fun downloadsDirMovesOnce() {
    val root = File(work, "move")
    fun dirWith(path: String, vararg names: String) =
        File(root, path).apply { names.forEach { File(this, it).apply { parentFile.mkdirs() }.writeText("$path/$it") } }

    // An old install: moved by a rename, every file kept, the old name gone.
    val old = dirWith("upgrade/files/embedded-server", "index.sqlite", "data/ab/123.1")
    val before = files(old)
    val new = File(root, "upgrade/no_backup/embedded-server")
    assertEquals(new, DirectoryMove.moveOnce(old, new))
    assertFalse(old.exists())
    assertEquals(before, files(new))
    // Already moved (the next start): nothing to do.
    assertEquals(new, DirectoryMove.moveOnce(old, new))
    assertEquals(before, files(new))
    // The new name is an empty directory: moved over it.
    val old2 = dirWith("empty/old", "index.sqlite")
    val new2 = File(root, "empty/new").apply { mkdirs() }
    assertEquals(new2, DirectoryMove.moveOnce(old2, new2))
    assertEquals(listOf("index.sqlite"), files(new2).keys.toList())
    // Both hold files (an old backup restored the old one): both are left as they are.
    val old3 = dirWith("both/old", "index.sqlite")
    val new3 = dirWith("both/new", "index.sqlite")
    assertEquals(new3, DirectoryMove.moveOnce(old3, new3))
    assertEquals(mapOf("index.sqlite" to "both/old/index.sqlite"), files(old3))
    assertEquals(mapOf("index.sqlite" to "both/new/index.sqlite"), files(new3))
    // The rename fails (the new parent is a file): the old directory stays in use, intact.
    val old4 = dirWith("fails/old", "index.sqlite")
    val blocker = File(root, "fails/blocker").apply { writeText("not a directory") }
    assertEquals(old4, DirectoryMove.moveOnce(old4, File(blocker, "embedded-server")))
    assertEquals(mapOf("index.sqlite" to "fails/old/index.sqlite"), files(old4))
}

/** A completed download made under the old directory is still completed, and plays offline, after the move. */
fun movedDownloadsStillPlay() {
    val dir = File(work, "origin-moved")
    val truth = seed(dir, "kept.bin", 300_000)
    val cacheDir = File(work, "moved-cache").path
    val old = File(work, "moved-files/embedded-server")
    val new = File(work, "moved-no-backup/embedded-server")
    Origin(dir).use { origin ->
        EmbeddedServer.start(Config(cacheDir, downloadsDir = old.path, origins = listOf(origin.url))).use { server ->
            server.registerTrack("kept", "${origin.url}/kept.bin")
            awaitCompleted(server, server.download("kept").id)
        }
        assertEquals(new, DirectoryMove.moveOnce(old, new))
        origin.close()
        EmbeddedServer.start(Config(cacheDir, downloadsDir = new.path, origins = listOf(origin.url))).use { server ->
            assertEquals(DownloadState.COMPLETED, server.downloadMap().value.values.single().state)
            assertTrue(server.track("kept").complete)
            assertContentEquals(truth, get(server.trackUrl("kept")).second)
        }
    }
}
