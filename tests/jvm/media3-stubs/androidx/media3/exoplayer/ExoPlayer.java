// A compile-time stub (see androidx/media3/common/util/UnstableApi.java): ExoPlayer as a Player and
// the Builder calls the sample makes, as in Media3 1.5.1.
package androidx.media3.exoplayer;

import android.content.Context;
import androidx.media3.common.AudioAttributes;
import androidx.media3.common.Player;
import androidx.media3.exoplayer.source.MediaSource;

public interface ExoPlayer extends Player {
    final class Builder {
        public Builder(Context context) {
            throw new UnsupportedOperationException("stub");
        }

        public Builder setMediaSourceFactory(MediaSource.Factory mediaSourceFactory) {
            throw new UnsupportedOperationException("stub");
        }

        public Builder setAudioAttributes(AudioAttributes audioAttributes, boolean handleAudioFocus) {
            throw new UnsupportedOperationException("stub");
        }

        public Builder setWakeMode(int wakeMode) {
            throw new UnsupportedOperationException("stub");
        }

        public Builder setHandleAudioBecomingNoisy(boolean handleAudioBecomingNoisy) {
            throw new UnsupportedOperationException("stub");
        }

        public ExoPlayer build() {
            throw new UnsupportedOperationException("stub");
        }
    }
}
