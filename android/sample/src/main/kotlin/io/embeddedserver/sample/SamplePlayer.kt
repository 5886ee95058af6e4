package io.embeddedserver.sample

import android.content.Context
import androidx.media3.common.AudioAttributes
import androidx.media3.common.C
import androidx.media3.datasource.DefaultDataSource
import androidx.media3.datasource.okhttp.OkHttpDataSource
import androidx.media3.exoplayer.ExoPlayer
import androidx.media3.exoplayer.source.DefaultMediaSourceFactory
import io.embeddedserver.EmbeddedDataSource
import io.embeddedserver.EmbeddedUriResolver
import java.net.Proxy
import okhttp3.OkHttpClient

/** The sample's ExoPlayer: a music player that plays `embedded://` URIs through the embedded server. */
object SamplePlayer {
    /**
     * A player that takes audio focus for music (and pauses when it is lost or the headphones are
     * unplugged), holds a wake lock and a Wi-Fi lock while it plays ([C.WAKE_MODE_NETWORK]: it
     * streams), and resolves `embedded://` URIs with [resolver] (by default the running server) at
     * every open. Plain `http(s)`, `file` and `content` URIs play too; `http://127.0.0.1` never
     * goes through a proxy. HLS items need their MIME type (`EmbeddedMediaItems` sets it) and
     * media3-exoplayer-hls on the classpath. Build and use it on the main thread.
     */
    @JvmStatic
    fun build(context: Context, resolver: EmbeddedUriResolver = EmbeddedUriResolver()): ExoPlayer {
        val http = OkHttpDataSource.Factory(OkHttpClient.Builder().proxy(Proxy.NO_PROXY).build())
        val dataSources = EmbeddedDataSource.Factory(DefaultDataSource.Factory(context, http), resolver)
        val music = AudioAttributes.Builder()
            .setUsage(C.USAGE_MEDIA)
            .setContentType(C.AUDIO_CONTENT_TYPE_MUSIC)
            .build()
        return ExoPlayer.Builder(context)
            .setMediaSourceFactory(DefaultMediaSourceFactory(context).setDataSourceFactory(dataSources))
            .setAudioAttributes(music, /* handleAudioFocus = */ true)
            .setHandleAudioBecomingNoisy(true)
            .setWakeMode(C.WAKE_MODE_NETWORK)
            .build()
    }
}
