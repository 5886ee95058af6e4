// Host JVM tests of the Android defects of issue #13 that the JVM can exercise: secrets kept out
// of toString() and the initial network state reaching the native gate (registered at the end of
// `main` in EmbeddedServerTest.kt).
package io.embeddedserver.test

import io.embeddedserver.Config
import io.embeddedserver.Credentials
import io.embeddedserver.DownloadState
import io.embeddedserver.EmbeddedServer
import io.embeddedserver.NetworkState
import java.io.File
import kotlin.test.assertEquals
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
