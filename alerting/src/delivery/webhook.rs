//! Webhook sink: HTTP POST of the JSON payload with an HMAC-SHA256 signature
//! and the idempotency key, bounded by a timeout.

use std::collections::HashMap;
use std::time::Duration;

use super::AlertSink;
use crate::ids::TargetId;
use crate::notify::Notification;
use crate::outbox::{DeliveryOutcome, outcome_for_http_status};
use crate::routing::TargetKind;
use crate::signature::{IDEMPOTENCY_HEADER, SIGNATURE_HEADER, sign};

/// Webhook client settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookConfig {
    /// Whole-request timeout, ms.
    pub timeout_ms: u64,
    /// Connection timeout, ms.
    pub connect_timeout_ms: u64,
}

impl Default for WebhookConfig {
    /// 10 s per request, 3 s to connect.
    fn default() -> Self {
        Self {
            timeout_ms: 10_000,
            connect_timeout_ms: 3_000,
        }
    }
}

/// The HTTP client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// TLS backend or settings rejected.
    #[error("cannot build http client: {0}")]
    Client(#[source] reqwest::Error),
}

impl WebhookError {
    /// Stable reason code.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Client(_) => "client",
        }
    }
}

/// Posts signed JSON bodies.
#[derive(Debug, Clone)]
pub struct WebhookSender {
    client: reqwest::Client,
}

impl WebhookSender {
    /// Builds the client (rustls, no redirects: a redirected alert is a
    /// misconfiguration to surface, not to follow).
    pub fn new(config: &WebhookConfig) -> Result<Self, WebhookError> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(config.timeout_ms.max(1)))
            .connect_timeout(Duration::from_millis(config.connect_timeout_ms.max(1)))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("geoward-alerting/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(WebhookError::Client)?;
        Ok(Self { client })
    }

    /// One POST of `body` to `url`, signed with `secret`.
    pub async fn post(
        &self,
        url: &str,
        secret: &[u8],
        idempotency_key: &str,
        body: Vec<u8>,
    ) -> DeliveryOutcome {
        let signature = sign(secret, &body);
        let result = self
            .client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(SIGNATURE_HEADER, signature)
            .header(IDEMPOTENCY_HEADER, idempotency_key)
            .body(body)
            .send()
            .await;
        match result {
            Ok(resp) => outcome_for_http_status(resp.status().as_u16()),
            Err(e) => classify_error(&e),
        }
    }
}

fn classify_error(e: &reqwest::Error) -> DeliveryOutcome {
    let detail = format!("{e}");
    if e.is_builder() {
        return DeliveryOutcome::Permanent {
            reason: "bad_request".to_owned(),
            detail,
        };
    }
    let reason = if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect"
    } else {
        "transport"
    };
    DeliveryOutcome::Retryable {
        reason: reason.to_owned(),
        detail,
    }
}

/// An [`AlertSink`] for webhook targets, with each target's signing secret.
#[derive(Debug, Clone)]
pub struct WebhookSink {
    sender: WebhookSender,
    secrets: HashMap<TargetId, Vec<u8>>,
}

impl WebhookSink {
    /// A sink signing with `secrets` (target id → key).
    pub fn new(sender: WebhookSender, secrets: HashMap<TargetId, Vec<u8>>) -> Self {
        Self { sender, secrets }
    }
}

impl AlertSink for WebhookSink {
    async fn deliver(&self, notification: &Notification) -> DeliveryOutcome {
        let TargetKind::Webhook { url } = &notification.target_kind else {
            return DeliveryOutcome::Permanent {
                reason: "not_a_webhook".to_owned(),
                detail: format!("target {} is not a webhook", notification.target),
            };
        };
        let Some(secret) = self.secrets.get(&notification.target) else {
            return DeliveryOutcome::Permanent {
                reason: "no_secret".to_owned(),
                detail: format!("no signing secret for target {}", notification.target),
            };
        };
        self.sender
            .post(
                url,
                secret,
                &notification.idempotency_key,
                notification.body(),
            )
            .await
    }
}
