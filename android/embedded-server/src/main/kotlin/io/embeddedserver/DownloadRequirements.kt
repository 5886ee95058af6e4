package io.embeddedserver

/**
 * When queued downloads may be resumed in the background ([DownloadScheduler] turns these into
 * WorkManager constraints), modelled on Media3's `Requirements`: the same conditions, and
 * [flags]/[fromFlags] use Media3's bit values, so an app moving from Media3's DownloadService
 * keeps its stored setting.
 *
 * The default differs from Media3's (`NETWORK`): [Network.UNMETERED], because the server itself
 * downloads nothing on a metered network unless [Config.allowMeteredDownloads] is set. Keep the
 * two consistent: with metered downloads allowed, use [Network.ANY]; otherwise work started on
 * mobile data would find every download waiting for the network.
 */
data class DownloadRequirements @JvmOverloads constructor(
    /** The network the downloads need. */
    val network: Network = Network.UNMETERED,
    /** Only while the device is charging. */
    val charging: Boolean = false,
    /** Only while the device's storage is not low (the system's "low storage" state). */
    val storageNotLow: Boolean = false,
    /** Only while the device is idle (not in use; on some devices this can take hours). */
    val idle: Boolean = false,
) {
    /** A network requirement, from the weakest to the strongest. */
    enum class Network {
        /** No network needed. */
        NOT_REQUIRED,

        /** Any connected network. */
        ANY,

        /** An unmetered network (usually Wi-Fi). */
        UNMETERED,
    }

    /** These requirements as Media3 `Requirements` flags (`new Requirements(flags)`). */
    val flags: Int
        get() {
            var f = when (network) {
                Network.NOT_REQUIRED -> 0
                Network.ANY -> NETWORK
                Network.UNMETERED -> NETWORK or NETWORK_UNMETERED
            }
            if (idle) f = f or DEVICE_IDLE
            if (charging) f = f or DEVICE_CHARGING
            if (storageNotLow) f = f or DEVICE_STORAGE_NOT_LOW
            return f
        }

    companion object {
        /** Media3 `Requirements.NETWORK`: any network. */
        const val NETWORK = 1

        /** Media3 `Requirements.NETWORK_UNMETERED`: an unmetered network (implies [NETWORK]). */
        const val NETWORK_UNMETERED = 1 shl 1

        /** Media3 `Requirements.DEVICE_IDLE`. */
        const val DEVICE_IDLE = 1 shl 2

        /** Media3 `Requirements.DEVICE_CHARGING`. */
        const val DEVICE_CHARGING = 1 shl 3

        /** Media3 `Requirements.DEVICE_STORAGE_NOT_LOW`. */
        const val DEVICE_STORAGE_NOT_LOW = 1 shl 4

        private const val ALL = NETWORK or NETWORK_UNMETERED or DEVICE_IDLE or DEVICE_CHARGING or DEVICE_STORAGE_NOT_LOW

        /**
         * Requirements from Media3 `Requirements` flags (`requirements.getRequirements()`). Throws
         * [IllegalArgumentException] on a bit Media3 does not define.
         */
        @JvmStatic
        fun fromFlags(flags: Int): DownloadRequirements {
            require(flags and ALL.inv() == 0) { "unknown requirement flags: ${flags and ALL.inv()}" }
            return DownloadRequirements(
                network = when {
                    flags and NETWORK_UNMETERED != 0 -> Network.UNMETERED
                    flags and NETWORK != 0 -> Network.ANY
                    else -> Network.NOT_REQUIRED
                },
                charging = flags and DEVICE_CHARGING != 0,
                storageNotLow = flags and DEVICE_STORAGE_NOT_LOW != 0,
                idle = flags and DEVICE_IDLE != 0,
            )
        }
    }
}
