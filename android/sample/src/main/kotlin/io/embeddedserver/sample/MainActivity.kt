package io.embeddedserver.sample

import android.Manifest
import android.content.ComponentName
import android.content.pm.PackageManager
import android.os.Build
import android.os.Bundle
import android.view.ViewGroup.LayoutParams.MATCH_PARENT
import android.view.ViewGroup.LayoutParams.WRAP_CONTENT
import android.widget.Button
import android.widget.LinearLayout
import android.widget.ProgressBar
import android.widget.ScrollView
import android.widget.TextView
import androidx.activity.ComponentActivity
import androidx.activity.result.contract.ActivityResultContracts
import androidx.core.content.ContextCompat
import androidx.core.view.ViewCompat
import androidx.core.view.WindowInsetsCompat
import androidx.lifecycle.lifecycleScope
import androidx.media3.session.MediaController
import androidx.media3.session.SessionToken
import androidx.media3.ui.PlayerView
import com.google.common.util.concurrent.ListenableFuture
import io.embeddedserver.Download
import io.embeddedserver.DownloadScheduler
import io.embeddedserver.DownloadState
import io.embeddedserver.EmbeddedMediaItems
import io.embeddedserver.EmbeddedServer
import io.embeddedserver.EmbeddedServerException
import java.net.URL
import kotlinx.coroutines.CancellationException
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.guava.await
import kotlinx.coroutines.launch
import kotlinx.coroutines.withContext
import org.json.JSONArray

/**
 * The catalog with a play button, a download button with progress and an offline badge per track,
 * and the server's dashboard URL for `adb forward`. Playback runs in [PlaybackService]: this
 * activity is one of its controllers (a MediaController, connected while the activity is started)
 * and plays `embedded://` items, which stay valid across server restarts.
 * Nothing here blocks the main thread: the server is awaited (it starts on Dispatchers.IO in
 * [SampleApp]), the catalog is fetched and registered on Dispatchers.IO, and only then are the
 * rows (and their player items) created on the main thread.
 */
class MainActivity : ComponentActivity() {
    private data class Entry(
        val id: String,
        val title: String,
        val file: String,
        val size: Long,
        val sha256: String,
        val mime: String,
        /** Fully cached when the catalog was loaded. */
        val offline: Boolean = false,
    )

    private class Row(val title: TextView, val badge: TextView, val download: Button, val progress: ProgressBar)

    /** Set once the server has started; the rows that use it exist only from then on. */
    private lateinit var server: EmbeddedServer
    private lateinit var playerView: PlayerView
    private var controllerFuture: ListenableFuture<MediaController>? = null

    /** Connected between onStart and onStop; null while connecting. */
    private var controller: MediaController? = null
    private val rows = HashMap<String, Row>()

    /** Android 13+: without the permission the download notification is not shown (the service still runs). */
    private val notificationPermission = registerForActivityResult(ActivityResultContracts.RequestPermission()) {}

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)

        val list = LinearLayout(this).apply { orientation = LinearLayout.VERTICAL }
        playerView = PlayerView(this)
        list.addView(playerView, LinearLayout.LayoutParams(MATCH_PARENT, 400))
        val dashboard = TextView(this).apply { setTextIsSelectable(true) }
        list.addView(dashboard)
        val root = ScrollView(this).apply { addView(list) }
        // targetSdk 35: Android 15 draws the app edge to edge; keep the content off the system bars.
        ViewCompat.setOnApplyWindowInsetsListener(root) { view, insets ->
            val bars = insets.getInsets(WindowInsetsCompat.Type.systemBars())
            view.setPadding(bars.left, bars.top, bars.right, bars.bottom)
            WindowInsetsCompat.CONSUMED
        }
        setContentView(root)
        if (Build.VERSION.SDK_INT >= 33 &&
            ContextCompat.checkSelfPermission(this, Manifest.permission.POST_NOTIFICATIONS) != PackageManager.PERMISSION_GRANTED
        ) {
            notificationPermission.launch(Manifest.permission.POST_NOTIFICATIONS)
        }

        lifecycleScope.launch {
            server = try {
                (application as SampleApp).server.await()
            } catch (e: CancellationException) {
                throw e // the activity is gone
            } catch (e: Exception) {
                list.addView(TextView(this@MainActivity).apply { text = "server did not start: ${e.message}" })
                return@launch
            }
            dashboard.text = dashboardText(server.baseUrl)
            val catalog = try {
                withContext(Dispatchers.IO) { loadCatalog(server) }
            } catch (e: CancellationException) {
                throw e
            } catch (e: Exception) {
                list.addView(TextView(this@MainActivity).apply { text = "catalog unavailable: ${e.message}" })
                return@launch
            }
            for (entry in catalog) list.addView(row(entry))
            server.downloads().collect { downloads -> downloads.forEach(::show) }
        }
    }

    override fun onStart() {
        super.onStart()
        val token = SessionToken(this, ComponentName(this, PlaybackService::class.java))
        val future = MediaController.Builder(this, token).buildAsync()
        controllerFuture = future
        lifecycleScope.launch {
            val connected = try {
                future.await()
            } catch (e: CancellationException) {
                throw e // released in onStop before it connected
            } catch (e: Exception) {
                return@launch // the service refused or died; the play buttons do nothing
            }
            if (controllerFuture !== future) return@launch // onStop released it meanwhile
            controller = connected
            playerView.player = connected
        }
    }

    override fun onStop() {
        playerView.player = null
        controller = null
        controllerFuture?.let(MediaController::releaseFuture)
        controllerFuture = null
        super.onStop()
    }

    /** The base URL (the dashboard) and the `adb forward` line that reaches it from a laptop. */
    private fun dashboardText(baseUrl: String): String {
        val port = URL(baseUrl).port
        return "Dashboard: $baseUrl\nFrom a laptop: adb forward tcp:$port tcp:$port, then open it."
    }

    /**
     * Fetches the demo catalog and registers every track (registering again re-signs URLs), on a
     * background thread: network, then the index.
     */
    private fun loadCatalog(server: EmbeddedServer): List<Entry> {
        val json = JSONArray(URL("${BuildConfig.BACKEND}/catalog.json").readText())
        return (0 until json.length()).map { i ->
            val o = json.getJSONObject(i)
            val e = Entry(o.getString("id"), o.getString("title"), o.getString("file"), o.getLong("size"), o.getString("sha256"), o.getString("mime"))
            val track = server.registerTrack(e.id, "${BuildConfig.BACKEND}/${e.file}", sha256 = e.sha256, size = e.size, mime = e.mime)
            e.copy(offline = track.complete)
        }
    }

    private fun row(entry: Entry): LinearLayout {
        val title = Button(this).apply {
            text = entry.title
            setOnClickListener {
                // embedded://track/ID with the catalog's MIME type: only formats strings, no lookup.
                controller?.run {
                    setMediaItem(EmbeddedMediaItems.mediaItem(entry.id, mimeType = entry.mime))
                    prepare()
                    play()
                }
            }
        }
        val badge = TextView(this)
        val progress = ProgressBar(this, null, android.R.attr.progressBarStyleHorizontal).apply { max = 1000 }
        val download = Button(this).apply {
            text = "Download"
            setOnClickListener {
                lifecycleScope.launch(Dispatchers.IO) {
                    try {
                        server.download(entry.id)
                        // Survives process death: WorkManager resumes the queue when the
                        // requirements (by default an unmetered network) hold.
                        DownloadScheduler.schedule(this@MainActivity)
                    } catch (e: EmbeddedServerException) {
                        withContext(Dispatchers.Main) { badge.text = e.message }
                    }
                }
            }
        }
        rows[entry.id] = Row(title, badge, download, progress)
        badge.text = if (entry.offline) "offline" else ""
        return LinearLayout(this).apply {
            orientation = LinearLayout.VERTICAL
            addView(title, LinearLayout.LayoutParams(MATCH_PARENT, WRAP_CONTENT))
            addView(LinearLayout(context).apply {
                addView(download)
                addView(badge)
            })
            addView(progress, LinearLayout.LayoutParams(MATCH_PARENT, WRAP_CONTENT))
        }
    }

    private fun show(d: Download) {
        val row = rows[d.track ?: return] ?: return
        row.progress.progress = ((d.progress ?: 0.0) * 1000).toInt()
        row.download.isEnabled = d.state != DownloadState.RUNNING && d.state != DownloadState.COMPLETED
        row.badge.text = when (d.state) {
            DownloadState.COMPLETED -> "offline"
            DownloadState.FAILED -> "failed: ${d.error}"
            DownloadState.WAITING_FOR_NETWORK -> "waiting for network"
            else -> d.state.name.lowercase()
        }
    }
}
