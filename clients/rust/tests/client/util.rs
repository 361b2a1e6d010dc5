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

/// The `x-mte-relay` headers of the exchange requests among `events`, parsed.
pub(crate) fn sent_exchanges(
    events: &[pqrelay_client::WireEvent],
) -> Vec<pqrelay_client::pqrelay_protocol::ExchangeHeader> {
    use pqrelay_client::pqrelay_protocol::RelayHeader;
    events
        .iter()
        .filter_map(|e| match e {
            pqrelay_client::WireEvent::Request { relay_header, .. } => {
                match RelayHeader::parse(relay_header) {
                    Ok(RelayHeader::Exchange(x)) => Some(x),
                    _ => None,
                }
            }
            _ => None,
        })
        .collect()
}

/// The statuses of the relay's error answers among `events` (559 and above).
pub(crate) fn error_statuses(events: &[pqrelay_client::WireEvent]) -> Vec<u16> {
    events
        .iter()
        .filter_map(|e| match e {
            pqrelay_client::WireEvent::Response { status, .. } if *status >= 559 => Some(*status),
            _ => None,
        })
        .collect()
}

/// A sealed POST of `body` to `path`, expecting 200: the JSON answer.
pub(crate) async fn post_json(
    client: &pqrelay_client::RelayClient,
    path: &str,
    body: &'static str,
) -> Result<serde_json::Value, pqrelay_client::Error> {
    let resp = client.post(path).body(body).send().await?;
    assert_eq!(resp.status(), pqrelay_client::StatusCode::OK);
    resp.json().await
}
