// Compile-time stub (developer.android.com/reference/android/util/Log): the one method the
// download worker calls. Never shipped, never run.
package android.util;

public final class Log {
    private Log() {}

    public static int w(String tag, String msg, Throwable tr) { throw new UnsupportedOperationException("stub"); }
}
