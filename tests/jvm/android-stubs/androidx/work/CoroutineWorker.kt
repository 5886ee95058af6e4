// Compile-time stub (developer.android.com/reference/kotlin/androidx/work/CoroutineWorker):
// Kotlin, because its members are `suspend` functions, which a Java stub cannot declare. Only the
// members DownloadWorker uses. Never shipped, never run.
package androidx.work

import android.content.Context

abstract class CoroutineWorker(appContext: Context, params: WorkerParameters) : ListenableWorker(appContext, params) {
    abstract suspend fun doWork(): Result

    suspend fun setForeground(foregroundInfo: ForegroundInfo): Unit = throw UnsupportedOperationException("stub")
}
