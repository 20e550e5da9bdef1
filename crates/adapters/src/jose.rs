//! The OpenID Provider's [`TokenSigner`]: ID tokens as compact JWS with jsonwebtoken (on
//! ring), keys made on first need, stored sealed in the database so that every instance signs
//! with the same key, and published as a JWKS with the retired keys that may still have
//! tokens in circulation.
//!
//! Why keys live in the database and not in a file: instances behind a load balancer must
//! agree, or a token signed by one fails at a client that fetched the other's JWKS. Sealing
//! (XChaCha20-Poly1305 under a key derived from the server secret, bound to the key id) means
//! a copy of the database alone cannot sign.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Context as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, TimeDelta, Utc};
use domain::oidc::{
    AccessTokenClaims, ClientId, IdTokenClaims, LogoutTokenClaims, SigningAlgorithm, BACKCHANNEL_LOGOUT_EVENT,
};
use domain::secret::KeyPurpose;
use domain::SecretRing;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use ports::{Clock, IdTokenHint, SigningKeyAdded, SigningKeyStore, StoredSigningKey, TokenSigner};
use serde_json::json;
use tokio::sync::RwLock;

/// How long a loaded key set is trusted before it is read again, so that a key another
/// instance made or rotated in is picked up.
const RELOAD_AFTER: TimeDelta = TimeDelta::seconds(60);

/// The keys as loaded and opened.
struct Loaded {
    /// The key each algorithm signs with now: its id and private key.
    current: HashMap<SigningAlgorithm, (String, EncodingKey)>,
    /// Algorithms whose current key does not open under any configured secret (the secret
    /// changed without `previous_secrets`, or a development run's secret was ephemeral): a new
    /// key replaces it.
    sealed_away: Vec<SigningAlgorithm>,
    /// Every published key by id, to check a token's signature.
    verifying: HashMap<String, (Algorithm, DecodingKey)>,
    /// The JWKS document.
    key_set: String,
    /// When this was read.
    loaded_at: DateTime<Utc>,
}

/// Signs with keys from a [`SigningKeyStore`].
pub struct JoseSigner {
    keys: Arc<dyn SigningKeyStore>,
    secrets: SecretRing,
    clock: Arc<dyn Clock>,
    loaded: RwLock<Option<Arc<Loaded>>>,
}

impl JoseSigner {
    /// A signer over the stored keys, sealing under `secrets` (the current secret seals; any
    /// of them opens, so keys survive a rotation of the server secret).
    pub fn new(keys: Arc<dyn SigningKeyStore>, secrets: SecretRing, clock: Arc<dyn Clock>) -> Self {
        Self { keys, secrets, clock, loaded: RwLock::new(None) }
    }

    /// The keys, read again when older than [`RELOAD_AFTER`] or when `fresh` is asked for.
    async fn loaded(&self, fresh: bool) -> anyhow::Result<Arc<Loaded>> {
        let now = self.clock.now();
        if !fresh {
            if let Some(loaded) = self.loaded.read().await.as_ref() {
                if now - loaded.loaded_at < RELOAD_AFTER {
                    return Ok(Arc::clone(loaded));
                }
            }
        }
        let stored = self.keys.signing_keys().await?;
        let loaded = Arc::new(self.open(&stored, now)?);
        *self.loaded.write().await = Some(Arc::clone(&loaded));
        Ok(loaded)
    }

    fn open(&self, stored: &[StoredSigningKey], now: DateTime<Utc>) -> anyhow::Result<Loaded> {
        let mut current = HashMap::new();
        let mut sealed_away = Vec::new();
        let mut verifying = HashMap::new();
        let mut published = Vec::new();
        for key in stored {
            let jwk: serde_json::Value = serde_json::from_str(&key.public_jwk).context("a stored JWK is not JSON")?;
            let parsed: jsonwebtoken::jwk::Jwk =
                serde_json::from_value(jwk.clone()).context("a stored JWK is not a JWK")?;
            verifying.insert(key.kid.clone(), (algorithm(key.algorithm), DecodingKey::from_jwk(&parsed)?));
            published.push(jwk);
            if key.retired_at.is_none() {
                let private = self.secrets.all().find_map(|secret| {
                    domain::sealed::open_for(
                        KeyPurpose::SigningKey,
                        secret,
                        key.kid.as_bytes(),
                        &key.sealed_private_key,
                    )
                    .ok()
                });
                match private {
                    Some(private) => {
                        current.insert(key.algorithm, (key.kid.clone(), encoding_key(key.algorithm, &private)));
                    }
                    None => sealed_away.push(key.algorithm),
                }
            }
        }
        let key_set = json!({ "keys": published }).to_string();
        Ok(Loaded { current, sealed_away, verifying, key_set, loaded_at: now })
    }

    /// Makes, seals and stores a new key for `algorithm`.
    async fn make_key(
        &self,
        algorithm: SigningAlgorithm,
        retire_current: bool,
    ) -> anyhow::Result<(String, SigningKeyAdded)> {
        // RSA key generation takes a moment of CPU: off the async threads.
        let (private, public) =
            tokio::task::spawn_blocking(move || generate(algorithm)).await.context("key generation panicked")??;
        let kid = URL_SAFE_NO_PAD.encode(ports::random::os_random::<12>()?);
        let mut jwk = public;
        jwk["kid"] = json!(kid);
        jwk["use"] = json!("sig");
        jwk["alg"] = json!(algorithm.as_str());
        let nonce = ports::random::os_random::<{ domain::sealed::NONCE_BYTES }>()?;
        let sealed =
            domain::sealed::seal_for(KeyPurpose::SigningKey, self.secrets.current(), kid.as_bytes(), nonce, &private);
        let added = self
            .keys
            .add_signing_key(
                &StoredSigningKey {
                    kid: kid.clone(),
                    algorithm,
                    sealed_private_key: sealed,
                    public_jwk: jwk.to_string(),
                    created_at: self.clock.now(),
                    retired_at: None,
                },
                retire_current,
            )
            .await?;
        Ok((kid, added))
    }

    /// The current key of `algorithm`, made first if there is none.
    async fn current_key(&self, algorithm: SigningAlgorithm) -> anyhow::Result<(String, EncodingKey)> {
        let loaded = self.loaded(false).await?;
        if let Some(key) = loaded.current.get(&algorithm) {
            return Ok(key.clone());
        }
        // Another instance may have made one since this one last looked.
        let loaded = self.loaded(true).await?;
        if let Some(key) = loaded.current.get(&algorithm) {
            return Ok(key.clone());
        }
        let replace = loaded.sealed_away.contains(&algorithm);
        if replace {
            tracing::warn!(
                algorithm = algorithm.as_str(),
                "the current signing key does not open under any configured server secret (was AUTH_SECRET changed \
                 without listing the old one in previous_secrets?): a new key replaces it"
            );
        }
        // Added, or Raced (another instance stored its key first): either way the store now
        // has exactly one current key for the algorithm.
        self.make_key(algorithm, replace).await?;
        let loaded = self.loaded(true).await?;
        loaded.current.get(&algorithm).cloned().context("no current signing key after making one")
    }
}

impl JoseSigner {
    /// `claims` signed with the current key of `signing`, its id in the header, and `typ` when
    /// given (else jsonwebtoken's default, `JWT`, which ID tokens carry).
    async fn signed(
        &self,
        signing: SigningAlgorithm,
        typ: Option<&str>,
        claims: &serde_json::Value,
    ) -> anyhow::Result<String> {
        let (kid, key) = self.current_key(signing).await?;
        let mut header = Header::new(algorithm(signing));
        header.kid = Some(kid);
        if let Some(typ) = typ {
            header.typ = Some(typ.to_owned());
        }
        Ok(jsonwebtoken::encode(&header, claims, &key)?)
    }
}

/// The `typ` of an RFC 9068 access token.
const ACCESS_TOKEN_TYPE: &str = "at+jwt";

/// The `typ` of a logout token.
const LOGOUT_TOKEN_TYPE: &str = "logout+jwt";

impl JoseSigner {
    /// The claims of a token one of our keys signed for `issuer`: an access token (`typ`
    /// `at+jwt`, unexpired) when `access` is set, else an ID token (expired ones accepted: a
    /// logout hint may be old). `None` for anything else.
    async fn verified(&self, token: &str, issuer: &str, access: bool) -> anyhow::Result<Option<serde_json::Value>> {
        let Ok(header) = jsonwebtoken::decode_header(token) else { return Ok(None) };
        // Each kind of token by its type: an ID token carries the default (`JWT`, as
        // jsonwebtoken writes it) and never passes for an access or a logout token.
        let expected = if access { Some(ACCESS_TOKEN_TYPE) } else { Some("JWT") };
        if header.typ.as_deref() != expected {
            return Ok(None);
        }
        let Some(kid) = header.kid else { return Ok(None) };
        let mut loaded = self.loaded(false).await?;
        if !loaded.verifying.contains_key(&kid) {
            loaded = self.loaded(true).await?;
        }
        let Some((alg, key)) = loaded.verifying.get(&kid) else { return Ok(None) };
        if *alg != header.alg {
            return Ok(None);
        }
        let mut validation = Validation::new(*alg);
        // Expiry is checked below against the service's clock, not the library's.
        validation.validate_exp = false;
        validation.validate_aud = false;
        validation.required_spec_claims = ["iss", "sub", "aud", "exp"].into_iter().map(str::to_owned).collect();
        validation.set_issuer(&[issuer]);
        let Ok(data) = jsonwebtoken::decode::<serde_json::Value>(token, key, &validation) else { return Ok(None) };
        // RP-Initiated Logout §2: an expired ID token is still a fine hint; an access token
        // must be live.
        let live = data.claims["exp"].as_i64().is_some_and(|exp| exp > self.clock.now().timestamp());
        Ok((!access || live).then_some(data.claims))
    }
}

/// jsonwebtoken's name for an algorithm.
fn algorithm(algorithm: SigningAlgorithm) -> Algorithm {
    match algorithm {
        SigningAlgorithm::Rs256 => Algorithm::RS256,
        SigningAlgorithm::Es256 => Algorithm::ES256,
        SigningAlgorithm::EdDsa => Algorithm::EdDSA,
    }
}

/// The private key as jsonwebtoken takes it: PKCS#1 DER for RSA, PKCS#8 DER for the others.
fn encoding_key(algorithm: SigningAlgorithm, private: &[u8]) -> EncodingKey {
    match algorithm {
        SigningAlgorithm::Rs256 => EncodingKey::from_rsa_der(private),
        SigningAlgorithm::Es256 => EncodingKey::from_ec_der(private),
        SigningAlgorithm::EdDsa => EncodingKey::from_ed_der(private),
    }
}

/// A new key pair: the private key's DER (see [`encoding_key`]) and the public JWK's
/// key-specific members.
fn generate(algorithm: SigningAlgorithm) -> anyhow::Result<(Vec<u8>, serde_json::Value)> {
    use ring::signature::{EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, ECDSA_P256_SHA256_FIXED_SIGNING};
    let random = ring::rand::SystemRandom::new();
    let unspecified = |_| anyhow::anyhow!("the system random generator failed");
    match algorithm {
        SigningAlgorithm::Rs256 => {
            use rsa::pkcs1::EncodeRsaPrivateKey as _;
            use rsa::traits::PublicKeyParts as _;
            let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).context("cannot make an RSA key")?;
            let der = key.to_pkcs1_der().context("cannot encode the RSA key")?.as_bytes().to_vec();
            let jwk = json!({
                "kty": "RSA",
                "n": URL_SAFE_NO_PAD.encode(key.n().to_bytes_be()),
                "e": URL_SAFE_NO_PAD.encode(key.e().to_bytes_be()),
            });
            Ok((der, jwk))
        }
        SigningAlgorithm::Es256 => {
            let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &random).map_err(unspecified)?;
            let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &random)
                .map_err(|_| anyhow::anyhow!("ring refused its own P-256 key"))?;
            // The uncompressed point: 0x04, then x and y, 32 bytes each.
            let point = pair.public_key().as_ref();
            anyhow::ensure!(point.len() == 65, "a P-256 public key is 65 bytes");
            let jwk = json!({
                "kty": "EC",
                "crv": "P-256",
                "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
                "y": URL_SAFE_NO_PAD.encode(&point[33..]),
            });
            Ok((pkcs8.as_ref().to_vec(), jwk))
        }
        SigningAlgorithm::EdDsa => {
            let pkcs8 = Ed25519KeyPair::generate_pkcs8(&random).map_err(unspecified)?;
            let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref())
                .map_err(|_| anyhow::anyhow!("ring refused its own Ed25519 key"))?;
            let jwk = json!({
                "kty": "OKP",
                "crv": "Ed25519",
                "x": URL_SAFE_NO_PAD.encode(pair.public_key().as_ref()),
            });
            Ok((pkcs8.as_ref().to_vec(), jwk))
        }
    }
}

/// The ID token as JSON: the optional claims only when present.
fn claims_json(claims: &IdTokenClaims) -> serde_json::Value {
    let mut json = json!({
        "iss": claims.iss,
        "sub": claims.sub,
        "aud": claims.aud,
        "exp": claims.exp,
        "iat": claims.iat,
        "auth_time": claims.auth_time,
        "amr": claims.amr,
        "sid": claims.sid,
    });
    if let Some(nonce) = &claims.nonce {
        json["nonce"] = json!(nonce);
    }
    if let Some((email, verified)) = &claims.email {
        json["email"] = json!(email);
        json["email_verified"] = json!(verified);
    }
    if let Some(name) = &claims.name {
        json["name"] = json!(name);
    }
    json
}

#[async_trait::async_trait]
impl TokenSigner for JoseSigner {
    async fn sign_id_token(&self, claims: &IdTokenClaims, signing: SigningAlgorithm) -> anyhow::Result<String> {
        self.signed(signing, None, &claims_json(claims)).await.context("cannot sign the ID token")
    }

    async fn sign_access_token(&self, claims: &AccessTokenClaims) -> anyhow::Result<String> {
        let json = json!({
            "iss": claims.iss,
            "sub": claims.sub,
            "aud": claims.client_id,
            "client_id": claims.client_id,
            "exp": claims.exp,
            "iat": claims.iat,
            "auth_time": claims.auth_time,
            "jti": claims.jti,
            "scope": claims.scope,
        });
        // RFC 9068 §2.1: the type tells an access token from an ID token signed by the same key.
        self.signed(SigningAlgorithm::Rs256, Some(ACCESS_TOKEN_TYPE), &json)
            .await
            .context("cannot sign the access token")
    }

    async fn sign_logout_token(&self, claims: &LogoutTokenClaims, signing: SigningAlgorithm) -> anyhow::Result<String> {
        let json = json!({
            "iss": claims.iss,
            "sub": claims.sub,
            "aud": claims.aud,
            "iat": claims.iat,
            "exp": claims.exp,
            "jti": claims.jti,
            "sid": claims.sid,
            "events": { BACKCHANNEL_LOGOUT_EVENT: {} },
        });
        // Back-Channel Logout 1.0 §2.4: the explicit type keeps a logout token from being
        // taken for an ID token, and the other way round (a logout token has no nonce either).
        self.signed(signing, Some(LOGOUT_TOKEN_TYPE), &json).await.context("cannot sign the logout token")
    }

    async fn check_access_token(&self, token: &str, issuer: &str) -> anyhow::Result<Option<String>> {
        let Some(claims) = self.verified(token, issuer, true).await? else { return Ok(None) };
        Ok(claims["jti"].as_str().map(str::to_owned))
    }

    async fn key_set(&self) -> anyhow::Result<String> {
        // Clients fetch the keys before the first token, sometimes: RS256's exists from then on.
        self.current_key(SigningAlgorithm::Rs256).await?;
        Ok(self.loaded(false).await?.key_set.clone())
    }

    async fn check_id_token_hint(&self, token: &str, issuer: &str) -> anyhow::Result<Option<IdTokenHint>> {
        let Some(claims) = self.verified(token, issuer, false).await? else { return Ok(None) };
        let client_id = claims["aud"].as_str().and_then(|aud| ClientId::parse(aud).ok());
        let user_id = claims["sub"].as_str().and_then(|sub| domain::UserId::parse(sub).ok());
        Ok(client_id.zip(user_id).map(|(client_id, user_id)| IdTokenHint { client_id, user_id }))
    }

    async fn rotate(&self, _now: DateTime<Utc>) -> anyhow::Result<Vec<String>> {
        let mut kids = Vec::new();
        for signing in SigningAlgorithm::ALL {
            let (kid, _) = self.make_key(signing, true).await?;
            kids.push(kid);
        }
        self.loaded(true).await?;
        Ok(kids)
    }
}
