// Compile-time stub (developer.android.com/reference/androidx/work/OneTimeWorkRequest.Builder).
// Never shipped, never run.
package androidx.work;

public final class OneTimeWorkRequest extends WorkRequest {
    private OneTimeWorkRequest() {}

    public static final class Builder extends WorkRequest.Builder<Builder, OneTimeWorkRequest> {
        public Builder(Class<? extends ListenableWorker> workerClass) {
            super(workerClass);
            throw new UnsupportedOperationException("stub");
        }
    }
}
