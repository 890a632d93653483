//! Webhook deliveries: every event a webhook subscribes to is POSTed to it,
//! signed, and retried with exponential backoff until a 2xx, or
//! dead-lettered after the configured number of attempts.
//!
//! Signature: `x-rollcall-signature: t=<unix seconds>,v1=<hex>` where hex is
//! HMAC-SHA256 keyed with the webhook's secret (the whole `whsec_...` text,
//! as shown once at creation) over `"<t>.<raw body>"`.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use rollcall_core::id::TenantId;
use rollcall_store::{DeliveryOutcome, DueDelivery};
use sha2::Sha256;
use tokio::sync::Semaphore;

use crate::events::Event;
use crate::{Inner, millis};

pub const SIGNATURE_HEADER: &str = "x-rollcall-signature";
/// Events moved into deliveries per webhook per pass.
const QUEUE_BATCH: u32 = 500;
/// Deliveries claimed per pass.
const CLAIM_BATCH: u32 = 64;

/// A new signing secret: `whsec_` and 32 random bytes, base64url.
pub fn generate_secret() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(format!(
        "whsec_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    ))
}

/// What a sealed webhook secret is bound to, so it opens for no other row.
pub fn secret_aad(tenant: &TenantId, webhook_id: &str) -> Vec<u8> {
    format!("webhook|{tenant}|{webhook_id}").into_bytes()
}

/// HMAC-SHA256 over `"<t>.<body>"`. HMAC takes keys of any length, so
/// the `None` arm never happens in practice.
fn mac(secret: &[u8], timestamp: i64, body: &[u8]) -> Option<Hmac<Sha256>> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).ok()?;
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Some(mac)
}

/// The `x-rollcall-signature` value for a body sent at `timestamp`.
pub fn signature_header(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let tag = mac(secret, timestamp, body)
        .map(|m| hex::encode(m.finalize().into_bytes()))
        .unwrap_or_default();
    format!("t={timestamp},v1={tag}")
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    #[error("the signature header is not `t=<unix>,v1=<hex>`")]
    Malformed,
    #[error("the signature does not match the body and secret")]
    Mismatch,
    #[error("the signature is {0} seconds away from now, over the tolerance")]
    Stale(i64),
}

/// Checks a delivery as a receiver would: the HMAC over `"<t>.<body>"`
/// (compared in constant time) and the timestamp within `tolerance_secs`
/// of `now_secs`, which stops old deliveries from being replayed.
pub fn verify(
    secret: &[u8],
    header: &str,
    body: &[u8],
    now_secs: i64,
    tolerance_secs: i64,
) -> Result<(), VerifyError> {
    let mut timestamp = None;
    let mut candidates = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => timestamp = t.parse::<i64>().ok(),
            Some(("v1", v)) => candidates.push(hex::decode(v).map_err(|_| VerifyError::Malformed)?),
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(VerifyError::Malformed)?;
    if candidates.is_empty() {
        return Err(VerifyError::Malformed);
    }
    let skew = (now_secs - timestamp).abs();
    if skew > tolerance_secs {
        return Err(VerifyError::Stale(skew));
    }
    let matches = candidates
        .iter()
        .any(|tag| mac(secret, timestamp, body).is_some_and(|m| m.verify_slice(tag).is_ok()));
    if matches {
        Ok(())
    } else {
        Err(VerifyError::Mismatch)
    }
}

/// A webhook URL Rollcall will deliver to: absolute http(s), a host, no
/// credentials or fragment.
pub fn parse_url(text: &str) -> Result<reqwest::Url, String> {
    if text.len() > 2048 {
        return Err("the URL is longer than 2048 characters".into());
    }
    let url = reqwest::Url::parse(text).map_err(|e| format!("`{text}` is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("`{text}` must be an http or https URL"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("`{text}` has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("the URL must not carry credentials".into());
    }
    if url.fragment().is_some() {
        return Err(format!("`{text}` must not have a fragment"));
    }
    Ok(url)
}

/// Whether an address is on the public internet (not loopback, private,
/// link-local, carrier-grade NAT, unique-local, multicast or unspecified).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b)))
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public(IpAddr::V4(v4)),
            None => {
                let first = v6.segments()[0];
                !(v6.is_loopback()
                    || v6.is_unspecified()
                    || v6.is_multicast()
                    || (first & 0xfe00) == 0xfc00
                    || (first & 0xffc0) == 0xfe80)
            }
        },
    }
}

/// A URL whose host is an address literal on a private network (names are
/// checked when they are resolved, by [`PublicOnly`]).
pub fn private_literal(url: &reqwest::Url) -> Option<IpAddr> {
    let host = url.host_str()?;
    let literal = host.trim_start_matches('[').trim_end_matches(']');
    let ip: IpAddr = literal.parse().ok()?;
    (!is_public(ip)).then_some(ip)
}

/// Resolves names for deliveries, keeping only public addresses.
pub struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let public: Vec<SocketAddr> = found.into_iter().filter(|a| is_public(a.ip())).collect();
            if public.is_empty() {
                let refused: Box<dyn std::error::Error + Send + Sync> =
                    format!("`{host}` resolves to no public address").into();
                return Err(refused);
            }
            let addrs: reqwest::dns::Addrs = Box::new(public.into_iter());
            Ok(addrs)
        })
    }
}

/// The delay before attempt `attempts + 1`: base × 2^(attempts-1), capped,
/// with up to a quarter taken off at random so retries do not march in step.
pub fn backoff(base: Duration, max: Duration, attempts: i64, jitter: f64) -> Duration {
    let exponent = u32::try_from(attempts.saturating_sub(1).clamp(0, 30)).unwrap_or(30);
    let delay = base.saturating_mul(2u32.saturating_pow(exponent)).min(max);
    delay.mul_f64(1.0 - 0.25 * jitter.clamp(0.0, 1.0))
}

fn random_unit() -> f64 {
    let mut bytes = [0u8; 8];
    if getrandom::fill(&mut bytes).is_err() {
        return 0.5;
    }
    // 53 random bits as a fraction in [0, 1).
    (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64
}

pub(crate) async fn delivery_loop(inner: Arc<Inner>) {
    let permits = Arc::new(Semaphore::new(inner.settings.webhook_concurrency.max(1)));
    loop {
        let now = inner.clock.now_millis();
        match inner.store.queue_deliveries(now, QUEUE_BATCH).await {
            Ok(n) if n > 0 => tracing::debug!(queued = n, "webhook deliveries queued"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "could not queue webhook deliveries"),
        }
        let available = u32::try_from(permits.available_permits()).unwrap_or(0);
        if available > 0 {
            // A claimed delivery is leased for longer than one attempt can
            // take, so no other pass sends it meanwhile.
            let lease_ms = millis(inner.settings.webhook_timeout).saturating_mul(3);
            let leased_until = now.saturating_add(lease_ms);
            match inner
                .store
                .claim_deliveries(now, leased_until, available.min(CLAIM_BATCH))
                .await
            {
                Ok(due) => {
                    for delivery in due {
                        let Ok(permit) = permits.clone().acquire_owned().await else {
                            break;
                        };
                        let inner = inner.clone();
                        tokio::spawn(async move {
                            deliver(&inner, delivery, leased_until).await;
                            drop(permit);
                        });
                    }
                }
                Err(e) => tracing::warn!(error = %e, "could not claim webhook deliveries"),
            }
        }
        tokio::select! {
            () = tokio::time::sleep(inner.settings.tick) => {}
            () = inner.wake_deliveries.notified() => {}
        }
    }
}

async fn deliver(inner: &Inner, due: DueDelivery, leased_until: i64) {
    let outcome = attempt(inner, &due).await;
    let now = inner.clock.now_millis();
    let outcome = match outcome {
        Ok(status) => DeliveryOutcome::Succeeded { status },
        Err((status, error)) => {
            let attempts = due.delivery.attempts.saturating_add(1);
            let retry_at = (attempts < inner.settings.webhook_max_attempts).then(|| {
                let delay = backoff(
                    inner.settings.webhook_backoff_base,
                    inner.settings.webhook_backoff_max,
                    attempts,
                    random_unit(),
                );
                now.saturating_add(millis(delay))
            });
            tracing::info!(
                delivery = %due.delivery.id,
                webhook = %due.webhook.id,
                attempts,
                dead = retry_at.is_none(),
                %error,
                "webhook delivery failed"
            );
            DeliveryOutcome::Failed {
                status,
                error,
                retry_at,
            }
        }
    };
    match inner
        .store
        .finish_delivery(&due.delivery.id, leased_until, &outcome, now)
        .await
    {
        Ok(true) => {}
        Ok(false) => tracing::info!(
            delivery = %due.delivery.id,
            "the attempt outlived its lease; its result is not recorded"
        ),
        Err(e) => {
            tracing::warn!(delivery = %due.delivery.id, error = %e, "could not record the delivery")
        }
    }
}

/// One POST: the answer's status on a 2xx, else the status (if any) and why.
async fn attempt(inner: &Inner, due: &DueDelivery) -> Result<i64, (Option<i64>, String)> {
    let hook = &due.webhook;
    let secret = inner
        .vault
        .open(
            &hook.secret_key_id,
            &hook.secret_sealed,
            &secret_aad(&hook.tenant_id, &hook.id),
        )
        .map_err(|e| (None, format!("the signing secret cannot be opened: {e}")))?;
    if !inner.settings.webhook_allow_private_networks
        && let Some(ip) = reqwest::Url::parse(&hook.url)
            .ok()
            .as_ref()
            .and_then(private_literal)
    {
        return Err((None, format!("{ip} is on a private network")));
    }
    let body = serde_json::to_vec(&Event::from_row(&due.event))
        .map_err(|e| (None, format!("the event cannot be encoded: {e}")))?;
    let timestamp = inner.clock.now().as_second();
    let signature = signature_header(&secret, timestamp, &body);
    let answer = inner
        .http
        .post(&hook.url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(SIGNATURE_HEADER, signature)
        .header("x-rollcall-event-id", &due.event.id)
        .header("x-rollcall-event-type", &due.event.event_type)
        .header("x-rollcall-delivery-id", &due.delivery.id)
        .body(body)
        .send()
        .await
        .map_err(|e| {
            let why = if e.is_timeout() {
                "the receiver did not answer in time".to_owned()
            } else if e.is_connect() {
                "could not connect to the receiver".to_owned()
            } else {
                // The URL may carry a token (Slack-style paths): never shown.
                format!("the request failed: {}", e.without_url())
            };
            (None, why)
        })?;
    let status = i64::from(answer.status().as_u16());
    if answer.status().is_success() {
        return Ok(status);
    }
    // Only the status is kept: a receiver's body is not Rollcall's to show
    // (and would let a subscription read back whatever answers at its URL).
    Err((Some(status), format!("the receiver answered HTTP {status}")))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_and_reject_tampering() {
        let secret = b"whsec_test";
        let header = signature_header(secret, 1_700_000_000, b"{\"a\":1}");
        assert!(header.starts_with("t=1700000000,v1="));
        assert_eq!(
            verify(secret, &header, b"{\"a\":1}", 1_700_000_010, 300),
            Ok(())
        );
        assert_eq!(
            verify(secret, &header, b"{\"a\":2}", 1_700_000_010, 300),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            verify(b"other", &header, b"{\"a\":1}", 1_700_000_010, 300),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            verify(secret, &header, b"{\"a\":1}", 1_700_001_000, 300),
            Err(VerifyError::Stale(1000))
        );
        assert_eq!(
            verify(secret, "v1=zz", b"", 0, 300),
            Err(VerifyError::Malformed)
        );
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let base = Duration::from_secs(10);
        let max = Duration::from_secs(60);
        assert_eq!(backoff(base, max, 1, 0.0), Duration::from_secs(10));
        assert_eq!(backoff(base, max, 2, 0.0), Duration::from_secs(20));
        assert_eq!(backoff(base, max, 3, 0.0), Duration::from_secs(40));
        assert_eq!(backoff(base, max, 9, 0.0), Duration::from_secs(60));
        assert_eq!(backoff(base, max, 1, 1.0), Duration::from_millis(7_500));
    }

    #[test]
    fn only_public_addresses_are_public() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
        for public in [
            "93.184.216.34",
            "2606:2800:220:1::1",
            "::ffff:93.184.216.34",
        ] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
        let url = |u: &str| reqwest::Url::parse(u).unwrap();
        assert!(private_literal(&url("http://127.0.0.1:9/x")).is_some());
        assert!(private_literal(&url("http://[::1]/x")).is_some());
        assert!(private_literal(&url("https://hooks.example.com/x")).is_none());
    }

    #[test]
    fn webhook_urls_are_checked() {
        assert!(parse_url("https://hooks.example.com/rollcall").is_ok());
        assert!(parse_url("ftp://example.com").is_err());
        assert!(parse_url("https://user:pw@example.com").is_err());
        assert!(parse_url("https://example.com/#x").is_err());
        assert!(parse_url("not a url").is_err());
    }

    #[test]
    fn secrets_are_random_and_prefixed() {
        let a = generate_secret().unwrap();
        assert!(a.starts_with("whsec_") && a.len() > 40);
        assert_ne!(a, generate_secret().unwrap());
    }
}
