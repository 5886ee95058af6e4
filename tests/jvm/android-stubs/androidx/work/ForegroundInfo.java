// Compile-time stub (developer.android.com/reference/androidx/work/ForegroundInfo): the
// constructor with a foreground service type. Never shipped, never run.
package androidx.work;

import android.app.Notification;

public final class ForegroundInfo {
    public ForegroundInfo(int notificationId, Notification notification, int foregroundServiceType) {
        throw new UnsupportedOperationException("stub");
    }
}
