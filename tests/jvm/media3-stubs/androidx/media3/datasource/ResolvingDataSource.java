// A compile-time stub (see androidx/media3/common/util/UnstableApi.java): ResolvingDataSource's
// Resolver and Factory, as in Media3 1.5.1. Resolver's default method resolveReportedUri is left
// out (src/android does not override it); the DataSource methods too (see DataSource.java).
package androidx.media3.datasource;

import androidx.media3.common.util.UnstableApi;
import java.io.IOException;

@UnstableApi
public final class ResolvingDataSource implements DataSource {
    private ResolvingDataSource() {
        throw new UnsupportedOperationException("stub");
    }

    public interface Resolver {
        DataSpec resolveDataSpec(DataSpec dataSpec) throws IOException;
    }

    public static final class Factory implements DataSource.Factory {
        public Factory(DataSource.Factory upstreamFactory, Resolver resolver) {
            throw new UnsupportedOperationException("stub");
        }

        @Override
        public ResolvingDataSource createDataSource() {
            throw new UnsupportedOperationException("stub");
        }
    }
}
