//! `ratelimit-limit`, `ratelimit-remaining` and `ratelimit-reset` on unified
//! and proxy responses: the vendor allowance of the credential the call
//! spent, as the limiter sees it after the vendor's own headers. Handlers
//! `record` it; the middleware writes the headers.

use std::sync::{Arc, Mutex};

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use rollcall_connectors::RateSnapshot;

tokio::task_local! {
    static SLOT: Arc<Mutex<Option<RateSnapshot>>>;
}

/// Notes the allowance left after this request's vendor call(s).
pub fn record(snapshot: Option<RateSnapshot>) {
    if snapshot.is_none() {
        return;
    }
    let _ = SLOT.try_with(|slot| {
        if let Ok(mut current) = slot.lock() {
            *current = snapshot;
        }
    });
}

pub async fn middleware(request: Request, next: Next) -> Response {
    let slot: Arc<Mutex<Option<RateSnapshot>>> = Arc::default();
    let mut response = SLOT.scope(slot.clone(), next.run(request)).await;
    let snapshot = slot.lock().ok().and_then(|s| *s);
    if let Some(s) = snapshot {
        let headers = response.headers_mut();
        headers.insert("ratelimit-limit", HeaderValue::from(s.limit));
        headers.insert("ratelimit-remaining", HeaderValue::from(s.remaining));
        headers.insert("ratelimit-reset", HeaderValue::from(s.reset_secs));
    }
    response
}

/// The vendor rate-limit window every node on one database shares (kept in
/// the store, under a hash of each credential's key).
#[derive(Debug)]
pub struct StoreWindow(pub Arc<dyn rollcall_store::Store>);

#[async_trait::async_trait]
impl rollcall_connectors::SharedWindow for StoreWindow {
    async fn try_send(
        &self,
        key: &str,
        limit: u32,
        window_ms: i64,
        clock: &dyn rollcall_core::Clock,
    ) -> Result<Option<i64>, String> {
        use sha2::{Digest, Sha256};
        let hashed: String = Sha256::digest(key.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        self.0
            .record_vendor_send(&hashed, limit, window_ms, &|| clock.now_millis())
            .await
            .map_err(|e| e.to_string())
    }
}
