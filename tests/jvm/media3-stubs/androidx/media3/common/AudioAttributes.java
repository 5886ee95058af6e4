// A compile-time stub (see androidx/media3/common/util/UnstableApi.java): AudioAttributes and the
// Builder setters the sample calls, as in Media3 1.5.1.
package androidx.media3.common;

public final class AudioAttributes {
    private AudioAttributes() {
        throw new UnsupportedOperationException("stub");
    }

    public static final class Builder {
        public Builder() {
            throw new UnsupportedOperationException("stub");
        }

        public Builder setContentType(int contentType) {
            throw new UnsupportedOperationException("stub");
        }

        public Builder setUsage(int usage) {
            throw new UnsupportedOperationException("stub");
        }

        public AudioAttributes build() {
            throw new UnsupportedOperationException("stub");
        }
    }
}
