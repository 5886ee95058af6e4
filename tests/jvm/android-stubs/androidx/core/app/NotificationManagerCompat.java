// Compile-time stub (developer.android.com/reference/androidx/core/app/NotificationManagerCompat):
// only the members the library calls. Never shipped, never run.
package androidx.core.app;

import android.content.Context;

public final class NotificationManagerCompat {
    /** Shows everywhere, not intrusive: no sound. */
    public static final int IMPORTANCE_LOW = 2;

    private NotificationManagerCompat() {}

    public static NotificationManagerCompat from(Context context) { throw new UnsupportedOperationException("stub"); }

    /** Creates the channel if it does not exist; does nothing before API 26. */
    public void createNotificationChannel(NotificationChannelCompat channel) { throw new UnsupportedOperationException("stub"); }
}
