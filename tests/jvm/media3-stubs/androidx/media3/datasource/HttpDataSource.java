// A compile-time stub (see androidx/media3/common/util/UnstableApi.java): HttpDataSource and its
// Factory as types (OkHttpDataSource.Factory implements it); their methods are left out, as in
// Media3 1.5.1.
package androidx.media3.datasource;

public interface HttpDataSource extends DataSource {
    interface Factory extends DataSource.Factory {}
}
