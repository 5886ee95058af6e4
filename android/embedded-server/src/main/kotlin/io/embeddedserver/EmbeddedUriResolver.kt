package io.embeddedserver

import java.io.IOException

/**
 * Maps a URI a player is about to open to what it should fetch: an `embedded://` URI
 * ([EmbeddedUri]) to the current local URL on the server [server] returns, asked at each call;
 * any other URI unchanged (without asking for a server). By default [server] is
 * [RunningServer.get], so a URI saved before a restart resolves to the new port and token.
 *
 * Failures are [IOException]s, as a Media3 data source reports them: the cause is an
 * [IllegalArgumentException] for a malformed URI, an [EmbeddedServerException] when no server is
 * running, the server is closed, or the URL's origin is not allowed. Thread-safe; resolving only
 * formats strings (no disk, no network).
 */
class EmbeddedUriResolver @JvmOverloads constructor(
    private val server: () -> EmbeddedServer = RunningServer::get,
) {
    /** The URL to fetch for [uri]. */
    @Throws(IOException::class)
    fun resolve(uri: String): String {
        if (!EmbeddedUri.isEmbedded(uri)) return uri
        return try {
            EmbeddedUri.parse(uri).localUrl(server())
        } catch (e: IllegalArgumentException) {
            throw IOException("cannot play $SCHEME URI: ${e.message}", e)
        } catch (e: EmbeddedServerException) {
            throw IOException("cannot play $SCHEME URI: ${e.message}", e)
        }
    }

    private companion object {
        const val SCHEME = "${EmbeddedUri.SCHEME}://"
    }
}
