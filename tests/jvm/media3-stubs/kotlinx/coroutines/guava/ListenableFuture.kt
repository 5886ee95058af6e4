// A compile-time stub of kotlinx-coroutines-guava's `future` builder, with the signature its
// published API reference gives (kotlinlang.org/api/kotlinx.coroutines/kotlinx-coroutines-guava):
// the sample answers Media3's session callbacks with it. Kotlin source, compiled by kotlinc with
// the sample's stub-checked classes (tests/jvm/run.sh). Never shipped, never run.
package kotlinx.coroutines.guava

import com.google.common.util.concurrent.ListenableFuture
import kotlin.coroutines.CoroutineContext
import kotlin.coroutines.EmptyCoroutineContext
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.CoroutineStart

fun <T> CoroutineScope.future(
    context: CoroutineContext = EmptyCoroutineContext,
    start: CoroutineStart = CoroutineStart.DEFAULT,
    block: suspend CoroutineScope.() -> T,
): ListenableFuture<T> = throw UnsupportedOperationException("stub")
