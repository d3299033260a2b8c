//! outbox (stub until the notify branch lands)
use super::Channel;
use crate::store::Store;
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
pub struct Outbox {}
impl Outbox {
    pub fn new(
        store: Store,
        channels: Arc<BTreeMap<String, Channel>>,
        sent: prometheus::IntCounterVec,
    ) -> Outbox {
        let _ = (store, channels, sent);
        todo!()
    }
    pub fn with_public_url(self, url: Option<String>) -> Outbox {
        let _ = url;
        self
    }
    pub fn waker(&self) -> Arc<Notify> {
        todo!()
    }
    pub async fn run(self, shutdown: CancellationToken) {
        let _ = shutdown;
    }
}
