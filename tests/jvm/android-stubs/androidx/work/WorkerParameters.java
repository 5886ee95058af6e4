// Compile-time stub (developer.android.com/reference/androidx/work/WorkerParameters): the type a
// worker's constructor takes; WorkManager creates it. Never shipped, never run.
package androidx.work;

public final class WorkerParameters {
    private WorkerParameters() {}
}
