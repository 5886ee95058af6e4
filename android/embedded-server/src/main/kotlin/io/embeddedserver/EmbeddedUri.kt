package io.embeddedserver

import java.io.ByteArrayOutputStream
import java.nio.ByteBuffer
import java.nio.charset.CharacterCodingException
import java.nio.charset.CodingErrorAction

/**
 * A stable URI of media played through an [EmbeddedServer]: `embedded://track/ID` names catalog
 * track `ID`, `embedded://url/ENCODED` a remote URL, percent-encoded whole (RFC 3986: every byte
 * of its UTF-8 but `A-Z a-z 0-9 - . _ ~` as `%XX`), so any URL round-trips.
 *
 * [EmbeddedServer.trackUrl] and [EmbeddedServer.proxyUrl] change with the port and token of each
 * start; an `embedded://` URI does not. Save it (a MediaItem, a queue, playback resumption) and
 * resolve it to the running server's current URL when the player opens it: [EmbeddedUriResolver]
 * does that, and on Android `EmbeddedDataSource.Factory` does it for Media3.
 *
 * An HLS master playlist (or a DASH MPD) is an `embedded://url/` URI, or a catalog track whose URL
 * is one: the server rewrites the playlist so that every variant and segment also comes through
 * it. Give the player its MIME type ([MediaMimeTypes]), since the URI shows no extension Media3
 * can rely on.
 */
sealed class EmbeddedUri {
    /** The current local URL of this resource on [server]; throws [EmbeddedServerException] if it cannot (closed server, origin not allowed). */
    abstract fun localUrl(server: EmbeddedServer): String

    /** Catalog track [id] ([EmbeddedServer.registerTrack]); `embedded://track/ID`. */
    data class CatalogTrack(val id: String) : EmbeddedUri() {
        init {
            require(isTrackId(id)) { "bad track ID \"${redact(id)}\": use 1-128 characters of A-Z a-z 0-9 . _ ~ - (not starting with .)" }
        }

        override fun localUrl(server: EmbeddedServer): String = server.trackUrl(id)

        override fun toString(): String = "$PREFIX$TRACK/$id"
    }

    /** Remote [url] (`http` or `https`) played through the cache ([EmbeddedServer.proxyUrl]); `embedded://url/ENCODED`. */
    data class RemoteUrl(val url: String) : EmbeddedUri() {
        init {
            require(HTTP_URL.containsMatchIn(url)) { "embedded://url/ needs an absolute http(s) URL with a host, got ${redact(url)}" }
        }

        override fun localUrl(server: EmbeddedServer): String = server.proxyUrl(url)

        override fun toString(): String = "$PREFIX$URL/${encode(url)}"
    }

    companion object {
        /** The URI scheme, `embedded`. */
        const val SCHEME = "embedded"
        private const val PREFIX = "$SCHEME://"
        private const val TRACK = "track"
        private const val URL = "url"
        private val HTTP_URL = Regex("^https?://[^/?#]+", RegexOption.IGNORE_CASE)
        private val TRACK_ID = Regex("[A-Za-z0-9._~-]{1,128}")
        private const val UNRESERVED = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"

        /** `embedded://track/ID`; throws [IllegalArgumentException] for an ID the server would refuse. */
        @JvmStatic
        fun track(id: String): String = CatalogTrack(id).toString()

        /** `embedded://url/ENCODED`; throws [IllegalArgumentException] unless [url] is an absolute http(s) URL. */
        @JvmStatic
        fun url(url: String): String = RemoteUrl(url).toString()

        /** Whether [uri] has the `embedded:` scheme (any case); such a URI must [parse]. */
        @JvmStatic
        fun isEmbedded(uri: String): Boolean = uri.startsWith("$SCHEME:", ignoreCase = true)

        /**
         * The resource [uri] names; throws [IllegalArgumentException] saying what is wrong if it is
         * not a well-formed `embedded://track/ID` or `embedded://url/ENCODED` (scheme and kind in
         * any case).
         */
        @JvmStatic
        fun parse(uri: String): EmbeddedUri {
            require(uri.startsWith(PREFIX, ignoreCase = true)) {
                "not an embedded:// URI: expected embedded://track/ID or embedded://url/ENCODED_URL, got ${redact(uri)}"
            }
            val rest = uri.substring(PREFIX.length)
            val slash = rest.indexOf('/')
            val kind = if (slash < 0) rest else rest.substring(0, slash)
            val value = if (slash < 0) "" else rest.substring(slash + 1)
            return when {
                kind.equals(TRACK, ignoreCase = true) -> CatalogTrack(value)
                kind.equals(URL, ignoreCase = true) -> {
                    require(value.isNotEmpty()) { "embedded://url/ has no URL after it" }
                    RemoteUrl(decode(value))
                }
                else -> throw IllegalArgumentException(
                    "unknown embedded:// kind \"${kind.take(32)}\": expected embedded://track/ID or embedded://url/ENCODED_URL",
                )
            }
        }

        private fun isTrackId(id: String): Boolean = TRACK_ID.matches(id) && !id.startsWith('.')

        private fun encode(text: String): String = buildString {
            for (byte in text.toByteArray(Charsets.UTF_8)) {
                val b = byte.toInt() and 0xff
                if (b < 0x80 && UNRESERVED.indexOf(b.toChar()) >= 0) {
                    append(b.toChar())
                } else {
                    append('%').append("0123456789ABCDEF"[b shr 4]).append("0123456789ABCDEF"[b and 15])
                }
            }
        }

        /** Strict percent-decoding: every `%` starts two hex digits and the bytes are UTF-8; other characters stand for themselves. */
        private fun decode(text: String): String {
            val bytes = ByteArrayOutputStream(text.length)
            var i = 0
            while (i < text.length) {
                val c = text[i]
                if (c == '%') {
                    val hex = text.substring(i + 1, minOf(i + 3, text.length))
                    val b = hex.takeIf { it.length == 2 && it.all { d -> d in '0'..'9' || d in 'a'..'f' || d in 'A'..'F' } }?.toInt(16)
                        ?: throw IllegalArgumentException("bad percent-escape \"%$hex\" at index ${PREFIX.length + URL.length + 1 + i} of an embedded://url/ URI")
                    bytes.write(b)
                    i += 3
                } else {
                    val end = if (c.isHighSurrogate() && i + 1 < text.length) i + 2 else i + 1
                    bytes.write(text.substring(i, end).toByteArray(Charsets.UTF_8))
                    i = end
                }
            }
            return try {
                Charsets.UTF_8.newDecoder()
                    .onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT)
                    .decode(ByteBuffer.wrap(bytes.toByteArray()))
                    .toString()
            } catch (e: CharacterCodingException) {
                throw IllegalArgumentException("the URL of an embedded://url/ URI is not percent-encoded UTF-8", e)
            }
        }

        /** [text] without its query and fragment (signed URLs carry secrets there), for messages. */
        private fun redact(text: String): String {
            val cut = text.indexOfAny(charArrayOf('?', '#'))
            return (if (cut < 0) text else text.substring(0, cut) + "?…").take(200)
        }
    }
}
