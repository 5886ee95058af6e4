// A runnable fake of android.security.NetworkSecurityPolicy for the host JVM tests only: it is on
// the test run's classpath (tests/jvm/run.sh), never shipped, so that EmbeddedServer.start's
// reflective cleartext check finds a policy and asks it, and a test decides the answer. Unlike
// tests/jvm/android-stubs (compile-time only), this class runs. Members as in the published API
// (developer.android.com/reference/android/security/NetworkSecurityPolicy), plus the two fields.
package android.security;

public class NetworkSecurityPolicy {
    /** What isCleartextTrafficPermitted answers; permitted unless a test says otherwise. */
    public static volatile boolean cleartextPermitted = true;

    /** The host name last asked about, or null. */
    public static volatile String lastHostname;

    private static final NetworkSecurityPolicy INSTANCE = new NetworkSecurityPolicy();

    private NetworkSecurityPolicy() {}

    public static NetworkSecurityPolicy getInstance() {
        return INSTANCE;
    }

    public boolean isCleartextTrafficPermitted(String hostname) {
        lastHostname = hostname;
        return cleartextPermitted;
    }
}
