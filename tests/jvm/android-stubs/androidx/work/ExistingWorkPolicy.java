// Compile-time stub (developer.android.com/reference/androidx/work/ExistingWorkPolicy): the
// policies DownloadScheduler uses. Never shipped, never run.
package androidx.work;

public enum ExistingWorkPolicy {
    REPLACE,
    KEEP,
}
