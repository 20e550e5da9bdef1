//! The storage ports: users, magic links (Auth.js's "verification tokens") and sessions.
//!
//! Every method returns `anyhow::Result` for infrastructure failures only. Outcomes a caller acts
//! on (a link already used, a session not found) are values, never errors, and an outage is
//! never reported as "not found".

use chrono::{DateTime, Utc};
use domain::{
    CeremonyHash, CredentialId, DisplayName, EmailAddress, LinkTokenHash, OutboxId, Passkey, PasskeyId, PasskeyName,
    PasswordHash, Session, SessionId, SessionSummary, SessionTokenHash, SignInCodeHash, SignInMethod, User, UserHandle,
    UserId,
};

use crate::outbox::NewOutboxMessage;
use domain::audit::AuditEvent;

/// A link about to be stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewLink {
    /// The address the link signs in (Auth.js's `identifier`).
    pub identifier: EmailAddress,
    /// The keyed hash of the token; the plain token is never stored.
    pub token_hash: LinkTokenHash,
    /// The keyed hash of the short code sent with the link, bound to this link.
    pub code_hash: SignInCodeHash,
    /// When the link stops working.
    pub expires: DateTime<Utc>,
    /// When the link was issued.
    pub created_at: DateTime<Utc>,
}

/// The session a redemption opens when it succeeds, stored in the same transaction that marks
/// the link used: a link is used exactly when its session exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionDraft {
    /// SHA-256 of the new cookie token.
    pub token_hash: SessionTokenHash,
    /// When the session will stop working.
    pub expires: DateTime<Utc>,
    /// The browser's `User-Agent`, so people can tell their sessions apart later.
    pub user_agent: Option<String>,
    /// How the person signed in.
    pub method: SignInMethod,
    /// The sign-in's audit event, written with the session; the store fills in the user and
    /// the session, and adds a `user.created` event when it created the user.
    pub audit: AuditEvent,
}

/// What a successful redemption stored: the person's user (created on their first sign-in,
/// its address marked verified) and their new session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedInRecord {
    /// Who signed in.
    pub user: User,
    /// The session just opened.
    pub session: Session,
}

/// What became of an attempt to redeem a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redemption {
    /// The link was unused and unexpired, and is now marked used; this caller, and no other,
    /// signed the person in: their user and new session were stored with the link's use.
    Redeemed(SignedInRecord),
    /// The link exists but was redeemed before.
    AlreadyUsed,
    /// The link exists, unused, but a newer link to the same address replaced it.
    Replaced,
    /// The link exists, unused, but its time is up.
    Expired,
    /// No link has this hash for this address.
    Unknown,
}

/// A requested change of an account's sign-in address, about to be stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAddressChange {
    /// The keyed hash of the token in the confirmation link; the plain token is never stored.
    pub token_hash: LinkTokenHash,
    /// Whose address changes.
    pub user_id: UserId,
    /// The address it becomes once confirmed.
    pub new_email: EmailAddress,
    /// When the confirmation link stops working.
    pub expires: DateTime<Utc>,
    /// When it was requested.
    pub created_at: DateTime<Utc>,
}

/// A stored address change, as a confirmation link finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingAddressChange {
    /// Whose address it changes.
    pub user_id: UserId,
    /// The address it becomes.
    pub new_email: EmailAddress,
    /// When the link stops working.
    pub expires: DateTime<Utc>,
    /// Whether it was confirmed already.
    pub used: bool,
}

/// What became of an attempt to confirm an address change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddressChangeOutcome {
    /// The account signs in with the new address now; the notice to the old one is queued
    /// (unless `alerts.address_changed` is off).
    Changed {
        /// The user, with the new address.
        user: User,
        /// The notice's outbox row, when one was stored.
        notice: Option<OutboxId>,
    },
    /// The link was used before.
    AlreadyUsed,
    /// The link's time is up.
    Expired,
    /// The new address belongs to another account by now; nothing changed.
    AddressTaken,
    /// No change has this hash, or the account's address is no longer the one it was
    /// requested from (another change was confirmed first).
    Unknown,
}

/// What became of an attempt to redeem a link by its short code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeRedemption {
    /// The code was right and the link unused and unexpired; the link is now used, and this
    /// caller, and no other, signed in the address the link was issued to: their user and new
    /// session were stored with the link's use.
    Redeemed(SignedInRecord),
    /// The code was wrong; the attempt was counted.
    Wrong {
        /// Wrong codes still allowed before the code stops working.
        attempts_left: u32,
    },
    /// Too many wrong codes were tried: the code no longer works, even the right one.
    Exhausted,
    /// The link was already used (by its link or its code).
    AlreadyUsed,
    /// A newer link to the same address replaced the link (and so its code).
    Replaced,
    /// The link's time is up.
    Expired,
    /// No link has this hash.
    Unknown,
}

/// What became of storing a link with its email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkIssued {
    /// Both stored; the email's outbox row.
    Queued(OutboxId),
    /// The address belongs to a disabled account: nothing was stored.
    AccountDisabled,
}

/// What became of disabling or enabling an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountStatusChange {
    /// Changed; the account's id (and, when disabled, how many sessions ended).
    Changed {
        /// Whose account.
        user_id: UserId,
        /// Sessions ended (always 0 when enabling).
        sessions_ended: u64,
    },
    /// It was disabled (or enabled) already: nothing changed.
    Unchanged,
    /// No account has the address.
    NoSuchUser,
}

/// What a stored link is now, as seen without changing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    /// Unused and unexpired: opening it would sign the person in.
    Unused,
    /// Redeemed before.
    Used,
    /// Unused, but a newer link to the same address replaced it before it expired.
    Replaced,
    /// Unused, but its time is up.
    Expired,
    /// No link has this hash for this address (never issued, or purged).
    Unknown,
}

/// Stores magic links.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait::async_trait]
pub trait LinkStore: Send + Sync {
    /// Stores a new, unused link and the outbox row that will email it, in one transaction:
    /// both are stored or neither is. In the same transaction the address's older links that
    /// are still unused and unexpired are marked replaced: only the newest link to an address
    /// signs in. Returns the row's id. A row with
    /// [`NewOutboxMessage::leased_until`] is stored claimed (one attempt, due again when the
    /// lease runs out); one without is due at once. `audit` (`link.requested`) is written in
    /// the same transaction, naming the address's user when there is one.
    ///
    /// When the address belongs to a disabled account (decided inside the transaction, so a
    /// `users disable` racing the request either retires the link or prevents it), nothing is
    /// stored: [`LinkIssued::AccountDisabled`].
    ///
    /// # Errors
    /// MUST fail if they could not be stored durably.
    async fn insert_with_email(
        &self,
        link: &NewLink,
        email: &NewOutboxMessage,
        audit: &AuditEvent,
    ) -> anyhow::Result<LinkIssued>;

    /// Marks the link `token_hash` issued to `identifier` as used at `now`, atomically: of any
    /// number of concurrent calls for one link, exactly one sees [`Redemption::Redeemed`].
    /// In the same transaction, on success, the other unused links of the same address are
    /// marked replaced, the address's user is found or created as by
    /// [`UserStore::find_or_create_verified`], and `session` is stored for that user: the link
    /// is used if and only if its session exists, and a sign-in costs one write transaction.
    ///
    /// # Errors
    /// MUST fail only on a storage failure (then nothing changed); every outcome for the link
    /// is a [`Redemption`].
    async fn redeem(
        &self,
        token_hash: &LinkTokenHash,
        identifier: &EmailAddress,
        session: &SessionDraft,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Redemption>;

    /// Redeems the link `token_hash` with the code whose hash is `code_hash`, atomically: of any
    /// number of concurrent calls, at most one sees [`CodeRedemption::Redeemed`], and at most
    /// `max_attempts` wrong codes are ever counted for one link. A wrong code on an unused,
    /// unexpired link counts one attempt and is [`CodeRedemption::Wrong`]; once `max_attempts`
    /// were wrong, every later call is [`CodeRedemption::Exhausted`]. On success the link is
    /// used (so its link no longer works either), and in the same transaction the address's
    /// other unused links are marked replaced and its user and `session` stored, as with
    /// [`LinkStore::redeem`].
    ///
    /// # Errors
    /// MUST fail only on a storage failure (then nothing changed); every outcome is a
    /// [`CodeRedemption`].
    async fn redeem_code(
        &self,
        token_hash: &LinkTokenHash,
        code_hash: &SignInCodeHash,
        max_attempts: u32,
        session: &SessionDraft,
        now: DateTime<Utc>,
    ) -> anyhow::Result<CodeRedemption>;

    /// What the link `token_hash` issued to `identifier` is at `now`, changing nothing. A link
    /// whose expiry is at or before `now` is [`LinkState::Expired`], as in [`LinkStore::redeem`].
    ///
    /// # Errors
    /// MUST fail only on a storage failure; a link that is not stored is [`LinkState::Unknown`].
    async fn state(
        &self,
        token_hash: &LinkTokenHash,
        identifier: &EmailAddress,
        now: DateTime<Utc>,
    ) -> anyhow::Result<LinkState>;

    /// Deletes links (sign-in links and address-change confirmations) that expired before
    /// `cutoff`, returning how many.
    ///
    /// # Errors
    /// MUST fail only on a storage failure.
    async fn purge_expired(&self, cutoff: DateTime<Utc>) -> anyhow::Result<u64>;
}

/// Stores users.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait::async_trait]
pub trait UserStore: Send + Sync {
    /// Returns the user with this address, creating it if there is none, with `email_verified`
    /// set to `now` unless it was already set. Concurrent calls for one address yield one user.
    /// (A redemption does the same inside its own transaction; this is it on its own.)
    ///
    /// # Errors
    /// MUST fail only on a storage failure.
    async fn find_or_create_verified(&self, email: &EmailAddress, now: DateTime<Utc>) -> anyhow::Result<User>;

    /// The user with this id, if any.
    ///
    /// # Errors
    /// MUST fail only on a storage failure, never to say "not found".
    async fn find(&self, id: &UserId) -> anyhow::Result<Option<User>>;

    /// The user with this address (compared as stored: addresses are normalised), if any.
    ///
    /// # Errors
    /// MUST fail only on a storage failure, never to say "not found".
    async fn find_by_email(&self, email: &EmailAddress) -> anyhow::Result<Option<User>>;

    /// Adds a user with this address, not yet verified (an operator pre-approving someone);
    /// an existing user is left as it is. Concurrent calls for one address yield one user.
    ///
    /// # Errors
    /// MUST fail only on a storage failure.
    async fn add(&self, email: &EmailAddress, now: DateTime<Utc>) -> anyhow::Result<UserAdded>;

    /// Users by address, at most `limit` of them.
    ///
    /// # Errors
    /// MUST fail only on a storage failure.
    async fn list(&self, limit: u32) -> anyhow::Result<Vec<User>>;

    /// Sets (or, with `None`, removes) the display name of the user with this id; nothing
    /// happens when there is no such user.
    ///
    /// # Errors
    /// MUST fail only on a storage failure.
    async fn rename(&self, id: &UserId, name: Option<DisplayName>) -> anyhow::Result<()>;

    /// Stores a requested change of `change.user_id`'s sign-in address and the email that asks
    /// the new address to confirm it, in one transaction; the account's earlier unconfirmed
    /// changes are deleted with it, so only the newest link works. Returns the email's row id.
    /// Nothing about the account changes until [`UserStore::confirm_address_change`].
    ///
    /// # Errors
    /// MUST fail if they could not be stored durably.
    /// `audit` (`address.change_requested`) is written in the same transaction.
    async fn request_address_change(
        &self,
        change: &NewAddressChange,
        email: &NewOutboxMessage,
        audit: &AuditEvent,
    ) -> anyhow::Result<OutboxId>;

    /// The change a confirmation link names, as stored, changing nothing.
    ///
    /// # Errors
    /// MUST fail only on a storage failure; an unknown hash is `Ok(None)`.
    async fn find_address_change(&self, token_hash: &LinkTokenHash) -> anyhow::Result<Option<PendingAddressChange>>;

    /// Confirms the change `token_hash` names, atomically: of concurrent calls, at most one
    /// sees [`AddressChangeOutcome::Changed`]. In one transaction it marks the change used,
    /// sets the user's address to the new one (verified at `now`) provided it is still
    /// `old_email`, deletes the user's sessions other than `keep_session`, retires the unused
    /// sign-in links of the old address, and stores `notice` (the email telling the old
    /// address). If the new address belongs to another user by now (the unique address
    /// decides, however the two race), nothing changes: [`AddressChangeOutcome::AddressTaken`].
    /// `audit` (`address.changed`) is written with the change, and only with it.
    ///
    /// # Errors
    /// MUST fail only on a storage failure (then nothing changed).
    async fn confirm_address_change<'a>(
        &self,
        token_hash: &LinkTokenHash,
        old_email: &EmailAddress,
        keep_session: &SessionId,
        notice: Option<&'a NewOutboxMessage>,
        audit: &AuditEvent,
        now: DateTime<Utc>,
    ) -> anyhow::Result<AddressChangeOutcome>;

    /// Deletes the user with this address and everything tied to them: sessions, sign-in links
    /// and address changes, password, passkeys, app grants, and emails still waiting to be sent
    /// to the address (the apps they were signed in to are told by back-channel notices queued
    /// in the same transaction). Their audit events stay, with their id and without the
    /// address; `audit` (`user.deleted`, its user filled in) is written in the same
    /// transaction, and so is `farewell` (the goodbye email), when given, after the pending
    /// emails were dropped. The deleted user's id, or `None` when there was no such user (then
    /// nothing is stored).
    ///
    /// # Errors
    /// MUST fail only on a storage failure (then nothing changed).
    async fn remove<'a>(
        &self,
        email: &EmailAddress,
        farewell: Option<&'a NewOutboxMessage>,
        audit: &AuditEvent,
    ) -> anyhow::Result<Option<UserId>>;

    /// Disables (`disabled: true`) or enables the account with this address. Disabling, in one
    /// transaction: marks it disabled at `now`, ends its sessions (queuing back-channel notices
    /// for the apps), revokes its apps' grants and unused codes, and retires its sign-in links
    /// and the emails carrying them. While
    /// disabled, no session of the account is found, no link is stored for its address, and
    /// password and passkey sign-ins do not find it. `audit` (`user.disabled` or
    /// `user.enabled`, its user filled in) is written in the same transaction when the status
    /// changed.
    ///
    /// # Errors
    /// MUST fail only on a storage failure (then nothing changed).
    async fn set_disabled(
        &self,
        email: &EmailAddress,
        disabled: bool,
        audit: &AuditEvent,
        now: DateTime<Utc>,
    ) -> anyhow::Result<AccountStatusChange>;
}

/// Stores the optional passwords (one per user at most, as an argon2id PHC string).
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait::async_trait]
pub trait PasswordStore: Send + Sync {
    /// The user with this address and their password hash, if they have one: what a password
    /// sign-in checks. `None` when no user has the address, or its account is disabled.
    ///
    /// # Errors
    /// MUST fail only on a storage failure, never to say "not found".
    async fn find_with_password(&self, email: &EmailAddress) -> anyhow::Result<Option<(User, Option<PasswordHash>)>>;

    /// The password hash of the user with this id, if they have one.
    ///
    /// # Errors
    /// MUST fail only on a storage failure.
    async fn password_of(&self, user_id: &UserId) -> anyhow::Result<Option<PasswordHash>>;

    /// Sets the user's password hash, replacing any earlier one. Concurrent calls for one user
    /// leave exactly one of their hashes. `audit` (`password.set`) is written in the same
    /// transaction.
    ///
    /// # Errors
    /// MUST fail if the hash could not be stored durably.
    async fn set_password(
        &self,
        user_id: &UserId,
        hash: &PasswordHash,
        audit: &AuditEvent,
        now: DateTime<Utc>,
    ) -> anyhow::Result<()>;

    /// Replaces the user's hash with `new` only if it is still `old`: a re-hash with stronger
    /// parameters after a sign-in, which must not undo a password changed meanwhile. `false`
    /// when the stored hash was no longer `old`.
    ///
    /// # Errors
    /// MUST fail only on a storage failure.
    async fn replace_password_hash(
        &self,
        user_id: &UserId,
        old: &PasswordHash,
        new: &PasswordHash,
        now: DateTime<Utc>,
    ) -> anyhow::Result<bool>;
}

/// A passkey just registered, about to be stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPasskey {
    /// Whose it is.
    pub user_id: UserId,
    /// The id the authenticator made; unique across every account.
    pub credential_id: CredentialId,
    /// What the WebAuthn adapter needs to check later assertions (public key, counter,
    /// flags), in its own serialised form: opaque to everything else.
    pub credential: StoredCredential,
    /// Its first name.
    pub name: PasskeyName,
    /// Whether the authenticator said it is backed up or synced.
    pub backed_up: bool,
    /// The signature counter the authenticator started at (0 for most synced passkeys).
    pub sign_count: u32,
    /// When it was added.
    pub created_at: DateTime<Utc>,
}

/// A credential as the WebAuthn adapter serialised it: opaque bytes to the store and the use
/// cases, so a change of WebAuthn library touches one adapter.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredCredential(pub Vec<u8>);

impl std::fmt::Debug for StoredCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StoredCredential({} bytes)", self.0.len())
    }
}

/// A passkey found by its credential id for a sign-in, with its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasskeyForSignIn {
    /// The passkey.
    pub passkey: Passkey,
    /// Its owner.
    pub user: User,
    /// The owner's handle, which the assertion must carry too.
    pub user_handle: UserHandle,
    /// What the adapter checks the assertion against.
    pub credential: StoredCredential,
    /// The signature counter last seen.
    pub sign_count: u32,
}

/// A passkey's use, to record after a verified assertion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasskeyUse {
    /// The credential as the adapter updated it (counter, backup state).
    pub credential: StoredCredential,
    /// The counter the assertion carried.
    pub sign_count: u32,
    /// The backup state the assertion carried.
    pub backed_up: bool,
    /// When.
    pub at: DateTime<Utc>,
}

/// What became of storing a new passkey.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasskeyAdded {
    /// Stored.
    Added(Passkey),
    /// A passkey with this credential id is stored already (on this account or another):
    /// nothing changed.
    CredentialTaken,
}

/// Which ceremony a stored state belongs to, so a sign-in state never finishes a registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CeremonyPurpose {
    /// Adding a passkey to the signed-in person's account.
    Registration,
    /// Signing in with a passkey.
    SignIn,
}

impl CeremonyPurpose {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Registration => "registration",
            Self::SignIn => "sign-in",
        }
    }
}

/// A ceremony's state, about to be stored under the hash of the browser's token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCeremony {
    /// The hash of the token in the browser's cookie.
    pub hash: CeremonyHash,
    /// What it is for.
    pub purpose: CeremonyPurpose,
    /// For a registration, whose account the passkey will join.
    pub user_id: Option<UserId>,
    /// The WebAuthn adapter's state (the challenge and what it asked for), opaque.
    pub state: Vec<u8>,
    /// When it stops being accepted.
    pub expires: DateTime<Utc>,
}

/// A ceremony's state taken back (and so deleted) to finish it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TakenCeremony {
    /// For a registration, whose account it was begun for.
    pub user_id: Option<UserId>,
    /// The adapter's state.
    pub state: Vec<u8>,
}

/// Stores passkeys, the per-user handles their authenticators keep, and the state of
/// ceremonies in progress.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait::async_trait]
pub trait PasskeyStore: Send + Sync {
    /// The user's handle: the stored one, or else `candidate`, stored now. Concurrent calls for
    /// one user all return the one handle stored.
    ///
    /// # Errors
    /// MUST fail only on a storage failure.
    async fn user_handle(&self, user_id: &UserId, candidate: &UserHandle) -> anyhow::Result<UserHandle>;

    /// The user's passkeys, oldest first, with their credential ids (to exclude at
    /// registration, so one authenticator is not registered twice).
    ///
    /// # Errors
    /// MUST fail only on a storage failure.
    async fn list(&self, user_id: &UserId) -> anyhow::Result<Vec<(Passkey, CredentialId)>>;

    /// Stores a new passkey; [`PasskeyAdded::CredentialTaken`] when its credential id is
    /// stored already, whoever's it is (the unique index decides, however two race). `audit`
    /// (`passkey.added`) is written in the same transaction when it was stored.
    ///
    /// # Errors
    /// MUST fail if it could not be stored durably.
    async fn add(&self, passkey: &NewPasskey, audit: &AuditEvent) -> anyhow::Result<PasskeyAdded>;

    /// The passkey with this credential id and its owner, if any (none while the owner's
    /// account is disabled).
    ///
    /// # Errors
    /// MUST fail only on a storage failure, never to say "not found".
    async fn find_for_sign_in(&self, credential_id: &CredentialId) -> anyhow::Result<Option<PasskeyForSignIn>>;

    /// Records a verified use of the passkey `id`, atomically guarded by its counter: only if
    /// the stored counter is below the one the assertion carried, or the authenticator keeps
    /// no counter (it sent 0). `false` when a use with an equal or higher counter was recorded
    /// meanwhile (a cloned key racing the real one), which the caller refuses as a counter that
    /// went backwards, or when the passkey was deleted.
    ///
    /// # Errors
    /// MUST fail only on a storage failure.
    async fn record_use(&self, id: &PasskeyId, used: &PasskeyUse) -> anyhow::Result<bool>;

    /// Renames the user's passkey `id`; `None` when the user has no such passkey (another
    /// person's id is exactly as unknown).
    ///
    /// # Errors
    /// MUST fail only on a storage failure.
    async fn rename(&self, user_id: &UserId, id: &PasskeyId, name: &PasskeyName) -> anyhow::Result<Option<Passkey>>;

    /// Deletes the user's passkey `id`; `false` when the user has no such passkey. Nothing
    /// else (sessions, other passkeys) changes. `audit` (`passkey.removed`) is written in the
    /// same transaction when one was deleted.
    ///
    /// # Errors
    /// MUST fail only on a storage failure.
    async fn delete(&self, user_id: &UserId, id: &PasskeyId, audit: &AuditEvent) -> anyhow::Result<bool>;

    /// Stores a ceremony's state.
    ///
    /// # Errors
    /// MUST fail if it could not be stored durably.
    async fn save_ceremony(&self, ceremony: &NewCeremony) -> anyhow::Result<()>;

    /// Takes back the state stored under `hash` for `purpose`, deleting it: of concurrent calls
    /// for one ceremony at most one gets it. `None` when there is none, it is for the other
    /// purpose, or it expired at or before `now`.
    ///
    /// # Errors
    /// MUST fail only on a storage failure.
    async fn take_ceremony(
        &self,
        hash: &CeremonyHash,
        purpose: CeremonyPurpose,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Option<TakenCeremony>>;

    /// Deletes ceremonies that expired before `cutoff` (begun and never finished), returning
    /// how many.
    ///
    /// # Errors
    /// MUST fail only on a storage failure.
    async fn purge_expired_ceremonies(&self, cutoff: DateTime<Utc>) -> anyhow::Result<u64>;
}

/// What [`UserStore::add`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserAdded {
    /// A new user.
    Created(User),
    /// The address already had a user, unchanged.
    Existed(User),
}

/// A session about to be stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSession {
    /// SHA-256 of the cookie token.
    pub token_hash: SessionTokenHash,
    /// Whose session it is.
    pub user_id: UserId,
    /// When it stops working.
    pub expires: DateTime<Utc>,
    /// The browser's `User-Agent`, so people can tell their sessions apart later.
    pub user_agent: Option<String>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// How the person signed in.
    pub method: SignInMethod,
    /// The sign-in's audit event, written with the session (its session id filled in).
    pub audit: AuditEvent,
}

/// Stores sessions.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait::async_trait]
pub trait SessionStore: Send + Sync {
    /// Stores a new session and returns it (a redemption stores its own; this is for a user
    /// already known).
    ///
    /// # Errors
    /// MUST fail if the session could not be stored durably.
    async fn create(&self, session: &NewSession) -> anyhow::Result<Session>;

    /// The session with this token hash and its user, expired or not (the caller decides);
    /// none while the user's account is disabled.
    ///
    /// # Errors
    /// MUST fail only on a storage failure, never to say "not found".
    async fn find(&self, token_hash: &SessionTokenHash) -> anyhow::Result<Option<(Session, User)>>;

    /// Moves a session's expiry to `expires`.
    ///
    /// # Errors
    /// MUST fail only on a storage failure.
    async fn extend(&self, session_id: &SessionId, expires: DateTime<Utc>, now: DateTime<Utc>) -> anyhow::Result<()>;

    /// The user's sessions that are live at `now`, most recently used first.
    ///
    /// # Errors
    /// MUST fail only on a storage failure.
    async fn list_for_user(&self, user_id: &UserId, now: DateTime<Utc>) -> anyhow::Result<Vec<SessionSummary>>;

    /// Deletes the session `session_id` if it belongs to `user_id`: `false` when that user has
    /// no such session. Another user's session is never touched, whatever its id. `audit` is
    /// written in the same transaction when a session ended.
    ///
    /// # Errors
    /// MUST fail only on a storage failure.
    async fn delete_for_user(
        &self,
        user_id: &UserId,
        session_id: &SessionId,
        audit: &AuditEvent,
    ) -> anyhow::Result<bool>;

    /// Deletes every session of `user_id` except `keep`, returning how many; `audit` is
    /// written in the same transaction when any ended.
    ///
    /// # Errors
    /// MUST fail only on a storage failure.
    async fn delete_others(&self, user_id: &UserId, keep: &SessionId, audit: &AuditEvent) -> anyhow::Result<u64>;

    /// Deletes the session with this token hash; deleting a missing one is not an error.
    /// `audit` is written in the same transaction when a session ended, naming its user and id.
    ///
    /// # Errors
    /// MUST fail only on a storage failure.
    async fn delete(&self, token_hash: &SessionTokenHash, audit: &AuditEvent) -> anyhow::Result<()>;

    /// Deletes sessions that expired before `cutoff`, returning how many.
    ///
    /// # Errors
    /// MUST fail only on a storage failure.
    async fn purge_expired(&self, cutoff: DateTime<Utc>) -> anyhow::Result<u64>;
}

/// Whether the store answers, for `/healthz`.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait::async_trait]
pub trait StoreHealth: Send + Sync {
    /// Runs the cheapest query that proves the database answers.
    ///
    /// # Errors
    /// MUST fail when the database does not answer.
    async fn ping(&self) -> anyhow::Result<()>;
}
