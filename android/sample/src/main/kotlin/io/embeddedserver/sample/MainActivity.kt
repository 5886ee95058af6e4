package io.embeddedserver.sample

import android.Manifest
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
import androidx.annotation.OptIn
import androidx.core.content.ContextCompat
import androidx.core.view.ViewCompat
import androidx.core.view.WindowInsetsCompat
import androidx.lifecycle.lifecycleScope
import androidx.media3.common.MediaItem
import androidx.media3.common.util.UnstableApi
import androidx.media3.datasource.okhttp.OkHttpDataSource
import androidx.media3.exoplayer.ExoPlayer
import androidx.media3.exoplayer.source.DefaultMediaSourceFactory
import androidx.media3.ui.PlayerView
import io.embeddedserver.Download
import io.embeddedserver.DownloadScheduler
import io.embeddedserver.DownloadState
import io.embeddedserver.EmbeddedServer
import io.embeddedserver.EmbeddedServerException
import java.net.Proxy
import java.net.URL
import kotlinx.coroutines.CancellationException
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.launch
import kotlinx.coroutines.withContext
import okhttp3.OkHttpClient
import org.json.JSONArray

/**
 * The catalog with a play button, a download button with progress and an offline badge per track.
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
    private lateinit var player: ExoPlayer
    private val rows = HashMap<String, Row>()

    /** Android 13+: without the permission the download notification is not shown (the service still runs). */
    private val notificationPermission = registerForActivityResult(ActivityResultContracts.RequestPermission()) {}

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        player = buildPlayer()

        val list = LinearLayout(this).apply { orientation = LinearLayout.VERTICAL }
        val playerView = PlayerView(this).also { it.player = player }
        list.addView(playerView, LinearLayout.LayoutParams(MATCH_PARENT, 400))
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

    /** OkHttpDataSource is @UnstableApi in Media3 (an error of Android lint without the opt-in). */
    @OptIn(UnstableApi::class)
    private fun buildPlayer(): ExoPlayer {
        // The player must never route 127.0.0.1 through a system or carrier proxy.
        val http = OkHttpClient.Builder().proxy(Proxy.NO_PROXY).build()
        return ExoPlayer.Builder(this)
            .setMediaSourceFactory(DefaultMediaSourceFactory(this).setDataSourceFactory(OkHttpDataSource.Factory(http)))
            .build()
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
                // trackUrl only formats a string: fine on the main thread.
                player.setMediaItem(MediaItem.fromUri(server.trackUrl(entry.id)))
                player.prepare()
                player.play()
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

    override fun onDestroy() {
        player.release()
        super.onDestroy()
    }
}
