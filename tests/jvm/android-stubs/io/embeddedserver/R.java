// Compile-time stub of the R class AGP generates for the library module (namespace
// io.embeddedserver) from android/embedded-server/src/main/res: only the IDs src/android uses,
// each a resource that exists there (tests/jvm/run.sh checks the names). Never shipped, never run.
package io.embeddedserver;

public final class R {
    public static final class string {
        public static int embedded_server_download_channel;
        public static int embedded_server_downloading;
    }
}
