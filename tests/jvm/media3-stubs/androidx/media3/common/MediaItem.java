// A compile-time stub (see androidx/media3/common/util/UnstableApi.java): the MediaItem fields and
// Builder setters src/android and the sample call, as in Media3 1.5.1.
package androidx.media3.common;

public final class MediaItem {
    /** Identifies the media item. */
    public final String mediaId;

    /** Optional configuration for local playback (its URI...); null when shared over process boundaries. */
    public final LocalConfiguration localConfiguration;

    /** The media metadata. */
    public final MediaMetadata mediaMetadata;

    private MediaItem() {
        throw new UnsupportedOperationException("stub");
    }

    public Builder buildUpon() {
        throw new UnsupportedOperationException("stub");
    }

    /** Properties for local playback; none of its members is used. */
    public static final class LocalConfiguration {
        private LocalConfiguration() {
            throw new UnsupportedOperationException("stub");
        }
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

        public Builder setMediaMetadata(MediaMetadata mediaMetadata) {
            throw new UnsupportedOperationException("stub");
        }

        public MediaItem build() {
            throw new UnsupportedOperationException("stub");
        }
    }
}
