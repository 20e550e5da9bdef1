//! Wiring: configuration in, a running application out.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use adapters::clock::SystemClock;
pub use adapters::database::OpenMode;
use adapters::database::{masked_url, Database, Dialect};
use adapters::handover::HandedOver;
use adapters::mail::{
    parse_from, DevMailer, ResendMailer, ResendSettings, SmtpMailer, SmtpSettings, StartTls, TemplateRenderer,
};
use adapters::password::{Argon2Cost, Argon2Hasher, ZxcvbnList};
use adapters::redis::{OnStoreError, RedisRateLimiter};
use anyhow::Context as _;
use chrono::{TimeDelta, Utc};
use domain::{LinkPolicy, PasswordRules, Quota, SecretText, ServerSecret, SessionPolicy};
use poem::{EndpointExt, Response};
use ports::{
    Clock, Deliverer, DeliverySettings, DevMailbox, Mailer, PasswordLimits, PasswordSupport, Passwords, RateLimiter,
    RetryPolicy, SessionSettings, Sessions, SignIn, SignInLimits, SignInSettings, SignUpPolicy, StoreHealth,
};
use web::server::ConnectionLimits;
use web::{AppState, CookieNames, PagePaths, RequestLimits, WebSettings};

use crate::settings::{MailerKind, Program, RateLimitSettings, Settings, SignUpMode, StartTlsSetting};

/// How long redeemed and expired links are kept after they expire, so a late click still gets
/// "already used" or "expired" instead of "not valid".
const LINK_RETENTION: TimeDelta = TimeDelta::days(1);
/// How long delivery records (metadata only) are kept once final.
const OUTBOX_RETENTION: TimeDelta = TimeDelta::days(30);
/// How long requests in flight may take to finish once the server is asked to stop.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// How long a claimed outbox row is left to its worker before it may be claimed again. Longer
/// than any send can take (the SMTP and Resend timeouts are seconds).
const DELIVERY_LEASE: TimeDelta = TimeDelta::minutes(2);
/// How many new emails may wait in memory for this instance's delivery worker; past that, new
/// rows are stored due and claimed in batches instead (see `ports::delivery`).
const HANDOVER_CAPACITY: usize = 1024;

/// The application, assembled and ready to serve.
pub struct Service {
    /// The HTTP application: magiclink's routes, or an application embedding them.
    pub app: poem::endpoint::BoxEndpoint<'static, Response>,
    /// magiclink's web state, for an application that embeds its routes ([`web::Magiclink`]).
    pub magiclink: web::Magiclink,
    /// The database, for migrations and shutdown.
    pub store: Database,
    /// The use cases, for housekeeping.
    pub sign_in: Arc<SignIn>,
    /// Delivers queued emails.
    pub deliverer: Arc<Deliverer>,
    /// The passkey provider, when on, for housekeeping.
    pub passkeys: Option<Arc<ports::Passkeys>>,
    /// The OpenID Provider, when on, for housekeeping.
    pub oidc: Option<Arc<ports::Authorization>>,
    /// How long retired signing keys stay published after a rotation.
    pub retired_key_lifetime: TimeDelta,
    /// How long audit events are kept (`audit.retention_days`).
    pub audit_retention: TimeDelta,
    /// The emails handed to the delivery worker in memory, for [`deliver_forever`].
    pub handed_over: HandedOver,
    /// The development mailbox, when that mailer is configured.
    pub mailbox: Option<Arc<DevMailer>>,
    /// The mailer emails are sent with, for the start-up check.
    pub mailer: Arc<dyn Mailer>,
    /// Limits on connections and request heads.
    pub connection_limits: ConnectionLimits,
    /// Proxies whose connections carry many clients: exempt from the per-client cap.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// The metrics listener, bound, and the recorder's handle, when `metrics.bind` is set.
    pub metrics: Option<(tokio::net::TcpListener, metrics_exporter_prometheus::PrometheusHandle)>,
}

/// The HTTP application built around magiclink's routes and state: magiclink alone
/// ([`magiclink_alone`], what the shipped binary serves), or an application that embeds it
/// (`examples/protected-app`).
pub type Embed = fn(web::Magiclink) -> poem::endpoint::BoxEndpoint<'static, Response>;

/// magiclink's routes and nothing else.
pub fn magiclink_alone(magiclink: web::Magiclink) -> poem::endpoint::BoxEndpoint<'static, Response> {
    magiclink.routes().boxed()
}

/// What tests (and embedding applications) may replace; everything else comes from the
/// settings.
pub struct Parts {
    /// The clock (the system clock in production).
    pub clock: Arc<dyn Clock>,
    /// A mailer to use instead of the configured one.
    pub mailer: Option<Arc<dyn Mailer>>,
    /// The application served around magiclink.
    pub embed: Embed,
}

impl Default for Parts {
    fn default() -> Self {
        Self { clock: Arc::new(SystemClock), mailer: None, embed: magiclink_alone }
    }
}

/// The web layer's settings for the configured `settings`, served at `base_url` and keyed by
/// `secrets`. Public so that tests read the paths the router serves from the same settings.
pub fn web_settings(settings: &Settings, base_url: &url::Url, secrets: &domain::SecretRing) -> WebSettings {
    WebSettings {
        base_url: base_url.clone(),
        auth_base_path: settings.auth.base_path.clone(),
        pages: PagePaths {
            sign_in: settings.pages.sign_in.clone(),
            verify_request: settings.pages.verify_request.clone(),
            error: settings.pages.error.clone(),
            account: settings.pages.account.clone(),
        },
        site_name: settings.site_name.clone(),
        secrets: secrets.clone(),
        cookie_names: CookieNames::new(&settings.session.cookie_name, &settings.csrf.cookie_name),
        allow_unicode_local_part: settings.email.allow_unicode_local_part,
        audit_client_address: settings.audit.client_address.policy(),
        session_cookie_domain: Some(settings.session.cookie_domain.clone()).filter(|domain| !domain.is_empty()),
        forward_auth: web::ForwardAuth {
            // Checked at start-up: every entry parses.
            allowed_origins: settings.forward_auth.origins().unwrap_or_default(),
            mode: match settings.forward_auth.mode {
                crate::settings::ForwardAuthModeSetting::Status => web::ForwardAuthMode::Status,
                crate::settings::ForwardAuthModeSetting::Redirect => web::ForwardAuthMode::Redirect,
            },
        },
        metrics: !settings.metrics.bind.is_empty(),
        // Only development starts without a secret; `serve` then generates one per start.
        restart_forgets_links: settings.secret.expose().is_empty(),
        access_log: settings.log.access,
        passkeys: settings.passkey.enabled,
        oidc: settings.oidc.enabled,
        trusted_proxies: settings
            .server
            .trusted_proxies
            .iter()
            .filter_map(|p| crate::settings::parse_proxy(p))
            .collect(),
        limits: RequestLimits {
            max_body_bytes: u64::from(settings.server.max_body_bytes),
            request_timeout: Duration::from_secs(u64::from(settings.server.request_timeout)),
            hsts_max_age: settings.server.hsts_max_age,
        },
    }
}

/// Opens the database the settings name; with [`OpenMode::MustExist`], `None` when it does not
/// exist yet (and nothing is created).
///
/// # Errors
/// Names the (masked) URL when it is not one this build supports or cannot be opened.
pub async fn open_store(settings: &Settings, mode: OpenMode) -> anyhow::Result<Option<Database>> {
    Database::open(&settings.database.secret_url(), settings.database.pool(), mode).await
}

/// How `migrate` (and `serve` in development) may open the database: a SQLite file is created
/// when missing in any profile (that is how a one-machine install starts), a database on a
/// PostgreSQL or MySQL server only in the development profile. In production the operator
/// creates it, with the owner and encoding they chose.
pub fn creation_mode(settings: &Settings, profile: &str) -> OpenMode {
    let on_a_server = !matches!(adapters::database::dialect_of(&settings.database.secret_url()), Ok(Dialect::Sqlite));
    if on_a_server && profile != crate::settings::DEVELOPMENT {
        OpenMode::MustExist
    } else {
        OpenMode::CreateIfMissing
    }
}

/// The sign-up policy as the use cases take it.
///
/// # Errors
/// Names an allowed domain that does not parse (the settings check catches it first).
fn sign_up_policy(settings: &Settings) -> anyhow::Result<SignUpPolicy> {
    Ok(match settings.sign_up.mode {
        SignUpMode::Open => SignUpPolicy::Open,
        SignUpMode::Existing => SignUpPolicy::ExistingUsers,
        SignUpMode::Allowlist => SignUpPolicy::Allowlist(
            settings
                .sign_up
                .normalised_domains()
                .map_err(|entry| anyhow::anyhow!("sign_up.allowed_domains entry `{entry}` is not a domain"))?,
        ),
    })
}

/// The rate limits as the use cases take them: "so many per so long", `None` where off.
fn sign_in_limits(limits: &RateLimitSettings) -> SignInLimits {
    let hour = TimeDelta::hours(1);
    SignInLimits {
        address_gap: Quota::per(1, TimeDelta::seconds(i64::from(limits.address_min_gap))),
        address_hourly: Quota::per(limits.address_per_hour, hour),
        client_hourly: Quota::per(limits.client_per_hour, hour),
        global_hourly: Quota::per(limits.global_per_hour, hour),
        failed_redemptions: Quota::per(limits.failed_redemptions_per_hour, hour),
    }
}

/// The password flow's parts when `password.enabled` is on: argon2id with the configured cost
/// and cap, zxcvbn's lists, the rules and the limits on failures.
///
/// # Errors
/// When the argon2 parameters are refused or the OS gives no randomness.
fn password_support(
    settings: &Settings,
    store: &Database,
    secret: &ServerSecret,
) -> anyhow::Result<Option<PasswordSupport>> {
    let password = &settings.password;
    if !password.enabled {
        return Ok(None);
    }
    let cost = Argon2Cost {
        memory_kib: password.memory_kib,
        iterations: password.iterations,
        parallelism: password.parallelism,
    };
    let max_concurrent = usize::try_from(password.max_concurrent_hashes).unwrap_or(1);
    let hour = TimeDelta::hours(1);
    Ok(Some(PasswordSupport {
        store: Arc::clone(&store.passwords),
        hasher: Arc::new(Argon2Hasher::new(cost, max_concurrent)?),
        common: Arc::new(ZxcvbnList),
        rules: PasswordRules::new(password.min_length as usize)?,
        limits: PasswordLimits {
            per_address: Quota::per(password.failed_per_address_per_hour, hour),
            per_client: Quota::per(password.failed_per_client_per_hour, hour),
        },
        site_name: settings.site_name.clone(),
        secret: secret.clone(),
    }))
}

/// How long an authorization code can be exchanged: a minute, as RFC 6749 §4.1.2 recommends
/// at most ten; the app exchanges it at once.
const AUTHORIZATION_CODE_LIFETIME: TimeDelta = TimeDelta::seconds(60);

/// How long retired signing keys stay published: every ID token they signed has expired by
/// then, including those signed by an instance that had not yet reloaded its keys.
pub fn retired_key_lifetime(settings: &Settings) -> TimeDelta {
    TimeDelta::seconds(i64::from(settings.oidc.id_token_lifetime)) + TimeDelta::minutes(2)
}

/// `secret` (the configured one, or development's ephemeral one), then `previous_secrets`.
fn ring_with(secret: ServerSecret, settings: &Settings) -> domain::SecretRing {
    domain::SecretRing::new(
        secret,
        settings.previous_secrets.iter().map(|s| ServerSecret::new(s.expose().as_bytes())).collect(),
    )
}

/// The configured secrets, for a command that must open what the service sealed.
pub fn secret_ring(settings: &Settings) -> domain::SecretRing {
    ring_with(ServerSecret::new(settings.secret.expose().as_bytes()), settings)
}

/// The signer of ID tokens: keys in the database, sealed under the server secrets.
pub fn token_signer(
    store: &Database,
    secrets: &domain::SecretRing,
    clock: &Arc<dyn Clock>,
) -> Arc<dyn ports::TokenSigner> {
    Arc::new(adapters::jose::JoseSigner::new(Arc::clone(&store.signing_keys), secrets.clone(), Arc::clone(clock)))
}

/// The OpenID Provider, when `oidc.enabled` is on: the issuer is the base URL, token requests
/// limited per client.
fn oidc(
    settings: &Settings,
    store: &Database,
    base_url: &url::Url,
    signer: &Arc<dyn ports::TokenSigner>,
    secrets: &domain::SecretRing,
    limiter: &Arc<dyn RateLimiter>,
    clock: &Arc<dyn Clock>,
) -> Option<Arc<ports::Authorization>> {
    let oidc = &settings.oidc;
    oidc.enabled.then(|| {
        Arc::new(ports::Authorization::new(
            Arc::clone(&store.clients),
            Arc::clone(&store.grants),
            Arc::clone(&store.users),
            Arc::clone(signer),
            Arc::clone(limiter),
            Arc::clone(clock),
            ports::OidcSettings {
                issuer: issuer(base_url),
                code_lifetime: AUTHORIZATION_CODE_LIFETIME,
                access_token_lifetime: TimeDelta::seconds(i64::from(oidc.access_token_lifetime)),
                access_token_format: match oidc.access_token_format {
                    crate::settings::AccessTokenFormatSetting::Opaque => domain::oidc::AccessTokenFormat::Opaque,
                    crate::settings::AccessTokenFormatSetting::Jwt => domain::oidc::AccessTokenFormat::Jwt,
                },
                id_token_lifetime: TimeDelta::seconds(i64::from(oidc.id_token_lifetime)),
                refresh_token_lifetime: TimeDelta::seconds(i64::from(oidc.refresh_token_lifetime)),
                token_requests_per_client: Quota::per(oidc.token_requests_per_client_per_minute, TimeDelta::minutes(1)),
                secret: secrets.current().clone(),
            },
        ))
    })
}

/// The configured webhook endpoints (`[[webhooks]]`), each checked, with the store told which
/// audit events to queue for them, sealed under `seal` (the current server secret). Commands
/// that change accounts (`users ...`) call it too, so their events are told like the server's.
///
/// # Errors
/// On an entry the checks would refuse.
pub fn route_webhooks(
    settings: &Settings,
    store: &Database,
    seal: &ServerSecret,
) -> anyhow::Result<Vec<ports::WebhookEndpoint>> {
    let endpoints = settings
        .webhooks
        .iter()
        .map(|webhook| webhook.to_endpoint().map_err(|problem| anyhow::anyhow!("webhooks: {problem}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    if !endpoints.is_empty() {
        store.configure_webhooks(adapters::sql::WebhookRouting {
            endpoints: endpoints.iter().map(|e| (e.url.as_str().to_owned(), e.events.clone())).collect(),
            seal: seal.clone(),
        });
    }
    Ok(endpoints)
}

/// Records an operator's change in the audit log: `kind`, about `user_id`, by `command`.
pub async fn operator_did(
    store: &adapters::database::Database,
    kind: domain::audit::AuditKind,
    user_id: Option<&domain::UserId>,
    command: &str,
) -> anyhow::Result<()> {
    let mut event = operator_event(kind, command);
    event.user_id = user_id.cloned();
    store.audit.record(&event).await
}

/// The audit event of an operator's `command`, for a store method to write with the change.
pub fn operator_event(kind: domain::audit::AuditKind, command: &str) -> domain::audit::AuditEvent {
    let origin = domain::audit::RequestOrigin::default();
    domain::audit::AuditEvent::new(kind, domain::audit::AuditOutcome::Succeeded, chrono::Utc::now(), &origin)
        .with_detail(format!("operator: {command}"))
}

/// The OpenID Provider's issuer: the base URL without a trailing slash.
fn issuer(base_url: &url::Url) -> String {
    base_url.as_str().trim_end_matches('/').to_owned()
}

/// How long an app has to answer a back-channel logout POST before the attempt counts as failed
/// (and is retried like an email).
const APP_NOTICE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a passkey ceremony (adding one, signing in) can be finished: the browser's own
/// timeout for the person to touch their authenticator.
const PASSKEY_CEREMONY_LIFETIME: TimeDelta = TimeDelta::minutes(5);

/// The passkey provider, when `passkey.enabled` is on: the WebAuthn relying party at the base
/// URL (its host, or `passkey.rp_id`), failed sign-ins limited per client by
/// `rate_limit.failed_redemptions_per_hour` on a counter of their own.
///
/// # Errors
/// When `passkey.rp_id` is neither the base URL's host nor a parent domain of it.
fn passkeys(
    settings: &Settings,
    store: &Database,
    base_url: &url::Url,
    secret: &ServerSecret,
    sessions: &Arc<Sessions>,
    limiter: &Arc<dyn ports::RateLimiter>,
    clock: &Arc<dyn ports::Clock>,
) -> anyhow::Result<Option<Arc<ports::Passkeys>>> {
    let passkey = &settings.passkey;
    if !passkey.enabled {
        return Ok(None);
    }
    // Browsers refuse an IP address as a relying party id: the controls would only fail.
    if passkey.rp_id.is_empty() && matches!(base_url.host(), Some(url::Host::Ipv4(_) | url::Host::Ipv6(_))) {
        tracing::warn!(
            base_url = %base_url,
            "passkeys are off: browsers accept them only for a host name, and server.base_url's host is an IP \
             address (in development use http://localhost:PORT)"
        );
        return Ok(None);
    }
    let verification = match passkey.user_verification {
        crate::settings::UserVerificationSetting::Preferred => adapters::webauthn::UserVerification::Preferred,
        crate::settings::UserVerificationSetting::Required => adapters::webauthn::UserVerification::Required,
    };
    let ceremonies = adapters::webauthn::WebAuthnCeremonies::new(
        &settings.site_name,
        &passkey.effective_rp_id(base_url),
        base_url,
        verification,
    )?;
    Ok(Some(Arc::new(ports::Passkeys::new(
        Arc::clone(&store.passkeys),
        Arc::new(ceremonies),
        Arc::clone(sessions),
        Arc::clone(limiter),
        Arc::clone(clock),
        ports::PasskeySettings {
            ceremony_lifetime: PASSKEY_CEREMONY_LIFETIME,
            failed_sign_ins_per_client: Quota::per(
                settings.rate_limit.failed_redemptions_per_hour,
                TimeDelta::hours(1),
            ),
            sign_in_ceremonies_per_client: Quota::per(passkey.sign_ins_per_client_per_hour, TimeDelta::hours(1)),
            secret: secret.clone(),
        },
    ))))
}

/// The rate-limit counters: in the database unless `rate_limit.store` names a Redis.
///
/// # Errors
/// Names the (masked) Redis URL when it cannot be reached.
async fn build_rate_limiter(
    settings: &Settings,
    database: &Database,
) -> anyhow::Result<(Arc<dyn RateLimiter>, Option<web::Dependency>)> {
    let url = settings.rate_limit.store.expose();
    if url.is_empty() {
        return Ok((Arc::clone(&database.rate_limits), None));
    }
    let shown = masked_url(url);
    let on_error = match settings.rate_limit.on_store_error {
        crate::settings::OnStoreError::Refuse => OnStoreError::Refuse,
        crate::settings::OnStoreError::Allow => OnStoreError::Allow,
    };
    let limiter = Arc::new(
        RedisRateLimiter::connect(url, &shown, on_error)
            .await
            .context("rate_limit.store (MAGICLINK_RATE_LIMIT__STORE)")?,
    );
    // A Redis whose failures let requests through is no reason to take the instance out of a
    // load balancer; one whose failures refuse them is.
    let health = (on_error == OnStoreError::Refuse)
        .then(|| web::Dependency { name: "rate_limit_store", probe: Arc::clone(&limiter) as Arc<dyn StoreHealth> });
    Ok((limiter, health))
}

/// Reads the template overrides in `templates.dir` for the given names.
///
/// # Errors
/// Names the file that cannot be read.
fn read_overrides(dir: &str, names: &[&str]) -> anyhow::Result<Vec<(String, String)>> {
    if dir.is_empty() {
        return Ok(Vec::new());
    }
    let folder = Path::new(dir);
    anyhow::ensure!(folder.is_dir(), "templates.dir `{dir}` is not a folder");
    let mut overrides = Vec::new();
    for name in names {
        let path = folder.join(name);
        if path.is_file() {
            let source =
                std::fs::read_to_string(&path).with_context(|| format!("cannot read template {}", path.display()))?;
            tracing::info!(template = %path.display(), "using a template override");
            overrides.push(((*name).to_owned(), source));
        }
    }
    Ok(overrides)
}

/// The translation files under `{templates.dir}/locales/`: `{lang}.ftl` for each language, a
/// built-in one (its messages replace the built-in ones) or a new one (which adds it).
///
/// # Errors
/// Names a file that cannot be read.
fn read_translations(dir: &str) -> anyhow::Result<Vec<(String, String)>> {
    let folder = Path::new(dir).join("locales");
    if dir.is_empty() || !folder.is_dir() {
        return Ok(Vec::new());
    }
    let mut files = Vec::new();
    let entries = std::fs::read_dir(&folder).with_context(|| format!("cannot list {}", folder.display()))?;
    for entry in entries {
        let path = entry.with_context(|| format!("cannot list {}", folder.display()))?.path();
        let Some(lang) =
            path.file_stem().and_then(|stem| stem.to_str()).filter(|_| path.extension() == Some("ftl".as_ref()))
        else {
            continue;
        };
        let source =
            std::fs::read_to_string(&path).with_context(|| format!("cannot read translations {}", path.display()))?;
        tracing::info!(file = %path.display(), lang, "using a translation file");
        files.push((lang.to_owned(), source));
    }
    // The same order on every machine, whatever order the folder lists in.
    files.sort();
    Ok(files)
}

/// The mailer to send with, and the development mailbox when that is the mailer.
type ConfiguredMailer = (Arc<dyn Mailer>, Option<Arc<DevMailer>>);

/// Builds the configured mailer.
///
/// # Errors
/// Names the mailer setting that is missing or malformed.
fn build_mailer(settings: &Settings, clock: Arc<dyn Clock>) -> anyhow::Result<ConfiguredMailer> {
    let mailer = &settings.mailer;
    Ok(match mailer.kind {
        MailerKind::Dev => {
            let capacity = usize::try_from(mailer.dev.capacity).unwrap_or(usize::MAX);
            let dev = Arc::new(DevMailer::new(clock, capacity));
            (dev.clone(), Some(dev))
        }
        MailerKind::Smtp => {
            let smtp = &mailer.smtp;
            let extra_root_pem = (!smtp.ca_file.is_empty())
                .then(|| std::fs::read(&smtp.ca_file))
                .transpose()
                .with_context(|| format!("mailer.smtp.ca_file `{}` cannot be read", smtp.ca_file))?;
            let adapter_settings = SmtpSettings {
                url: SecretText::new(smtp.url.expose()),
                username: (!smtp.username.is_empty()).then(|| smtp.username.clone()),
                password: (!smtp.password.expose().is_empty()).then(|| SecretText::new(smtp.password.expose())),
                starttls: match smtp.starttls {
                    StartTlsSetting::Required => StartTls::Required,
                    StartTlsSetting::Opportunistic => StartTls::Opportunistic,
                    StartTlsSetting::Off => StartTls::Off,
                },
                timeout: Duration::from_secs(u64::from(smtp.timeout.max(1))),
                pool_size: smtp.pool_size,
                extra_root_pem,
            };
            (Arc::new(SmtpMailer::new(&adapter_settings, parse_from(&mailer.from)?)?), None)
        }
        MailerKind::Resend => {
            let resend = &mailer.resend;
            let adapter_settings = ResendSettings {
                api_key: SecretText::new(resend.api_key.expose()),
                base_url: resend.base_url.clone(),
                timeout: Duration::from_secs(u64::from(resend.timeout.max(1))),
            };
            (Arc::new(ResendMailer::new(&adapter_settings, &parse_from(&mailer.from)?)?), None)
        }
    })
}

/// Builds the service from checked settings and a secret.
///
/// # Errors
/// Fails if the database cannot be opened, a template does not parse (naming the file and
/// line), or a mailer setting is malformed.
pub async fn build(
    settings: &Settings,
    base_url: url::Url,
    secret: ServerSecret,
    parts: Parts,
) -> anyhow::Result<Service> {
    let clock = parts.clock;
    let secrets = ring_with(secret, settings);
    let email_overrides = read_overrides(&settings.templates.dir, &adapters::mail::TEMPLATE_NAMES)?;
    let page_overrides = read_overrides(&settings.templates.dir, &web::render::TEMPLATE_NAMES)?;
    let translations = Arc::new(
        i18n::Translations::with_overrides(read_translations(&settings.templates.dir)?)
            .with_context(|| format!("in templates.dir `{}`/locales", settings.templates.dir))?,
    );
    let renderer = Arc::new(
        TemplateRenderer::with_overrides(email_overrides, &translations)
            .with_context(|| format!("in templates.dir `{}`", settings.templates.dir))?,
    );
    let pages = web::render::Pages::with_overrides(page_overrides, translations)
        .with_context(|| format!("in templates.dir `{}`", settings.templates.dir))?;
    let (configured_mailer, mailbox) = build_mailer(settings, Arc::clone(&clock))?;
    let mailer = parts.mailer.unwrap_or(configured_mailer);
    let store = open_store(settings, OpenMode::CreateIfMissing).await?.context("the database was not created")?;

    let web_settings = web_settings(settings, &base_url, &secrets);
    let server = &settings.server;
    let connection_limits = ConnectionLimits {
        max_connections: usize::try_from(server.max_connections).unwrap_or(usize::MAX),
        header_read_timeout: Duration::from_secs(u64::from(server.header_read_timeout)),
        max_header_bytes: usize::try_from(server.max_header_bytes).unwrap_or(usize::MAX),
        max_headers: usize::try_from(server.max_headers).unwrap_or(usize::MAX),
        max_connections_per_client: usize::try_from(server.max_connections_per_client).unwrap_or(usize::MAX),
    };
    let trusted_proxies = web_settings.trusted_proxies.clone();
    let callback_endpoint = base_url
        .join(&web_settings.auth_path("/callback/email"))
        .context("auth.base_path does not make a valid callback URL")?;
    let confirm_address_endpoint = base_url
        .join(&format!("{}/email/confirm", settings.pages.account))
        .context("pages.account does not make a valid URL")?;
    let (handover, handed_over) = adapters::handover::handover(HANDOVER_CAPACITY, DELIVERY_LEASE);
    let (limiter, limiter_health) = build_rate_limiter(settings, &store).await?;
    // Sessions first: both providers (links, passwords) open sessions through the service.
    store.configure_audit(adapters::sql::AuditOptions {
        enabled: settings.audit.enabled,
        log_json: settings.audit.log_json,
    });
    let sessions = Sessions::new(
        Arc::clone(&store.sessions),
        Arc::clone(&store.audit),
        Arc::clone(&clock),
        SessionSettings {
            policy: SessionPolicy::new(settings.session.max_age, settings.session.update_age)
                .with_absolute_max_age(settings.session.absolute_max_age),
            recent_sign_in: TimeDelta::seconds(i64::from(settings.session.recent_sign_in)),
        },
    );
    let alerts = &settings.alerts;
    let sessions = Arc::new(if alerts.new_sign_in || alerts.password_changed || alerts.passkey_added {
        let account_url = base_url.join(&settings.pages.account).context("pages.account does not make a valid URL")?;
        sessions.with_alerts(Arc::new(ports::alerts::Alerts::new(
            Arc::clone(&store.outbox),
            handover.clone(),
            Arc::clone(&store.audit),
            Arc::clone(&clock),
            ports::alerts::AlertSettings {
                new_sign_in: alerts.new_sign_in,
                password_changed: alerts.password_changed,
                passkey_added: alerts.passkey_added,
                account_url,
                secrets: secrets.clone(),
            },
        )))
    } else {
        sessions
    });
    let passwords = password_support(settings, &store, secrets.current())?.map(|support| {
        Arc::new(Passwords::new(support, Arc::clone(&sessions), Arc::clone(&limiter), Arc::clone(&clock)))
    });
    let passkeys = passkeys(settings, &store, &base_url, secrets.current(), &sessions, &limiter, &clock)?;
    let signer = token_signer(&store, &secrets, &clock);
    let oidc = oidc(settings, &store, &base_url, &signer, &secrets, &limiter, &clock);
    // Rows the store queues on its own (logout notices) wake the worker like a hand-over.
    store.wake_worker_with(handed_over.wakes());
    let sign_in = Arc::new(SignIn::new(
        Arc::clone(&store.links),
        Arc::clone(&store.users),
        Arc::clone(&sessions),
        handover,
        limiter,
        Arc::clone(&clock),
        SignInSettings {
            secrets: secrets.clone(),
            link_policy: LinkPolicy::new(settings.magic_link.max_age),
            callback_endpoint,
            confirm_address_endpoint,
            link_retention: LINK_RETENTION,
            limits: sign_in_limits(&settings.rate_limit),
            sign_up: sign_up_policy(settings)?,
            notify_address_change: settings.alerts.address_changed,
        },
    ));
    let outbox = &settings.outbox;
    let secrets_for_webhooks = secrets.clone();
    let deliverer = Deliverer::new(
        Arc::clone(&store.outbox),
        renderer,
        Arc::clone(&mailer),
        clock,
        DeliverySettings {
            secrets,
            retry: RetryPolicy {
                max_attempts: outbox.max_attempts,
                base_delay: TimeDelta::seconds(i64::from(outbox.base_delay)),
                max_delay: TimeDelta::seconds(i64::from(outbox.max_delay)),
            },
            concurrency: outbox.concurrency,
            lease: DELIVERY_LEASE,
            site_name: settings.site_name.clone(),
            host: base_url.host_str().unwrap_or_default().to_owned(),
        },
    );
    let app_sender: Arc<dyn ports::WebhookSender> =
        Arc::new(adapters::webhook::HttpWebhookSender::new(APP_NOTICE_TIMEOUT)?);
    let deliverer = if settings.oidc.enabled {
        let logout = ports::BackchannelLogout::new(Arc::clone(&store.clients), signer, issuer(&base_url));
        deliverer.with_app_notices(Arc::new(logout), Arc::clone(&app_sender))
    } else {
        deliverer
    };
    let deliverer = Arc::new(match route_webhooks(settings, &store, secrets_for_webhooks.current())? {
        endpoints if endpoints.is_empty() => deliverer,
        endpoints => deliverer.with_webhooks(endpoints, app_sender),
    });
    let magiclink = web::Magiclink::new(AppState {
        sign_in: Arc::clone(&sign_in),
        sessions,
        passwords,
        passkeys: passkeys.clone(),
        oidc: oidc.clone(),
        health: std::iter::once(web::Dependency { name: "database", probe: Arc::clone(&store.health) })
            .chain(limiter_health)
            .collect(),
        mailbox: mailbox.clone().map(|m| m as Arc<dyn DevMailbox>),
        settings: web_settings,
        pages,
    });
    let app = (parts.embed)(magiclink.clone());
    // Bound here, so that a port 0 is chosen before anything runs and can be read back.
    let metrics = match settings.metrics.bind.as_str() {
        "" => None,
        bind => {
            let listener = tokio::net::TcpListener::bind(bind)
                .await
                .with_context(|| format!("cannot listen for metrics on metrics.bind = {bind}"))?;
            Some((listener, crate::metrics::recorder()?))
        }
    };
    Ok(Service {
        app,
        magiclink,
        store,
        sign_in,
        deliverer,
        passkeys,
        oidc,
        retired_key_lifetime: retired_key_lifetime(settings),
        audit_retention: TimeDelta::days(i64::from(settings.audit.retention_days)),
        handed_over,
        mailbox,
        mailer,
        connection_limits,
        trusted_proxies,
        metrics,
    })
}

/// A bound, not yet running server: tests bind port 0 and read the address back.
pub struct Bound {
    listener: tokio::net::TcpListener,
    /// The address actually bound.
    pub local_addr: SocketAddr,
}

/// File descriptors the service needs beside its client connections: database and SMTP
/// pools, the metrics listener, logs, the SQLite files.
const FILES_BESIDE_CONNECTIONS: u64 = 64;

/// Raises the soft open-file limit to the hard one (a shell's default soft limit, often 1024,
/// is below `server.max_connections` plus what the service needs beside them), and warns when
/// `max_connections` still does not fit under it: past the limit `accept` fails and new
/// connections wait. Returns the soft limit now in force.
pub fn raise_open_file_limit(max_connections: u32) -> Option<u64> {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(soft) => {
            if u64::from(max_connections) + FILES_BESIDE_CONNECTIONS > soft {
                tracing::warn!(
                    open_file_limit = soft,
                    max_connections,
                    "server.max_connections does not fit under the open-file limit: lower it, or raise the limit \
                     (LimitNOFILE= in the systemd unit, ulimit -n)"
                );
            }
            Some(soft)
        }
        Err(error) => {
            tracing::warn!(error = %error, "cannot read or raise the open-file limit");
            None
        }
    }
}

/// Binds `addr`.
///
/// # Errors
/// Fails if the address is taken or malformed.
pub async fn bind(addr: &str) -> anyhow::Result<Bound> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} (server.bind / --bind)"))?;
    let local_addr = listener.local_addr().context("the listener has no socket address")?;
    Ok(Bound { listener, local_addr })
}

/// Serves until `shutdown` resolves, with the delivery worker and hourly housekeeping running
/// beside the server, then closes the database.
///
/// # Errors
/// Fails if the server fails.
pub async fn run(
    service: Service,
    bound: Bound,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (stop_delivery, delivery_stopped) = tokio::sync::oneshot::channel::<()>();
    let delivery = tokio::spawn(deliver_forever(Arc::clone(&service.deliverer), service.handed_over, async {
        let _ = delivery_stopped.await;
    }));
    let housekeeping = tokio::spawn(purge_every_hour(Housekeeping {
        sign_in: Arc::clone(&service.sign_in),
        deliverer: Arc::clone(&service.deliverer),
        passkeys: service.passkeys.clone(),
        oidc: service.oidc.clone(),
        signing_keys: Arc::clone(&service.store.signing_keys),
        retired_key_lifetime: service.retired_key_lifetime,
        audit: Arc::clone(&service.store.audit),
        audit_retention: service.audit_retention,
    }));
    let metrics = match service.metrics {
        Some((listener, handle)) => {
            let address = listener.local_addr().context("the metrics listener has no address")?;
            tracing::info!(address = %address, "metrics at /metrics");
            let app = crate::metrics::app(handle, service.store.clone());
            let acceptor = poem::listener::TcpAcceptor::from_tokio(listener).context("metrics listener")?;
            Some(tokio::spawn(poem::Server::new_with_acceptor(acceptor).run(app)))
        }
        None => None,
    };
    let result = web::server::serve(
        bound.listener,
        service.app,
        service.connection_limits,
        service.trusted_proxies,
        shutdown,
        SHUTDOWN_GRACE,
    )
    .await;
    // The worker finishes the send in hand and gives back what it had not started; a send cut
    // short by the grace period is retried after its lease by the next run.
    let _ = stop_delivery.send(());
    if tokio::time::timeout(SHUTDOWN_GRACE, delivery).await.is_err() {
        tracing::warn!("the delivery worker did not stop in time; its emails go out after their lease");
    }
    housekeeping.abort();
    if let Some(metrics) = metrics {
        metrics.abort();
    }
    service.store.close().await;
    result.context("the server failed")
}

/// The delivery worker: sends what is handed over as soon as it arrives, and claims due rows
/// when woken, when the next one is due, and at least every minute (rows left by another
/// instance, or by this one before a restart). When `stop` resolves, it gives back what was
/// handed over and not yet sent, and returns.
pub async fn deliver_forever(
    deliverer: Arc<Deliverer>,
    mut inbox: HandedOver,
    stop: impl std::future::Future<Output = ()>,
) {
    const IDLE: Duration = Duration::from_secs(60);
    // Handed-over batches being sent at once: a batch waiting to record its sends (a write)
    // must not hold up the next batch's sending.
    const BATCHES_IN_FLIGHT: u32 = 4;
    let batch_limit = usize::try_from(deliverer.settings().concurrency.max(1)).unwrap_or(1).saturating_mul(4);
    let in_flight = Arc::new(tokio::sync::Semaphore::new(BATCHES_IN_FLIGHT as usize));
    let mut batch = Vec::with_capacity(batch_limit);
    let wakes = inbox.wakes();
    // Every sender gone (shutting down): only claims are left to serve.
    let mut senders_gone = false;
    // Claim first: rows leased by a previous run, or due while nothing ran.
    let mut next_claim = tokio::time::Instant::now();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => {
                // Let the batches in flight finish, then give back what is left.
                let _all = in_flight.acquire_many(BATCHES_IN_FLIGHT).await;
                match deliverer.release(inbox.drain()).await {
                    Ok(0) => {}
                    Ok(given_back) => tracing::info!(given_back, "stopping: unsent emails given back to the outbox"),
                    Err(error) => tracing::warn!(error = %format!("{error:#}"), "stopping: unsent emails go out after their lease"),
                }
                return;
            }
            received = inbox.receive(&mut batch, batch_limit), if !senders_gone => {
                if received == 0 {
                    senders_gone = true;
                    continue;
                }
                // Waits only while BATCHES_IN_FLIGHT batches are still sending: back-pressure.
                let Ok(permit) = Arc::clone(&in_flight).acquire_owned().await else { continue };
                let batch = std::mem::replace(&mut batch, Vec::with_capacity(batch_limit));
                let deliverer = Arc::clone(&deliverer);
                let wakes = wakes.clone();
                tokio::spawn(async move {
                    let report = deliverer.deliver_handed_over(batch).await;
                    crate::metrics::record_batch(&report);
                    if report.unrecorded > 0 {
                        keep_recording(&deliverer).await;
                    }
                    if report.left_pending() {
                        wakes.wake();
                    }
                    drop(permit);
                });
            }
            () = wakes.woken() => next_claim = tokio::time::Instant::now(),
            () = tokio::time::sleep_until(next_claim) => {
                let wait = claim_until_idle(&deliverer).await;
                next_claim = tokio::time::Instant::now() + wait.min(IDLE);
            }
        }
    }
}

/// Records sent emails whose record failed, trying again after growing pauses until it works
/// or their lease runs out ([`Deliverer::record_again`]): a database that is briefly away (a
/// full disk, a failover) must not make the next worker send them a second time.
async fn keep_recording(deliverer: &Deliverer) {
    let mut pause = Duration::from_millis(250);
    loop {
        tokio::time::sleep(pause).await;
        match deliverer.record_again().await {
            Ok(_) => return,
            Err(error) => tracing::warn!(error = %format!("{error:#}"), "recording sent emails failed again"),
        }
        pause = (pause * 2).min(Duration::from_secs(5));
    }
}

/// Claims and delivers due rows until none is left, then says how long until the next is due.
async fn claim_until_idle(deliverer: &Deliverer) -> Duration {
    loop {
        match deliverer.deliver_due().await {
            Ok(report) if report.claimed > 0 => {
                crate::metrics::record_batch(&report);
                if report.unrecorded > 0 {
                    keep_recording(deliverer).await;
                }
                tracing::info!(
                    claimed = report.claimed,
                    sent = report.sent,
                    retried = report.retried,
                    failed = report.failed,
                    dropped = report.dropped,
                    "outbox batch delivered"
                );
            }
            Ok(_) => break,
            Err(error) => {
                tracing::error!(error = %format!("{error:#}"), "outbox delivery failed; trying again shortly");
                return Duration::from_secs(5);
            }
        }
    }
    match deliverer.next_due().await {
        Ok(Some(due)) => (due - Utc::now()).to_std().unwrap_or(Duration::ZERO),
        Ok(None) => Duration::MAX,
        Err(_) => Duration::from_secs(5),
    }
}

/// What the hourly housekeeping purges.
struct Housekeeping {
    sign_in: Arc<SignIn>,
    deliverer: Arc<Deliverer>,
    passkeys: Option<Arc<ports::Passkeys>>,
    oidc: Option<Arc<ports::Authorization>>,
    signing_keys: Arc<dyn ports::SigningKeyStore>,
    retired_key_lifetime: TimeDelta,
    audit: Arc<dyn ports::AuditLog>,
    audit_retention: TimeDelta,
}

async fn purge_every_hour(work: Housekeeping) {
    let Housekeeping { sign_in, deliverer, passkeys, oidc, signing_keys, retired_key_lifetime, audit, audit_retention } =
        work;
    let mut interval = tokio::time::interval(Duration::from_secs(3600));
    loop {
        interval.tick().await;
        if let Some(oidc) = &oidc {
            let now = Utc::now();
            match oidc.purge_expired(now).await {
                Ok(rows) => tracing::info!(rows, "purged expired OpenID Connect codes, tokens and grants"),
                Err(error) => tracing::warn!(error = %format!("{error:#}"), "purging OpenID Connect grants failed"),
            }
            match signing_keys.delete_retired_keys(now - retired_key_lifetime).await {
                Ok(rows) => tracing::info!(rows, "deleted retired signing keys"),
                Err(error) => tracing::warn!(error = %format!("{error:#}"), "deleting retired signing keys failed"),
            }
        }
        match sign_in.purge_expired().await {
            Ok((links, sessions)) => tracing::info!(links, sessions, "purged expired links and sessions"),
            Err(error) => tracing::warn!(error = %format!("{error:#}"), "purging expired links and sessions failed"),
        }
        match audit.purge_before(Utc::now() - audit_retention).await {
            Ok(rows) => tracing::info!(rows, "purged audit events past audit.retention_days"),
            Err(error) => tracing::warn!(error = %format!("{error:#}"), "purging audit events failed"),
        }
        match deliverer.purge_finished(OUTBOX_RETENTION).await {
            Ok(rows) => tracing::info!(rows, "purged old delivery records"),
            Err(error) => tracing::warn!(error = %format!("{error:#}"), "purging delivery records failed"),
        }
        if let Some(passkeys) = &passkeys {
            match passkeys.purge_expired().await {
                Ok(rows) => tracing::info!(rows, "purged unfinished passkey ceremonies"),
                Err(error) => tracing::warn!(error = %format!("{error:#}"), "purging passkey ceremonies failed"),
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

/// Opens an existing, fully migrated database for a command that only reads it.
///
/// # Errors
/// Says to run `migrate` first when the database is missing or has pending migrations.
pub async fn open_migrated(settings: &Settings, program: Program) -> anyhow::Result<adapters::database::Database> {
    let migrate = program.command("migrate");
    let Some(store) = open_store(settings, OpenMode::MustExist).await? else {
        anyhow::bail!(
            "the database `{}` does not exist yet: run `{migrate}` first",
            adapters::database::masked_url(settings.database.url.expose())
        );
    };
    let pending = store.migration_status().await?.iter().filter(|m| m.applied_at.is_none()).count();
    if pending > 0 {
        store.close().await;
        anyhow::bail!("the database has {pending} pending migration(s): run `{migrate}` first");
    }
    Ok(store)
}

/// Puts the database's configured clients in step with `oidc.clients` (checked already by
/// [`Settings::check`]); run by `serve` once the schema is current.
///
/// # Errors
/// On a client the checks would refuse, or a storage failure.
pub async fn sync_configured_clients(settings: &Settings, store: &Database) -> anyhow::Result<()> {
    if !settings.oidc.enabled {
        return Ok(());
    }
    let now = Utc::now();
    let clients = settings
        .oidc
        .clients
        .iter()
        .map(|client| client.to_client(now).map_err(|problem| anyhow::anyhow!("oidc.clients: {problem}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    store.clients.sync_configured_clients(&clients).await
}
