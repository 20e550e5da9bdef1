//! What an OpenID Provider hands out and keeps: registered clients, their secrets, the
//! authorization codes, access tokens and refresh tokens it issues (each a random 256-bit
//! value the client holds, stored only as its SHA-256), and the claims of an ID token.
//!
//! Every secret here has one shape on purpose: 32 bytes from the OS CSPRNG, carried as 43
//! characters of unpadded base64url, stored and looked up as a [`Digest`] of its own kind, so
//! an access token can never be looked up where a refresh token is meant, and a copy of the
//! database yields no usable code, token or client secret. An unkeyed SHA-256 suffices: the
//! values have 256 bits of entropy, so a stored hash cannot be guessed back.

use std::fmt;
use std::marker::PhantomData;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use sha2::{Digest as _, Sha256};
use url::Url;

use crate::digest::{Digest, DigestKind};
use crate::link::MalformedToken;
use crate::oidc::{CodeChallenge, Scopes};
use crate::session::{decode_cookie_token, SignInMethod, TOKEN_BYTES};
use crate::{DisplayName, EmailAddress, SessionId, UserId};

/// Marks the hash of an authorization code.
#[derive(Debug)]
pub enum CodeGrantDigest {}
impl DigestKind for CodeGrantDigest {
    const NAME: &'static str = "AuthorizationCodeHash";
}

/// Marks the hash of an access token.
#[derive(Debug)]
pub enum AccessDigest {}
impl DigestKind for AccessDigest {
    const NAME: &'static str = "AccessTokenHash";
}

/// Marks the hash of a refresh token.
#[derive(Debug)]
pub enum RefreshDigest {}
impl DigestKind for RefreshDigest {
    const NAME: &'static str = "RefreshTokenHash";
}

/// Marks the hash of a client secret.
#[derive(Debug)]
pub enum ClientSecretDigest {}
impl DigestKind for ClientSecretDigest {
    const NAME: &'static str = "ClientSecretHash";
}

/// A random secret of kind `K` as its holder carries it. Its `Debug` is redacted.
pub struct OpaqueSecret<K> {
    bytes: [u8; TOKEN_BYTES],
    kind: PhantomData<fn() -> K>,
}

/// An authorization code: single use, for 60 seconds, at the token endpoint.
pub type AuthorizationCode = OpaqueSecret<CodeGrantDigest>;
/// An opaque access token, presented as `Authorization: Bearer` at userinfo.
pub type AccessToken = OpaqueSecret<AccessDigest>;
/// A refresh token (with `offline_access`), rotated on every use.
pub type RefreshToken = OpaqueSecret<RefreshDigest>;
/// A confidential client's secret, shown once when it is made.
pub type ClientSecret = OpaqueSecret<ClientSecretDigest>;

/// The stored form of an authorization code.
pub type AuthorizationCodeHash = Digest<CodeGrantDigest>;
/// The stored form of an access token.
pub type AccessTokenHash = Digest<AccessDigest>;
/// The stored form of a refresh token.
pub type RefreshTokenHash = Digest<RefreshDigest>;
/// The stored form of a client secret.
pub type ClientSecretHash = Digest<ClientSecretDigest>;

impl<K> OpaqueSecret<K> {
    /// Wraps bytes from the OS CSPRNG.
    pub fn from_random_bytes(bytes: [u8; TOKEN_BYTES]) -> Self {
        Self { bytes, kind: PhantomData }
    }

    /// Reads one as a client sent it.
    ///
    /// # Errors
    /// [`MalformedToken`] unless it is the unpadded base64url of 32 bytes.
    pub fn parse(encoded: &str) -> Result<Self, MalformedToken> {
        decode_cookie_token(encoded).map(Self::from_random_bytes)
    }

    /// What the client is given.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.bytes)
    }

    /// The stored form.
    pub fn hash(&self) -> Digest<K> {
        Digest::computed(Sha256::digest(self.bytes).into())
    }
}

impl<K: DigestKind> fmt::Debug for OpaqueSecret<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}(***)", K::NAME.trim_end_matches("Hash"))
    }
}

/// A client's id: what the operator chose (`grafana`) or a random one, 1 to 128 characters of
/// letters, digits, `-`, `_` and `.`; it appears in URLs, tokens and logs as it is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientId(String);

/// The text cannot be a client id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a client id is 1 to 128 letters, digits, '-', '_' or '.'")]
pub struct MalformedClientId;

impl ClientId {
    /// Reads a client id.
    ///
    /// # Errors
    /// [`MalformedClientId`] for anything but 1 to 128 of `[A-Za-z0-9._-]`.
    pub fn parse(text: &str) -> Result<Self, MalformedClientId> {
        let well_formed = (1..=128).contains(&text.len())
            && text.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if well_formed {
            Ok(Self(text.to_owned()))
        } else {
            Err(MalformedClientId)
        }
    }

    /// A fresh random id (16 bytes from the caller's CSPRNG, as 22 base64url characters).
    pub fn from_random_bytes(bytes: [u8; 16]) -> Self {
        Self(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How a client proves itself at the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientKind {
    /// A server-side app holding a secret (`client_secret_basic` or `client_secret_post`).
    Confidential,
    /// A browser or native app that can keep no secret: `none`, and PKCE is required.
    Public,
}

/// How an ID token is signed: RS256, which every OpenID Provider must offer and every client
/// library accepts, or, for a client that registered for it, ES256 or EdDSA (Ed25519), with
/// smaller keys and signatures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SigningAlgorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256, 2048-bit keys.
    Rs256,
    /// ECDSA on P-256 with SHA-256.
    Es256,
    /// Ed25519.
    EdDsa,
}

impl SigningAlgorithm {
    /// Every algorithm, RS256 first (the default).
    pub const ALL: [Self; 3] = [Self::Rs256, Self::Es256, Self::EdDsa];

    /// The JOSE name (`alg`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rs256 => "RS256",
            Self::Es256 => "ES256",
            Self::EdDsa => "EdDSA",
        }
    }

    /// The algorithm a JOSE name names, if magiclink signs with it.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|alg| alg.as_str() == name)
    }
}

/// A registered client (relying party).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    /// Its id.
    pub id: ClientId,
    /// The name people see on the consent page and the account page ("Grafana").
    pub name: String,
    /// Confidential or public.
    pub kind: ClientKind,
    /// The hash of its secret (confidential clients only).
    pub secret_hash: Option<ClientSecretHash>,
    /// Where codes may be sent; matched exactly ([`crate::oidc::redirect_uri_matches`]).
    pub redirect_uris: Vec<Url>,
    /// Where a person may be sent after signing out through it; matched exactly.
    pub post_logout_redirect_uris: Vec<Url>,
    /// The team's own app: no consent page.
    pub first_party: bool,
    /// Where magiclink POSTs a logout token when a session the app got an ID token in ends
    /// (OpenID Connect Back-Channel Logout 1.0); `None` for an app that did not register one.
    pub backchannel_logout_uri: Option<Url>,
    /// How its ID tokens are signed.
    pub id_token_algorithm: SigningAlgorithm,
    /// Listed in the configuration (`oidc.clients`): kept in step with it at start-up, and not
    /// changed by command.
    pub from_config: bool,
    /// When it was registered.
    pub created_at: DateTime<Utc>,
}

impl Client {
    /// Whether `secret` is this client's, compared in constant time. A public client has no
    /// secret, so nothing matches.
    pub fn secret_matches(&self, secret: &str) -> bool {
        match (&self.secret_hash, ClientSecret::parse(secret)) {
            (Some(stored), Ok(given)) => stored.matches(&given.hash()),
            _ => false,
        }
    }
}

/// What a client's name may be: 1 to 80 characters, no control or text-direction characters
/// (it is shown on the consent page).
///
/// # Errors
/// A sentence saying what is wrong.
pub fn check_client_name(name: &str) -> Result<String, &'static str> {
    match DisplayName::parse(name) {
        Ok(Some(name)) => Ok(name.as_str().to_owned()),
        Ok(None) => Err("a client needs a name"),
        Err(_) => Err("a client name has at most 80 characters and no control or text-direction characters"),
    }
}

/// What a redirect URI may be when a client is registered: an absolute `https` URL without a
/// fragment, or `http` on a loopback address or `localhost` (development and native apps), or
/// a private-use scheme of a native app (`com.example.app:/callback`, RFC 8252 §7.1). Never
/// `javascript:`, `data:` or the like.
///
/// # Errors
/// A sentence saying what is wrong.
pub fn check_redirect_uri(uri: &str) -> Result<Url, &'static str> {
    let url = Url::parse(uri).map_err(|_| "a redirect URI must be an absolute URL")?;
    if url.fragment().is_some() {
        return Err("a redirect URI cannot have a fragment (RFC 6749 §3.1.2)");
    }
    match url.scheme() {
        "https" => Ok(url),
        "http" if is_loopback(&url) => Ok(url),
        "http" => Err("a redirect URI must use https (http only on localhost or a loopback address)"),
        "javascript" | "data" | "file" | "vbscript" | "blob" | "about" | "ftp" | "ws" | "wss" => {
            Err("a redirect URI must use https, loopback http, or an app's own scheme")
        }
        // RFC 8252 §7.1: a private-use scheme is a reversed domain name, with a dot.
        scheme if scheme.contains('.') => Ok(url),
        _ => Err("a redirect URI must use https, loopback http, or an app's own scheme (with a dot)"),
    }
}

/// What a back-channel logout URI may be: an absolute `https` URL without a fragment
/// (Back-Channel Logout 1.0 §2.2), or `http` on a loopback address or `localhost`, for an app
/// on the same machine. magiclink POSTs to it from the server, so an app's own scheme makes no
/// sense here.
///
/// # Errors
/// A sentence saying what is wrong.
pub fn check_backchannel_logout_uri(uri: &str) -> Result<Url, &'static str> {
    check_server_url(
        uri,
        &ServerUrlSentences {
            not_absolute: "a back-channel logout URI must be an absolute URL",
            fragment: "a back-channel logout URI cannot have a fragment",
            credentials: "a back-channel logout URI cannot carry a user name or password",
            not_https: "a back-channel logout URI must use https (http only on localhost or a loopback address)",
        },
    )
}

/// What [`check_server_url`] says of each fault, in the words of the kind of URL checked.
pub struct ServerUrlSentences {
    /// Not an absolute URL.
    pub not_absolute: &'static str,
    /// It has a fragment.
    pub fragment: &'static str,
    /// It carries a user name or password.
    pub credentials: &'static str,
    /// Neither https nor http on loopback.
    pub not_https: &'static str,
}

/// A URL this server POSTs to (an app's back-channel logout URI, a webhook endpoint): absolute,
/// `https` (or `http` on a loopback address or `localhost`, for a receiver on the same
/// machine), with no fragment and no credentials, which would end up in logs.
///
/// # Errors
/// The sentence of `say` for what is wrong.
pub fn check_server_url(uri: &str, say: &ServerUrlSentences) -> Result<Url, &'static str> {
    let url = Url::parse(uri).map_err(|_| say.not_absolute)?;
    if url.fragment().is_some() {
        return Err(say.fragment);
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(say.credentials);
    }
    match url.scheme() {
        "https" => Ok(url),
        "http" if is_loopback(&url) => Ok(url),
        _ => Err(say.not_https),
    }
}

/// Whether a URL's host is `localhost` or a loopback address.
fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(host)) => host == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// The `events` member that makes a JWT a logout token (Back-Channel Logout 1.0 §2.4).
pub const BACKCHANNEL_LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// How long a logout token may be used after it is signed: apps reject older ones, and a
/// retried delivery signs a fresh one.
pub const LOGOUT_TOKEN_LIFETIME_SECONDS: i64 = 120;

/// A session ended that an app got an ID token in: the app is to be told, over the back
/// channel. Queued in the outbox by the store in the transaction that ends the session; only
/// identifiers, which the grants table holds in the clear as well, so nothing in it is sealed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogoutNotice {
    /// The app to tell.
    pub client_id: ClientId,
    /// Whose session ended (the ID token's `sub`).
    pub user_id: UserId,
    /// The session that ended (the ID token's `sid`).
    pub session_id: SessionId,
}

/// The claims of a logout token (Back-Channel Logout 1.0 §2.4), before signing: `events` is
/// always [`BACKCHANNEL_LOGOUT_EVENT`] and there is never a `nonce`, so neither is a field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogoutTokenClaims {
    /// The issuer.
    pub iss: String,
    /// The user's id, as in the ID token.
    pub sub: String,
    /// The client.
    pub aud: String,
    /// Issued at, seconds since the epoch.
    pub iat: i64,
    /// Expiry: `iat` + [`LOGOUT_TOKEN_LIFETIME_SECONDS`].
    pub exp: i64,
    /// A fresh random id, so an app can refuse a replay.
    pub jti: String,
    /// The session, as in the ID token.
    pub sid: String,
}

/// An authorization code as stored: what its exchange must match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeGrant {
    /// The client it was issued to.
    pub client_id: ClientId,
    /// The redirect URI of the request, which the exchange must repeat.
    pub redirect_uri: String,
    /// The PKCE challenge, when the request carried one.
    pub challenge: Option<CodeChallenge>,
    /// The request's `nonce`, for the ID token.
    pub nonce: Option<String>,
    /// The scopes granted.
    pub scopes: Scopes,
    /// Who signed in.
    pub user_id: UserId,
    /// The magiclink session it was issued in (the ID token's `sid`).
    pub session_id: SessionId,
    /// When that session's sign-in happened.
    pub auth_time: DateTime<Utc>,
    /// How.
    pub method: SignInMethod,
    /// When the code stops working.
    pub expires: DateTime<Utc>,
}

/// The claims of an ID token (OpenID Connect Core §2, §5.1), before signing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdTokenClaims {
    /// The issuer (`server.base_url`).
    pub iss: String,
    /// The user's id: stable, never the address.
    pub sub: String,
    /// The client.
    pub aud: String,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
    /// Issued at.
    pub iat: i64,
    /// When the person signed in.
    pub auth_time: i64,
    /// The request's nonce, repeated.
    pub nonce: Option<String>,
    /// How the person signed in ([`amr`]).
    pub amr: Vec<&'static str>,
    /// The magiclink session (for logout).
    pub sid: String,
    /// With the `email` scope: the address and that it is verified.
    pub email: Option<(String, bool)>,
    /// With the `profile` scope: the display name, when one is set.
    pub name: Option<String>,
}

/// The claims of an RFC 9068 access token (`oidc.access_token_format = "jwt"`), before signing.
/// `jti` is the hex SHA-256 of the opaque token stored for it: the store finds the grant by it
/// (so revocation and a withdrawn consent end a JWT too), and it is not itself a bearer token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessTokenClaims {
    /// The issuer.
    pub iss: String,
    /// The user's id.
    pub sub: String,
    /// The client (also `aud`: the userinfo endpoint and the app's own API are its audience).
    pub client_id: String,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
    /// Issued at.
    pub iat: i64,
    /// When the person signed in.
    pub auth_time: i64,
    /// The token's id: the stored hash, hex.
    pub jti: String,
    /// The scopes granted, space-separated.
    pub scope: String,
}

/// How access tokens look to apps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessTokenFormat {
    /// 256 random bits; only the issuer can tell what they mean (at userinfo).
    Opaque,
    /// RFC 9068 JWTs (`typ: at+jwt`, RS256), which an app's API can check against the key set
    /// without asking; still backed by a stored hash, so userinfo honours revocation.
    Jwt,
}

/// The `amr` values (RFC 8176) of a sign-in method: the registered value where one fits
/// (`pwd` for a password, `otp` for the emailed code), magiclink's own name otherwise (`link`,
/// `passkey`: the registry has no value for "opened an emailed link", and `hwk` would claim a
/// hardware key for a passkey that may be synced in software).
pub fn amr(method: SignInMethod) -> Vec<&'static str> {
    match method {
        SignInMethod::Link => vec!["link"],
        SignInMethod::Code => vec!["otp"],
        SignInMethod::Password => vec!["pwd"],
        SignInMethod::Passkey => vec!["passkey"],
    }
}

/// What an ID token or userinfo says of a person, by the scopes granted: the address (always
/// verified: owning it is how people sign in here) with `email`, the name with `profile`.
pub fn person_claims(
    email: &EmailAddress,
    name: Option<&DisplayName>,
    scopes: &Scopes,
) -> (Option<(String, bool)>, Option<String>) {
    let email = scopes.contains(crate::oidc::Scope::Email).then(|| (email.as_str().to_owned(), true));
    let name = if scopes.contains(crate::oidc::Scope::Profile) { name.map(|n| n.as_str().to_owned()) } else { None };
    (email, name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_round_trip_hash_by_kind_and_never_show() {
        let code = AuthorizationCode::from_random_bytes([7; 32]);
        let again = AuthorizationCode::parse(&code.encode()).expect("round trip");
        assert!(again.hash().matches(&code.hash()));
        assert_eq!(code.encode().len(), 43);
        assert_eq!(format!("{code:?}"), "AuthorizationCode(***)");
        assert!(AuthorizationCode::parse("short").is_err());
        assert!(AuthorizationCode::parse(&format!("{}=", code.encode())).is_err());
        // The same bytes as another kind hash alike but cannot be compared: the types differ.
        assert_eq!(RefreshToken::from_random_bytes([7; 32]).hash().to_hex(), code.hash().to_hex());
    }

    #[test]
    fn client_ids_are_url_safe_and_bounded() {
        assert!(ClientId::parse("grafana").is_ok());
        assert!(ClientId::parse("my-app_2.prod").is_ok());
        for bad in ["", "with space", "a/b", "ünï", &"a".repeat(129), "a%20b"] {
            assert_eq!(ClientId::parse(bad), Err(MalformedClientId), "{bad:?}");
        }
        assert_eq!(ClientId::from_random_bytes([0xff; 16]).as_str().len(), 22);
    }

    #[test]
    fn a_client_secret_matches_only_itself_and_a_public_client_has_none() {
        let secret = ClientSecret::from_random_bytes([3; 32]);
        let mut client = Client {
            id: ClientId::parse("app").expect("id"),
            name: "App".to_owned(),
            kind: ClientKind::Confidential,
            secret_hash: Some(secret.hash()),
            redirect_uris: vec![],
            post_logout_redirect_uris: vec![],
            first_party: false,
            backchannel_logout_uri: None,
            id_token_algorithm: SigningAlgorithm::Rs256,
            from_config: false,
            created_at: DateTime::UNIX_EPOCH,
        };
        assert!(client.secret_matches(&secret.encode()));
        assert!(!client.secret_matches(&ClientSecret::from_random_bytes([4; 32]).encode()));
        assert!(!client.secret_matches(""));
        client.secret_hash = None;
        assert!(!client.secret_matches(&secret.encode()));
    }

    #[test]
    fn redirect_uris_are_https_loopback_or_an_apps_own_scheme() {
        for good in [
            "https://grafana.example.com/login/generic_oauth",
            "http://localhost:3000/api/auth/callback/magiclink",
            "http://127.0.0.1/callback",
            "http://[::1]:8080/cb",
            "com.example.app:/oauth2redirect",
        ] {
            assert!(check_redirect_uri(good).is_ok(), "{good}");
        }
        for bad in [
            "http://grafana.example.com/cb",
            "https://app.example.com/cb#frag",
            "javascript:alert(1)",
            "data:text/html,hi",
            "/relative/cb",
            "myapp:/cb",
        ] {
            assert!(check_redirect_uri(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn claims_follow_the_scopes_and_amr_the_method() {
        let email = EmailAddress::parse("Ada@Example.com").expect("address");
        let name = DisplayName::parse("Ada").expect("name");
        let both = Scopes::parse("openid email profile").expect("scopes");
        assert_eq!(
            person_claims(&email, name.as_ref(), &both),
            (Some((email.as_str().to_owned(), true)), Some("Ada".to_owned()))
        );
        assert_eq!(person_claims(&email, name.as_ref(), &Scopes::parse("openid").expect("scopes")), (None, None));
        assert_eq!(amr(SignInMethod::Password), vec!["pwd"]);
        assert_eq!(amr(SignInMethod::Link), vec!["link"]);
    }

    #[test]
    fn backchannel_logout_uris_are_https_or_loopback_http_without_fragment_or_credentials() {
        for good in
            ["https://app.example.com/backchannel-logout", "http://127.0.0.1:8080/logout", "http://localhost/bc"]
        {
            assert!(check_backchannel_logout_uri(good).is_ok(), "{good}");
        }
        for bad in [
            "http://app.example.com/logout",
            "https://app.example.com/logout#frag",
            "https://user:pw@app.example.com/logout",
            "com.example.app:/logout",
            "javascript:alert(1)",
            "/relative",
        ] {
            assert!(check_backchannel_logout_uri(bad).is_err(), "{bad}");
        }
    }
}
