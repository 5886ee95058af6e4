// Compile-time stubs of exactly the Media3 APIs src/android calls (EmbeddedDataSource,
// EmbeddedMediaItems) and the sample's PlaybackService and its helpers call, written from Media3
// 1.5.1's published sources and API reference (developer.android.com/reference/androidx/media3/...).
// Never shipped, never run: tests/jvm/run.sh type-checks those sources against them; the Gradle
// builds compile against the real Media3 (compileOnly in the library). The real marker is also @RequiresOptIn (checked by lint).
package androidx.media3.common.util;

import static java.lang.annotation.ElementType.CONSTRUCTOR;
import static java.lang.annotation.ElementType.FIELD;
import static java.lang.annotation.ElementType.METHOD;
import static java.lang.annotation.ElementType.TYPE;
import static java.lang.annotation.RetentionPolicy.CLASS;

import java.lang.annotation.Retention;
import java.lang.annotation.Target;

@Retention(CLASS)
@Target({TYPE, METHOD, CONSTRUCTOR, FIELD})
public @interface UnstableApi {}
