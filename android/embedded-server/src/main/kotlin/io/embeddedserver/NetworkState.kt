package io.embeddedserver

/**
 * The device's connectivity as the download gate sees it: downloads wait while [online] is false,
 * and while [metered] is true unless [Config.allowMeteredDownloads]. Players are never gated.
 */
data class NetworkState(
    /** A network that reaches the internet is up (Android: `NET_CAPABILITY_INTERNET` and `VALIDATED`). */
    val online: Boolean,
    /** That network bills by the byte (Android: no `NET_CAPABILITY_NOT_METERED`): cellular, a hotspot. */
    val metered: Boolean,
) {
    internal fun toJson(): String = "{\"online\":$online,\"metered\":$metered}"
}
