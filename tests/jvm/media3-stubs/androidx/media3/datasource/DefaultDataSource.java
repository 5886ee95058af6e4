// A compile-time stub (see androidx/media3/common/util/UnstableApi.java):
// DefaultDataSource.Factory's constructor over an upstream factory (the DataSource methods are left
// out, see DataSource.java), as in Media3 1.5.1.
package androidx.media3.datasource;

import android.content.Context;

public final class DefaultDataSource implements DataSource {
    private DefaultDataSource() {
        throw new UnsupportedOperationException("stub");
    }

    public static final class Factory implements DataSource.Factory {
        public Factory(Context context, DataSource.Factory baseDataSourceFactory) {
            throw new UnsupportedOperationException("stub");
        }

        @Override
        public DefaultDataSource createDataSource() {
            throw new UnsupportedOperationException("stub");
        }
    }
}
