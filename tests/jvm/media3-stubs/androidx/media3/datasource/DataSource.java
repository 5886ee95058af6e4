// A compile-time stub (see androidx/media3/common/util/UnstableApi.java): DataSource as a type
// and its Factory, as in Media3 1.5.1. Nothing here implements DataSource, so its reading
// methods (open, read, getUri, close...) are left out.
package androidx.media3.datasource;

import androidx.media3.common.util.UnstableApi;

public interface DataSource {
    interface Factory {
        @UnstableApi
        DataSource createDataSource();
    }
}
