// A compile-time stub (see androidx/media3/common/util/UnstableApi.java): MediaSession's Builder,
// getPlayer, release, ControllerInfo, MediaItemsWithStartPosition's constructor and the two
// Callback methods the sample overrides (the other Callback methods, all default methods, are left
// out; Builder extends an internal BuilderBase, flattened here), as in Media3 1.5.1.
package androidx.media3.session;

import android.content.Context;
import androidx.media3.common.MediaItem;
import androidx.media3.common.Player;
import androidx.media3.common.util.UnstableApi;
import com.google.common.util.concurrent.ListenableFuture;
import java.util.List;

public class MediaSession {
    private MediaSession() {
        throw new UnsupportedOperationException("stub");
    }

    public final Player getPlayer() {
        throw new UnsupportedOperationException("stub");
    }

    public final void release() {
        throw new UnsupportedOperationException("stub");
    }

    public static final class Builder {
        public Builder(Context context, Player player) {
            throw new UnsupportedOperationException("stub");
        }

        public Builder setCallback(Callback callback) {
            throw new UnsupportedOperationException("stub");
        }

        public MediaSession build() {
            throw new UnsupportedOperationException("stub");
        }
    }

    public static final class ControllerInfo {
        private ControllerInfo() {
            throw new UnsupportedOperationException("stub");
        }
    }

    public interface Callback {
        default ListenableFuture<List<MediaItem>> onAddMediaItems(
                MediaSession mediaSession, ControllerInfo controller, List<MediaItem> mediaItems) {
            throw new UnsupportedOperationException("stub");
        }

        @UnstableApi
        default ListenableFuture<MediaItemsWithStartPosition> onPlaybackResumption(
                MediaSession mediaSession, ControllerInfo controller) {
            throw new UnsupportedOperationException("stub");
        }
    }

    @UnstableApi
    public static final class MediaItemsWithStartPosition {
        public MediaItemsWithStartPosition(List<MediaItem> mediaItems, int startIndex, long startPositionMs) {
            throw new UnsupportedOperationException("stub");
        }
    }
}
