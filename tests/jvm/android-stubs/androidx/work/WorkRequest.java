// Compile-time stub (developer.android.com/reference/androidx/work/WorkRequest.Builder): the
// generic builder shape and the members DownloadScheduler calls. Never shipped, never run.
package androidx.work;

public abstract class WorkRequest {
    WorkRequest() {}

    public abstract static class Builder<B extends Builder<B, W>, W extends WorkRequest> {
        Builder(Class<? extends ListenableWorker> workerClass) {}

        public final B setConstraints(Constraints constraints) { throw new UnsupportedOperationException("stub"); }

        public final W build() { throw new UnsupportedOperationException("stub"); }
    }
}
