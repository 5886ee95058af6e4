package io.embeddedserver

/**
 * The start-time check that the app lets its player speak cleartext HTTP to 127.0.0.1, where the
 * server listens. The library sets no network security config (it would clash with the app's own),
 * so the app must allow it; without this check a missing rule shows up only as a player error.
 *
 * It lives in the pure-JVM sources, reaching `android.security.NetworkSecurityPolicy` by
 * reflection, so every start is checked however the [Config] was built, and the host tests can
 * run it against a fake policy class; on a desktop JVM the class is absent and nothing is checked.
 * (Framework classes are never renamed by R8, so the reflective names need no keep rule.)
 */
internal object LoopbackCleartext {
    private const val POLICY_CLASS = "android.security.NetworkSecurityPolicy"

    /** The host the player's URLs name. */
    private const val HOST = "127.0.0.1"

    /** The lines to add inside the app's `<network-security-config>`; the ready file holds them too. */
    private const val DOMAIN_CONFIG = """<domain-config cleartextTrafficPermitted="true">
    <domain includeSubdomains="false">127.0.0.1</domain>
    <domain includeSubdomains="false">localhost</domain>
</domain-config>"""

    /** The library's ready config, for an app that has none of its own. */
    private const val READY_FILE = "@xml/embedded_server_network_security_config"

    private const val MESSAGE = "cleartext HTTP to $HOST is not permitted in this app (Android 9+ blocks it " +
        "unless the app's network security config allows it), so the player cannot reach the embedded " +
        "server. Add to the app's network security config (res/xml), inside <network-security-config>:\n" +
        "$DOMAIN_CONFIG\nor, if the app has no config of its own, set " +
        "android:networkSecurityConfig=\"$READY_FILE\" on its <application> in AndroidManifest.xml."

    /**
     * Throws [EmbeddedServerException], saying what to add, if the platform's policy refuses
     * cleartext to 127.0.0.1. [policyClass] is the policy's name (a test names an absent class).
     */
    fun requirePermitted(policyClass: String = POLICY_CLASS) {
        if (!isPermitted(policyClass)) throw EmbeddedServerException.InvalidConfig(MESSAGE)
    }

    /** `NetworkSecurityPolicy.getInstance().isCleartextTrafficPermitted(HOST)`; true where the class is absent. */
    private fun isPermitted(policyClass: String): Boolean {
        val policy = try {
            Class.forName(policyClass)
        } catch (e: ClassNotFoundException) {
            return true
        }
        val instance = policy.getMethod("getInstance").invoke(null)
        return policy.getMethod("isCleartextTrafficPermitted", String::class.java).invoke(instance, HOST) == true
    }
}
