// A compile-time stub (see androidx/media3/common/util/UnstableApi.java): the members of Player (an
// interface with many more) the sample calls, Listener.onEvents, Events.containsAny and the event
// constants it names, as in Media3 1.5.1.
package androidx.media3.common;

public interface Player {
    int EVENT_TIMELINE_CHANGED = 0;
    int EVENT_MEDIA_ITEM_TRANSITION = 1;
    int EVENT_IS_PLAYING_CHANGED = 7;
    int EVENT_POSITION_DISCONTINUITY = 11;

    void addListener(Listener listener);

    void release();

    int getCurrentMediaItemIndex();

    int getMediaItemCount();

    MediaItem getMediaItemAt(int index);

    long getCurrentPosition();

    interface Listener {
        default void onEvents(Player player, Events events) {}
    }

    final class Events {
        private Events() {
            throw new UnsupportedOperationException("stub");
        }

        public boolean containsAny(int... events) {
            throw new UnsupportedOperationException("stub");
        }
    }
}
