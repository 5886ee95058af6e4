// Compile-time stub (developer.android.com/reference/androidx/core/app/NotificationChannelCompat,
// androidx.core 1.5+): only the builder calls the library makes. Never shipped, never run.
package androidx.core.app;

public class NotificationChannelCompat {
    private NotificationChannelCompat() {}

    public static class Builder {
        public Builder(String id, int importance) { throw new UnsupportedOperationException("stub"); }

        public Builder setName(CharSequence name) { throw new UnsupportedOperationException("stub"); }

        public NotificationChannelCompat build() { throw new UnsupportedOperationException("stub"); }
    }
}
