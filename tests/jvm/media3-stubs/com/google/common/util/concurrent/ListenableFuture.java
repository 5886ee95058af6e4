// A compile-time stub of Guava's ListenableFuture (an `api` dependency of media3-common; the type
// of Media3's asynchronous results), from Guava's published API: a Future with a completion
// listener. Never shipped, never run (see androidx/media3/common/util/UnstableApi.java).
package com.google.common.util.concurrent;

import java.util.concurrent.Executor;
import java.util.concurrent.Future;

public interface ListenableFuture<V> extends Future<V> {
    void addListener(Runnable listener, Executor executor);
}
