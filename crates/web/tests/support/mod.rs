//! What the web crate's tests share: settings with the defaults a deployment would have.

use domain::ServerSecret;
use url::Url;
use web::{CookieNames, PagePaths, RequestLimits, WebSettings};

/// The web settings of a deployment at `base_url` with the default paths and limits.
pub fn web_settings(base_url: &str, secret: ServerSecret) -> WebSettings {
    WebSettings {
        base_url: Url::parse(base_url).expect("a valid base URL"),
        auth_base_path: "/api/auth".to_owned(),
        pages: PagePaths {
            sign_in: "/signin".to_owned(),
            verify_request: "/check-your-email".to_owned(),
            error: "/auth-error".to_owned(),
            account: "/account".to_owned(),
        },
        site_name: "magiclink".to_owned(),
        secrets: domain::SecretRing::single(secret),
        cookie_names: CookieNames::default(),
        limits: RequestLimits::default(),
        trusted_proxies: Vec::new(),
        audit_client_address: domain::audit::ClientAddressPolicy::Truncated,
        allow_unicode_local_part: false,
        session_cookie_domain: None,
        forward_auth: web::ForwardAuth::default(),
        metrics: false,
        restart_forgets_links: false,
        access_log: false,
        passkeys: false,
        oidc: false,
    }
}
