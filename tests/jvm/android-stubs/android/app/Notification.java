// Compile-time stub (developer.android.com/reference/android/app/Notification): the type only;
// the library builds notifications through NotificationCompat. Never shipped, never run.
package android.app;

public class Notification {
}
