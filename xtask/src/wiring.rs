//! Wiring: configuration in, a running application out.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use adapters::clock::SystemClock;
use adapters::mail::{DevMailer, EmailRenderer};
use adapters::sqlite::SqliteStore;
use anyhow::Context as _;
use chrono::TimeDelta;
use domain::{LinkPolicy, ServerSecret, SessionPolicy};
use poem::listener::{Acceptor, Listener, TcpAcceptor, TcpListener};
use poem::{EndpointExt, Response, Server};
use ports::{Clock, DevMailbox, Mailer, SignIn, SignInSettings};
use web::{AppState, PagePaths, WebSettings};

use crate::settings::{MailerKind, Settings};

/// How long redeemed and expired links are kept after they expire, so a late click still gets
/// "already used" or "expired" instead of "not valid".
const LINK_RETENTION: TimeDelta = TimeDelta::days(1);

/// The application, assembled and ready to serve.
pub struct Service {
    /// The HTTP application.
    pub app: poem::endpoint::BoxEndpoint<'static, Response>,
    /// The database, for migrations and shutdown.
    pub store: SqliteStore,
    /// The use cases, for housekeeping.
    pub sign_in: Arc<SignIn>,
    /// The development mailbox, when that mailer is configured.
    pub mailbox: Option<Arc<DevMailer>>,
}

/// Opens the database the settings name.
///
/// # Errors
/// Names the URL when it is not one this build supports or cannot be opened.
pub async fn open_store(settings: &Settings) -> anyhow::Result<SqliteStore> {
    let url = &settings.database.url;
    // One backend today; the scheme decides, so adding one is one more arm here.
    match url.split_once(':').map(|(scheme, _)| scheme) {
        Some("sqlite") => SqliteStore::connect(url, settings.database.max_connections).await,
        _ => anyhow::bail!("database.url (DATABASE_URL) `{url}` is not supported: use sqlite://path/to/file.sqlite"),
    }
}

/// Builds the service from checked settings, a secret and a clock (the system clock outside
/// tests).
///
/// # Errors
/// Fails if the database cannot be opened or a template does not parse.
pub async fn build(
    settings: &Settings,
    base_url: url::Url,
    secret: ServerSecret,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<Service> {
    let store = open_store(settings).await?;
    let (mailer, mailbox): (Arc<dyn Mailer>, Option<Arc<DevMailer>>) = match settings.mailer.kind {
        MailerKind::Dev => {
            let dev = Arc::new(DevMailer::new(
                EmailRenderer::builtin()?,
                Arc::clone(&clock),
            ));
            (dev.clone(), Some(dev))
        }
    };
    let web_settings = WebSettings {
        base_url: base_url.clone(),
        auth_base_path: settings.auth.base_path.clone(),
        pages: PagePaths {
            sign_in: settings.pages.sign_in.clone(),
            verify_request: settings.pages.verify_request.clone(),
            error: settings.pages.error.clone(),
        },
        site_name: settings.site_name.clone(),
        secret: secret.clone(),
    };
    let callback_endpoint = base_url
        .join(&web_settings.auth_path("/callback/email"))
        .context("auth.base_path does not make a valid callback URL")?;
    let store_port = Arc::new(store.clone());
    let sign_in = Arc::new(SignIn::new(
        store_port.clone(),
        store_port.clone(),
        store_port.clone(),
        mailer,
        clock,
        SignInSettings {
            secret,
            link_policy: LinkPolicy::new(settings.magic_link.max_age),
            session_policy: SessionPolicy::new(
                settings.session.max_age,
                settings.session.update_age,
            ),
            callback_endpoint,
            site_name: settings.site_name.clone(),
            link_retention: LINK_RETENTION,
        },
    ));
    let app = web::build_app(AppState {
        sign_in: Arc::clone(&sign_in),
        health: store_port,
        mailbox: mailbox.clone().map(|m| m as Arc<dyn DevMailbox>),
        settings: web_settings,
        pages: web::pages::Pages::builtin()?,
    })
    .boxed();
    Ok(Service {
        app,
        store,
        sign_in,
        mailbox,
    })
}

/// Builds the service with the system clock.
///
/// # Errors
/// As [`build`].
pub async fn build_for_serving(
    settings: &Settings,
    base_url: url::Url,
    secret: ServerSecret,
) -> anyhow::Result<Service> {
    build(settings, base_url, secret, Arc::new(SystemClock)).await
}

/// A bound, not yet running server: tests bind port 0 and read the address back.
pub struct Bound {
    acceptor: TcpAcceptor,
    /// The address actually bound.
    pub local_addr: SocketAddr,
}

/// Binds `addr`.
///
/// # Errors
/// Fails if the address is taken or malformed.
pub async fn bind(addr: &str) -> anyhow::Result<Bound> {
    let acceptor = TcpListener::bind(addr.to_owned())
        .into_acceptor()
        .await
        .with_context(|| format!("cannot listen on {addr} (server.bind / --bind)"))?;
    let local_addr = acceptor
        .local_addr()
        .first()
        .and_then(|a| a.as_socket_addr().copied())
        .context("the listener has no socket address")?;
    Ok(Bound {
        acceptor,
        local_addr,
    })
}

/// Serves until `shutdown` resolves, purging expired links and sessions every hour, then
/// closes the database.
///
/// # Errors
/// Fails if the server fails.
pub async fn run(
    service: Service,
    bound: Bound,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let housekeeping = tokio::spawn(purge_every_hour(Arc::clone(&service.sign_in)));
    let result = Server::new_with_acceptor(bound.acceptor)
        .run_with_graceful_shutdown(
            service.app.map_to_response(),
            shutdown,
            Some(Duration::from_secs(10)),
        )
        .await;
    housekeeping.abort();
    service.store.close().await;
    result.context("the server failed")
}

async fn purge_every_hour(sign_in: Arc<SignIn>) {
    let mut interval = tokio::time::interval(Duration::from_secs(3600));
    loop {
        interval.tick().await;
        match sign_in.purge_expired().await {
            Ok((links, sessions)) => {
                tracing::info!(links, sessions, "purged expired links and sessions")
            }
            Err(error) => {
                tracing::warn!(error = ?error, "purging expired links and sessions failed")
            }
        }
    }
}

/// Resolves when the process is asked to stop (Ctrl-C or SIGTERM).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
