//! A poem application that embeds magiclink: `/reports` is for signed-in people only (the
//! [`RequireSignIn`] middleware), `/whoami` greets whoever is signed in (the [`SignedIn`]
//! extractor), and magiclink's own pages and routes are nested beside them at `/`.
//!
//! `cargo run -p protected-app -- serve` runs it with magiclink's configuration, exactly as
//! `cargo xtask serve` runs magiclink alone.

use poem::endpoint::BoxEndpoint;
use poem::{get, handler, EndpointExt, Response, Route};
use web::{Magiclink, RequireSignIn, SignedIn};

/// The one protected page. [`RequireSignIn`] has let only signed-in people through, so the
/// extractor here costs no second database read.
#[handler]
fn reports(SignedIn(session): SignedIn) -> String {
    format!("Reports for {}", session.user.email.as_str())
}

/// A page for anyone that needs the person: without a session, the extractor itself sends a
/// browser to sign in (and back) and answers a program 401.
#[handler]
fn whoami(SignedIn(session): SignedIn) -> String {
    format!("You are {}", session.user.email.as_str())
}

/// The application around magiclink's routes and state (what `serve` runs).
pub fn app(magiclink: Magiclink) -> BoxEndpoint<'static, Response> {
    let routes = Route::new()
        .at("/reports", get(reports).with(RequireSignIn))
        .at("/whoami", get(whoami))
        .nest("/", magiclink.routes());
    magiclink.attach(routes).boxed()
}
