package io.embeddedserver.sample

import java.net.HttpURLConnection
import java.net.URL
import org.json.JSONArray

/**
 * The `streamer origin --demo` backend the tests play from ([BuildConfig.BACKEND], the runner's
 * port 8000 reached through `adb reverse tcp:8000 tcp:8000`), with its control API: faults and
 * the log of the file requests it received.
 */
internal object DemoBackend {
    /** One entry of `catalog.json`. */
    data class Track(
        val id: String,
        val file: String,
        val size: Long,
        val sha256: String,
        val mime: String,
        val durationMs: Long,
    ) {
        val url: String get() = "${BuildConfig.BACKEND}/$file"
    }

    fun catalog(): List<Track> {
        val json = JSONArray(request("GET", "/catalog.json"))
        return (0 until json.length()).map { i ->
            val o = json.getJSONObject(i)
            Track(
                id = o.getString("id"),
                file = o.getString("file"),
                size = o.getLong("size"),
                sha256 = o.getString("sha256"),
                mime = o.getString("mime"),
                durationMs = (o.getDouble("duration_secs") * 1000).toLong(),
            )
        }
    }

    /** The shortest catalog track: the tests that play to the end wait for all of it. */
    fun shortestTrack(): Track = catalog().minBy { it.durationMs }

    /** Every file request from now on gets `503` (the backend is as good as gone). */
    fun failEveryRequest() {
        request("PUT", "/_control/faults", """{"fail_first": 4294967295}""")
    }

    /** No faults. */
    fun resetFaults() {
        request("PUT", "/_control/faults", "{}")
    }

    fun clearRequestLog() {
        request("DELETE", "/_control/log")
    }

    /** The file requests received since the last [clearRequestLog]. */
    fun requestLog(): JSONArray = JSONArray(request("GET", "/_control/log"))

    private fun request(method: String, path: String, body: String? = null): String {
        val connection = URL(BuildConfig.BACKEND + path).openConnection() as HttpURLConnection
        try {
            connection.requestMethod = method
            connection.connectTimeout = 10_000
            connection.readTimeout = 10_000
            if (body != null) {
                connection.doOutput = true
                connection.setRequestProperty("Content-Type", "application/json")
                connection.outputStream.use { it.write(body.toByteArray()) }
            }
            val status = connection.responseCode
            check(status in 200..299) {
                "$method $path: HTTP $status (is `streamer origin --demo` running, with adb reverse tcp:8000 tcp:8000?)"
            }
            return connection.inputStream.use { it.readBytes().decodeToString() }
        } finally {
            connection.disconnect()
        }
    }
}
