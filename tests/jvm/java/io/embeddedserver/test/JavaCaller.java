package io.embeddedserver.test;

import io.embeddedserver.CachedResource;
import io.embeddedserver.ClearedCache;
import io.embeddedserver.Config;
import io.embeddedserver.Download;
import io.embeddedserver.DownloadProgress;
import io.embeddedserver.DownloadRequirements;
import io.embeddedserver.EmbeddedServer;
import io.embeddedserver.EmbeddedServerException;
import io.embeddedserver.EmbeddedServerHost;
import io.embeddedserver.PendingWork;
import io.embeddedserver.Track;
import java.util.Collection;
import java.util.List;
import kotlin.coroutines.Continuation;

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
            // Cache management, and a download carrying the app's data.
            Download withData = server.download("t1", 5, "{\"title\": \"One\"}");
            server.setDownloadData(withData.getId(), null);
            List<Track> tracks = server.tracks();
            CachedResource cached = server.cached("https://example.com/a.mp3");
            boolean offline = server.isCached("https://example.com/a.mp3");
            ClearedCache cleared = server.clearCache();
            server.setCacheLimit(512L * 1024 * 1024);
            server.removeTrack("t1");
            System.out.println(tracks.size() + cached.getCachedBytes() + cleared.getBytes() + (offline ? 1 : 0));
        }
    }

    /** Typed failures as a Java app catches them: by subclass, the most specific first. */
    static String typedErrors(EmbeddedServer server) {
        try {
            return server.track("t1").getUrl();
        } catch (EmbeddedServerException.NotFound e) {
            return "register it first: " + e.getMessage();
        } catch (EmbeddedServerException.Upstream e) {
            Integer status = e.getStatus();
            return (e.isRetryable() ? "retry later: " : "backend refused: ") + status;
        } catch (EmbeddedServerException.NoSpace | EmbeddedServerException.Closed e) {
            return e.getMessage();
        } catch (EmbeddedServerException e) {
            return "failed: " + e.getMessage();
        }
    }

    /** The plain half of background downloads: requirements with Media3's flags, pending work, progress. */
    static DownloadProgress downloadWork(EmbeddedServer server) {
        DownloadRequirements defaults = new DownloadRequirements();
        DownloadRequirements charging = new DownloadRequirements(DownloadRequirements.Network.ANY, true);
        DownloadRequirements media3 = DownloadRequirements.fromFlags(DownloadRequirements.NETWORK | DownloadRequirements.DEVICE_CHARGING);
        System.out.println(defaults.getFlags() + charging.getFlags() + media3.getFlags());
        Collection<Download> downloads = server.downloadMap().getValue().values();
        System.out.println(PendingWork.of(downloads) == PendingWork.NONE);
        return DownloadProgress.of(downloads);
    }

    /** A Java Application's host: it returns the server (blocking is fine, the worker calls it off the main thread). */
    static final class JavaHost implements EmbeddedServerHost {
        private final EmbeddedServer server;

        JavaHost(EmbeddedServer server) {
            this.server = server;
        }

        @Override
        public Object embeddedServer(Continuation<? super EmbeddedServer> continuation) {
            return server;
        }
    }
}
