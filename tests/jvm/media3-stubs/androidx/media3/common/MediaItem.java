// A compile-time stub (see androidx/media3/common/util/UnstableApi.java): MediaItem.Builder's
// setters src/android calls, as in Media3 1.5.1.
package androidx.media3.common;

public final class MediaItem {
    private MediaItem() {
        throw new UnsupportedOperationException("stub");
    }

    public static final class Builder {
        public Builder() {
            throw new UnsupportedOperationException("stub");
        }

        public Builder setMediaId(String mediaId) {
            throw new UnsupportedOperationException("stub");
        }

        public Builder setUri(String uri) {
            throw new UnsupportedOperationException("stub");
        }

        public Builder setMimeType(String mimeType) {
            throw new UnsupportedOperationException("stub");
        }

        public MediaItem build() {
            throw new UnsupportedOperationException("stub");
        }
    }
}
