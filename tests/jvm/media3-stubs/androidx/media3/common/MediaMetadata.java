// A compile-time stub (see androidx/media3/common/util/UnstableApi.java): MediaMetadata as a type
// (the sample copies it from item to item), as in Media3 1.5.1.
package androidx.media3.common;

public final class MediaMetadata {
    private MediaMetadata() {
        throw new UnsupportedOperationException("stub");
    }
}
