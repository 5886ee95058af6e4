package io.embeddedserver.sample

import android.os.SystemClock
import androidx.media3.common.Player
import androidx.test.platform.app.InstrumentationRegistry

/** Runs [block] on the main thread (where the tests' players and controllers live) and returns its result. */
internal fun <T> onMain(block: () -> T): T {
    var result: Result<T>? = null
    InstrumentationRegistry.getInstrumentation().runOnMainSync { result = runCatching(block) }
    return checkNotNull(result).getOrThrow()
}

/**
 * Waits until [condition] (evaluated on the main thread) holds, failing after [timeoutMs] or as
 * soon as [player] reports an error.
 */
internal fun waitFor(player: Player, what: String, timeoutMs: Long, condition: Player.() -> Boolean) {
    val deadline = SystemClock.uptimeMillis() + timeoutMs
    while (true) {
        val (done, error) = onMain { player.condition() to player.playerError }
        if (error != null) throw AssertionError("player error while waiting for $what", error)
        if (done) return
        if (SystemClock.uptimeMillis() > deadline) throw AssertionError("timed out after $timeoutMs ms waiting for $what")
        Thread.sleep(100)
    }
}
