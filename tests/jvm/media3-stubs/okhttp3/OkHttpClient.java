// A compile-time stub of OkHttp 4's OkHttpClient (a Kotlin class; seen from Kotlin as this Java
// stub declares it): its Builder's proxy and build, which the sample calls. Never shipped, never
// run (see androidx/media3/common/util/UnstableApi.java).
package okhttp3;

import java.net.Proxy;

public class OkHttpClient implements Call.Factory {
    public OkHttpClient() {
        throw new UnsupportedOperationException("stub");
    }

    public static final class Builder {
        public Builder() {
            throw new UnsupportedOperationException("stub");
        }

        public Builder proxy(Proxy proxy) {
            throw new UnsupportedOperationException("stub");
        }

        public OkHttpClient build() {
            throw new UnsupportedOperationException("stub");
        }
    }
}
