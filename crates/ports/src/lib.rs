//! The ports of the sign-in core and the use cases written against them.
//!
//! A port is a trait for something the core needs from the outside world: storage of users,
//! links and sessions, a mailer, a clock. Adapters implement them; `web` and `xtask` only ever
//! hold them as `Arc<dyn Port>`, because the backend is chosen at run time from configuration.
//! With the `mock` feature, every port gets a mockall mock for the use-case unit tests.
//!
//! The use cases are written once against these traits: [`sessions`] (the sessions every way of
//! signing in shares), and the providers beside it that prove who someone is, the magic link
//! ([`sign_in`]: request a link, redeem it or its code, change the sign-in address), the
//! optional password ([`passwords`]) and passkeys ([`passkeys`]). [`oidc`] is the other
//! direction: magiclink as an OpenID Provider, signing people in to other apps. The delivery of
//! queued emails lives in [`delivery`].

pub mod alerts;
pub mod audit;
pub mod clock;
pub mod delivery;
pub mod mailer;
pub mod oidc;
pub mod outbox;
pub mod passkeys;
pub mod password;
pub mod passwords;
pub mod random;
pub mod rate_limit;
pub mod sessions;
pub mod sign_in;
pub mod stores;
pub mod unavailable;
pub mod webauthn;
pub mod webhook;

pub use audit::{AuditLog, AuditQuery, RecordedEvent};
pub use clock::Clock;
pub use delivery::{BatchReport, Deliverer, DeliveryError, DeliverySettings, RetryPolicy};
pub use mailer::{
    DevMailbox, Email, EmailContent, EmailKind, EmailRenderer, MailError, MailboxMessage, Mailer, OutgoingEmail,
    RenderedEmail, SentReceipt,
};
pub use oidc::logout::BackchannelLogout;
pub use oidc::store::{
    ClientAdded, ClientStore, CodeRedeemed, Consent, GrantId, GrantStore, IdTokenHint, LiveGrant, NewCode, NewTokens,
    RefreshRotated, SigningKeyAdded, SigningKeyStore, StoredSigningKey, TokenSigner,
};
pub use oidc::{
    Authorization, AuthorizationRequest, AuthorizeError, Authorized, ClientAuthentication, EndSession, EndSessionError,
    EndSessionRequest, OidcSettings, RevokeAppError, TokenError, TokenGrant, Tokens, UserInfo, UserInfoError,
};
pub use outbox::{
    Addressee, DeliveryQueue, DeliveryState, MessageKind, NewOutboxMessage, Outbox, OutboxCounts, OutboxEntry,
    OutboxMessage, Payload, QueuedEmail, QueuedWebhook, SentMessage,
};
pub use passkeys::{
    AddPasskey, AddPasskeyError, BeginCeremonyError, Ceremony, ChangePasskeyError, PasskeySettings, PasskeySignIn,
    PasskeySignInError, Passkeys,
};
pub use password::{CommonPasswords, PasswordCheck, PasswordHasher};
pub use passwords::{
    PasswordLimits, PasswordSet, PasswordSignIn, PasswordSignInError, PasswordSupport, Passwords, SetPassword,
    SetPasswordError,
};
pub use rate_limit::{Admission, Bucket, RateLimiter};
pub use sessions::{
    AccountAlert, ActiveSession, ListSessionsError, OpenSessionError, ReadActivityError, ReadSessionError,
    RevokeOtherSessionsError, RevokeSessionError, SessionSettings, Sessions, SignOutError, SignedIn, MAX_ACTIVITY_PAGE,
};
pub use sign_in::address::{
    AddressChangePreview, ChangeAddress, ChangeAddressError, ConfirmAddress, ConfirmAddressError, ConfirmationQueued,
};
pub use sign_in::closing::{DeleteAccount, DeleteAccountError};
pub use sign_in::{
    LimitScope, LinkQueued, LinkStateError, PurgeError, RedeemCode, RedeemCodeError, RedeemLink, RedeemLinkError,
    RenameError, RequestLink, RequestLinkError, SignIn, SignInLimits, SignInSettings, SignUpPolicy,
};
pub use stores::{
    AccountStatusChange, AddressChangeOutcome, CeremonyPurpose, CodeRedemption, LinkIssued, LinkState, LinkStore,
    NewAddressChange, NewCeremony, NewLink, NewPasskey, NewSession, PasskeyAdded, PasskeyForSignIn, PasskeyStore,
    PasskeyUse, PasswordStore, PendingAddressChange, Redemption, SessionDraft, SessionStore, SignedInRecord,
    StoreHealth, StoredCredential, TakenCeremony, UserAdded, UserStore,
};
pub use unavailable::Unavailable;
pub use webauthn::{
    BegunCeremony, CeremonyRefusal, ClaimedCredential, PasskeyHolder, RegisteredCredential, VerifiedAssertion, WebAuthn,
};
pub use webhook::{HttpPost, PostError, WebhookEndpoint, WebhookSender};
