// Compile-time stub (developer.android.com/reference/androidx/work/Operation): the type
// WorkManager's calls return. Never shipped, never run.
package androidx.work;

public interface Operation {
}
