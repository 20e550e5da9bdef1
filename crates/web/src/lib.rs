//! The HTTP surface of magiclink: pages for people, JSON for programs.
//!
//! `web` is the only crate that knows about HTTP, poem, cookies and JSON. It turns requests into
//! the domain's parsed values once, at the edge ([`forms`]), calls the use cases in
//! [`ports::SignIn`], and maps their errors to responses in exactly one place ([`errors`]).
//! It never imports `adapters`: `xtask` builds the ports and hands them over in [`AppState`].
//!
//! Routes mirror Auth.js's REST shape under a configurable base path (default `/api/auth`):
//! the JSON endpoints are described with poem-openapi ([`api`]); the form posts and the link
//! callback are plain poem handlers ([`auth`]) because they answer with redirects and cookies.

pub mod account;
pub mod account_data;
pub mod activity;
pub mod activity_api;
pub mod api;
pub mod auth;
pub mod client;
pub mod cookies;
pub mod csrf;
pub mod embed;
pub mod errors;
pub mod forms;
pub mod forward_auth;
pub mod json;
pub mod lang;
pub mod oidc;
pub mod pages;
pub mod passkey;
pub mod password;
pub mod pending;
pub mod render;
pub mod routes;
pub mod server;
pub mod settings;
pub mod telemetry;
pub mod user_agent;

use std::sync::Arc;

use ports::{DevMailbox, Passwords, Sessions, SignIn, StoreHealth};

pub use embed::{Magiclink, RequireSignIn, SignedIn};
pub use routes::build_app;
pub use settings::{CookieNames, ForwardAuth, ForwardAuthMode, PagePaths, RequestLimits, WebSettings};

/// One dependency the service needs to answer, as `/healthz` reports it.
pub struct Dependency {
    /// Its name in the report: `database`, `rate_limit_store`.
    pub name: &'static str,
    /// Asks it whether it answers.
    pub probe: Arc<dyn StoreHealth>,
}

/// Everything the handlers need, built by the composition root.
pub struct AppState {
    /// The magic-link provider and the account changes that go through links.
    pub sign_in: Arc<SignIn>,
    /// Sessions: reading, listing and ending them, whichever provider opened them.
    pub sessions: Arc<Sessions>,
    /// The password provider, when `password.enabled` is on.
    pub passwords: Option<Arc<Passwords>>,
    /// The passkey provider, when `passkey.enabled` is on.
    pub passkeys: Option<Arc<ports::Passkeys>>,
    /// The OpenID Provider, when `oidc.enabled` is on.
    pub oidc: Option<Arc<ports::Authorization>>,
    /// What `/healthz` asks: the database, and the rate-limit store when it is not the
    /// database.
    pub health: Vec<Dependency>,
    /// The development mailbox, present only while the development mailer is configured.
    pub mailbox: Option<Arc<dyn DevMailbox>>,
    /// Paths, names and the secret.
    pub settings: WebSettings,
    /// The parsed page templates.
    pub pages: render::Pages,
}
