// Compile-time stub (developer.android.com/reference/androidx/work/Constraints.Builder): only the
// setters DownloadScheduler calls. Never shipped, never run.
package androidx.work;

public final class Constraints {
    private Constraints() {}

    public static final class Builder {
        public Builder() { throw new UnsupportedOperationException("stub"); }

        public Builder setRequiredNetworkType(NetworkType networkType) { throw new UnsupportedOperationException("stub"); }

        public Builder setRequiresCharging(boolean requiresCharging) { throw new UnsupportedOperationException("stub"); }

        /** API 23+. */
        public Builder setRequiresDeviceIdle(boolean requiresDeviceIdle) { throw new UnsupportedOperationException("stub"); }

        public Builder setRequiresStorageNotLow(boolean requiresStorageNotLow) { throw new UnsupportedOperationException("stub"); }

        public Constraints build() { throw new UnsupportedOperationException("stub"); }
    }
}
