package io.embeddedserver.test;

import io.embeddedserver.Config;
import io.embeddedserver.Download;
import io.embeddedserver.EmbeddedServer;
import io.embeddedserver.Track;
import java.util.List;

/**
 * Compiled (never run) by tests/jvm/run.sh: the calls a Java app makes without Kotlin's default
 * arguments, which exist only through {@code @JvmOverloads}. A missing overload fails the build.
 */
final class JavaCaller {
    private JavaCaller() {}

    static void calls(Config config) {
        try (EmbeddedServer server = EmbeddedServer.start(config)) {
            Track track = server.registerTrack("t1", "https://example.com/t1.mp3");
            server.prefetch("t1");
            server.prefetch(List.of("t1", "t2"));
            Download byTrack = server.download("t1");
            Download byUrl = server.downloadUrl("https://example.com/a.m3u8");
            server.setNetwork(true, false);
            System.out.println(track.getId() + byTrack.getId() + byUrl.getId() + server.getBaseUrl());
        }
    }
}
