package io.embeddedserver

/** Which rendition of an HLS master playlist an offline download keeps ([EmbeddedServer.downloadUrl]). */
sealed class HlsVariant(internal val wire: String) {
    /** The lowest bandwidth: the least data. */
    object Lowest : HlsVariant("lowest")

    /** The highest bandwidth: the best quality. */
    object Highest : HlsVariant("highest")

    /** The middle one by bandwidth (the default). */
    object Middle : HlsVariant("middle")

    /** The highest bandwidth at or under [bitsPerSecond] (the lowest if none is). */
    class MaxBandwidth(val bitsPerSecond: Long) : HlsVariant("max:$bitsPerSecond") {
        init {
            require(bitsPerSecond > 0) { "bitsPerSecond must be positive" }
        }
    }
}
