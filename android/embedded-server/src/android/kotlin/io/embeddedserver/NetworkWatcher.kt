package io.embeddedserver

import android.content.Context
import android.net.ConnectivityManager
import android.net.Network
import android.net.NetworkCapabilities

/**
 * Feeds [EmbeddedServer.setNetwork] from the system's default network, so downloads wait while
 * the device is offline and, unless [Config.allowMeteredDownloads], on mobile data. Start it
 * right after the server, with the same lifetime; [close] unregisters it (close it before the
 * server). Needs `android.permission.ACCESS_NETWORK_STATE`, which the library's manifest declares.
 *
 * Online means a network that reaches the internet and that Android has validated (as Media3's
 * `Requirements` sees it); metered means it lacks `NET_CAPABILITY_NOT_METERED`. The callbacks run
 * on ConnectivityManager's thread; `setNetwork` only records the state there.
 */
class NetworkWatcher private constructor(
    private val connectivity: ConnectivityManager,
    private val server: EmbeddedServer,
) : AutoCloseable {
    /** The default network last reported; a loss of another one (after a switch) changes nothing. */
    @Volatile
    private var current: Network? = null
    private var closed = false

    private val callback = object : ConnectivityManager.NetworkCallback() {
        override fun onAvailable(network: Network) {
            current = network
            // Android 7 sends no capabilities with a new default network: ask for them (later
            // versions follow with onCapabilitiesChanged, which also covers an unknown answer).
            capabilitiesOf(connectivity, network)?.let { report(stateOf(it)) }
        }

        override fun onCapabilitiesChanged(network: Network, networkCapabilities: NetworkCapabilities) {
            current = network
            report(stateOf(networkCapabilities))
        }

        override fun onLost(network: Network) {
            if (network != current) return
            current = null
            report(OFFLINE)
        }
    }

    private fun report(state: NetworkState) {
        try {
            server.setNetwork(state.online, state.metered)
        } catch (e: EmbeddedServerException) {
            // The server closed before this watcher: there is nothing left to feed.
        }
    }

    /** Unregisters the callback. Idempotent. */
    @Synchronized
    override fun close() {
        if (closed) return
        closed = true
        connectivity.unregisterNetworkCallback(callback)
    }

    companion object {
        /** Registers a watcher feeding [server]; it reports the current default network at once. */
        @JvmStatic
        fun start(context: Context, server: EmbeddedServer): NetworkWatcher {
            val watcher = NetworkWatcher(connectivity(context), server)
            watcher.connectivity.registerDefaultNetworkCallback(watcher.callback)
            return watcher
        }

        /**
         * The default network's state now: what [Config.initialNetwork] takes. Offline when there
         * is none; online but metered when its capabilities cannot be read, so that downloads wait
         * for the watcher rather than risk mobile data.
         */
        @JvmStatic
        fun currentState(context: Context): NetworkState {
            val connectivity = connectivity(context)
            val network = connectivity.activeNetwork ?: return OFFLINE
            return capabilitiesOf(connectivity, network)?.let(::stateOf) ?: NetworkState(online = true, metered = true)
        }

        private val OFFLINE = NetworkState(online = false, metered = false)

        private fun connectivity(context: Context): ConnectivityManager =
            context.getSystemService(ConnectivityManager::class.java)
                ?: throw EmbeddedServerException("this device has no ConnectivityManager")

        /**
         * Null when unknown: the network is gone, or the call threw SecurityException, as it does
         * on some Android 11 builds (Media3's `Requirements` guards it the same way).
         */
        private fun capabilitiesOf(connectivity: ConnectivityManager, network: Network): NetworkCapabilities? =
            try {
                connectivity.getNetworkCapabilities(network)
            } catch (e: SecurityException) {
                null
            }

        private fun stateOf(capabilities: NetworkCapabilities) = NetworkState(
            online = capabilities.hasCapability(NetworkCapabilities.NET_CAPABILITY_INTERNET) &&
                capabilities.hasCapability(NetworkCapabilities.NET_CAPABILITY_VALIDATED),
            metered = !capabilities.hasCapability(NetworkCapabilities.NET_CAPABILITY_NOT_METERED),
        )
    }
}
