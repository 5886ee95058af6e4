// Compile-time stub (developer.android.com/reference/androidx/work/WorkManager): only the members
// DownloadScheduler calls. Never shipped, never run.
package androidx.work;

import android.content.Context;

public abstract class WorkManager {
    public static WorkManager getInstance(Context context) { throw new UnsupportedOperationException("stub"); }

    public abstract Operation enqueueUniqueWork(String uniqueWorkName, ExistingWorkPolicy existingWorkPolicy, OneTimeWorkRequest request);

    public abstract Operation cancelUniqueWork(String uniqueWorkName);
}
