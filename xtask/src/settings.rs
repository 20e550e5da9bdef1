//! Configuration: one typed [`Settings`], loaded in layers by figment, checked once at start-up.
//!
//! Layers, later ones winning: built-in defaults (identical to `config/default.toml`, which a
//! test checks), `config/default.toml`, `config/{profile}.toml`, a `.env` file, the environment
//! (the Auth.js names `AUTH_SECRET`, `AUTH_URL`, `DATABASE_URL`, then `MAGICLINK_*` with `__`
//! between nested keys), and last the command-line flags. The `.env` file is read as data; it is
//! never written into the process environment.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};

use domain::{LinkPolicy, SessionPolicy};
use figment::providers::{Env, Format as _, Serialized, Toml};
use figment::value::Value;
use figment::Figment;
use serde::{Deserialize, Serialize};
use url::Url;

/// How the operator invoked the commands, so that advice names a command they can type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Program {
    /// The shipped binary.
    Magiclink,
    /// `cargo xtask`, from a checkout.
    CargoXtask,
}

impl Program {
    /// The command prefix, e.g. `cargo xtask`.
    pub fn as_str(self) -> &'static str {
        match self {
            Program::Magiclink => "magiclink",
            Program::CargoXtask => "cargo xtask",
        }
    }

    /// A full command line for a subcommand, e.g. `cargo xtask migrate`.
    pub fn command(self, subcommand: &str) -> String {
        format!("{} {subcommand}", self.as_str())
    }
}

/// The profile that relaxes the production checks; every other profile gets them.
pub const DEVELOPMENT: &str = "development";

/// The Auth.js environment names and the keys they set.
const AUTHJS_NAMES: [(&str, &str); 4] = [
    ("AUTH_SECRET", "secret"),
    ("AUTH_URL", "server.base_url"),
    ("DATABASE_URL", "database.url"),
    ("AUTH_RESEND_KEY", "mailer.resend.api_key"),
];

/// Environment names that choose how configuration is loaded rather than set a key.
const LOADER_NAMES: [&str; 2] = ["profile", "config_dir"];

/// Every setting of the service. Field docs are the configuration reference's first draft;
/// `docs/configuration.md` is the full one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Product name shown on pages and in emails.
    pub site_name: String,
    /// The server secret (`AUTH_SECRET`): keys link-token hashes and CSRF tokens.
    #[serde(with = "secret_serde")]
    pub secret: Secret,
    /// Secrets rotated out: what they signed is still honoured until it expires.
    #[serde(with = "secret_serde::list")]
    pub previous_secrets: Vec<Secret>,
    /// Listening and public address.
    pub server: ServerSettings,
    /// The database.
    pub database: DatabaseSettings,
    /// The Auth.js-style routes.
    pub auth: AuthSettings,
    /// Where the pages live.
    pub pages: PagesSettings,
    /// Magic-link lifetime.
    pub magic_link: MagicLinkSettings,
    /// Session lifetime and cookie.
    pub session: SessionSettings,
    /// The CSRF cookie.
    pub csrf: CsrfSettings,
    /// How emails are sent.
    pub mailer: MailerSettings,
    /// How queued emails are retried.
    pub outbox: OutboxSettings,
    /// Rate limits.
    pub rate_limit: RateLimitSettings,
    /// Which addresses are accepted.
    pub email: EmailSettings,
    /// Who may get a link.
    pub sign_up: SignUpSettings,
    /// Operator overrides of page and email templates.
    pub templates: TemplatesSettings,
    /// Logging.
    pub log: LogSettings,
    /// Forward auth for reverse proxies.
    pub forward_auth: ForwardAuthSettings,
    /// Prometheus metrics.
    pub metrics: MetricsSettings,
    /// `[password]`: the optional password sign-in.
    pub password: PasswordSettings,
    /// `[passkey]`: passkeys (WebAuthn).
    pub passkey: PasskeySettings,
    /// `[oidc]`: the OpenID Provider.
    pub oidc: OidcSettings,
    /// `[audit]`: the security audit log.
    pub audit: AuditSettings,
    /// `[alerts]`: the security alerts emailed to people.
    pub alerts: AlertsSettings,
    /// `[[webhooks]]`: endpoints told of account events, signed as Standard Webhooks.
    pub webhooks: Vec<WebhookSettings>,
}

/// `[alerts]`: which security alerts are emailed (each with a link to the account page and
/// "if this was not you" advice).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertsSettings {
    /// A sign-in from a browser not seen on the account before.
    pub new_sign_in: bool,
    /// To the old address when the sign-in address changed.
    pub address_changed: bool,
    /// The password was set or changed.
    pub password_changed: bool,
    /// A passkey was added.
    pub passkey_added: bool,
}

impl Default for AlertsSettings {
    fn default() -> Self {
        Self { new_sign_in: true, address_changed: true, password_changed: true, passkey_added: true }
    }
}

/// One of `[[webhooks]]`: an endpoint, the event types it wants, and its signing secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    /// Where to POST: https (http only on loopback).
    pub url: String,
    /// The event types it is sent (`user.created`, `user.signed_in`, ...).
    pub events: Vec<String>,
    /// `whsec_` + base64: the secret its signatures are made with.
    #[serde(with = "secret_serde")]
    pub secret: Secret,
    /// Secrets being rotated out: every delivery is signed with these too, so the receiver
    /// verifies with the old secret until it has the new one.
    #[serde(default, with = "secret_serde::list")]
    pub previous_secrets: Vec<Secret>,
}

impl WebhookSettings {
    /// The endpoint it describes, every field checked.
    ///
    /// # Errors
    /// One sentence naming the field at fault; never a secret.
    pub fn to_endpoint(&self) -> Result<ports::WebhookEndpoint, String> {
        let url = domain::webhook::check_endpoint_url(&self.url).map_err(|reason| format!("{}: {reason}", self.url))?;
        if self.events.is_empty() {
            return Err(format!("{}: `events` names no event type", self.url));
        }
        let events = self
            .events
            .iter()
            .map(|name| {
                domain::webhook::WebhookEventType::parse(name).ok_or_else(|| {
                    let known: Vec<&str> = domain::webhook::WebhookEventType::ALL.iter().map(|t| t.as_str()).collect();
                    format!("{}: unknown event type {name:?} (known: {})", self.url, known.join(", "))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let secrets = std::iter::once(&self.secret)
            .chain(&self.previous_secrets)
            .map(|secret| {
                domain::webhook::WebhookSecret::parse(secret.expose())
                    .map_err(|reason| format!("{}: a secret is not valid: {reason}", self.url))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ports::WebhookEndpoint { url, events, secrets })
    }
}

/// `[audit]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditSettings {
    /// Whether events are written at all. Off only to measure what the log costs, or where
    /// another system keeps the record.
    pub enabled: bool,
    /// Days an event is kept before the housekeeping deletes it.
    pub retention_days: u32,
    /// How much of a client's address is kept: `full`, `truncated` (/24 and /48) or `none`.
    pub client_address: ClientAddressSetting,
    /// Also write every event to the log as one JSON line (target `magiclink::audit`).
    pub log_json: bool,
}

impl Default for AuditSettings {
    fn default() -> Self {
        Self { enabled: true, retention_days: 90, client_address: ClientAddressSetting::Truncated, log_json: false }
    }
}

/// `audit.client_address`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientAddressSetting {
    /// The whole address.
    Full,
    /// IPv4 to its /24, IPv6 to its /48.
    Truncated,
    /// Nothing.
    None,
}

impl ClientAddressSetting {
    /// The policy it names.
    pub fn policy(self) -> domain::audit::ClientAddressPolicy {
        match self {
            Self::Full => domain::audit::ClientAddressPolicy::Full,
            Self::Truncated => domain::audit::ClientAddressPolicy::Truncated,
            Self::None => domain::audit::ClientAddressPolicy::None,
        }
    }
}

/// `[metrics]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSettings {
    /// Address and port of the metrics listener (`GET /metrics`); empty: off.
    pub bind: String,
}

/// `[server]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSettings {
    /// Address and port to listen on.
    pub bind: String,
    /// Public base URL (`AUTH_URL`): links point here; https makes cookies `Secure`. Empty in
    /// development means the bound address; required in every other profile.
    pub base_url: String,
    /// Allow an http base URL outside the development profile (e.g. behind a TLS proxy on the
    /// same host). Off by default.
    pub allow_http: bool,
    /// Connections served at once; more wait to be accepted.
    pub max_connections: u32,
    /// Connections one client may hold at once (0: no cap of its own); trusted proxies exempt.
    pub max_connections_per_client: u32,
    /// Seconds allowed for a request's head to arrive (and for an idle keep-alive connection
    /// to start its next request).
    pub header_read_timeout: u32,
    /// Seconds allowed for a whole request, its body included.
    pub request_timeout: u32,
    /// Bytes allowed in a request body.
    pub max_body_bytes: u32,
    /// Bytes allowed in a request's head (request line and headers).
    pub max_header_bytes: u32,
    /// Header fields allowed in a request.
    pub max_headers: u32,
    /// `Strict-Transport-Security` max-age in seconds, sent when the base URL is https; 0 for
    /// none.
    pub hsts_max_age: u32,
    /// Reverse proxies (CIDR blocks or addresses) whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<String>,
}

/// `[sign_up]`: who may get a link.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SignUpSettings {
    /// `open`, `existing` or `allowlist`.
    pub mode: SignUpMode,
    /// With `allowlist`: the domains whose addresses may sign up.
    pub allowed_domains: Vec<String>,
}

/// The sign-up policies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SignUpMode {
    /// Anyone; a first sign-in creates the user.
    #[default]
    Open,
    /// Only existing users.
    Existing,
    /// `allowed_domains`, plus existing users.
    Allowlist,
}

impl SignUpSettings {
    /// The allowed domains as addresses store them (lower case, A-labels), or the first entry
    /// that is not a domain.
    ///
    /// # Errors
    /// The entry that does not parse.
    pub fn normalised_domains(&self) -> Result<Vec<String>, String> {
        self.allowed_domains
            .iter()
            .map(|domain| {
                domain::EmailAddress::parse(&format!("x@{}", domain.trim()))
                    .map(|address| address.domain().to_owned())
                    .map_err(|_| domain.clone())
            })
            .collect()
    }
}

/// `[email]`: which addresses are accepted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EmailSettings {
    /// Accept addresses whose part before `@` is not ASCII (needs SMTPUTF8 end to end).
    pub allow_unicode_local_part: bool,
}

/// `[rate_limit]`: each limit is "so many per so long" (GCRA); 0 turns it off.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitSettings {
    /// Where the counters live: empty for the configured database, or a `redis://` URL.
    #[serde(with = "secret_serde")]
    pub store: Secret,
    /// Seconds between two links to one address.
    pub address_min_gap: u32,
    /// Links to one address per hour.
    pub address_per_hour: u32,
    /// Link requests from one client (IPv4 address, IPv6 /64) per hour.
    pub client_per_hour: u32,
    /// Links sent to anyone per hour.
    pub global_per_hour: u32,
    /// Failed link or code redemptions from one client per hour.
    pub failed_redemptions_per_hour: u32,
    /// What a request meets when the Redis store cannot be asked.
    pub on_store_error: OnStoreError,
}

/// `rate_limit.on_store_error`: what a request meets when the Redis store cannot be asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnStoreError {
    /// 503 with `Retry-After`; `/healthz` reports the store.
    Refuse,
    /// Through, uncounted, with a warning in the log.
    Allow,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        Self {
            store: Secret::default(),
            address_min_gap: 60,
            address_per_hour: 5,
            client_per_hour: 30,
            global_per_hour: 1000,
            failed_redemptions_per_hour: 30,
            on_store_error: OnStoreError::Refuse,
        }
    }
}

/// `[database]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseSettings {
    /// Database URL (`DATABASE_URL`): `sqlite://path`, `postgres://...` or `mysql://...`. A
    /// secret: server URLs carry a password.
    #[serde(with = "secret_serde")]
    pub url: Secret,
    /// Pool size.
    pub max_connections: u32,
    /// Seconds a request waits for a database connection before it is answered 503.
    pub acquire_timeout: u32,
    /// Seconds the first connection at start-up may take.
    pub connect_timeout: u32,
}

/// `[auth]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSettings {
    /// Base path of the Auth.js-style routes.
    pub base_path: String,
}

/// `[pages]`, as Auth.js's `pages` option.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PagesSettings {
    /// The sign-in form.
    pub sign_in: String,
    /// "Check your email".
    pub verify_request: String,
    /// The error page.
    pub error: String,
    /// The account page.
    pub account: String,
}

/// `[magic_link]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MagicLinkSettings {
    /// Seconds a link stays valid.
    pub max_age: u32,
}

/// `[session]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionSettings {
    /// Seconds a session lives without use.
    pub max_age: u32,
    /// Seconds between extensions of a session in use.
    pub update_age: u32,
    /// Seconds after its sign-in when a session ends however much it is used.
    pub absolute_max_age: u32,
    /// The session cookie's name (`__Host-` is prepended over https).
    pub cookie_name: String,
    /// The session cookie's `Domain` (e.g. `example.com`) so apps on sibling subdomains see
    /// it; empty keeps it host-only (`__Host-`; with a domain, `__Secure-`).
    pub cookie_domain: String,
    /// Seconds after a sign-in during which sensitive changes (the sign-in address, a password)
    /// are allowed without confirming again ("sudo mode").
    pub recent_sign_in: u32,
}

/// `[password]`: passwords as an optional second way in, beside magic links.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PasswordSettings {
    /// Whether people may set a password and sign in with it.
    pub enabled: bool,
    /// The fewest characters a new password may have (at least 8).
    pub min_length: u32,
    /// argon2id memory per hash, KiB.
    pub memory_kib: u32,
    /// argon2id passes.
    pub iterations: u32,
    /// argon2id lanes.
    pub parallelism: u32,
    /// Hashes computed at once; more wait.
    pub max_concurrent_hashes: u32,
    /// Failed password sign-ins for one address per hour; 0 is off.
    pub failed_per_address_per_hour: u32,
    /// Failed password sign-ins from one client per hour; 0 is off.
    pub failed_per_client_per_hour: u32,
}

impl Default for PasswordSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            min_length: 15,
            memory_kib: 19_456,
            iterations: 2,
            parallelism: 1,
            max_concurrent_hashes: 2,
            failed_per_address_per_hour: 10,
            failed_per_client_per_hour: 30,
        }
    }
}

/// `[passkey]`: signing in with a passkey after a first link sign-in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PasskeySettings {
    /// Whether people may add passkeys and sign in with them.
    pub enabled: bool,
    /// The WebAuthn relying party id: empty for `server.base_url`'s host, else that host or a
    /// parent domain of it (passkeys then work on every subdomain).
    pub rp_id: String,
    /// `preferred` (a touch suffices where the authenticator cannot verify the person) or
    /// `required` (PIN or biometric every time).
    pub user_verification: UserVerificationSetting,
    /// Passkey sign-ins one client may begin per hour; 0 is off.
    pub sign_ins_per_client_per_hour: u32,
}

impl Default for PasskeySettings {
    fn default() -> Self {
        Self {
            enabled: true,
            rp_id: String::new(),
            user_verification: UserVerificationSetting::Preferred,
            sign_ins_per_client_per_hour: 300,
        }
    }
}

/// `passkey.user_verification`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UserVerificationSetting {
    /// Ask for it; accept a touch alone.
    Preferred,
    /// Refuse without it.
    Required,
}

impl PasskeySettings {
    /// The relying party id in force: `rp_id`, or the base URL's host.
    pub fn effective_rp_id(&self, base_url: &url::Url) -> String {
        if self.rp_id.is_empty() {
            base_url.host_str().unwrap_or_default().to_owned()
        } else {
            self.rp_id.to_ascii_lowercase()
        }
    }
}

impl Settings {
    /// `[oidc]`'s lifetimes, and every listed client, each problem a line.
    fn check_oidc(&self, problems: &mut Vec<String>) {
        let oidc = &self.oidc;
        for (key, seconds) in [
            ("access_token_lifetime", oidc.access_token_lifetime),
            ("id_token_lifetime", oidc.id_token_lifetime),
            ("refresh_token_lifetime", oidc.refresh_token_lifetime),
        ] {
            if seconds < 60 {
                problems.push(format!("oidc.{key} must be at least 60 seconds"));
            }
        }
        let mut ids = std::collections::BTreeSet::new();
        for client in &oidc.clients {
            if let Err(problem) = client.to_client(chrono::DateTime::UNIX_EPOCH) {
                problems.push(format!("oidc.clients: {problem}"));
            }
            if !ids.insert(client.id.as_str()) {
                problems.push(format!("oidc.clients: the id {:?} is listed twice", client.id));
            }
        }
    }
}

/// `[oidc]`: magiclink as an OpenID Provider for other apps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OidcSettings {
    /// Whether the provider's endpoints are served (only registered clients can use them).
    pub enabled: bool,
    /// Seconds an access token works.
    pub access_token_lifetime: u32,
    /// `opaque` (256 random bits) or `jwt` (RFC 9068, checkable by an app's API offline).
    pub access_token_format: AccessTokenFormatSetting,
    /// Seconds an ID token is valid.
    pub id_token_lifetime: u32,
    /// Seconds a refresh token works unless used (each use issues a new one).
    pub refresh_token_lifetime: u32,
    /// Token and revocation requests one client may make per minute; 0 is off.
    pub token_requests_per_client_per_minute: u32,
    /// Clients kept in the configuration (for teams that keep it in git), in step with the
    /// database at start-up.
    pub clients: Vec<ConfiguredClient>,
}

/// One of `oidc.clients`: a registered client as `clients add` would make it, with its
/// secret given as a hash (`clients new-secret` prints both).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfiguredClient {
    /// Its client id.
    pub id: String,
    /// The name people see.
    pub name: String,
    /// Where codes may be sent.
    pub redirect_uris: Vec<String>,
    /// Where people may be sent after signing out through it.
    #[serde(default)]
    pub post_logout_redirect_uris: Vec<String>,
    /// SHA-256 of its secret, 64 hex digits; empty for a public client.
    #[serde(default)]
    pub secret_hash: String,
    /// A browser or native app without a secret (PKCE required).
    #[serde(default)]
    pub public: bool,
    /// The team's own app: no consent page.
    #[serde(default)]
    pub first_party: bool,
    /// RS256 (the default), ES256 or EdDSA.
    #[serde(default = "default_id_token_alg")]
    pub id_token_alg: String,
    /// Where logout tokens are POSTed when a session the app signed in through ends; empty
    /// for none.
    #[serde(default)]
    pub backchannel_logout_uri: String,
}

fn default_id_token_alg() -> String {
    "RS256".to_owned()
}

impl ConfiguredClient {
    /// The client it describes, every field checked.
    ///
    /// # Errors
    /// One sentence naming the field at fault.
    pub fn to_client(&self, now: chrono::DateTime<chrono::Utc>) -> Result<domain::oidc::Client, String> {
        use domain::oidc::{
            check_backchannel_logout_uri, check_client_name, check_redirect_uri, ClientId, ClientKind, ClientSecretHash,
        };
        let id = ClientId::parse(&self.id).map_err(|refusal| format!("id {:?}: {refusal}", self.id))?;
        let name = check_client_name(&self.name).map_err(|reason| format!("{id}: name: {reason}"))?;
        let urls = |field: &str, uris: &[String]| -> Result<Vec<url::Url>, String> {
            uris.iter()
                .map(|uri| check_redirect_uri(uri).map_err(|reason| format!("{id}: {field} {uri:?}: {reason}")))
                .collect()
        };
        let redirect_uris = urls("redirect_uris", &self.redirect_uris)?;
        if redirect_uris.is_empty() {
            return Err(format!("{id}: redirect_uris: at least one"));
        }
        let secret_hash = match (self.public, self.secret_hash.as_str()) {
            (true, "") => None,
            (true, _) => return Err(format!("{id}: a public client has no secret_hash")),
            (false, hash) => Some(
                ClientSecretHash::from_hex(hash)
                    .map_err(|_| format!("{id}: secret_hash must be the 64 hex digits `clients new-secret` prints"))?,
            ),
        };
        Ok(domain::oidc::Client {
            id: id.clone(),
            name,
            kind: if self.public { ClientKind::Public } else { ClientKind::Confidential },
            secret_hash,
            redirect_uris,
            post_logout_redirect_uris: urls("post_logout_redirect_uris", &self.post_logout_redirect_uris)?,
            first_party: self.first_party,
            backchannel_logout_uri: match self.backchannel_logout_uri.as_str() {
                "" => None,
                uri => Some(
                    check_backchannel_logout_uri(uri)
                        .map_err(|reason| format!("{id}: backchannel_logout_uri {uri:?}: {reason}"))?,
                ),
            },
            id_token_algorithm: domain::oidc::SigningAlgorithm::parse(&self.id_token_alg)
                .ok_or_else(|| format!("{id}: id_token_alg {:?}: RS256, ES256 or EdDSA", self.id_token_alg))?,
            from_config: true,
            created_at: now,
        })
    }
}

impl Default for OidcSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            access_token_lifetime: 3600,
            access_token_format: AccessTokenFormatSetting::Opaque,
            id_token_lifetime: 3600,
            refresh_token_lifetime: 30 * 24 * 3600,
            token_requests_per_client_per_minute: 600,
            clients: Vec::new(),
        }
    }
}

/// `oidc.access_token_format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccessTokenFormatSetting {
    /// Opaque tokens.
    Opaque,
    /// RFC 9068 JWTs.
    Jwt,
}

/// `[forward_auth]`: `{base}/forward-auth` for reverse proxies.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ForwardAuthSettings {
    /// The exact origins (`https://app.example.com`) a sign-in may return to.
    pub allowed_origins: Vec<String>,
    /// What a check without a session answers: `status` (401) or `redirect` (302).
    pub mode: ForwardAuthModeSetting,
}

/// `forward_auth.mode`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ForwardAuthModeSetting {
    /// 401, for nginx `auth_request`.
    #[default]
    Status,
    /// 302 to the sign-in page, for Traefik and Caddy.
    Redirect,
}

impl ForwardAuthSettings {
    /// The allowed origins, parsed; the first entry that is not a bare http(s) origin otherwise.
    ///
    /// # Errors
    /// The offending entry.
    pub fn origins(&self) -> Result<Vec<url::Origin>, String> {
        self.allowed_origins
            .iter()
            .map(|raw| match Url::parse(raw.trim()) {
                Ok(url)
                    if matches!(url.scheme(), "http" | "https")
                        && url.host().is_some()
                        && url.path() == "/"
                        && url.query().is_none()
                        && url.fragment().is_none()
                        && url.username().is_empty()
                        && url.password().is_none() =>
                {
                    Ok(url.origin())
                }
                _ => Err(raw.clone()),
            })
            .collect()
    }
}

/// `[csrf]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CsrfSettings {
    /// The CSRF cookie's name (`__Host-` is prepended over https).
    pub cookie_name: String,
}

/// `[mailer]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MailerSettings {
    /// Which mailer sends sign-in emails.
    pub kind: MailerKind,
    /// The sender, `name <address>`; required for the real mailers.
    pub from: String,
    /// Check at start-up that the mailer reaches its provider (SMTP: connect, EHLO, TLS, AUTH;
    /// Resend: the key answered); outside development a failed check stops start-up.
    pub check_at_start: bool,
    /// `[mailer.smtp]`.
    pub smtp: SmtpSettings,
    /// `[mailer.resend]`.
    pub resend: ResendSettings,
    /// `[mailer.dev]`.
    pub dev: DevMailboxSettings,
}

/// `[mailer.dev]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DevMailboxSettings {
    /// Messages the development mailbox keeps (the newest); at least 1.
    pub capacity: u32,
}

impl Default for DevMailboxSettings {
    fn default() -> Self {
        Self { capacity: 1000 }
    }
}

/// The available mailers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MailerKind {
    /// Keeps messages in memory at `/dev/mailbox` and logs links. Development only.
    Dev,
    /// An SMTP server, through lettre.
    Smtp,
    /// Resend's HTTP API.
    Resend,
}

/// `[mailer.smtp]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmtpSettings {
    /// `smtp://[user:password@]host[:port]` or `smtps://...`.
    #[serde(with = "secret_serde")]
    pub url: Secret,
    /// User name, when not in the URL.
    pub username: String,
    /// Password, when not in the URL.
    #[serde(with = "secret_serde")]
    pub password: Secret,
    /// STARTTLS on `smtp://`: `required`, `opportunistic` or `off`.
    pub starttls: StartTlsSetting,
    /// Seconds allowed for connecting and for each SMTP command.
    pub timeout: u32,
    /// Connections kept open.
    pub pool_size: u32,
    /// A PEM file of extra root certificates to trust (a private CA); empty for none.
    pub ca_file: String,
}

/// STARTTLS policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StartTlsSetting {
    /// Refuse to send without TLS.
    Required,
    /// Use TLS when offered.
    Opportunistic,
    /// Never use TLS.
    Off,
}

/// `[mailer.resend]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResendSettings {
    /// The API key (`AUTH_RESEND_KEY`).
    #[serde(with = "secret_serde")]
    pub api_key: Secret,
    /// The API's base URL.
    pub base_url: String,
    /// Seconds allowed per request.
    pub timeout: u32,
}

/// `[outbox]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutboxSettings {
    /// Attempts per message, the first included.
    pub max_attempts: u32,
    /// Seconds before the first retry; doubles per retry (with jitter).
    pub base_delay: u32,
    /// Upper bound of the retry delay, in seconds.
    pub max_delay: u32,
    /// Messages sent at once.
    pub concurrency: u32,
}

/// `[templates]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TemplatesSettings {
    /// A folder of template overrides (same file names as the built-in ones); empty for none.
    pub dir: String,
}

impl Default for SmtpSettings {
    fn default() -> Self {
        Self {
            url: Secret::default(),
            username: String::new(),
            password: Secret::default(),
            starttls: StartTlsSetting::Required,
            timeout: 10,
            pool_size: 4,
            ca_file: String::new(),
        }
    }
}

impl Default for ResendSettings {
    fn default() -> Self {
        Self { api_key: Secret::default(), base_url: "https://api.resend.com".to_owned(), timeout: 10 }
    }
}

impl Default for OutboxSettings {
    fn default() -> Self {
        Self { max_attempts: 8, base_delay: 2, max_delay: 60, concurrency: 8 }
    }
}

impl MailerKind {
    /// The configured name.
    pub fn as_str(self) -> &'static str {
        match self {
            MailerKind::Dev => "dev",
            MailerKind::Smtp => "smtp",
            MailerKind::Resend => "resend",
        }
    }
}

/// `[log]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    /// A `tracing` filter, e.g. `info` or `info,sqlx=warn`.
    pub filter: String,
    /// Lines for people (`text`) or one JSON object per line for a log pipeline (`json`).
    pub format: LogFormat,
    /// One `request` line per request at info (method, path, status, milliseconds); off when
    /// the proxy in front keeps the access log.
    pub access: bool,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One readable line per event.
    #[default]
    Text,
    /// One JSON object per line, with the request's span (its id) in `span` and `spans`.
    Json,
}

/// A secret from configuration (the server secret, a password, an API key, a URL with
/// credentials): the one wrapper the service has, `domain::SecretText`, whose `Debug` is
/// redacted and whose text comes out only through `expose`.
pub type Secret = domain::SecretText;

/// Serde for [`Secret`] fields, as plain text (domain types derive no serde): figment layers
/// the defaults, the files and the environment through it.
mod secret_serde {
    use serde::{Deserialize as _, Deserializer, Serializer};

    use super::Secret;

    pub fn serialize<S: Serializer>(secret: &Secret, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(secret.expose())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Secret, D::Error> {
        String::deserialize(deserializer).map(Secret::from)
    }

    /// The same, for a list of secrets.
    pub mod list {
        use serde::ser::SerializeSeq as _;
        use serde::{Deserialize as _, Deserializer, Serializer};

        use super::Secret;

        pub fn serialize<S: Serializer>(secrets: &[Secret], serializer: S) -> Result<S::Ok, S::Error> {
            let mut seq = serializer.serialize_seq(Some(secrets.len()))?;
            for secret in secrets {
                seq.serialize_element(secret.expose())?;
            }
            seq.end()
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<Secret>, D::Error> {
            Vec::<String>::deserialize(deserializer).map(|texts| texts.into_iter().map(Secret::from).collect())
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            site_name: "magiclink".to_owned(),
            secret: Secret::default(),
            previous_secrets: Vec::new(),
            server: ServerSettings::default(),
            database: DatabaseSettings::default(),
            auth: AuthSettings::default(),
            pages: PagesSettings::default(),
            magic_link: MagicLinkSettings::default(),
            session: SessionSettings::default(),
            csrf: CsrfSettings::default(),
            mailer: MailerSettings::default(),
            outbox: OutboxSettings::default(),
            rate_limit: RateLimitSettings::default(),
            email: EmailSettings::default(),
            sign_up: SignUpSettings::default(),
            templates: TemplatesSettings::default(),
            log: LogSettings::default(),
            forward_auth: ForwardAuthSettings::default(),
            metrics: MetricsSettings::default(),
            password: PasswordSettings::default(),
            passkey: PasskeySettings::default(),
            oidc: OidcSettings::default(),
            audit: AuditSettings::default(),
            alerts: AlertsSettings::default(),
            webhooks: Vec::new(),
        }
    }
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            bind: "127.0.0.1:3000".to_owned(),
            base_url: String::new(),
            allow_http: false,
            max_connections: 1024,
            max_connections_per_client: 64,
            header_read_timeout: 10,
            request_timeout: 30,
            max_body_bytes: 16 * 1024,
            max_header_bytes: 16 * 1024,
            max_headers: 64,
            hsts_max_age: 31_536_000,
            trusted_proxies: Vec::new(),
        }
    }
}

impl DatabaseSettings {
    /// The URL as the adapters take it: redacted in `Debug`, masked in messages.
    pub fn secret_url(&self) -> domain::SecretText {
        self.url.clone()
    }

    /// The pool's size and timeouts, as the adapters take them.
    pub fn pool(&self) -> adapters::database::PoolSettings {
        adapters::database::PoolSettings {
            max_connections: self.max_connections,
            acquire_timeout: std::time::Duration::from_secs(self.acquire_timeout.into()),
            connect_timeout: std::time::Duration::from_secs(self.connect_timeout.into()),
            ..adapters::database::PoolSettings::new(self.max_connections)
        }
    }
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            url: Secret::from("sqlite://data/magiclink.sqlite".to_owned()),
            max_connections: 8,
            acquire_timeout: 3,
            connect_timeout: 5,
        }
    }
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self { base_path: "/api/auth".to_owned() }
    }
}

impl Default for PagesSettings {
    fn default() -> Self {
        Self {
            sign_in: "/signin".to_owned(),
            verify_request: "/check-your-email".to_owned(),
            error: "/auth-error".to_owned(),
            account: "/account".to_owned(),
        }
    }
}

impl Default for MagicLinkSettings {
    fn default() -> Self {
        Self { max_age: LinkPolicy::DEFAULT_MAX_AGE_SECONDS }
    }
}

impl Default for SessionSettings {
    fn default() -> Self {
        Self {
            max_age: SessionPolicy::DEFAULT_MAX_AGE_SECONDS,
            update_age: SessionPolicy::DEFAULT_UPDATE_AGE_SECONDS,
            absolute_max_age: SessionPolicy::DEFAULT_ABSOLUTE_MAX_AGE_SECONDS,
            cookie_name: "magiclink.session-token".to_owned(),
            cookie_domain: String::new(),
            recent_sign_in: 600,
        }
    }
}

impl Default for CsrfSettings {
    fn default() -> Self {
        Self { cookie_name: "magiclink.csrf-token".to_owned() }
    }
}

impl Default for MailerSettings {
    fn default() -> Self {
        Self {
            kind: MailerKind::Dev,
            from: String::new(),
            check_at_start: true,
            smtp: SmtpSettings::default(),
            resend: ResendSettings::default(),
            dev: DevMailboxSettings::default(),
        }
    }
}

impl Default for LogSettings {
    fn default() -> Self {
        Self { filter: "info,sqlx=warn".to_owned(), format: LogFormat::Text, access: true }
    }
}

/// Values given on the command line; they override every other layer.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--bind`.
    pub bind: Option<String>,
    /// `--database-url`.
    pub database_url: Option<String>,
}

/// Where configuration comes from.
#[derive(Debug, Clone)]
pub struct Sources {
    /// The folder holding `default.toml` and `{profile}.toml`.
    pub config_dir: PathBuf,
    /// The `.env` file to read if it exists.
    pub dotenv: PathBuf,
    /// The profile.
    pub profile: String,
}

/// Loads the settings from every layer.
///
/// # Errors
/// Names the key and the layer that supplied a value of the wrong type, or an unknown key.
pub fn load(sources: &Sources, overrides: &Overrides) -> Result<Settings, Box<figment::Error>> {
    let dotenv = read_dotenv(&sources.dotenv);
    let mut figment = Figment::from(Serialized::defaults(Settings::default()))
        .merge(Toml::file(sources.config_dir.join("default.toml")))
        .merge(Toml::file(sources.config_dir.join(format!("{}.toml", sources.profile))));
    // The `.env` file sits below the real environment, with the same two naming schemes.
    for (name, key) in AUTHJS_NAMES {
        if let Some(value) = dotenv.get(name) {
            figment = figment.merge(Serialized::default(key, parse_env_value(value)));
        }
    }
    for (name, value) in &dotenv {
        if let Some(key) = magiclink_key(name) {
            figment = figment.merge(Serialized::default(&key, parse_env_value(value)));
        }
    }
    for (name, key) in AUTHJS_NAMES {
        figment = figment.merge(Env::raw().only(&[name]).map(move |_| key.into()));
    }
    figment = figment.merge(Env::prefixed("MAGICLINK_").split("__").ignore(&LOADER_NAMES));
    // A list of tables written as JSON (`MAGICLINK_WEBHOOKS='[{"url": ...}]'`), which figment's
    // own value syntax (`[{url="..."}]`) does not read, replaces what figment made of it.
    for (name, value) in std::env::vars() {
        if let (Some(key), Some(json)) = (magiclink_key(&name), json_env_value(&value)) {
            figment = figment.merge(Serialized::default(&key, json));
        }
    }
    if let Some(bind) = &overrides.bind {
        figment = figment.merge(Serialized::default("server.bind", bind));
    }
    if let Some(url) = &overrides.database_url {
        figment = figment.merge(Serialized::default("database.url", url));
    }
    figment.extract().map_err(Box::new)
}

/// `MAGICLINK_SERVER__BIND` -> `server.bind`; `None` for other names and the loader's own.
fn magiclink_key(name: &str) -> Option<String> {
    let key = name.strip_prefix("MAGICLINK_")?.to_lowercase().replace("__", ".");
    (!LOADER_NAMES.contains(&key.as_str())).then_some(key)
}

/// Environment values are typed the way figment types real environment variables, except that
/// a JSON list of objects or a JSON object is read as JSON.
fn parse_env_value(raw: &str) -> Value {
    if let Some(json) = json_env_value(raw) {
        if let Ok(value) = Value::serialize(json) {
            return value;
        }
    }
    raw.parse().unwrap_or_else(|_| Value::from(raw.to_owned()))
}

/// `raw` as JSON, when it is a JSON object or a JSON list of objects.
fn json_env_value(raw: &str) -> Option<serde_json::Value> {
    let trimmed = raw.trim_start();
    let object_like =
        trimmed.starts_with('{') || trimmed.strip_prefix('[').is_some_and(|rest| rest.trim_start().starts_with('{'));
    object_like.then(|| serde_json::from_str(raw).ok()).flatten()
}

/// The `.env` file's pairs, or none if there is no such file. Malformed lines are skipped with
/// a warning rather than stopping start-up over a developer convenience.
fn read_dotenv(path: &Path) -> BTreeMap<String, String> {
    let Ok(iter) = dotenvy::from_path_iter(path) else {
        return BTreeMap::new();
    };
    iter.filter_map(|item| {
        item.map_err(|error| eprintln!("warning: skipping a line of {}: {error}", path.display())).ok()
    })
    .collect()
}

/// Why the service refuses to start: every problem found, each naming the key to fix, so that
/// an operator fixes them all in one go rather than one per run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.lines())]
pub struct Refusal {
    /// The profile that was checked.
    pub profile: String,
    /// One sentence per problem.
    pub problems: Vec<String>,
}

impl Refusal {
    fn lines(&self) -> String {
        let mut text = format!(
            "refusing to start in profile `{}`: {} problem(s) in the configuration",
            self.profile,
            self.problems.len()
        );
        for problem in &self.problems {
            text.push_str("\n  - ");
            text.push_str(problem);
        }
        text
    }
}

/// What the checks decided, beyond the settings themselves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    /// The parsed base URL; `None` in development when it was not set, meaning "the address
    /// the server binds" ([`Checked::public_base_url`]).
    pub base_url: Option<Url>,
    /// Whether the secret must be generated (development without one).
    pub needs_ephemeral_secret: bool,
}

impl Checked {
    /// The public origin: the configured base URL, or in development the bound address
    /// (loopback for an unspecified bind address such as `0.0.0.0`).
    pub fn public_base_url(&self, bound: SocketAddr) -> Url {
        if let Some(url) = &self.base_url {
            return url.clone();
        }
        let host = match bound.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        let origin = format!("http://{}", SocketAddr::new(host, bound.port()));
        // A socket address always makes a valid http URL; the fallback is never taken.
        Url::parse(&origin).unwrap_or_else(|_| Url::parse("http://127.0.0.1/").expect("a valid literal URL"))
    }
}

/// A trusted proxy entry: a CIDR block, or a bare address as a single-host block.
pub fn parse_proxy(entry: &str) -> Option<ipnet::IpNet> {
    let entry = entry.trim();
    entry.parse::<ipnet::IpNet>().ok().or_else(|| entry.parse::<std::net::IpAddr>().ok().map(ipnet::IpNet::from))
}

/// Whether `name` may name a cookie: an RFC 6265 token, without the `__Host-` or `__Secure-`
/// prefix, which the service adds itself over https.
fn is_valid_cookie_name(name: &str) -> bool {
    const SEPARATORS: &str = "()<>@,;:\\\"/[]?={} \t";
    let lower = name.to_ascii_lowercase();
    !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_graphic() && !SEPARATORS.contains(c))
        && !lower.starts_with("__host-")
        && !lower.starts_with("__secure-")
}

/// Why `session.cookie_domain` cannot work with the base URL, if it cannot: it must be a domain
/// name (not an address, not a single label such as `com`) that the base URL's host is or ends
/// in, or browsers drop the cookie.
fn cookie_domain_problem(domain: &str, base_url: Option<&Url>) -> Option<String> {
    if domain.is_empty() {
        return None;
    }
    let plain = !domain.starts_with('.')
        && domain.contains('.')
        && domain.parse::<IpAddr>().is_err()
        && domain.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'.'));
    if !plain {
        return Some(format!(
            "session.cookie_domain `{domain}` must be a lowercase domain name such as example.com (no leading dot, not an IP address)"
        ));
    }
    let host = base_url?.host_str()?;
    let covered = host == domain || host.strip_suffix(domain).is_some_and(|rest| rest.ends_with('.'));
    (!covered).then(|| {
        format!("session.cookie_domain `{domain}` must be server.base_url's host `{host}` or a domain it is under")
    })
}

impl Settings {
    /// Checks the settings for the profile. `program` names the command the operator runs, for
    /// advice such as "generate one with `cargo xtask secret`".
    ///
    /// # Errors
    /// A [`Refusal`] listing every problem: malformed values in any profile and, outside the
    /// development profile, a secret shorter than 32 bytes, a missing or http base URL (unless
    /// `server.allow_http`), or the development mailer.
    pub fn check(&self, profile: &str, program: Program) -> Result<Checked, Refusal> {
        let mut problems = Vec::new();
        let production_rules = profile != DEVELOPMENT;
        let base_url = self.check_base_url(production_rules, &mut problems);
        for (key, path) in [
            ("auth.base_path", &self.auth.base_path),
            ("pages.sign_in", &self.pages.sign_in),
            ("pages.verify_request", &self.pages.verify_request),
            ("pages.error", &self.pages.error),
            ("pages.account", &self.pages.account),
        ] {
            if !path.starts_with('/')
                || path.starts_with("//")
                || path.contains(['?', '#', '\\'])
                || !path.chars().all(|c| c.is_ascii_graphic())
            {
                problems.push(format!("{key} `{path}` must be a plain ASCII path starting with a single /"));
            }
        }
        let server = &self.server;
        if !(1..=60).contains(&self.database.acquire_timeout) || !(1..=60).contains(&self.database.connect_timeout) {
            problems.push(
                "database.acquire_timeout and database.connect_timeout must be between 1 and 60 seconds".to_owned(),
            );
        }
        if server.max_connections == 0
            || server.header_read_timeout == 0
            || server.request_timeout == 0
            || server.max_body_bytes < 1024
            || server.max_header_bytes < 8192
            || server.max_headers < 16
        {
            problems.push(
                "server.max_connections, header_read_timeout and request_timeout must be positive, max_body_bytes at least 1024, max_header_bytes at least 8192 and max_headers at least 16".to_owned(),
            );
        }
        if self.audit.retention_days == 0 {
            problems.push("audit.retention_days must be at least 1".to_owned());
        }
        if self.magic_link.max_age == 0 || self.magic_link.max_age > 24 * 3600 {
            problems.push("magic_link.max_age must be between 1 and 86400 seconds".to_owned());
        }
        if self.session.max_age == 0 || self.session.update_age > self.session.max_age {
            problems.push("session.max_age must be positive and at least session.update_age".to_owned());
        }
        if self.session.absolute_max_age < self.session.update_age {
            problems.push("session.absolute_max_age must be at least session.update_age".to_owned());
        }
        if self.session.recent_sign_in == 0 || self.session.recent_sign_in > 24 * 3600 {
            problems.push("session.recent_sign_in must be between 1 and 86400 seconds".to_owned());
        }
        self.check_password(&mut problems);
        self.check_oidc(&mut problems);
        let mut urls = std::collections::BTreeSet::new();
        for webhook in &self.webhooks {
            if let Err(problem) = webhook.to_endpoint() {
                problems.push(format!("webhooks: {problem}"));
            }
            if !urls.insert(webhook.url.as_str()) {
                problems.push(format!("webhooks: {} is listed twice", webhook.url));
            }
        }
        if let Some(base_url) = &base_url {
            let host = base_url.host_str().unwrap_or_default();
            let rp_id = self.passkey.effective_rp_id(base_url);
            // A parent domain, never a bare top-level one ("com"), which browsers refuse anyway.
            let parent = host.ends_with(&format!(".{rp_id}")) && rp_id.contains('.');
            let named = !self.passkey.rp_id.is_empty();
            if (named && rp_id.parse::<std::net::IpAddr>().is_ok()) || !(host == rp_id || parent) || rp_id.is_empty() {
                problems.push(format!(
                    "passkey.rp_id = {:?} must be server.base_url's host ({host:?}) or a parent domain of it",
                    self.passkey.rp_id
                ));
            }
        }
        for (key, name) in
            [("session.cookie_name", &self.session.cookie_name), ("csrf.cookie_name", &self.csrf.cookie_name)]
        {
            if !is_valid_cookie_name(name) {
                problems.push(format!(
                    "{key} `{name}` must be 1 to 64 letters, digits or `.-_!#$%&'*+^`|~`, without a `__Host-` or `__Secure-` prefix (added over https)"
                ));
            }
        }
        if self.session.cookie_name == self.csrf.cookie_name {
            problems.push("session.cookie_name and csrf.cookie_name must differ".to_owned());
        }
        self.check_mailer(&mut problems);
        if let Err(entry) = self.forward_auth.origins() {
            problems.push(format!(
                "forward_auth.allowed_origins entry `{entry}` is not an origin like https://app.example.com (scheme, host and port only)"
            ));
        }
        if !self.metrics.bind.is_empty() && self.metrics.bind.parse::<SocketAddr>().is_err() {
            problems.push(format!(
                "metrics.bind `{}` must be an address and port such as 127.0.0.1:9100 (or empty for no metrics)",
                self.metrics.bind
            ));
        }
        if let Some(problem) = cookie_domain_problem(&self.session.cookie_domain, base_url.as_ref()) {
            problems.push(problem);
        }
        if let Err(entry) = self.sign_up.normalised_domains() {
            problems.push(format!("sign_up.allowed_domains entry `{entry}` is not a domain like example.com"));
        }
        for proxy in &self.server.trusted_proxies {
            if parse_proxy(proxy).is_none() {
                problems.push(format!(
                    "server.trusted_proxies entry `{proxy}` is not an IP address or CIDR block like 10.0.0.0/8"
                ));
            }
        }
        if let Err(unsupported) = adapters::database::dialect_of(&self.database.secret_url()) {
            problems.push(unsupported.to_string());
        }
        let store = self.rate_limit.store.expose();
        if !(store.is_empty() || store.starts_with("redis://") || store.starts_with("rediss://")) {
            problems.push("rate_limit.store must be empty (the database) or a redis:// or rediss:// URL".to_owned());
        }
        if self.outbox.max_attempts == 0
            || self.outbox.concurrency == 0
            || self.outbox.base_delay > self.outbox.max_delay
        {
            problems.push("outbox.max_attempts and outbox.concurrency must be positive, and outbox.base_delay at most outbox.max_delay".to_owned());
        }
        if production_rules {
            // Length alone lets `aaaa...` through: a secret must also look random.
            let weak = |secret: &Secret| {
                secret.expose().len() < domain::secret::MIN_PRODUCTION_SECRET_BYTES
                    || domain::secret::estimated_entropy_bits(secret.expose())
                        < domain::secret::MIN_PRODUCTION_SECRET_BITS
            };
            if weak(&self.secret) {
                problems.push(format!(
                    "secret (AUTH_SECRET) must be at least 32 bytes of random text (not a repeated character or \
                     pattern); generate one with `{}`",
                    program.command("secret")
                ));
            }
            if self.previous_secrets.iter().any(weak) {
                problems.push(
                    "previous_secrets (MAGICLINK_PREVIOUS_SECRETS) must each be at least 32 bytes of random text"
                        .to_owned(),
                );
            }
            if self.mailer.kind == MailerKind::Dev {
                problems.push(
                    "mailer.kind = \"dev\" delivers nothing; configure a real mailer (smtp or resend)".to_owned(),
                );
            }
        }
        if !problems.is_empty() {
            return Err(Refusal { profile: profile.to_owned(), problems });
        }
        Ok(Checked { base_url, needs_ephemeral_secret: !production_rules && self.secret.expose().is_empty() })
    }

    /// The `[password]` problems, checked whether or not passwords are enabled, so turning them
    /// on later never meets a surprise.
    fn check_password(&self, problems: &mut Vec<String>) {
        let password = &self.password;
        if let Err(error) = domain::PasswordRules::new(password.min_length as usize) {
            problems.push(error.to_string());
        }
        let cost = adapters::password::Argon2Cost {
            memory_kib: password.memory_kib,
            iterations: password.iterations,
            parallelism: password.parallelism,
        };
        if !cost.meets_owasp() || password.parallelism > 16 {
            problems.push(format!(
                "password.memory_kib = {}, iterations = {}, parallelism = {} is below OWASP's argon2id recommendation: \
                 use memory_kib and iterations of at least one of {:?}, and 1 to 16 lanes",
                password.memory_kib,
                password.iterations,
                password.parallelism,
                adapters::password::OWASP_MINIMUMS
            ));
        }
        if password.max_concurrent_hashes == 0 {
            problems.push("password.max_concurrent_hashes must be positive".to_owned());
        }
    }

    /// The configured base URL, if set and well formed; problems otherwise.
    fn check_base_url(&self, production_rules: bool, problems: &mut Vec<String>) -> Option<Url> {
        let raw = self.server.base_url.trim();
        if raw.is_empty() {
            if production_rules {
                problems.push(
                    "server.base_url (AUTH_URL) is required outside development: the public origin links point at, e.g. https://auth.example.com".to_owned(),
                );
            }
            return None;
        }
        let url = match Url::parse(raw) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => url,
            _ => {
                problems.push(format!("server.base_url (AUTH_URL) `{raw}` is not an http(s) URL"));
                return None;
            }
        };
        if url.path() != "/" || url.query().is_some() || !url.username().is_empty() || url.password().is_some() {
            problems.push(
                "server.base_url (AUTH_URL) must be an origin without a path or credentials, e.g. https://auth.example.com"
                    .to_owned(),
            );
        }
        if production_rules && url.scheme() != "https" && !self.server.allow_http {
            problems.push(
                "server.base_url (AUTH_URL) must be https (set server.allow_http = true only behind a TLS proxy)"
                    .to_owned(),
            );
        }
        Some(url)
    }

    fn check_mailer(&self, problems: &mut Vec<String>) {
        let kind = self.mailer.kind;
        if kind == MailerKind::Dev {
            return;
        }
        if self.mailer.from.trim().is_empty() {
            problems.push(format!(
                "mailer.from (MAGICLINK_MAILER__FROM) is required with mailer.kind = \"{}\"",
                kind.as_str()
            ));
        }
        if kind == MailerKind::Smtp && self.mailer.smtp.url.expose().is_empty() {
            problems.push(
                "mailer.smtp.url (MAGICLINK_MAILER__SMTP__URL) is required with mailer.kind = \"smtp\"".to_owned(),
            );
        }
        if kind == MailerKind::Resend && self.mailer.resend.api_key.expose().is_empty() {
            problems
                .push("mailer.resend.api_key (AUTH_RESEND_KEY) is required with mailer.kind = \"resend\"".to_owned());
        }
    }
}

#[cfg(test)]
mod tests;
