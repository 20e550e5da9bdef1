//! Webhooks in the Standard Webhooks form (<https://www.standardwebhooks.com>): which audit
//! events become which webhook event types ([`WebhookEventType`]), the endpoint's secret
//! (`whsec_` + base64, [`WebhookSecret`]) and the signature header over
//! `{webhook-id}.{webhook-timestamp}.{body}` ([`signature_header`]).
//!
//! Pure rules: the store decides which events to queue, the delivery worker signs each attempt
//! with the endpoint's secrets as configured at that moment.

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, Mac as _};
use sha2::Sha256;

use crate::audit::{AuditKind, AuditOutcome};

/// What an app is told of: a person's account's life, not every attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WebhookEventType {
    /// An account was made (a first sign-in, or an operator's `users add`).
    UserCreated,
    /// A person signed in (link, code, password or passkey).
    UserSignedIn,
    /// A person signed out, or one of their sessions was ended.
    UserSignedOut,
    /// A person changed their address, password or passkeys.
    UserUpdated,
    /// An operator disabled the account.
    UserDisabled,
    /// An operator enabled it again.
    UserEnabled,
    /// The account was deleted.
    UserDeleted,
}

impl WebhookEventType {
    /// Every type, in the order the documentation lists them.
    pub const ALL: [Self; 7] = [
        Self::UserCreated,
        Self::UserSignedIn,
        Self::UserSignedOut,
        Self::UserUpdated,
        Self::UserDisabled,
        Self::UserEnabled,
        Self::UserDeleted,
    ];

    /// The payload's `type` and the name in `webhooks.events`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UserCreated => "user.created",
            Self::UserSignedIn => "user.signed_in",
            Self::UserSignedOut => "user.signed_out",
            Self::UserUpdated => "user.updated",
            Self::UserDisabled => "user.disabled",
            Self::UserEnabled => "user.enabled",
            Self::UserDeleted => "user.deleted",
        }
    }

    /// The type a name names.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == name)
    }

    /// The type an audit event is told as, if any: only what happened (a refusal changed
    /// nothing an app keeps), and only about an account.
    pub fn of_audit(kind: AuditKind, outcome: &AuditOutcome) -> Option<Self> {
        if *outcome != AuditOutcome::Succeeded {
            return None;
        }
        Some(match kind {
            AuditKind::UserCreated => Self::UserCreated,
            AuditKind::LinkRedeemed
            | AuditKind::CodeRedeemed
            | AuditKind::PasswordSignIn
            | AuditKind::PasskeySignIn => Self::UserSignedIn,
            AuditKind::SignedOut | AuditKind::SessionRevoked => Self::UserSignedOut,
            AuditKind::AddressChanged
            | AuditKind::PasswordSet
            | AuditKind::PasskeyAdded
            | AuditKind::PasskeyRemoved => Self::UserUpdated,
            AuditKind::UserDisabled => Self::UserDisabled,
            AuditKind::UserEnabled => Self::UserEnabled,
            AuditKind::UserDeleted => Self::UserDeleted,
            AuditKind::LinkRequested | AuditKind::AddressChangeRequested | AuditKind::OperatorCommand => return None,
        })
    }
}

impl fmt::Display for WebhookEventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The longest endpoint URL kept (it names the endpoint in the outbox, an indexed column).
pub const MAX_ENDPOINT_URL: usize = 254;

/// An endpoint's URL, checked: https (http only on localhost or a loopback address, for a
/// receiver beside the service), no user name or password, no fragment, at most
/// [`MAX_ENDPOINT_URL`] characters.
///
/// # Errors
/// A sentence saying what is wrong.
pub fn check_endpoint_url(text: &str) -> Result<url::Url, &'static str> {
    let url = crate::oidc::grant::check_server_url(
        text,
        &crate::oidc::grant::ServerUrlSentences {
            not_absolute: "a webhook URL must be an absolute URL",
            fragment: "a webhook URL cannot have a fragment",
            credentials: "a webhook URL cannot carry a user name or password",
            not_https: "a webhook URL must use https (http only on localhost or a loopback address)",
        },
    )?;
    if url.as_str().len() > MAX_ENDPOINT_URL {
        return Err("a webhook URL must be at most 254 characters long");
    }
    Ok(url)
}

/// The fewest bytes a secret may have: the spec's own generator makes 24 (192 bits).
pub const MIN_WEBHOOK_SECRET_BYTES: usize = 24;

/// An endpoint's signing secret, `whsec_` + base64 of its bytes. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret(Vec<u8>);

/// Why a configured secret was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InvalidWebhookSecret {
    /// It does not start with `whsec_`.
    #[error("it does not start with `whsec_`")]
    Prefix,
    /// What follows is not base64.
    #[error("what follows `whsec_` is not base64")]
    NotBase64,
    /// Fewer than [`MIN_WEBHOOK_SECRET_BYTES`] bytes.
    #[error("it is shorter than {MIN_WEBHOOK_SECRET_BYTES} bytes")]
    TooShort,
}

impl WebhookSecret {
    /// Reads `whsec_` + base64 (padded or not).
    ///
    /// # Errors
    /// An [`InvalidWebhookSecret`] saying what is wrong, never repeating the text.
    pub fn parse(text: &str) -> Result<Self, InvalidWebhookSecret> {
        let encoded = text.trim().strip_prefix("whsec_").ok_or(InvalidWebhookSecret::Prefix)?;
        let bytes = STANDARD
            .decode(encoded)
            .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(encoded))
            .map_err(|_| InvalidWebhookSecret::NotBase64)?;
        if bytes.len() < MIN_WEBHOOK_SECRET_BYTES {
            return Err(InvalidWebhookSecret::TooShort);
        }
        Ok(Self(bytes))
    }

    /// The `v1,` signature of `{id}.{timestamp}.{body}` under this secret.
    fn sign(&self, content: &[u8]) -> String {
        let mut mac = <Hmac<Sha256>>::new_from_slice(&self.0).expect("HMAC takes a key of any length");
        mac.update(content);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(redacted)")
    }
}

/// The `webhook-signature` header for message `id` sent at `timestamp` (seconds since the
/// epoch) with `body`: one `v1,` signature per secret, space-separated, so that a receiver
/// holding either the new or the old secret verifies it while a secret is rotated.
pub fn signature_header(secrets: &[WebhookSecret], id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut content = format!("{id}.{timestamp}.").into_bytes();
    content.extend_from_slice(body);
    secrets.iter().map(|secret| secret.sign(&content)).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_the_specifications_example() {
        // The example in the Standard Webhooks specification (and its libraries' tests).
        let secret = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").expect("a secret");
        let body = br#"{"test": 2432232314}"#;
        let header = signature_header(&[secret], "msg_p5jXN8AQM9LWM0D4loKWxJek", 1_614_265_330, body);
        assert_eq!(header, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn a_rotation_signs_with_every_secret_and_secrets_are_checked_and_never_shown() {
        let new = WebhookSecret::parse(&format!("whsec_{}", STANDARD.encode([7_u8; 32]))).expect("a secret");
        let old = WebhookSecret::parse(&format!("whsec_{}", STANDARD.encode([8_u8; 24]))).expect("a secret");
        let both = signature_header(&[new.clone(), old.clone()], "id", 1, b"{}");
        let (first, second) = both.split_once(' ').expect("two signatures");
        assert_eq!(first, signature_header(&[new], "id", 1, b"{}"));
        assert_eq!(second, signature_header(std::slice::from_ref(&old), "id", 1, b"{}"));
        assert_eq!(format!("{old:?}"), "WebhookSecret(redacted)");
        assert_eq!(WebhookSecret::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"), Err(InvalidWebhookSecret::Prefix));
        assert_eq!(WebhookSecret::parse("whsec_not base64!"), Err(InvalidWebhookSecret::NotBase64));
        assert_eq!(WebhookSecret::parse("whsec_c2hvcnQ="), Err(InvalidWebhookSecret::TooShort));
    }

    #[test]
    fn only_what_happened_to_an_account_is_told() {
        assert_eq!(
            WebhookEventType::of_audit(AuditKind::PasskeySignIn, &AuditOutcome::Succeeded),
            Some(WebhookEventType::UserSignedIn)
        );
        assert_eq!(WebhookEventType::of_audit(AuditKind::PasskeySignIn, &AuditOutcome::refused("rejected")), None);
        assert_eq!(WebhookEventType::of_audit(AuditKind::LinkRequested, &AuditOutcome::Succeeded), None);
        for kind in WebhookEventType::ALL {
            assert_eq!(WebhookEventType::parse(kind.as_str()), Some(kind));
        }
    }
}
