//! The pure rules of magiclink's OpenID Provider role (issue 23), with no I/O: PKCE (RFC 7636,
//! S256 only), exact redirect-URI matching with RFC 8252's loopback-port rule, and the scopes a
//! request may ask for. The authorization endpoint, the token endpoint and the stores build on
//! these; each rule is here once so that every endpoint applies it the same way.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;
use url::{Host, Url};

pub mod grant;

pub use grant::{
    amr, check_backchannel_logout_uri, check_client_name, check_redirect_uri, person_claims, AccessToken,
    AccessTokenClaims, AccessTokenFormat, AccessTokenHash, AuthorizationCode, AuthorizationCodeHash, Client, ClientId,
    ClientKind, ClientSecret, ClientSecretHash, CodeGrant, IdTokenClaims, LogoutNotice, LogoutTokenClaims,
    MalformedClientId, RefreshToken, RefreshTokenHash, SigningAlgorithm, BACKCHANNEL_LOGOUT_EVENT,
    LOGOUT_TOKEN_LIFETIME_SECONDS,
};

/// Why a PKCE value or method was refused; each is `invalid_request` (at the authorization
/// endpoint) or `invalid_grant` (at the token endpoint) to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PkceRefusal {
    /// `code_challenge_method` is `plain` or unknown: only `S256` is accepted (RFC 9700 §2.1.1:
    /// `plain` protects nothing against an attacker who can read the authorization request).
    #[error("code_challenge_method must be S256")]
    MethodNotS256,
    /// The challenge is not the base64url of 32 bytes (43 characters).
    #[error("code_challenge is not a base64url SHA-256")]
    MalformedChallenge,
    /// The verifier is not 43 to 128 unreserved characters (RFC 7636 §4.1).
    #[error("code_verifier must be 43 to 128 characters of [A-Z a-z 0-9 - . _ ~]")]
    MalformedVerifier,
}

/// A PKCE code challenge, S256: the base64url SHA-256 of the client's verifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeChallenge([u8; 32]);

impl CodeChallenge {
    /// The challenge and method of an authorization request. A missing method means `plain`
    /// (RFC 7636 §4.3), which is refused like any method but `S256`.
    ///
    /// # Errors
    /// A [`PkceRefusal`].
    pub fn parse(challenge: &str, method: Option<&str>) -> Result<Self, PkceRefusal> {
        if method != Some("S256") {
            return Err(PkceRefusal::MethodNotS256);
        }
        if challenge.len() != 43 {
            return Err(PkceRefusal::MalformedChallenge);
        }
        let bytes = URL_SAFE_NO_PAD.decode(challenge).map_err(|_| PkceRefusal::MalformedChallenge)?;
        bytes.try_into().map(Self).map_err(|_| PkceRefusal::MalformedChallenge)
    }

    /// The stored form: the challenge as the client sent it.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0)
    }

    /// Whether `verifier` is the one this challenge was made from, compared in constant time.
    ///
    /// # Errors
    /// [`PkceRefusal::MalformedVerifier`] when the verifier breaks RFC 7636's syntax.
    pub fn verify(&self, verifier: &str) -> Result<bool, PkceRefusal> {
        let well_formed = (43..=128).contains(&verifier.len())
            && verifier.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
        if !well_formed {
            return Err(PkceRefusal::MalformedVerifier);
        }
        let computed: [u8; 32] = Sha256::digest(verifier.as_bytes()).into();
        Ok(computed.ct_eq(&self.0).into())
    }
}

/// Whether `requested` is one of a client's registered redirect URIs: compared exactly (no
/// prefix, no wildcard, no normalisation beyond URL parsing), except that for a registered
/// loopback IP literal over http (`http://127.0.0.1/...`, `http://[::1]/...`) any port is
/// accepted, as RFC 8252 §7.3 asks for native apps, which listen on a port the system gives
/// them. `localhost` gets no such rule (RFC 8252 §8.3: it may resolve elsewhere).
pub fn redirect_uri_matches(registered: &[Url], requested: &str) -> bool {
    let Ok(requested_url) = Url::parse(requested) else { return false };
    registered.iter().any(|allowed| {
        if allowed.as_str() == requested {
            return true;
        }
        let loopback_ip = match allowed.host() {
            Some(Host::Ipv4(ip)) => ip.is_loopback(),
            Some(Host::Ipv6(ip)) => ip.is_loopback(),
            _ => false,
        };
        let loopback = allowed.scheme() == "http" && loopback_ip;
        if !loopback {
            return false;
        }
        let mut without_port = requested_url.clone();
        if without_port.set_port(allowed.port()).is_err() {
            return false;
        }
        // The requested URI must differ from the registered one in its port alone.
        without_port.as_str() == allowed.as_str() && requested_url.host() == allowed.host()
    })
}

/// A scope magiclink knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    /// An OpenID Connect request (required).
    OpenId,
    /// `email` and `email_verified` in the ID token and userinfo.
    Email,
    /// `name` in the ID token and userinfo.
    Profile,
    /// A refresh token.
    OfflineAccess,
}

impl Scope {
    /// The scope's name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::OpenId => "openid",
            Scope::Email => "email",
            Scope::Profile => "profile",
            Scope::OfflineAccess => "offline_access",
        }
    }

    fn parse(name: &str) -> Option<Self> {
        [Scope::OpenId, Scope::Email, Scope::Profile, Scope::OfflineAccess].into_iter().find(|s| s.as_str() == name)
    }
}

/// The scopes of a request, known ones only, each once, in a fixed order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scopes(Vec<Scope>);

/// The `scope` parameter lacks `openid`: not an OpenID Connect request (`invalid_scope`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the scope must include openid")]
pub struct NotOpenId;

impl Scopes {
    /// The scopes of a space-separated `scope` parameter. Unknown names are dropped, as OpenID
    /// Connect Core §3.1.2.1 asks ("scope values ... not understood ... SHOULD be ignored").
    ///
    /// # Errors
    /// [`NotOpenId`] without `openid`.
    pub fn parse(parameter: &str) -> Result<Self, NotOpenId> {
        let mut scopes: Vec<Scope> = parameter.split(' ').filter_map(Scope::parse).collect();
        scopes.sort_unstable();
        scopes.dedup();
        if scopes.first() != Some(&Scope::OpenId) {
            return Err(NotOpenId);
        }
        Ok(Self(scopes))
    }

    /// Whether `scope` was granted.
    pub fn contains(&self, scope: Scope) -> bool {
        self.0.contains(&scope)
    }

    /// The scopes, in their fixed order (`openid` first).
    pub fn iter(&self) -> impl Iterator<Item = Scope> + '_ {
        self.0.iter().copied()
    }

    /// Whether every scope of `other` is among these.
    pub fn includes(&self, other: &Scopes) -> bool {
        other.0.iter().all(|scope| self.0.contains(scope))
    }

    /// The space-separated form, as stored and as the token response states it.
    pub fn to_parameter(&self) -> String {
        self.0.iter().map(|scope| scope.as_str()).collect::<Vec<_>>().join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7636 Appendix B's example.
    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    #[test]
    fn the_rfc_7636_example_verifies_and_nothing_else_does() {
        let challenge = CodeChallenge::parse(CHALLENGE, Some("S256")).expect("S256");
        assert_eq!(challenge.encode(), CHALLENGE);
        assert_eq!(challenge.verify(VERIFIER), Ok(true));
        let other = format!("{}A", &VERIFIER[..42]);
        assert_eq!(challenge.verify(&other), Ok(false));
        for malformed in ["short", &"a".repeat(129), &format!("{}!", &VERIFIER[..42]), &format!("{VERIFIER} ")] {
            assert_eq!(challenge.verify(malformed), Err(PkceRefusal::MalformedVerifier), "{malformed:?}");
        }
    }

    #[test]
    fn plain_and_missing_methods_and_malformed_challenges_are_refused() {
        assert_eq!(CodeChallenge::parse(CHALLENGE, Some("plain")), Err(PkceRefusal::MethodNotS256));
        assert_eq!(CodeChallenge::parse(CHALLENGE, None), Err(PkceRefusal::MethodNotS256));
        assert_eq!(CodeChallenge::parse(CHALLENGE, Some("s256")), Err(PkceRefusal::MethodNotS256));
        for bad in ["", &CHALLENGE[..42], &format!("{CHALLENGE}A"), &CHALLENGE.replace('-', "+")] {
            assert_eq!(CodeChallenge::parse(bad, Some("S256")), Err(PkceRefusal::MalformedChallenge), "{bad:?}");
        }
    }

    fn registered(uris: &[&str]) -> Vec<Url> {
        uris.iter().map(|uri| Url::parse(uri).expect("a URL")).collect()
    }

    #[test]
    fn redirect_uris_match_exactly() {
        let app = registered(&["https://app.example.com/oauth/callback"]);
        assert!(redirect_uri_matches(&app, "https://app.example.com/oauth/callback"));
        for other in [
            "https://app.example.com/oauth/callback/",
            "https://app.example.com/oauth/callback?x=1",
            "https://app.example.com/oauth/callback#x",
            "https://app.example.com/oauth/callbackx",
            "https://app.example.com:444/oauth/callback",
            "http://app.example.com/oauth/callback",
            "https://evil.example.com/oauth/callback",
            "https://app.example.com.evil.example/oauth/callback",
            "https://APP.example.com/oauth/Callback",
            "/oauth/callback",
            "not a url",
        ] {
            assert!(!redirect_uri_matches(&app, other), "{other}");
        }
    }

    #[test]
    fn a_loopback_ip_redirect_uri_takes_any_port_and_nothing_else_differs() {
        let native = registered(&["http://127.0.0.1/callback", "http://[::1]:8000/cb"]);
        assert!(redirect_uri_matches(&native, "http://127.0.0.1:51004/callback"));
        assert!(redirect_uri_matches(&native, "http://127.0.0.1/callback"));
        assert!(redirect_uri_matches(&native, "http://[::1]:9/cb"));
        for other in [
            "http://127.0.0.1:51004/other",
            "http://127.0.0.2:51004/callback",
            "https://127.0.0.1:51004/callback",
            "http://localhost:51004/callback",
            "http://127.0.0.1:51004/callback?code=injected",
        ] {
            assert!(!redirect_uri_matches(&native, other), "{other}");
        }
        let named = registered(&["http://localhost:3000/cb"]);
        assert!(!redirect_uri_matches(&named, "http://localhost:3001/cb"), "localhost gets no port rule");
    }

    #[test]
    fn scopes_need_openid_keep_known_names_once_and_drop_the_rest() {
        let scopes = Scopes::parse("email openid  openid profile calendar offline_access").expect("openid");
        assert_eq!(scopes.to_parameter(), "openid email profile offline_access");
        assert!(scopes.contains(Scope::Email) && !Scopes::parse("openid").expect("ok").contains(Scope::Email));
        assert_eq!(Scopes::parse("email profile"), Err(NotOpenId));
        assert_eq!(Scopes::parse(""), Err(NotOpenId));
        assert_eq!(Scopes::parse("OPENID"), Err(NotOpenId), "scope names are case-sensitive");
    }
}
