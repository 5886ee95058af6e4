package io.embeddedserver

/**
 * The servers open in this process, so that code which outlives a server (a player's data
 * source, a queue restored after process death) finds the one running now instead of holding a
 * reference to a closed one. [EmbeddedServer.start] adds a server, [EmbeddedServer.close] removes
 * it; [current] is the most recently started server that is still open. [EmbeddedUriResolver]
 * asks it by default, so the same `embedded://` URI follows the server across restarts.
 *
 * An app running two servers at once (two cache directories) should give its resolvers an
 * explicit server instead.
 */
object RunningServer {
    private val open = ArrayList<EmbeddedServer>()

    /** The most recently started server that has not been closed, or null. */
    @JvmStatic
    fun current(): EmbeddedServer? = synchronized(open) { open.lastOrNull() }

    /** [current], or an [EmbeddedServerException] saying that no server is running. */
    @JvmStatic
    fun get(): EmbeddedServer = current() ?: throw EmbeddedServerException(
        "no EmbeddedServer is running in this process: start one (EmbeddedServer.start) before the player opens embedded:// URIs",
    )

    // Called by EmbeddedServer without holding its own lock: this monitor never nests with it.
    internal fun started(server: EmbeddedServer) = synchronized(open) { open.add(server) }

    internal fun closed(server: EmbeddedServer) = synchronized(open) { open.removeAll { it === server } }
}
