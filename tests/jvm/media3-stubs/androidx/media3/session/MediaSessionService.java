// A compile-time stub (see androidx/media3/common/util/UnstableApi.java): MediaSessionService's
// abstract onGetSession and the lifecycle it extends (media3-session; onBind and the rest are left
// out), as in Media3 1.5.1.
package androidx.media3.session;

import android.app.Service;

public abstract class MediaSessionService extends Service {
    /** The action of the intent filter that makes the service discoverable by controllers. */
    public static final String SERVICE_INTERFACE = "androidx.media3.session.MediaSessionService";

    public MediaSessionService() {
        throw new UnsupportedOperationException("stub");
    }

    @Override
    public void onCreate() {
        throw new UnsupportedOperationException("stub");
    }

    @Override
    public void onDestroy() {
        throw new UnsupportedOperationException("stub");
    }

    public abstract MediaSession onGetSession(MediaSession.ControllerInfo controllerInfo);
}
