package io.embeddedserver

/** Any failure of the embedded server: the message says what went wrong, for a person to read. */
class EmbeddedServerException(message: String) : RuntimeException(message)
