// Compile-time stub (developer.android.com/reference/androidx/work/NetworkType): the values
// DownloadScheduler maps DownloadRequirements.Network to. Never shipped, never run.
package androidx.work;

public enum NetworkType {
    NOT_REQUIRED,
    CONNECTED,
    UNMETERED,
}
