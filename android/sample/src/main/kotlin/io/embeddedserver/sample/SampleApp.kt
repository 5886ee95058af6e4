package io.embeddedserver.sample

import android.app.Application
import io.embeddedserver.AndroidConfig
import io.embeddedserver.DownloadScheduler
import io.embeddedserver.DownloadState
import io.embeddedserver.EmbeddedServer
import io.embeddedserver.EmbeddedServerHost
import io.embeddedserver.NetworkWatcher
import io.embeddedserver.PendingWork
import kotlinx.coroutines.CancellationException
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.Deferred
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.SupervisorJob
import kotlinx.coroutines.async
import kotlinx.coroutines.flow.distinctUntilChanged
import kotlinx.coroutines.flow.map
import kotlinx.coroutines.launch

/**
 * Owns the process-wide server and feeds it the device's connectivity; hands the server to the
 * library's DownloadWorker ([EmbeddedServerHost]), which WorkManager may run in a process started
 * without any of the app's UI.
 */
class SampleApp : Application(), EmbeddedServerHost {
    val scope = CoroutineScope(SupervisorJob() + Dispatchers.Default)

    /**
     * The server, started on [Dispatchers.IO]: starting opens (and may recover) the SQLite index
     * and creates directories, which must not run on the main thread. Await it before using it;
     * it completes exceptionally if the server cannot start.
     */
    lateinit var server: Deferred<EmbeddedServer>
        private set

    override suspend fun embeddedServer(): EmbeddedServer = server.await()

    override fun onCreate() {
        super.onCreate()
        server = scope.async(Dispatchers.IO) {
            EmbeddedServer.start(AndroidConfig.builder(this@SampleApp).origin(BuildConfig.BACKEND).build())
        }
        // Downloads a previous process left pending resume under WorkManager, even if the user
        // never opens the app again (MainActivity schedules after queueing one, too).
        scope.launch {
            val pending = try {
                PendingWork.of(server.await().downloadMap().value.values)
            } catch (e: CancellationException) {
                throw e
            } catch (e: Exception) {
                return@launch // MainActivity shows the error
            }
            if (pending != PendingWork.NONE) DownloadScheduler.schedule(this@SampleApp)
        }
        scope.launch {
            val server = try {
                server.await()
            } catch (e: Exception) {
                return@launch // MainActivity shows the error
            }
            // Feeds setNetwork from the default network for the life of the process (as long as
            // the server's); the config already started the gate from the network at launch.
            NetworkWatcher.start(this@SampleApp, server)
            // The foreground service (and its Wi-Fi lock) runs only while some download moves
            // bytes: started here when one starts running, it stops itself when none is.
            server.downloads()
                .map { list -> list.any { it.state == DownloadState.RUNNING } }
                .distinctUntilChanged()
                .collect { running -> if (running) TransferService.start(this@SampleApp) }
        }
    }
}
