package io.embeddedserver

/**
 * Any failure of the embedded server: the message says what went wrong, for a person to read.
 *
 * Failures of the native library arrive as one of the subclasses below, one per kind of failure
 * a caller acts on, so code never parses a message: catch [NotFound] to offer a retry after
 * registering the track, [Upstream] (with its [Upstream.status] and [isRetryable]) to report the
 * backend, [NoSpace] to ask the user to free storage, [Closed] after [EmbeddedServer.close].
 * Catching `EmbeddedServerException` itself still catches them all. A plain
 * `EmbeddedServerException` is a failure of the library itself (bad JSON from the native side, a
 * JNI failure, an internal error).
 *
 * The native side constructs the subclasses by name (`embedded-server/src/jni/policy.rs`):
 * their names and constructors are kept by `consumer-rules.pro`.
 */
open class EmbeddedServerException(message: String) : RuntimeException(message) {
    /** Whether the same call may succeed if tried again later (only [Upstream] failures can). */
    open val isRetryable: Boolean get() = false

    /** The named thing does not exist: an unknown track or download ID. */
    class NotFound(message: String) : EmbeddedServerException(message)

    /** An argument is malformed: a bad URL, ID, variant or value out of range. */
    class InvalidArgument(message: String) : EmbeddedServerException(message)

    /** The URL's origin is not on [Config.origins]. */
    class OriginNotAllowed(message: String) : EmbeddedServerException(message)

    /**
     * The configuration cannot work: a cache directory that cannot be created or is in use by
     * another server, an unreadable CA file, cleartext to 127.0.0.1 refused by the app's network
     * security config (the message says what to add).
     */
    class InvalidConfig(message: String) : EmbeddedServerException(message)

    /**
     * Fetching from the backend failed. [status] is the backend's HTTP status when it answered
     * with an error (404, 403, 500...), null when it never answered usefully (unreachable, timed
     * out, broke the protocol, redirected off the allowed origins).
     */
    class Upstream(message: String, status: Int, retryable: Boolean) : EmbeddedServerException(message) {
        /** The backend's HTTP status, or null when there was none. */
        val status: Int? = status.takeIf { it > 0 }

        /** Whether trying again may help: unreachable, timed out, 5xx, 408 or 429. */
        override val isRetryable: Boolean = retryable
    }

    /** The device has no space left for the cache's data or index. */
    class NoSpace(message: String) : EmbeddedServerException(message)

    /** The cache's files or index failed (an I/O or SQLite error other than a full disk). */
    class Storage(message: String) : EmbeddedServerException(message)

    /** The server is closed ([EmbeddedServer.close]): this instance cannot be used any more. */
    class Closed(message: String) : EmbeddedServerException(message)
}
