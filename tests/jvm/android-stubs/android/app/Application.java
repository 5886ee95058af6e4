// A compile-time stub of android.app.Application, written from the published API reference
// (developer.android.com/reference/android/app/Application): as the type Service.getApplication
// returns, with the same signatures. Never shipped, never run (see android/content/Context.java).
package android.app;

import android.content.ContextWrapper;

public class Application extends ContextWrapper {
    public Application() {
        super(null);
    }
}
