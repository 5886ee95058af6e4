package io.embeddedserver

/**
 * Fresh credentials for the backend, from a [CredentialResolver]: a re-signed [url] for the same
 * bytes and/or [headers] to send with every later upstream request (e.g. a new `Authorization`).
 * [toString] shows neither the header values nor the URL's query (its signature).
 */
data class Credentials(
    val url: String? = null,
    val headers: Map<String, String> = emptyMap(),
) {
    internal fun toJson(): String {
        val headerList = headers.entries.joinToString(",", "[", "]") { "[${Json.quote(it.key)},${Json.quote(it.value)}]" }
        return "{\"url\":${url?.let(Json::quote) ?: "null"},\"headers\":$headerList}"
    }

    override fun toString(): String = "Credentials(url=${url?.let(Redaction::url)}, headers=${Redaction.headers(headers)})"
}

/**
 * The app's hook for expired credentials, installed with [EmbeddedServer.setResolver]. The server
 * calls [refresh] when the backend answers 401 or 403, at most once per refused request, and
 * retries with what it returns. Calls come one at a time: when a token expires and a dozen
 * requests are refused at once, the app is asked once, and the others retry with its answer
 * (its headers apply to every request, its URL to the resource it was asked about).
 *
 * It runs on one of the server's native threads (attached to the JVM for the call) while a
 * player or download waits: it may block briefly (e.g. a token refresh over the network), up to
 * [Config.resolverTimeoutMs] (10 s by default; then the request fails, and the hook is not asked
 * again until that call returns). It must not call back into the [EmbeddedServer] and must not
 * touch the UI. Returning null or throwing means "no fresh credentials": the request fails with
 * the backend's status. [EmbeddedServer.close] does not wait for a call that never returns.
 */
fun interface CredentialResolver {
    /** [trackId] is the catalog track the refused [url] belongs to, if any. */
    fun refresh(trackId: String?, url: String): Credentials?
}
