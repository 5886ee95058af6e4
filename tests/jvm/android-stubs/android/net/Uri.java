// A compile-time stub of android.net.Uri, written from the published API reference
// (developer.android.com/reference/android/net/Uri): only the members src/android calls, with
// the same signatures. Never shipped, never run (see Context.java).
package android.net;

public abstract class Uri {
    /** Creates a Uri which parses the given encoded URI string. */
    public static Uri parse(String uriString) {
        throw new UnsupportedOperationException("stub");
    }
}
