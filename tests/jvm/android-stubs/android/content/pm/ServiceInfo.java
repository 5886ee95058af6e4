// Compile-time stub (developer.android.com/reference/android/content/pm/ServiceInfo): the one
// constant the download worker passes to ForegroundInfo. Never shipped, never run.
package android.content.pm;

public class ServiceInfo {
    /** The dataSync foreground service type (API 29; required with its permission from API 34). */
    public static final int FOREGROUND_SERVICE_TYPE_DATA_SYNC = 1;
}
