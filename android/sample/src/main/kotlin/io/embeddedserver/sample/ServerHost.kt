package io.embeddedserver.sample

import io.embeddedserver.EmbeddedServer

/**
 * Implemented by the app's `Application` ([SampleApp]), which starts the process-wide server once.
 * Components that may run before it has started (the [PlaybackService] after process death, for a
 * media button) ask it here and wait, instead of assuming a running server.
 */
interface ServerHost {
    /** The app's server, once it has started; throws if it could not start. The caller never closes it. */
    suspend fun embeddedServer(): EmbeddedServer
}
