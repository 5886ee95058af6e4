// A compile-time stub (see androidx/media3/common/util/UnstableApi.java):
// OkHttpDataSource.Factory's constructor (media3-datasource-okhttp), as in Media3 1.5.1.
package androidx.media3.datasource.okhttp;

import androidx.media3.datasource.HttpDataSource;
import okhttp3.Call;

public class OkHttpDataSource implements HttpDataSource {
    private OkHttpDataSource() {
        throw new UnsupportedOperationException("stub");
    }

    public static final class Factory implements HttpDataSource.Factory {
        public Factory(Call.Factory callFactory) {
            throw new UnsupportedOperationException("stub");
        }

        @Override
        public OkHttpDataSource createDataSource() {
            throw new UnsupportedOperationException("stub");
        }
    }
}
