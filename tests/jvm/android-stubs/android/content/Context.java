// A compile-time stub of the Android Context, written from the published API reference
// (developer.android.com/reference/android/content/Context): only the members the library's
// src/android sources and the sample's stub-checked classes call, with the same signatures.
// Never shipped, never run: tests/jvm/run.sh type-checks those sources against it, because no
// android.jar can be had on our machines.
package android.content;

import java.io.File;

public abstract class Context {
    /** File creation mode: the default, the file is private to the app. */
    public static final int MODE_PRIVATE = 0;

    /** The app's private cache directory (may be emptied by the system or "Clear cache"). */
    public abstract File getCacheDir();

    /** The app's private files directory. */
    public abstract File getFilesDir();

    /** The preferences file [name], created when first written. */
    public abstract SharedPreferences getSharedPreferences(String name, int mode);
}
