// A compile-time stub of an Android class the library's src/android sources use, written from
// the published API reference (developer.android.com/reference/android/content/Context): only
// the members they call, with the same signatures. Never shipped, never run: tests/jvm/run.sh
// type-checks src/android against it, because no android.jar can be had on our machines.
package android.content;

import java.io.File;

public abstract class Context {
    // --- Used by the sample's QueueStore, which tests/jvm/run.sh type-checks too. ---

    /** File creation mode: the default, the file is private to the app. */
    public static final int MODE_PRIVATE = 0;

    /** The preferences file [name], created when first written. */
    public abstract SharedPreferences getSharedPreferences(String name, int mode);

    // --- Used by the library's src/android. ---

    /** The app's private cache directory (may be emptied by the system or "Clear cache"). */
    public abstract File getCacheDir();

    /** The app's private files directory. */
    public abstract File getFilesDir();

    /** Like getFilesDir, but excluded from Auto Backup (API 21). */
    public abstract File getNoBackupFilesDir();

    /** A system service by class, e.g. ConnectivityManager.class (API 23). */
    public final <T> T getSystemService(Class<T> serviceClass) { throw new UnsupportedOperationException("stub"); }

    // --- Used by DownloadNotifications (the download worker's notification). ---

    /** A localized string from the app's resources (the library's strings are merged into them). */
    public final String getString(int resId) { throw new UnsupportedOperationException("stub"); }
}
