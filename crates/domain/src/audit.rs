//! The security audit log's vocabulary: what happened ([`AuditKind`]), how it ended
//! ([`AuditOutcome`]), to whom and from where ([`AuditEvent`]), and how much of the client's
//! address is kept ([`ClientAddressPolicy`]).
//!
//! An event never holds a token, code, password, secret or cookie: only ids (user, session),
//! how the person signed in, a summary of the browser ("Chrome on Linux"), the request id, the
//! client address as the policy keeps it, and for events about an address that may belong to
//! no one (a link asked for), the address masked (`a***@example.com`).

use std::borrow::Cow;
use std::fmt;
use std::net::IpAddr;

use chrono::{DateTime, Utc};

use crate::{SessionId, SignInMethod, UserId};

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuditKind {
    /// A sign-in link was asked for (refused: rate limited, or by the sign-up policy).
    LinkRequested,
    /// A sign-in link was opened (refused: expired, used, unknown).
    LinkRedeemed,
    /// A sign-in code was typed (refused: wrong, expired, used up).
    CodeRedeemed,
    /// A password sign-in (refused: wrong password or unknown address, alike).
    PasswordSignIn,
    /// A passkey sign-in (refused: unknown passkey, counter regression, ...).
    PasskeySignIn,
    /// A person signed out (this browser's session ended).
    SignedOut,
    /// A person ended one of their sessions, or all the others.
    SessionRevoked,
    /// A change of sign-in address was asked for.
    AddressChangeRequested,
    /// A change of sign-in address was confirmed.
    AddressChanged,
    /// A password was set or changed.
    PasswordSet,
    /// A passkey was added.
    PasskeyAdded,
    /// A passkey was removed.
    PasskeyRemoved,
    /// A user was created (first sign-in, or by an operator).
    UserCreated,
    /// An operator disabled a user.
    UserDisabled,
    /// An operator enabled a user again.
    UserEnabled,
    /// A user was deleted.
    UserDeleted,
    /// An operator ran a command that changed data (`detail` names it).
    OperatorCommand,
}

impl AuditKind {
    /// Every kind, in the order the documentation lists them.
    pub const ALL: [Self; 17] = [
        Self::LinkRequested,
        Self::LinkRedeemed,
        Self::CodeRedeemed,
        Self::PasswordSignIn,
        Self::PasskeySignIn,
        Self::SignedOut,
        Self::SessionRevoked,
        Self::AddressChangeRequested,
        Self::AddressChanged,
        Self::PasswordSet,
        Self::PasskeyAdded,
        Self::PasskeyRemoved,
        Self::UserCreated,
        Self::UserDisabled,
        Self::UserEnabled,
        Self::UserDeleted,
        Self::OperatorCommand,
    ];

    /// The stored and shown name (`link.requested`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::LinkRequested => "link.requested",
            Self::LinkRedeemed => "link.redeemed",
            Self::CodeRedeemed => "code.redeemed",
            Self::PasswordSignIn => "password.sign_in",
            Self::PasskeySignIn => "passkey.sign_in",
            Self::SignedOut => "session.signed_out",
            Self::SessionRevoked => "session.revoked",
            Self::AddressChangeRequested => "address.change_requested",
            Self::AddressChanged => "address.changed",
            Self::PasswordSet => "password.set",
            Self::PasskeyAdded => "passkey.added",
            Self::PasskeyRemoved => "passkey.removed",
            Self::UserCreated => "user.created",
            Self::UserDisabled => "user.disabled",
            Self::UserEnabled => "user.enabled",
            Self::UserDeleted => "user.deleted",
            Self::OperatorCommand => "operator.command",
        }
    }

    /// The kind a stored name names.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == name)
    }
}

impl fmt::Display for AuditKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditOutcome {
    /// It happened.
    Succeeded,
    /// It was refused, for this reason: a short snake_case word from the use case that refused
    /// (`rate_limited`, `expired`, `wrong_code`), never what the person typed.
    Refused(Cow<'static, str>),
}

impl AuditOutcome {
    /// The stored outcome: `succeeded` or `refused`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Succeeded => "succeeded",
            Self::Refused(_) => "refused",
        }
    }

    /// A refusal for `reason`.
    pub fn refused(reason: &'static str) -> Self {
        Self::Refused(Cow::Borrowed(reason))
    }

    /// The reason of a refusal.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Self::Succeeded => None,
            Self::Refused(reason) => Some(reason),
        }
    }
}

/// How much of a client's address the audit log keeps (`audit.client_address`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientAddressPolicy {
    /// The whole address.
    Full,
    /// The network only: IPv4 to its /24, IPv6 to its /48 (the default): enough to tell a
    /// country or a provider apart, not a household.
    #[default]
    Truncated,
    /// Nothing.
    None,
}

impl ClientAddressPolicy {
    /// `client` as this policy keeps it.
    pub fn keep(self, client: IpAddr) -> Option<String> {
        match self {
            Self::Full => Some(client.to_string()),
            Self::None => None,
            Self::Truncated => Some(match client {
                IpAddr::V4(v4) => {
                    let [a, b, c, _] = v4.octets();
                    format!("{a}.{b}.{c}.0/24")
                }
                IpAddr::V6(v6) => {
                    if let Some(v4) = v6.to_ipv4_mapped() {
                        return Self::Truncated.keep(IpAddr::V4(v4));
                    }
                    let s = v6.segments();
                    let network = std::net::Ipv6Addr::new(s[0], s[1], s[2], 0, 0, 0, 0, 0);
                    format!("{network}/48")
                }
            }),
        }
    }
}

/// Where a request came from, as the audit log keeps it: the client address already cut down by
/// the [`ClientAddressPolicy`], the browser summarised, and the request id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestOrigin {
    /// The client address as kept.
    pub client_address: Option<String>,
    /// "Chrome on Linux", never the whole `User-Agent`.
    pub user_agent: Option<String>,
    /// The request's id (`X-Request-Id`), to find its log lines.
    pub request_id: Option<String>,
    /// The language of the page it came from, in which the emails it causes (alerts) are
    /// written. Not kept in the log.
    pub lang: Option<String>,
}

/// One audit event, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    /// When.
    pub at: DateTime<Utc>,
    /// What.
    pub kind: AuditKind,
    /// How it ended.
    pub outcome: AuditOutcome,
    /// Whose account, when known. A store that creates the user or the session the event is
    /// about fills in what the caller could not know yet.
    pub user_id: Option<UserId>,
    /// Which session, when one is concerned.
    pub session_id: Option<SessionId>,
    /// How the person signed in (for sign-ins, and for what a session did).
    pub method: Option<SignInMethod>,
    /// Where the request came from.
    pub origin: RequestOrigin,
    /// A few words more, never a secret: the masked address a link was asked for, the
    /// operator's command.
    pub detail: Option<String>,
}

impl AuditEvent {
    /// An event of `kind` with `outcome` at `at`, from `origin`, about nobody yet.
    pub fn new(kind: AuditKind, outcome: AuditOutcome, at: DateTime<Utc>, origin: &RequestOrigin) -> Self {
        Self { at, kind, outcome, user_id: None, session_id: None, method: None, origin: origin.clone(), detail: None }
    }

    /// The same, about `user_id`.
    #[must_use]
    pub fn of_user(mut self, user_id: &UserId) -> Self {
        self.user_id = Some(user_id.clone());
        self
    }

    /// The same, about `session_id`.
    #[must_use]
    pub fn in_session(mut self, session_id: &SessionId) -> Self {
        self.session_id = Some(session_id.clone());
        self
    }

    /// The same, signed in by `method`.
    #[must_use]
    pub fn by(mut self, method: SignInMethod) -> Self {
        self.method = Some(method);
        self
    }

    /// The same, with `detail`.
    #[must_use]
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_reads_back_from_its_name() {
        for kind in AuditKind::ALL {
            assert_eq!(AuditKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(AuditKind::parse("link.opened"), None);
    }

    #[test]
    fn truncated_addresses_keep_the_network_only() {
        let keep = |policy: ClientAddressPolicy, ip: &str| policy.keep(ip.parse().expect("an address"));
        assert_eq!(keep(ClientAddressPolicy::Truncated, "203.0.113.77"), Some("203.0.113.0/24".to_owned()));
        assert_eq!(
            keep(ClientAddressPolicy::Truncated, "2001:db8:85a3:8d3:1319:8a2e:370:7348"),
            Some("2001:db8:85a3::/48".to_owned())
        );
        assert_eq!(keep(ClientAddressPolicy::Truncated, "::ffff:198.51.100.9"), Some("198.51.100.0/24".to_owned()));
        assert_eq!(keep(ClientAddressPolicy::Full, "203.0.113.77"), Some("203.0.113.77".to_owned()));
        assert_eq!(keep(ClientAddressPolicy::None, "203.0.113.77"), None);
    }
}
