package io.embeddedserver.sample

import io.embeddedserver.EmbeddedServer
import kotlinx.coroutines.Deferred

/**
 * The process-wide server, started once by the app's `Application` ([SampleApp]). Components
 * that may run before it has started (the [PlaybackService] after process death, a media button)
 * await it instead of assuming it.
 */
interface ServerHost {
    /** Completes once the server has started, exceptionally if it could not. */
    val server: Deferred<EmbeddedServer>
}
