// Compile-time stubs of WorkManager (developer.android.com/reference/androidx/work/ListenableWorker,
// androidx.work 2.10): only the members the library's DownloadWorker uses. The real class also
// declares the abstract startWork(), which CoroutineWorker implements. Never shipped, never run.
package androidx.work;

import android.content.Context;

public abstract class ListenableWorker {
    public ListenableWorker(Context appContext, WorkerParameters workerParams) { throw new UnsupportedOperationException("stub"); }

    public final Context getApplicationContext() { throw new UnsupportedOperationException("stub"); }

    /** What a worker's work came to. */
    public abstract static class Result {
        Result() {}

        public static Result success() { throw new UnsupportedOperationException("stub"); }

        public static Result retry() { throw new UnsupportedOperationException("stub"); }

        public static Result failure() { throw new UnsupportedOperationException("stub"); }
    }
}
