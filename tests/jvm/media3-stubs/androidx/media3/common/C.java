// A compile-time stub (see androidx/media3/common/util/UnstableApi.java): the constants of C the
// sample uses (USAGE_MEDIA and AUDIO_CONTENT_TYPE_MUSIC are android.media.AudioAttributes'
// USAGE_MEDIA and CONTENT_TYPE_MUSIC), as in Media3 1.5.1.
package androidx.media3.common;

public final class C {
    private C() {}

    public static final int USAGE_MEDIA = 1;

    public static final int AUDIO_CONTENT_TYPE_MUSIC = 2;

    /** Holds a wake lock and a Wi-Fi lock while the player plays (needs WAKE_LOCK). */
    public static final int WAKE_MODE_NETWORK = 2;
}
