package io.embeddedserver

/**
 * How secrets appear in `toString()`: never their values, so a config or credentials object
 * that reaches a log, a crash report or a debugger's summary leaks no token, header value or
 * URL signature. Names (of headers) and shapes stay, for debugging.
 */
internal object Redaction {
    /** What stands for a secret value. */
    const val MARK = "<redacted>"

    /** `{Authorization=<redacted>, …}`: the names only. */
    fun headers(headers: Map<String, String>): String = headers.keys.joinToString(", ", "{", "}") { "$it=$MARK" }

    /** The URL without its query (where signed URLs carry their signature) and fragment. */
    fun url(url: String): String {
        val end = url.indexOfAny(charArrayOf('?', '#'))
        return if (end < 0) url else url.substring(0, end) + "?" + MARK
    }
}
