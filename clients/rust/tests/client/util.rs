//! Helpers shared by the client's tests (processes, ports, taps and digests come from
//! `pqrelay_testkit`).

use std::sync::{Arc, Mutex};

/// Another client id secret than the test relay's own (`pqrelay_testkit::SECRET`), for
/// rotation.
pub(crate) const NEW_SECRET: &str = "client-test-rotated-0123456789ab";

/// A wire observer that records every event, and the record.
pub(crate) fn recorder() -> (
    Arc<Mutex<Vec<pqrelay_client::WireEvent>>>,
    impl Fn(&pqrelay_client::WireEvent) + Send + Sync + 'static,
) {
    let log = Arc::new(Mutex::new(Vec::new()));
    let sink = log.clone();
    (log, move |e: &pqrelay_client::WireEvent| {
        sink.lock().unwrap().push(e.clone())
    })
}
