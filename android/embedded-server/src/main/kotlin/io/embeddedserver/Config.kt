package io.embeddedserver

/**
 * How to start an [EmbeddedServer]. Only [cacheDir] is required; a null field keeps the library's
 * default (fit for a phone: 2 GiB cache, 10 s connect / 20 s read timeouts, 2 download workers,
 * no downloads on metered networks). Build with named arguments, `copy`, or [Builder]; on Android
 * start from `AndroidConfig.builder(context)`, which sets both directories.
 */
data class Config(
    /**
     * Directory of the evictable cached bytes (and of everything when [downloadsDir] is null);
     * created if missing. Anything in it may be deleted while the server is stopped (Android's
     * "Clear cache", low storage): those bytes are simply fetched again.
     */
    val cacheDir: String,
    /**
     * Directory of the downloaded (pinned) bytes and of the index with the download queue;
     * created if missing. Keep it somewhere only the app empties and Auto Backup skips (Android:
     * under `noBackupFilesDir`).
     * Null keeps everything in [cacheDir].
     */
    val downloadsDir: String? = null,
    /** Port on 127.0.0.1; null or 0 picks a free one. */
    val port: Int? = null,
    /** The secret URL prefix; null generates 128 random bits. Redacted in [toString]. */
    val token: String? = null,
    /** Backends that may be fetched from, as `scheme://host[:port]`. */
    val origins: List<String> = emptyList(),
    val maxCacheBytes: Long? = null,
    /**
     * Sent with every upstream request (never logged; [toString] shows the names only). Change
     * later with [EmbeddedServer.setHeader].
     */
    val upstreamHeaders: Map<String, String> = emptyMap(),
    /** An extra PEM file of CA certificates trusted for upstream TLS, besides the phone's own CA store. */
    val caCertPem: String? = null,
    val connectTimeoutMs: Long? = null,
    val readTimeoutMs: Long? = null,
    val upstreamAttempts: Int? = null,
    /** Time a [CredentialResolver] has to answer (default 10 s); then the refused request fails. */
    val resolverTimeoutMs: Long? = null,
    val maxConnections: Int? = null,
    val downloadWorkers: Int? = null,
    val allowMeteredDownloads: Boolean? = null,
    val prefetchBytes: Long? = null,
    /**
     * The connectivity downloads start from, until [EmbeddedServer.setNetwork] reports a change;
     * null assumes online and unmetered (a desktop). `AndroidConfig.builder(context)` sets the
     * device's current state, so queued downloads do not start on mobile data at process start.
     */
    val initialNetwork: NetworkState? = null,
    /**
     * Idle cached resources kept in memory beyond those in use (default 256, about a kilobyte
     * each); the rest of the cache stays in its index and is loaded on first use. 0 keeps only
     * what is in use.
     */
    val residentResources: Int? = null,
    /**
     * Streaming quality on mobile data: while [EmbeddedServer.setNetwork] last said metered, an HLS
     * master the player reads through the server offers only the variants of at most this many
     * bits per second (their `BANDWIDTH`; the lowest always stays). Null: no cap. A change of
     * network applies to the next load of the master; downloads keep their own [HlsVariant].
     */
    val meteredMaxBandwidth: Long? = null,
    /** The same cap while the network is not metered (Wi-Fi); null: no cap. */
    val unmeteredMaxBandwidth: Long? = null,
    /**
     * Who gets the backend link when the player and downloads want it at once: [LinkPolicy.YIELD]
     * (the default: downloads and prefetch hold back while the player lacks bytes) or
     * [LinkPolicy.SHARE].
     */
    val linkPolicy: LinkPolicy? = null,
    /**
     * Bytes present ahead of the player's position before it counts as satisfied and downloads
     * take the link again (default 1 MiB, about 26 s of a 320 kbit/s track).
     */
    val playbackAheadBytes: Long? = null,
) {
    init {
        require(playbackAheadBytes == null || playbackAheadBytes in 1..(1L shl 30)) {
            "playbackAheadBytes must be between 1 and ${1L shl 30}, not $playbackAheadBytes"
        }
        require(meteredMaxBandwidth == null || meteredMaxBandwidth >= 0) {
            "meteredMaxBandwidth must be at least 0 bits per second, not $meteredMaxBandwidth"
        }
        require(unmeteredMaxBandwidth == null || unmeteredMaxBandwidth >= 0) {
            "unmeteredMaxBandwidth must be at least 0 bits per second, not $unmeteredMaxBandwidth"
        }
    }

    class Builder(private var config: Config) {
        constructor(cacheDir: String) : this(Config(cacheDir))

        fun downloadsDir(dir: String?) = apply { config = config.copy(downloadsDir = dir) }
        fun port(port: Int) = apply { config = config.copy(port = port) }
        fun token(token: String) = apply { config = config.copy(token = token) }
        fun origin(origin: String) = apply { config = config.copy(origins = config.origins + origin) }
        fun maxCacheBytes(bytes: Long) = apply { config = config.copy(maxCacheBytes = bytes) }
        fun header(name: String, value: String) = apply { config = config.copy(upstreamHeaders = config.upstreamHeaders + (name to value)) }
        fun caCertPem(path: String) = apply { config = config.copy(caCertPem = path) }
        fun connectTimeoutMs(ms: Long) = apply { config = config.copy(connectTimeoutMs = ms) }
        fun readTimeoutMs(ms: Long) = apply { config = config.copy(readTimeoutMs = ms) }
        fun upstreamAttempts(n: Int) = apply { config = config.copy(upstreamAttempts = n) }
        fun resolverTimeoutMs(ms: Long) = apply { config = config.copy(resolverTimeoutMs = ms) }
        fun maxConnections(n: Int) = apply { config = config.copy(maxConnections = n) }
        fun downloadWorkers(n: Int) = apply { config = config.copy(downloadWorkers = n) }
        fun allowMeteredDownloads(allow: Boolean) = apply { config = config.copy(allowMeteredDownloads = allow) }
        fun prefetchBytes(bytes: Long) = apply { config = config.copy(prefetchBytes = bytes) }
        fun initialNetwork(state: NetworkState?) = apply { config = config.copy(initialNetwork = state) }
        fun residentResources(n: Int) = apply { config = config.copy(residentResources = n) }
        fun meteredMaxBandwidth(bitsPerSecond: Long?) = apply { config = config.copy(meteredMaxBandwidth = bitsPerSecond) }
        fun unmeteredMaxBandwidth(bitsPerSecond: Long?) = apply { config = config.copy(unmeteredMaxBandwidth = bitsPerSecond) }
        fun linkPolicy(policy: LinkPolicy) = apply { config = config.copy(linkPolicy = policy) }
        fun playbackAheadBytes(bytes: Long) = apply { config = config.copy(playbackAheadBytes = bytes) }
        fun build() = config
    }

    /** The JSON the native side decodes (absent fields keep its defaults). */
    internal fun toJson(): String {
        val fields = ArrayList<String>()
        fun put(name: String, value: Any?) {
            when (value) {
                null -> {}
                is String -> fields.add("${Json.quote(name)}:${Json.quote(value)}")
                is NetworkState -> fields.add("${Json.quote(name)}:${value.toJson()}")
                else -> fields.add("${Json.quote(name)}:$value")
            }
        }
        put("cacheDir", cacheDir)
        put("downloadsDir", downloadsDir)
        put("port", port)
        put("token", token)
        fields.add("\"origins\":" + origins.joinToString(",", "[", "]") { Json.quote(it) })
        put("maxCacheBytes", maxCacheBytes)
        fields.add(
            "\"upstreamHeaders\":" +
                upstreamHeaders.entries.joinToString(",", "[", "]") { "[${Json.quote(it.key)},${Json.quote(it.value)}]" },
        )
        put("caCertPem", caCertPem)
        put("connectTimeoutMs", connectTimeoutMs)
        put("readTimeoutMs", readTimeoutMs)
        put("upstreamAttempts", upstreamAttempts)
        put("resolverTimeoutMs", resolverTimeoutMs)
        put("maxConnections", maxConnections)
        put("downloadWorkers", downloadWorkers)
        put("allowMeteredDownloads", allowMeteredDownloads)
        put("prefetchBytes", prefetchBytes)
        put("initialNetwork", initialNetwork)
        put("residentResources", residentResources)
        put("meteredMaxBandwidth", meteredMaxBandwidth)
        put("unmeteredMaxBandwidth", unmeteredMaxBandwidth)
        put("linkPolicy", linkPolicy?.wire)
        put("playbackAheadBytes", playbackAheadBytes)
        return fields.joinToString(",", "{", "}")
    }

    /** Every field, but the token and the header values redacted: safe to log. */
    override fun toString(): String =
        "Config(cacheDir=$cacheDir, downloadsDir=$downloadsDir, port=$port, " +
            "token=${token?.let { Redaction.MARK }}, origins=$origins, maxCacheBytes=$maxCacheBytes, " +
            "upstreamHeaders=${Redaction.headers(upstreamHeaders)}, caCertPem=$caCertPem, " +
            "connectTimeoutMs=$connectTimeoutMs, readTimeoutMs=$readTimeoutMs, upstreamAttempts=$upstreamAttempts, " +
            "maxConnections=$maxConnections, downloadWorkers=$downloadWorkers, " +
            "allowMeteredDownloads=$allowMeteredDownloads, prefetchBytes=$prefetchBytes, initialNetwork=$initialNetwork, " +
            "residentResources=$residentResources, meteredMaxBandwidth=$meteredMaxBandwidth, " +
            "unmeteredMaxBandwidth=$unmeteredMaxBandwidth, linkPolicy=$linkPolicy, " +
            "playbackAheadBytes=$playbackAheadBytes)"
}

/** Who gets the backend link when the player and downloads want it at once. */
enum class LinkPolicy(internal val wire: String) {
    /** Downloads and prefetch hold back while the player lacks bytes, and go on by themselves. */
    YIELD("yield"),

    /** Nothing holds back: every transfer takes what TCP gives it. */
    SHARE("share"),
}
