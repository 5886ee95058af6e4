// A compile-time stub of android.content.ContextWrapper, written from the published API reference
// (developer.android.com/reference/android/content/ContextWrapper): Context's abstract members
// implemented, for Service and Application, with the same signatures. Never shipped, never run (see
// android/content/Context.java).
package android.content;

import java.io.File;

public class ContextWrapper extends Context {
    public ContextWrapper(Context base) {
        throw new UnsupportedOperationException("stub");
    }

    @Override
    public File getCacheDir() {
        throw new UnsupportedOperationException("stub");
    }

    @Override
    public File getFilesDir() {
        throw new UnsupportedOperationException("stub");
    }

    // Without @Override: Context's stub declares it only where the library calls it (defect 5's
    // noBackupFilesDir); a concrete ContextWrapper must implement it then.
    public File getNoBackupFilesDir() {
        throw new UnsupportedOperationException("stub");
    }

    @Override
    public SharedPreferences getSharedPreferences(String name, int mode) {
        throw new UnsupportedOperationException("stub");
    }
}
