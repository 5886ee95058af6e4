package io.embeddedserver

import android.net.Uri
import androidx.annotation.OptIn
import androidx.media3.common.util.UnstableApi
import androidx.media3.datasource.DataSource
import androidx.media3.datasource.DataSpec
import androidx.media3.datasource.ResolvingDataSource

/**
 * Media3 data sources that play stable `embedded://` URIs ([EmbeddedUri]). Media3 is a
 * `compileOnly` dependency of this library: an app that uses these classes already depends on
 * Media3 (media3-exoplayer brings media3-datasource and media3-common).
 */
object EmbeddedDataSource {
    /**
     * A `DataSource.Factory` (a Media3 `ResolvingDataSource`) that, each time the player opens a
     * `DataSpec`, maps an `embedded://` URI to the running server's current URL through
     * [resolver] (by default [RunningServer]'s server, so URIs saved before a restart follow the
     * new port and token), then opens it with [upstream]; other URIs go to [upstream] unchanged.
     *
     * [upstream] fetches `http://127.0.0.1` and must not go through a proxy, e.g.
     * `OkHttpDataSource.Factory(OkHttpClient.Builder().proxy(Proxy.NO_PROXY).build())`, inside a
     * `DefaultDataSource.Factory(context, it)` to play local files too. A URI that cannot be
     * resolved (malformed, no server running, origin not allowed) fails the load with an
     * `IOException` saying why.
     */
    @OptIn(UnstableApi::class)
    class Factory @JvmOverloads constructor(
        upstream: DataSource.Factory,
        resolver: EmbeddedUriResolver = EmbeddedUriResolver(),
    ) : DataSource.Factory by ResolvingDataSource.Factory(upstream, Resolver(resolver))

    @OptIn(UnstableApi::class)
    private class Resolver(private val uris: EmbeddedUriResolver) : ResolvingDataSource.Resolver {
        override fun resolveDataSpec(dataSpec: DataSpec): DataSpec {
            val uri = dataSpec.uri.toString()
            val local = uris.resolve(uri)
            return if (local == uri) dataSpec else dataSpec.withUri(Uri.parse(local))
        }
    }
}
