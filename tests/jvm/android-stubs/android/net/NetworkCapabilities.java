// A compile-time stub, written from the published API reference
// (developer.android.com/reference/android/net/NetworkCapabilities): only the members src/android
// uses, with the same signatures and constant values. Never shipped, never run.
package android.net;

public final class NetworkCapabilities {
    NetworkCapabilities() {}

    public static final int NET_CAPABILITY_NOT_METERED = 11;
    public static final int NET_CAPABILITY_INTERNET = 12;
    public static final int NET_CAPABILITY_VALIDATED = 16;

    public boolean hasCapability(int capability) { throw new UnsupportedOperationException("stub"); }
}
