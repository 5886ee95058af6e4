// A compile-time stub of OkHttp 4's Call.Factory as a type (OkHttpDataSource.Factory takes one,
// OkHttpClient is one), from OkHttp's published API; newCall and Call's own members are left out.
// Never shipped, never run (see androidx/media3/common/util/UnstableApi.java).
package okhttp3;

public interface Call {
    interface Factory {}
}
