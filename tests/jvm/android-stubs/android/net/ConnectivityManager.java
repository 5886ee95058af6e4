// A compile-time stub, written from the published API reference
// (developer.android.com/reference/android/net/ConnectivityManager and
// ConnectivityManager.NetworkCallback): only the members src/android calls or overrides, with the
// same signatures. Never shipped, never run (see android/content/Context.java).
package android.net;

public class ConnectivityManager {
    ConnectivityManager() {}

    /** The default data network, or null (API 23). */
    public Network getActiveNetwork() { throw new UnsupportedOperationException("stub"); }

    /** The capabilities of network, or null if it is unknown (API 21). */
    public NetworkCapabilities getNetworkCapabilities(Network network) { throw new UnsupportedOperationException("stub"); }

    /** Calls networkCallback on the system's default network changes (API 24). */
    public void registerDefaultNetworkCallback(NetworkCallback networkCallback) { throw new UnsupportedOperationException("stub"); }

    /** Unregisters a callback (API 21). */
    public void unregisterNetworkCallback(NetworkCallback networkCallback) { throw new UnsupportedOperationException("stub"); }

    public static class NetworkCallback {
        public NetworkCallback() {}

        public void onAvailable(Network network) {}

        public void onCapabilitiesChanged(Network network, NetworkCapabilities networkCapabilities) {}

        public void onLost(Network network) {}
    }
}
