// A compile-time stub of android.content.SharedPreferences, written from the published API
// reference (developer.android.com/reference/android/content/SharedPreferences): the getters and
// Editor calls the sample uses, with the same signatures. Never shipped, never run (see
// android/content/Context.java).
package android.content;

public interface SharedPreferences {
    String getString(String key, String defValue);

    int getInt(String key, int defValue);

    long getLong(String key, long defValue);

    Editor edit();

    interface Editor {
        Editor putString(String key, String value);

        Editor putInt(String key, int value);

        Editor putLong(String key, long value);

        Editor remove(String key);

        void apply();
    }
}
