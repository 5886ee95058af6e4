// A compile-time stub (see androidx/media3/common/util/UnstableApi.java): MediaSource and its
// Factory as types; their methods are left out, as in Media3 1.5.1.
package androidx.media3.exoplayer.source;

public interface MediaSource {
    interface Factory {}
}
