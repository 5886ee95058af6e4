// Compile-time stub of the platform's resource IDs (developer.android.com/reference/android/R.drawable):
// only the icon the download notification uses. Never shipped, never run.
package android;

public final class R {
    public static final class drawable {
        /** The system's animated "downloading" status bar icon. */
        public static final int stat_sys_download = 0x01080081;
    }
}
