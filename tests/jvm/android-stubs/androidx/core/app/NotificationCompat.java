// Compile-time stub (developer.android.com/reference/androidx/core/app/NotificationCompat and
// NotificationCompat.Builder, androidx.core 1.15): only the members the library calls, with
// their signatures. Never shipped, never run.
package androidx.core.app;

import android.app.Notification;
import android.content.Context;

public class NotificationCompat {
    /** Notification category: progress of a long-running background operation. */
    public static final String CATEGORY_PROGRESS = "progress";

    public static class Builder {
        public Builder(Context context, String channelId) { throw new UnsupportedOperationException("stub"); }

        public Builder setSmallIcon(int icon) { throw new UnsupportedOperationException("stub"); }

        public Builder setContentTitle(CharSequence title) { throw new UnsupportedOperationException("stub"); }

        public Builder setContentText(CharSequence text) { throw new UnsupportedOperationException("stub"); }

        public Builder setProgress(int max, int progress, boolean indeterminate) { throw new UnsupportedOperationException("stub"); }

        public Builder setOngoing(boolean ongoing) { throw new UnsupportedOperationException("stub"); }

        public Builder setOnlyAlertOnce(boolean onlyAlertOnce) { throw new UnsupportedOperationException("stub"); }

        public Builder setShowWhen(boolean show) { throw new UnsupportedOperationException("stub"); }

        public Builder setCategory(String category) { throw new UnsupportedOperationException("stub"); }

        public Notification build() { throw new UnsupportedOperationException("stub"); }
    }
}
