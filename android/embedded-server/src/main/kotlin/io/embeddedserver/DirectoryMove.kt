package io.embeddedserver

import java.io.File

/**
 * A one-time move of a directory to its new home, for an app updating from a version that kept it
 * elsewhere (`AndroidConfig` kept downloads and the index under `filesDir`, which Auto Backup
 * uploads; they now live under `noBackupFilesDir`). A rename, so it is atomic and instant within one
 * file system, and never a copy that could be cut halfway. Plain `java.io`, so the host tests
 * cover it.
 */
internal object DirectoryMove {
    /**
     * Moves [from] to [to] if [from] is a directory and [to] does not exist yet (or is an empty
     * directory), and returns the directory to use: [to], or [from] if the rename failed, so that
     * downloads are never lost or hidden. If both hold files (an old backup restored [from], say),
     * [from] is left as it is and [to] is used.
     */
    fun moveOnce(from: File, to: File): File {
        if (!from.isDirectory) return to
        if (to.exists() && to.list()?.isEmpty() != true) return to
        to.parentFile?.mkdirs()
        to.delete() // an empty directory, or nothing: rename(2) wants the name free
        return if (from.renameTo(to)) to else from
    }
}
