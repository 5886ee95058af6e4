package io.embeddedserver

/**
 * Implemented by the app's `Application` to hand its running [EmbeddedServer] to code the system
 * starts without the app's UI: the download worker (`DownloadWorker`) after process death, where
 * WorkManager starts the process, `Application.onCreate` runs, and nothing else of the app does.
 * Unlike [RunningServer], which knows only a server already open, the host can start one and
 * the worker waits for it: an app that starts its server off the main thread (as it should) has
 * none open yet when the worker begins.
 *
 * ```kotlin
 * class App : Application(), EmbeddedServerHost {
 *     private val server = scope.async(Dispatchers.IO) { EmbeddedServer.start(AndroidConfig.builder(this@App).build()) }
 *     override suspend fun embeddedServer() = server.await()
 * }
 * ```
 */
interface EmbeddedServerHost {
    /**
     * The app's server, started if it is not yet (suspend until it has). The caller never closes
     * it: the app owns it. Throws if it cannot start; the worker then retries later. A Java
     * `Application` implements `Object embeddedServer(Continuation<? super EmbeddedServer>)` by
     * returning the server itself (blocking is fine: the worker calls it off the main thread).
     */
    suspend fun embeddedServer(): EmbeddedServer

    companion object {
        /** What a worker says when the app's `Application` is not an [EmbeddedServerHost]. */
        const val MISSING: String = "the Application does not implement io.embeddedserver.EmbeddedServerHost: " +
            "make the app's Application class implement it (override suspend fun embeddedServer()) so that " +
            "downloads can resume in the background"
    }
}
