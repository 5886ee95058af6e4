// A compile-time stub (see androidx/media3/common/util/UnstableApi.java):
// DefaultMediaSourceFactory's constructor and setDataSourceFactory (it implements the deprecated
// MediaSourceFactory, a MediaSource.Factory: the stub implements MediaSource.Factory directly), as
// in Media3 1.5.1.
package androidx.media3.exoplayer.source;

import android.content.Context;
import androidx.media3.datasource.DataSource;

public final class DefaultMediaSourceFactory implements MediaSource.Factory {
    public DefaultMediaSourceFactory(Context context) {
        throw new UnsupportedOperationException("stub");
    }

    public DefaultMediaSourceFactory setDataSourceFactory(DataSource.Factory dataSourceFactory) {
        throw new UnsupportedOperationException("stub");
    }
}
