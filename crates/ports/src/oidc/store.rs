//! The OpenID Provider's storage ports: registered clients, the grants issued to them (codes,
//! token families, remembered consents), and the sealed signing keys; and the [`TokenSigner`]
//! that turns claims into signed ID tokens. Which JOSE library signs, and how a key is sealed,
//! are the adapters' business.

use chrono::{DateTime, Utc};
use domain::oidc::{
    AccessTokenClaims, AccessTokenHash, AuthorizationCodeHash, Client, ClientId, ClientSecretHash, CodeGrant,
    IdTokenClaims, LogoutTokenClaims, RefreshTokenHash, Scopes, SigningAlgorithm,
};
use domain::{SessionId, SignInMethod, User, UserId};

/// Marks grant ids.
#[derive(Debug)]
pub enum GrantKind {}

/// A grant's id: one code exchange and every token descended from it (the refresh-token
/// family), revoked together.
pub type GrantId = domain::id::Id<GrantKind>;

/// What [`ClientStore::add_client`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientAdded {
    /// Registered.
    Added,
    /// A client with this id exists; nothing changed.
    IdTaken,
}

/// Stores registered clients.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait::async_trait]
pub trait ClientStore: Send + Sync {
    /// Registers a client, unless its id is taken (the unique key decides).
    ///
    /// # Errors
    /// MUST fail if it could not be stored durably.
    async fn add_client(&self, client: &Client) -> anyhow::Result<ClientAdded>;

    /// The client with this id, if any.
    ///
    /// # Errors
    /// MUST fail only on a storage failure, never to say "not found".
    async fn find_client(&self, id: &ClientId) -> anyhow::Result<Option<Client>>;

    /// Every client, by id.
    ///
    /// # Errors
    /// MUST fail only on a storage failure.
    async fn list_clients(&self) -> anyhow::Result<Vec<Client>>;

    /// Removes the client and everything issued to it (codes, grants, tokens, consents);
    /// `false` when there was none.
    ///
    /// # Errors
    /// MUST fail only on a storage failure.
    async fn remove_client(&self, id: &ClientId) -> anyhow::Result<bool>;

    /// Makes the clients listed in the configuration (`from_config`) exactly `clients`, in one
    /// transaction: each is added, or updated in place (its grants and consents kept), and a
    /// configured client no longer listed is removed with everything issued to it. A client
    /// registered by command with a listed id becomes the configured one.
    ///
    /// # Errors
    /// MUST fail only on a storage failure (then nothing changed).
    async fn sync_configured_clients(&self, clients: &[Client]) -> anyhow::Result<()>;

    /// Replaces a confidential client's secret; `false` when there is no such client.
    ///
    /// # Errors
    /// MUST fail only on a storage failure.
    async fn set_client_secret(&self, id: &ClientId, secret_hash: &ClientSecretHash) -> anyhow::Result<bool>;
}

/// An authorization code to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCode {
    /// The code's hash.
    pub hash: AuthorizationCodeHash,
    /// What its exchange must match, and what it grants.
    pub grant: CodeGrant,
    /// When it was issued.
    pub created_at: DateTime<Utc>,
}

/// What [`GrantStore::redeem_code`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeRedeemed {
    /// First use: the code is spent, and the grant it opened exists (not revoked), with this
    /// id, for the tokens about to be issued. Expiry is the caller's to check.
    Redeemed(Box<CodeGrant>, GrantId),
    /// Used before: the grant of its first use, and every token issued under it, is revoked
    /// now (RFC 6749 §4.1.2: a code used twice may have been stolen).
    Reused,
    /// No such code (never issued, or purged).
    Unknown,
}

/// A grant and its person, as a token presented at userinfo or for refresh finds them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveGrant {
    /// The grant.
    pub id: GrantId,
    /// Its client.
    pub client_id: ClientId,
    /// The person, as they are now (a changed address or name shows).
    pub user: User,
    /// The scopes granted.
    pub scopes: Scopes,
    /// The magiclink session it was issued in.
    pub session_id: SessionId,
    /// When the person signed in.
    pub auth_time: DateTime<Utc>,
    /// How.
    pub method: SignInMethod,
}

/// Tokens to store under a grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTokens {
    /// The access token's hash, and when it expires.
    pub access: (AccessTokenHash, DateTime<Utc>),
    /// The refresh token's hash and expiry, with `offline_access`.
    pub refresh: Option<(RefreshTokenHash, DateTime<Utc>)>,
    /// When they were issued.
    pub created_at: DateTime<Utc>,
}

/// What [`GrantStore::rotate_refresh_token`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshRotated {
    /// The token was live and is spent; `replacement` is stored under the same grant.
    Rotated(Box<LiveGrant>),
    /// The token was spent before: a copy is in someone else's hands, so the whole family
    /// (its grant and every token under it) is revoked now.
    Reused,
    /// No such token, or it expired, or its grant was revoked (signed out of the app, consent
    /// withdrawn, a reuse detected).
    Invalid,
}

/// A remembered consent: a person let a client have these scopes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consent {
    /// The client.
    pub client_id: ClientId,
    /// Its name, for the account page.
    pub client_name: String,
    /// What was let through.
    pub scopes: Scopes,
    /// When.
    pub granted_at: DateTime<Utc>,
}

/// Stores what the provider issues: codes, grants and their tokens, consents.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait::async_trait]
pub trait GrantStore: Send + Sync {
    /// Stores an authorization code.
    ///
    /// # Errors
    /// MUST fail if it could not be stored durably.
    async fn save_code(&self, code: &NewCode) -> anyhow::Result<()>;

    /// Spends the code `hash`, atomically: of concurrent calls at most one sees
    /// [`CodeRedeemed::Redeemed`], and it also stores the code's grant in the same
    /// transaction, so a reuse arriving at any later moment finds the grant to revoke.
    ///
    /// # Errors
    /// MUST fail only on a storage failure (then nothing changed).
    async fn redeem_code(&self, hash: &AuthorizationCodeHash, now: DateTime<Utc>) -> anyhow::Result<CodeRedeemed>;

    /// Stores tokens under the grant `grant_id`.
    ///
    /// # Errors
    /// MUST fail if they could not be stored durably.
    async fn save_tokens(&self, grant_id: &GrantId, tokens: &NewTokens) -> anyhow::Result<()>;

    /// The live grant an access token belongs to: `None` when the token is unknown, expired at
    /// `now`, or its grant revoked.
    ///
    /// # Errors
    /// MUST fail only on a storage failure.
    async fn find_access_token(&self, hash: &AccessTokenHash, now: DateTime<Utc>) -> anyhow::Result<Option<LiveGrant>>;

    /// Spends the refresh token `hash` of `client_id` and stores `replacement` (new access and
    /// refresh tokens) under its grant, atomically: of concurrent calls at most one rotates.
    /// A token of another client is [`RefreshRotated::Invalid`] and changes nothing.
    ///
    /// # Errors
    /// MUST fail only on a storage failure (then nothing changed).
    async fn rotate_refresh_token(
        &self,
        client_id: &ClientId,
        hash: &RefreshTokenHash,
        replacement: &NewTokens,
        now: DateTime<Utc>,
    ) -> anyhow::Result<RefreshRotated>;

    /// Revokes the grant of the refresh token `hash` if it is `client_id`'s (RFC 7009: with
    /// it, every token of its family). Unknown tokens change nothing.
    ///
    /// # Errors
    /// MUST fail only on a storage failure.
    async fn revoke_refresh_token(
        &self,
        client_id: &ClientId,
        hash: &RefreshTokenHash,
        now: DateTime<Utc>,
    ) -> anyhow::Result<()>;

    /// Deletes the access token `hash` if it is `client_id`'s. Unknown tokens change nothing.
    ///
    /// # Errors
    /// MUST fail only on a storage failure.
    async fn revoke_access_token(&self, client_id: &ClientId, hash: &AccessTokenHash) -> anyhow::Result<()>;

    /// The scopes `user_id` let `client_id` have, if they consented before.
    ///
    /// # Errors
    /// MUST fail only on a storage failure.
    async fn find_consent(&self, user_id: &UserId, client_id: &ClientId) -> anyhow::Result<Option<Scopes>>;

    /// Remembers that `user_id` let `client_id` have `scopes` (replacing an earlier consent).
    ///
    /// # Errors
    /// MUST fail if it could not be stored durably.
    async fn save_consent(
        &self,
        user_id: &UserId,
        client_id: &ClientId,
        scopes: &Scopes,
        now: DateTime<Utc>,
    ) -> anyhow::Result<()>;

    /// The person's consents, newest first, with the clients' names.
    ///
    /// # Errors
    /// MUST fail only on a storage failure.
    async fn list_consents(&self, user_id: &UserId) -> anyhow::Result<Vec<Consent>>;

    /// Forgets the person's consent to `client_id` and revokes every grant of theirs to it
    /// (its refresh tokens stop working), atomically. `false` when there was no consent and no
    /// grant.
    ///
    /// # Errors
    /// MUST fail only on a storage failure.
    async fn revoke_consent(&self, user_id: &UserId, client_id: &ClientId, now: DateTime<Utc>) -> anyhow::Result<bool>;

    /// Deletes codes and tokens that expired before `cutoff`, and grants revoked before it,
    /// returning how many rows.
    ///
    /// # Errors
    /// MUST fail only on a storage failure.
    async fn purge_expired_grants(&self, cutoff: DateTime<Utc>) -> anyhow::Result<u64>;
}

/// A signing key as stored: the private half sealed (the adapter seals it under the server
/// secret), the public half as a JWK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSigningKey {
    /// The key id (`kid`).
    pub kid: String,
    /// What it signs with.
    pub algorithm: SigningAlgorithm,
    /// The sealed private key.
    pub sealed_private_key: Vec<u8>,
    /// The public key, a JWK's JSON text.
    pub public_jwk: String,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When a newer key replaced it for signing; it stays published until every token it
    /// signed has expired.
    pub retired_at: Option<DateTime<Utc>>,
}

/// What [`SigningKeyStore::add_signing_key`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SigningKeyAdded {
    /// Stored; it is the current key of its algorithm.
    Added,
    /// Another instance stored a current key of this algorithm first: use that one.
    Raced,
}

/// Stores the provider's signing keys, shared by every instance.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait::async_trait]
pub trait SigningKeyStore: Send + Sync {
    /// Every key, current and retired, newest first.
    ///
    /// # Errors
    /// MUST fail only on a storage failure.
    async fn signing_keys(&self) -> anyhow::Result<Vec<StoredSigningKey>>;

    /// Stores a new current key for its algorithm: when `retire_current` is set, the current
    /// key of that algorithm is retired in the same transaction (a rotation); otherwise the
    /// key is stored only if there is no current key yet, so of instances racing to make the
    /// first key, one wins and the rest get [`SigningKeyAdded::Raced`].
    ///
    /// # Errors
    /// MUST fail if it could not be stored durably.
    async fn add_signing_key(&self, key: &StoredSigningKey, retire_current: bool) -> anyhow::Result<SigningKeyAdded>;

    /// Deletes keys retired before `cutoff` (every token they signed has expired), returning
    /// how many.
    ///
    /// # Errors
    /// MUST fail only on a storage failure.
    async fn delete_retired_keys(&self, cutoff: DateTime<Utc>) -> anyhow::Result<u64>;
}

/// The claims of an ID token hint that check out: signed by one of our keys, issued by us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdTokenHint {
    /// The client it was issued to.
    pub client_id: ClientId,
    /// The person.
    pub user_id: UserId,
}

/// Signs ID tokens and publishes the public keys.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait::async_trait]
pub trait TokenSigner: Send + Sync {
    /// The claims, signed with the current key of `algorithm` (made and stored on first use),
    /// as a compact JWS.
    ///
    /// # Errors
    /// On a storage failure, or a stored key that does not open under the server secret.
    async fn sign_id_token(&self, claims: &IdTokenClaims, algorithm: SigningAlgorithm) -> anyhow::Result<String>;

    /// An RFC 9068 access token: the claims signed with the current RS256 key, `typ` `at+jwt`.
    ///
    /// # Errors
    /// As [`TokenSigner::sign_id_token`].
    async fn sign_access_token(&self, claims: &AccessTokenClaims) -> anyhow::Result<String>;

    /// A logout token (Back-Channel Logout 1.0 §2.4): the claims with `events` set, signed
    /// with the current key of `algorithm` (the app's ID-token algorithm), `typ` `logout+jwt`.
    ///
    /// # Errors
    /// As [`TokenSigner::sign_id_token`].
    async fn sign_logout_token(
        &self,
        claims: &LogoutTokenClaims,
        algorithm: SigningAlgorithm,
    ) -> anyhow::Result<String>;

    /// The `jti` of an access token this provider signed for `issuer` and that has not expired;
    /// `None` for anything else (a forged, foreign, expired token, or an ID token).
    ///
    /// # Errors
    /// On a storage failure.
    async fn check_access_token(&self, token: &str, issuer: &str) -> anyhow::Result<Option<String>>;

    /// The JSON Web Key Set: every current and retired public key.
    ///
    /// # Errors
    /// On a storage failure.
    async fn key_set(&self) -> anyhow::Result<String>;

    /// Checks an `id_token_hint`: `None` unless one of our keys signed it and `issuer` issued
    /// it (an expired token is accepted, as OpenID Connect RP-Initiated Logout §2 allows).
    ///
    /// # Errors
    /// On a storage failure.
    async fn check_id_token_hint(&self, token: &str, issuer: &str) -> anyhow::Result<Option<IdTokenHint>>;

    /// Makes a new current key for every algorithm, retiring the old ones (they stay published
    /// until what they signed has expired). Returns the new key ids.
    ///
    /// # Errors
    /// On a storage failure.
    async fn rotate(&self, now: DateTime<Utc>) -> anyhow::Result<Vec<String>>;
}
