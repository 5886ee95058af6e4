//! Logs to logcat on Android (tag `embedded-server`), set up once from the first start. On other
//! targets the host application owns the subscriber and nothing happens here.

#[cfg(target_os = "android")]
pub(super) fn init() {
    use tracing_subscriber::layer::SubscriberExt;

    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| match tracing_android::layer("embedded-server") {
        Ok(layer) => {
            let subscriber = tracing_subscriber::registry()
                .with(tracing_subscriber::filter::LevelFilter::INFO)
                .with(layer);
            // Fails only if the app installed its own subscriber first, which then wins.
            let _ = tracing::subscriber::set_global_default(subscriber);
        }
        Err(e) => eprintln!("embedded-server: cannot log to logcat: {e}"),
    });
}

#[cfg(not(target_os = "android"))]
pub(super) fn init() {}
