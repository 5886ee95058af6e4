//! The network gate: what the app last reported about connectivity, and whether that allows
//! downloads. Players are never gated; only the downloader waits here.

use tokio::sync::watch;

use crate::config::NetworkState;

/// The current state plus the policy for metered networks.
pub(crate) struct NetworkGate {
    state: watch::Sender<NetworkState>,
    allow_metered: bool,
}

impl NetworkGate {
    pub(crate) fn new(allow_metered: bool) -> Self {
        Self {
            state: watch::Sender::new(NetworkState::default()),
            allow_metered,
        }
    }

    /// Records a new state; waiting downloads re-check it.
    pub(crate) fn set(&self, state: NetworkState) {
        self.state.send_replace(state);
    }

    /// The last reported state.
    pub(crate) fn get(&self) -> NetworkState {
        *self.state.borrow()
    }

    /// Whether `state` lets downloads run.
    fn allows(&self, state: &NetworkState) -> bool {
        state.online && (!state.metered || self.allow_metered)
    }

    /// Whether downloads may run now.
    pub(crate) fn is_open(&self) -> bool {
        self.allows(&self.get())
    }

    /// Resolves once downloads may run.
    pub(crate) async fn wait_open(&self) {
        let mut rx = self.state.subscribe();
        let _ = rx.wait_for(|s| self.allows(s)).await;
    }

    /// Resolves once downloads must stop.
    pub(crate) async fn wait_closed(&self) {
        let mut rx = self.state.subscribe();
        let _ = rx.wait_for(|s| !self.allows(s)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn metered_networks_are_gated_by_policy() {
        let strict = NetworkGate::new(false);
        assert!(strict.is_open());
        strict.set(NetworkState {
            online: true,
            metered: true,
        });
        assert!(!strict.is_open());
        strict.wait_closed().await;
        let lenient = NetworkGate::new(true);
        lenient.set(NetworkState {
            online: true,
            metered: true,
        });
        assert!(lenient.is_open());
        lenient.set(NetworkState {
            online: false,
            metered: false,
        });
        assert!(!lenient.is_open());
    }

    #[tokio::test]
    async fn waiting_ends_when_the_network_comes_back() {
        let gate = std::sync::Arc::new(NetworkGate::new(false));
        gate.set(NetworkState {
            online: false,
            metered: false,
        });
        let waiter = tokio::spawn({
            let gate = gate.clone();
            async move { gate.wait_open().await }
        });
        gate.set(NetworkState {
            online: true,
            metered: false,
        });
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .unwrap()
            .unwrap();
    }
}
