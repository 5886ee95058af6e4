// Host JVM tests of the Android defects of issue #13 that the JVM can exercise: the cleartext
// check at start, secrets kept out of toString(), the initial network state reaching the native
// gate (registered at the end of `main` in EmbeddedServerTest.kt).
package io.embeddedserver.test

import android.security.NetworkSecurityPolicy
import io.embeddedserver.Config
import io.embeddedserver.Credentials
import io.embeddedserver.DownloadState
import io.embeddedserver.EmbeddedServer
import io.embeddedserver.EmbeddedServerException
import io.embeddedserver.LoopbackCleartext
import io.embeddedserver.NetworkState
import java.io.File
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
