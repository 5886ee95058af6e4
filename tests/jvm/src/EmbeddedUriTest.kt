// Host JVM tests of the stable embedded:// URIs (EmbeddedUri, EmbeddedUriResolver, RunningServer,
// MediaMimeTypes): the plain-Kotlin mapping that EmbeddedDataSource hands to Media3. Registered in
// EmbeddedServerTest.kt's `main`; helpers (Origin, seed, get, status, config, work) live there.
package io.embeddedserver.test

import io.embeddedserver.EmbeddedServer
import io.embeddedserver.EmbeddedServerException
import io.embeddedserver.EmbeddedUri
import io.embeddedserver.EmbeddedUriResolver
import io.embeddedserver.MediaMimeTypes
import io.embeddedserver.RunningServer
import java.io.File
import java.io.IOException
import kotlin.test.assertContentEquals
import kotlin.test.assertEquals
import kotlin.test.assertFailsWith
import kotlin.test.assertIs
import kotlin.test.assertNotEquals
import kotlin.test.assertNull
import kotlin.test.assertSame
import kotlin.test.assertTrue

/** URLs that must survive `embedded://url/` unchanged: queries, escapes, `%`, spaces, Unicode. */
val awkwardUrls = listOf(
    "https://cdn.example.com/a/b.mp3",
    "https://cdn.example.com:8443/a/b.mp3?sig=abc%2Fdef&exp=1700000000&x=1+2#t=30",
    "http://127.0.0.1:8000/p%25q/100%.mp3?a=%&b=%zz",
    "https://cdn.example.com/ünïcödé/曲 name.mp3?q=日本語&e=🎵",
    "HTTPS://CDN.EXAMPLE.COM/UPPER.M3U8?A=B/C",
)

fun uriRoundTrips() {
    assertEquals("embedded://track/song-1.v2_x~y", EmbeddedUri.track("song-1.v2_x~y"))
    assertEquals(EmbeddedUri.CatalogTrack("t1"), EmbeddedUri.parse("embedded://track/t1"))
    assertEquals("embedded://url/https%3A%2F%2Fa.b%2Fc%3Fd%3De", EmbeddedUri.url("https://a.b/c?d=e"))
    for (url in awkwardUrls) {
        val uri = EmbeddedUri.url(url)
        val encoded = uri.removePrefix("embedded://url/")
        assertTrue(encoded.all { it.isLetterOrDigit() && it.code < 128 || it in "-._~%" }, "not fully encoded: $uri")
        assertEquals(EmbeddedUri.RemoteUrl(url), EmbeddedUri.parse(uri))
        assertEquals(uri, EmbeddedUri.parse(uri).toString())
    }
    // Scheme and kind in any case, lower-case hex, and a hand-written unencoded URL.
    assertEquals(EmbeddedUri.CatalogTrack("t1"), EmbeddedUri.parse("EMBEDDED://Track/t1"))
    assertEquals(EmbeddedUri.RemoteUrl("https://a.b/c"), EmbeddedUri.parse("embedded://URL/https%3a%2f%2fa.b%2fc"))
    assertEquals(EmbeddedUri.RemoteUrl("https://a.b/c?d=e"), EmbeddedUri.parse("embedded://url/https://a.b/c?d=e"))
    assertTrue(EmbeddedUri.isEmbedded("Embedded:anything"))
    assertTrue(!EmbeddedUri.isEmbedded("https://a.b/embedded://track/t1"))
}

/** Each malformed URI fails with an [IllegalArgumentException] whose message has the fragment given. */
fun malformedUrisFail() {
    val cases = listOf(
        "embedded:track/t1" to "not an embedded:// URI",
        "embedded://" to "unknown embedded:// kind \"\"",
        "embedded://album/t1" to "unknown embedded:// kind \"album\"",
        "embedded://track/" to "bad track ID \"\"",
        "embedded://track/a b" to "bad track ID \"a b\"",
        "embedded://track/a/b" to "bad track ID \"a/b\"",
        "embedded://track/.hidden" to "bad track ID",
        "embedded://track/" + "x".repeat(129) to "bad track ID",
        "embedded://url/" to "has no URL",
        "embedded://url/https%3A%2F%2Fa.b%2" to "bad percent-escape \"%2\" at index 32",
        "embedded://url/https%3A%2F%2Fa.b%2Fc%zz" to "bad percent-escape \"%zz\"",
        "embedded://url/https%3A%2F%2Fa.b%2Fc%-1" to "bad percent-escape \"%-1\"",
        "embedded://url/https%3A%2F%2Fa.b%2F%FF%FE" to "not percent-encoded UTF-8",
        "embedded://url/ftp%3A%2F%2Fa.b%2Fc" to "absolute http(s) URL",
        "embedded://url/https%3A%2F%2F%2Fc" to "absolute http(s) URL",
        "embedded://url/relative%2Fpath.mp3" to "absolute http(s) URL",
    )
    for ((uri, fragment) in cases) {
        val e = assertFailsWith<IllegalArgumentException>(uri) { EmbeddedUri.parse(uri) }
        assertTrue(e.message.orEmpty().contains(fragment), "$uri: '${e.message}' lacks '$fragment'")
    }
    assertFailsWith<IllegalArgumentException> { EmbeddedUri.track("a b") }
    val secret = assertFailsWith<IllegalArgumentException> { EmbeddedUri.url("ftp://h/x.mp3?sig=SECRET") }
    assertTrue(!secret.message.orEmpty().contains("SECRET"), "a signed query leaked into: ${secret.message}")
    // Through the resolver: other URIs pass unchanged without asking for a server; a malformed
    // embedded one is an IOException (what a Media3 data source throws) caused by the parse error.
    val noServer = EmbeddedUriResolver { error("a server was asked for a URI that needs none") }
    for (other in listOf("https://cdn.example.com/x.mp3", "file:///sdcard/a.mp3", "asset:///a.mp3")) {
        assertSame(other, noServer.resolve(other))
    }
    val e = assertFailsWith<IOException> { noServer.resolve("embedded://album/t1") }
    assertIs<IllegalArgumentException>(e.cause)
    assertTrue(e.message.orEmpty().contains("unknown embedded:// kind"), e.message)
}

fun mimeTypesForMedia3() {
    // Media3 compares these exactly (MimeTypes.APPLICATION_M3U8 / APPLICATION_MPD).
    assertEquals("application/x-mpegURL", MediaMimeTypes.HLS)
    assertEquals("application/dash+xml", MediaMimeTypes.DASH)
    assertEquals(MediaMimeTypes.HLS, MediaMimeTypes.fromUrl("https://h/live/master.M3U8?sig=a.mp3#x"))
    assertEquals(MediaMimeTypes.DASH, MediaMimeTypes.fromUrl("https://h/v/manifest.mpd"))
    assertEquals("audio/mpeg", MediaMimeTypes.fromUrl("https://h/a.mp3"))
    assertNull(MediaMimeTypes.fromUrl("https://h/dir.m3u8/track"))
    assertNull(MediaMimeTypes.fromUrl("https://h/stream?format=.mp3"))
    assertEquals(MediaMimeTypes.HLS, MediaMimeTypes.normalize("application/vnd.apple.mpegurl; charset=UTF-8"))
    assertEquals(MediaMimeTypes.HLS, MediaMimeTypes.normalize("audio/x-mpegurl"))
    assertEquals("audio/mpeg", MediaMimeTypes.normalize(" Audio/MPEG "))
}

/** The bytes of the first segment of the first variant of HLS master [masterUrl], walked as a player would. */
fun firstHlsSegment(masterUrl: String, base: String): ByteArray {
    fun uris(url: String): List<String> {
        val (code, body) = get(url)
        assertEquals(200, code, url)
        return String(body).lines().map { it.trim() }.filter { it.isNotEmpty() && !it.startsWith("#") }
    }
    val variant = uris(masterUrl).first()
    assertTrue(variant.startsWith(base), "the master was not rewritten to $base: $variant")
    val segment = uris(variant).first()
    assertTrue(segment.startsWith(base), "the media playlist was not rewritten to $base: $segment")
    return get(segment).second
}

/**
 * The same embedded:// URIs (a track, a remote URL with a query, an HLS master by URL and as a
 * track) resolve to each running server's own address and play its bytes; across a restart on
 * the same directories (new port and token) nothing needs registering again; with no server
 * running, or a closed one, resolving fails with a message saying so.
 */
fun urisSurviveRestart() {
    val dir = File(work, "origin-uris")
    val truth = seed(dir, "song.bin", 700_000)
    File(dir, "hls").mkdirs()
    File(dir, "hls/master.m3u8").writeText("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=96000\nv1/media.m3u8\n")
    File(dir, "hls/v1").mkdirs()
    File(dir, "hls/v1/media.m3u8").writeText("#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXTINF:4.0,\nfirst.ts\n#EXT-X-ENDLIST\n")
    val segment = seed(File(dir, "hls/v1"), "first.ts", 40_000)
    Origin(dir).use { origin ->
        val config = config("uris", origin.url)
        val remote = "${origin.url}/song.bin?sig=a%2Fb&v=é"
        val uris = listOf(EmbeddedUri.track("song"), EmbeddedUri.url(remote))
        val hlsUris = listOf(EmbeddedUri.url("${origin.url}/hls/master.m3u8"), EmbeddedUri.track("hls"))
        val resolver = EmbeddedUriResolver() // RunningServer: whichever server runs now
        val seen = ArrayList<String>()
        for (round in 1..2) {
            EmbeddedServer.start(config).use { server ->
                assertSame(server, RunningServer.current())
                if (round == 1) {
                    server.registerTrack("song", "${origin.url}/song.bin", mime = "audio/mpeg")
                    server.registerTrack("hls", "${origin.url}/hls/master.m3u8")
                }
                val local = uris.map(resolver::resolve)
                assertEquals(listOf(server.trackUrl("song"), server.proxyUrl(remote)), local)
                for (url in local) {
                    assertTrue(url.startsWith(server.baseUrl), url)
                    val (code, body) = get(url)
                    assertEquals(200, code, url)
                    assertContentEquals(truth, body, url)
                }
                for (uri in hlsUris) assertContentEquals(segment, firstHlsSegment(resolver.resolve(uri), server.baseUrl), uri)
                // The MIME types a MediaItem gets: registered, or by extension (HLS for Media3).
                assertEquals("audio/mpeg", MediaMimeTypes.forTrack(server, "song"))
                assertEquals(MediaMimeTypes.HLS, MediaMimeTypes.forTrack(server, "hls"))
                assertFailsWith<EmbeddedServerException> { MediaMimeTypes.forTrack(server, "no-such-track") }
                // A remote URL off the origin list: a clear refusal, not a dead URL.
                val refused = assertFailsWith<IOException> { resolver.resolve(EmbeddedUri.url("https://elsewhere.example/x.mp3")) }
                assertTrue(refused.message.orEmpty().contains("not allowed"), refused.message)
                seen.add(server.baseUrl)
                // A resolver pinned to this server fails clearly once it is closed.
                val pinned = EmbeddedUriResolver { server }
                server.close()
                val closed = assertFailsWith<IOException> { pinned.resolve(uris[0]) }
                assertIs<EmbeddedServerException>(closed.cause)
                assertTrue(closed.message.orEmpty().contains("closed"), closed.message)
            }
            // No server now: the saved URI does not turn into a dead address.
            assertNull(RunningServer.current())
            val none = assertFailsWith<IOException> { resolver.resolve(uris[0]) }
            assertTrue(none.message.orEmpty().contains("no EmbeddedServer is running"), none.message)
        }
        assertNotEquals(seen[0], seen[1], "the restart kept its port and token")
    }
}

/** [RunningServer.current] is the newest open server; closing it falls back to the one before. */
fun runningServerFollowsStartsAndCloses() {
    val a = EmbeddedServer.start(config("running-a"))
    try {
        assertSame(a, RunningServer.current())
        // A start that fails (directory in use) does not replace it.
        assertFailsWith<EmbeddedServerException> { EmbeddedServer.start(config("running-a")) }
        assertSame(a, RunningServer.current())
        EmbeddedServer.start(config("running-b")).use { b ->
            assertSame(b, RunningServer.current())
            assertSame(b, RunningServer.get())
        }
        assertSame(a, RunningServer.current())
    } finally {
        a.close()
    }
    assertNull(RunningServer.current())
    val e = assertFailsWith<EmbeddedServerException> { RunningServer.get() }
    assertTrue(e.message.orEmpty().contains("EmbeddedServer.start"), e.message)
}
