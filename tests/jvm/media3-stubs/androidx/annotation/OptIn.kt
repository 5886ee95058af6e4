// A compile-time stub of androidx.annotation.OptIn (androidx.annotation:annotation-experimental,
// an `api` dependency of media3-common), as published: a Kotlin annotation with a vararg
// `markerClass`, so `@OptIn(UnstableApi::class)` is written as Media3's documentation shows. Kotlin
// source, unlike the Java stubs, because a Java annotation could not take that argument
// positionally; tests/jvm/run.sh compiles it with kotlinc. Never shipped, never run.
package androidx.annotation

import kotlin.reflect.KClass

@Retention(AnnotationRetention.BINARY)
@Target(
    AnnotationTarget.CLASS,
    AnnotationTarget.PROPERTY,
    AnnotationTarget.LOCAL_VARIABLE,
    AnnotationTarget.VALUE_PARAMETER,
    AnnotationTarget.CONSTRUCTOR,
    AnnotationTarget.FUNCTION,
    AnnotationTarget.PROPERTY_GETTER,
    AnnotationTarget.PROPERTY_SETTER,
    AnnotationTarget.FILE,
    AnnotationTarget.TYPEALIAS,
)
annotation class OptIn(vararg val markerClass: KClass<out Annotation>)
