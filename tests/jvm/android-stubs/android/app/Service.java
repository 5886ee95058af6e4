// A compile-time stub of android.app.Service, written from the published API reference
// (developer.android.com/reference/android/app/Service): the lifecycle methods the sample's service
// overrides and getApplication, with the same signatures. The abstract onBind is left out, as is
// MediaSessionService's implementation of it. Never shipped, never run (see
// android/content/Context.java).
package android.app;

import android.content.ContextWrapper;

public abstract class Service extends ContextWrapper {
    public Service() {
        super(null);
    }

    public void onCreate() {}

    public void onDestroy() {}

    public final Application getApplication() {
        throw new UnsupportedOperationException("stub");
    }
}
