// A compile-time stub (see androidx/media3/common/util/UnstableApi.java): the members of
// DataSpec src/android uses, as in Media3 1.5.1.
package androidx.media3.datasource;

import android.net.Uri;
import androidx.media3.common.util.UnstableApi;

@UnstableApi
public final class DataSpec {
    /** The URI of the data. */
    public final Uri uri;

    private DataSpec() {
        throw new UnsupportedOperationException("stub");
    }

    /** A copy of this DataSpec with the given URI. */
    public DataSpec withUri(Uri uri) {
        throw new UnsupportedOperationException("stub");
    }
}
