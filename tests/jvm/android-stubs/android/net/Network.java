// A compile-time stub of android.net.Network (developer.android.com/reference/android/net/Network):
// src/android only passes it around and compares it (Object.equals). Never shipped, never run.
package android.net;

public class Network {
    Network() {}
}
