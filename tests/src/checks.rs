//! Table-driven tests that report every failing case in one run rather than stopping at the first.

/// Collects failed checks so that one run of a table-driven test reports every failing case, not
/// only the first; [`Checks::finish`] then fails the test listing them all.
#[derive(Debug, Default)]
pub struct Checks {
    failures: Vec<String>,
}

impl Checks {
    /// Runs `f`; a panic inside it is recorded under `what` instead of ending the test.
    pub fn check(&mut self, what: &str, f: impl FnOnce()) {
        if let Err(e) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panic without a message".into());
            self.failures.push(format!("{what}: {msg}"));
        }
    }

    /// Fails the test if any check failed, listing every failure.
    #[track_caller]
    pub fn finish(self) {
        if !self.failures.is_empty() {
            panic!(
                "{} check(s) failed:\n- {}",
                self.failures.len(),
                self.failures.join("\n- ")
            );
        }
    }
}
