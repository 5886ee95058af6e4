package io.embeddedserver.sample

import android.os.Bundle
import android.view.ViewGroup.LayoutParams.MATCH_PARENT
import android.view.ViewGroup.LayoutParams.WRAP_CONTENT
import android.widget.Button
import android.widget.LinearLayout
import android.widget.ProgressBar
import android.widget.ScrollView
import android.widget.TextView
import androidx.activity.ComponentActivity
import androidx.lifecycle.lifecycleScope
import androidx.media3.common.MediaItem
import androidx.media3.datasource.okhttp.OkHttpDataSource
import androidx.media3.exoplayer.ExoPlayer
import androidx.media3.exoplayer.source.DefaultMediaSourceFactory
import androidx.media3.ui.PlayerView
import io.embeddedserver.Download
import io.embeddedserver.DownloadState
import io.embeddedserver.EmbeddedServerException
import java.net.Proxy
import java.net.URL
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.launch
import kotlinx.coroutines.withContext
import okhttp3.OkHttpClient
import org.json.JSONArray

/** The catalog with a play button, a download button with progress and an offline badge per track. */
class MainActivity : ComponentActivity() {
    private data class Entry(val id: String, val title: String, val file: String, val size: Long, val sha256: String, val mime: String)

    private class Row(val title: TextView, val badge: TextView, val download: Button, val progress: ProgressBar)

    private val server get() = (application as SampleApp).server
    private lateinit var player: ExoPlayer
    private val rows = HashMap<String, Row>()

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        // The player must never route 127.0.0.1 through a system or carrier proxy.
        val http = OkHttpClient.Builder().proxy(Proxy.NO_PROXY).build()
        player = ExoPlayer.Builder(this)
            .setMediaSourceFactory(DefaultMediaSourceFactory(OkHttpDataSource.Factory(http)))
            .build()

        val list = LinearLayout(this).apply { orientation = LinearLayout.VERTICAL }
        val playerView = PlayerView(this).apply { player = this@MainActivity.player }
        list.addView(playerView, LinearLayout.LayoutParams(MATCH_PARENT, 400))
        setContentView(ScrollView(this).apply { addView(list) })

        lifecycleScope.launch {
            val catalog = try {
                withContext(Dispatchers.IO) { loadCatalog() }
            } catch (e: Exception) {
                list.addView(TextView(this@MainActivity).apply { text = "catalog unavailable: ${e.message}" })
                return@launch
            }
            for (entry in catalog) list.addView(row(entry))
            server.downloads().collect { downloads -> downloads.forEach(::show) }
        }
    }

    /** Fetches the demo catalog and registers every track (registering again re-signs URLs). */
    private fun loadCatalog(): List<Entry> {
        val json = JSONArray(URL("${BuildConfig.BACKEND}/catalog.json").readText())
        return (0 until json.length()).map { i ->
            val o = json.getJSONObject(i)
            Entry(o.getString("id"), o.getString("title"), o.getString("file"), o.getLong("size"), o.getString("sha256"), o.getString("mime"))
        }.onEach { e ->
            server.registerTrack(e.id, "${BuildConfig.BACKEND}/${e.file}", sha256 = e.sha256, size = e.size, mime = e.mime)
        }
    }

    private fun row(entry: Entry): LinearLayout {
        val title = Button(this).apply {
            text = entry.title
            setOnClickListener {
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
                    } catch (e: EmbeddedServerException) {
                        withContext(Dispatchers.Main) { badge.text = e.message }
                    }
                }
            }
        }
        rows[entry.id] = Row(title, badge, download, progress)
        badge.text = if (runCatching { server.track(entry.id).complete }.getOrDefault(false)) "offline" else ""
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
