//! Loading and checking settings, in figment's sandbox (no real environment is touched).

// `Jail::expect_with` closures must return figment's own (large) error type.
#![allow(clippy::result_large_err)]

use std::path::PathBuf;

use figment::Jail;

use super::Program;
use super::{load, MailerKind, Overrides, Settings, Sources, DEVELOPMENT};

fn sources(jail: &Jail, profile: &str) -> Sources {
    Sources {
        config_dir: jail.directory().join("config"),
        dotenv: jail.directory().join(".env"),
        profile: profile.to_owned(),
    }
}

fn committed_default_toml() -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../config/default.toml");
    std::fs::read_to_string(path).expect("config/default.toml is readable")
}

#[test]
fn the_committed_default_toml_matches_the_built_in_defaults() {
    let from_file: Settings = toml::from_str(&committed_default_toml()).expect("default.toml parses");
    assert_eq!(from_file, Settings::default(), "config/default.toml and Settings::default() disagree");
}

#[test]
fn the_configuration_reference_documents_every_key_with_its_env_var() {
    let docs = std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/configuration.md"))
        .expect("docs/configuration.md is readable");
    let table: toml::Table = toml::from_str(&committed_default_toml()).expect("parses");
    fn leaf_keys(prefix: &str, table: &toml::Table, out: &mut Vec<String>) {
        for (key, value) in table {
            let path = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
            match value.as_table() {
                Some(section) => leaf_keys(&path, section, out),
                None => out.push(path),
            }
        }
    }
    let mut keys = Vec::new();
    leaf_keys("", &table, &mut keys);
    assert!(keys.len() > 25, "found only {} keys", keys.len());
    // Each key's row: | `key` | `default` | env | what it does |
    let documented_default = |key: &str| {
        docs.lines().find_map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            (cells.len() > 3 && cells[1] == format!("`{key}`")).then(|| cells[2].trim_matches('`').to_owned())
        })
    };
    for key in keys {
        let env = format!("MAGICLINK_{}", key.replace('.', "__").to_uppercase());
        assert!(docs.contains(&env), "docs/configuration.md does not name {env}");
        let documented =
            documented_default(&key).unwrap_or_else(|| panic!("docs/configuration.md has no table row for `{key}`"));
        let value = key.split('.').try_fold(&toml::Value::Table(table.clone()), |v, part| v.get(part)).cloned();
        let value = value.map(|v| v.to_string()).unwrap_or_default();
        assert_eq!(documented, value, "docs/configuration.md gives `{key}` another default than config/default.toml");
    }
}

#[test]
fn layers_apply_in_order_file_profile_dotenv_env_flags() {
    Jail::expect_with(|jail| {
        jail.create_dir("config")?;
        jail.create_file("config/default.toml", "site_name = \"from-default\"\n[server]\nbind = \"127.0.0.1:1\"")?;
        jail.create_file("config/staging.toml", "[server]\nbind = \"127.0.0.1:2\"\n[magic_link]\nmax_age = 300")?;
        jail.create_file(
            ".env",
            "AUTH_SECRET=from-dotenv\nMAGICLINK_SESSION__UPDATE_AGE=60\nMAGICLINK_SITE_NAME=dotenv-name",
        )?;
        jail.set_env("MAGICLINK_SITE_NAME", "from-env");
        jail.set_env("DATABASE_URL", "sqlite://authjs.sqlite");

        let settings = load(&sources(jail, "staging"), &Overrides::default()).expect("loads");
        assert_eq!(settings.site_name, "from-env", "env beats .env and files");
        assert_eq!(settings.server.bind, "127.0.0.1:2", "profile file beats default.toml");
        assert_eq!(settings.magic_link.max_age, 300);
        assert_eq!(settings.secret.expose(), "from-dotenv", ".env supplies AUTH_SECRET");
        assert_eq!(settings.session.update_age, 60, ".env supplies nested MAGICLINK_ keys, typed");
        assert_eq!(settings.database.url.expose(), "sqlite://authjs.sqlite", "DATABASE_URL is honoured");

        let flags =
            Overrides { bind: Some("127.0.0.1:9".to_owned()), database_url: Some("sqlite://flag.sqlite".to_owned()) };
        let settings = load(&sources(jail, "staging"), &flags).expect("loads");
        assert_eq!(settings.server.bind, "127.0.0.1:9", "flags beat everything");
        assert_eq!(settings.database.url.expose(), "sqlite://flag.sqlite");
        Ok(())
    });
}

#[test]
fn magiclink_names_beat_the_authjs_names_and_nest_with_double_underscores() {
    Jail::expect_with(|jail| {
        jail.set_env("AUTH_URL", "https://authjs.example.com");
        jail.set_env("MAGICLINK_SERVER__BASE_URL", "https://magiclink.example.com");
        jail.set_env("MAGICLINK_PROFILE", "production");
        jail.set_env("MAGICLINK_SESSION__MAX_AGE", "3600");

        let settings = load(&sources(jail, DEVELOPMENT), &Overrides::default()).expect("loads");

        assert_eq!(settings.server.base_url, "https://magiclink.example.com");
        assert_eq!(settings.session.max_age, 3600);
        Ok(())
    });
}

#[test]
fn an_unknown_key_or_a_wrong_type_names_the_key() {
    Jail::expect_with(|jail| {
        jail.set_env("MAGICLINK_SESSION__MAX_AGE", "soon");
        let error = load(&sources(jail, DEVELOPMENT), &Overrides::default()).expect_err("refused");
        assert!(error.to_string().to_lowercase().contains("max_age"), "{error}");
        Ok(())
    });
    Jail::expect_with(|jail| {
        jail.create_dir("config")?;
        jail.create_file("config/default.toml", "[server]\nbnid = \"typo\"")?;
        let error = load(&sources(jail, DEVELOPMENT), &Overrides::default()).expect_err("refused");
        assert!(error.to_string().contains("bnid"), "{error}");
        Ok(())
    });
}

/// A key the refusal must name, and how to break the settings so that it is refused.
type Breakage = (&'static str, Box<dyn Fn(&mut Settings)>);

/// Breaks settings from `start` each way in `cases` and checks that the refusal has exactly
/// one problem, naming the key.
fn assert_each_refused(start: fn() -> Settings, profile: &str, cases: Vec<Breakage>) {
    for (named, break_it) in cases {
        let mut settings = start();
        break_it(&mut settings);
        let refusal = settings.check(profile, Program::Magiclink).expect_err("refused");
        assert_eq!(refusal.problems.len(), 1, "{refusal}");
        assert!(refusal.problems[0].contains(named), "{refusal}");
        assert!(!refusal.problems[0].contains('\n'), "one line per problem: {refusal}");
    }
}

/// Settings the production profile accepts.
fn production_ready() -> Settings {
    let mut settings = Settings {
        secret: super::Secret::from("q3V9c1mZ0rYb8LxT2kFhN6sWdP4eJuGa7oQyRiXv5Ek".to_owned()),
        server: super::ServerSettings { base_url: "https://auth.example.com".to_owned(), ..Default::default() },
        ..Settings::default()
    };
    settings.mailer.kind = MailerKind::Resend;
    settings.mailer.from = "magiclink <no-reply@example.com>".to_owned();
    settings.mailer.resend.api_key = "re_123".to_owned().into();
    settings
}

#[test]
fn production_refuses_each_unsafe_setting_naming_it() {
    let cases: Vec<Breakage> = vec![
        ("AUTH_SECRET", Box::new(|s| s.secret = super::Secret::default())),
        ("AUTH_SECRET", Box::new(|s| s.secret = super::Secret::from("too-short".to_owned()))),
        ("AUTH_SECRET", Box::new(|s| s.secret = super::Secret::from("a".repeat(40)))),
        ("AUTH_SECRET", Box::new(|s| s.secret = super::Secret::from("secret".repeat(8)))),
        ("server.base_url", Box::new(|s| s.server.base_url = "http://auth.example.com".to_owned())),
        ("server.base_url", Box::new(|s| s.server.base_url = String::new())),
        ("mailer.kind", Box::new(|s| s.mailer.kind = MailerKind::Dev)),
        ("previous_secrets", Box::new(|s| s.previous_secrets = vec![super::Secret::from("short".to_owned())])),
        ("previous_secrets", Box::new(|s| s.previous_secrets = vec![super::Secret::from("x".repeat(64))])),
    ];
    assert_each_refused(production_ready, "production", cases);
}

#[test]
fn production_lists_every_problem_at_once() {
    let refusal = Settings::default().check("production", Program::Magiclink).expect_err("refused");

    let text = refusal.to_string();
    assert_eq!(refusal.problems.len(), 3, "{text}");
    for named in ["AUTH_SECRET", "server.base_url", "mailer.kind"] {
        assert!(text.contains(named), "{named} missing from: {text}");
    }
    assert_eq!(text.lines().count(), 4, "a heading and one line per problem: {text}");
}

#[test]
fn advice_names_the_command_the_operator_runs() {
    let as_binary = Settings::default().check("production", Program::Magiclink).expect_err("refused");
    let as_xtask = Settings::default().check("production", Program::CargoXtask).expect_err("refused");

    assert!(as_binary.to_string().contains("`magiclink secret`"), "{as_binary}");
    assert!(as_xtask.to_string().contains("`cargo xtask secret`"), "{as_xtask}");
}

#[test]
fn development_generates_a_secret_and_allows_http_and_the_dev_mailer() {
    let checked =
        Settings::default().check(DEVELOPMENT, Program::CargoXtask).expect("development accepts the defaults");
    assert!(checked.needs_ephemeral_secret);
    assert_eq!(checked.base_url, None, "no base URL by default: the bound address stands in");
}

#[test]
fn an_unset_development_base_url_is_the_bound_address_on_loopback() {
    let checked = Settings::default().check(DEVELOPMENT, Program::CargoXtask).expect("accepted");
    let cases = [
        ("127.0.0.1:8080", "http://127.0.0.1:8080/"),
        ("0.0.0.0:8081", "http://127.0.0.1:8081/"),
        ("[::]:8082", "http://[::1]:8082/"),
        ("[::1]:8083", "http://[::1]:8083/"),
    ];
    for (bound, expected) in cases {
        let bound: std::net::SocketAddr = bound.parse().expect("a socket address");
        assert_eq!(checked.public_base_url(bound).as_str(), expected, "{bound}");
    }
}

#[test]
fn a_configured_base_url_wins_over_the_bound_address() {
    let mut settings = Settings::default();
    settings.server.base_url = "http://localhost:3000".to_owned();
    let checked = settings.check(DEVELOPMENT, Program::CargoXtask).expect("accepted");

    let url = checked.public_base_url("127.0.0.1:8080".parse().expect("address"));

    assert_eq!(url.as_str(), "http://localhost:3000/");
}

#[test]
fn cookie_names_are_checked_and_must_differ() {
    let cases: Vec<Breakage> = vec![
        ("session.cookie_name", Box::new(|s| s.session.cookie_name = "__Host-session".to_owned())),
        ("session.cookie_name", Box::new(|s| s.session.cookie_name = "has space".to_owned())),
        ("csrf.cookie_name", Box::new(|s| s.csrf.cookie_name = "semi;colon".to_owned())),
        ("csrf.cookie_name", Box::new(|s| s.csrf.cookie_name = String::new())),
        ("must differ", Box::new(|s| s.csrf.cookie_name = s.session.cookie_name.clone())),
    ];
    assert_each_refused(Settings::default, DEVELOPMENT, cases);
    let mut staging = Settings::default();
    staging.session.cookie_name = "staging.session".to_owned();
    staging.csrf.cookie_name = "staging.csrf".to_owned();
    assert!(staging.check(DEVELOPMENT, Program::CargoXtask).is_ok());
}

#[test]
fn malformed_paths_and_urls_are_refused_in_every_profile() {
    let cases: Vec<Breakage> = vec![
        ("server.base_url", Box::new(|s| s.server.base_url = "not a url".to_owned())),
        ("server.base_url", Box::new(|s| s.server.base_url = "https://example.com/app".to_owned())),
        ("server.base_url", Box::new(|s| s.server.base_url = "https://user:pw@example.com".to_owned())),
        ("auth.base_path", Box::new(|s| s.auth.base_path = "api/auth".to_owned())),
        ("pages.sign_in", Box::new(|s| s.pages.sign_in = "//evil.example".to_owned())),
        ("magic_link.max_age", Box::new(|s| s.magic_link.max_age = 0)),
        ("session.max_age", Box::new(|s| s.session.update_age = s.session.max_age + 1)),
    ];
    assert_each_refused(Settings::default, DEVELOPMENT, cases);
}

#[test]
fn forward_auth_origins_the_cookie_domain_and_the_metrics_address_are_checked() {
    let cases: Vec<Breakage> = vec![
        (
            "forward_auth.allowed_origins",
            Box::new(|s| s.forward_auth.allowed_origins = vec!["app.example.com".to_owned()]),
        ),
        (
            "forward_auth.allowed_origins",
            Box::new(|s| s.forward_auth.allowed_origins = vec!["https://app.example.com/reports".to_owned()]),
        ),
        (
            "forward_auth.allowed_origins",
            Box::new(|s| s.forward_auth.allowed_origins = vec!["ftp://app.example.com".to_owned()]),
        ),
        ("session.cookie_domain", Box::new(|s| s.session.cookie_domain = "other.example".to_owned())),
        ("session.cookie_domain", Box::new(|s| s.session.cookie_domain = ".example.com".to_owned())),
        ("session.cookie_domain", Box::new(|s| s.session.cookie_domain = "com".to_owned())),
        ("session.cookie_domain", Box::new(|s| s.session.cookie_domain = "xample.com".to_owned())),
        ("metrics.bind", Box::new(|s| s.metrics.bind = "everywhere".to_owned())),
    ];
    assert_each_refused(production_ready, "production", cases);

    let mut shared = production_ready();
    shared.session.cookie_domain = "example.com".to_owned();
    shared.forward_auth.allowed_origins =
        vec!["https://app.example.com".to_owned(), "http://127.0.0.1:8080/".to_owned()];
    assert!(shared.check("production", Program::Magiclink).is_ok());
    let origins = shared.forward_auth.origins().expect("parsed");
    assert_eq!(origins[1].ascii_serialization(), "http://127.0.0.1:8080");
    shared.session.cookie_domain = "auth.example.com".to_owned();
    assert!(shared.check("production", Program::Magiclink).is_ok(), "the host itself is allowed");
}

#[test]
fn the_secret_never_appears_in_debug_output() {
    let mut settings = production_ready();
    settings.previous_secrets = vec![super::Secret::from("fedcba9876543210fedcba9876543210".to_owned())];
    let debug = format!("{settings:?}");
    assert!(!debug.contains("0123456789abcdef") && !debug.contains("fedcba9876543210"), "{debug}");
}

#[test]
fn the_real_mailers_name_each_missing_setting() {
    let cases: Vec<Breakage> = vec![
        (
            "mailer.from",
            Box::new(|s| {
                s.mailer.kind = MailerKind::Smtp;
                s.mailer.smtp.url = "smtp://127.0.0.1".to_owned().into();
            }),
        ),
        (
            "mailer.smtp.url",
            Box::new(|s| {
                s.mailer.kind = MailerKind::Smtp;
                s.mailer.from = "no-reply@example.com".to_owned();
            }),
        ),
        (
            "AUTH_RESEND_KEY",
            Box::new(|s| {
                s.mailer.kind = MailerKind::Resend;
                s.mailer.from = "no-reply@example.com".to_owned();
            }),
        ),
        ("outbox.concurrency", Box::new(|s| s.outbox.concurrency = 0)),
    ];
    assert_each_refused(Settings::default, DEVELOPMENT, cases);
}

#[test]
fn production_starts_with_a_real_mailer_and_a_strong_secret_over_https() {
    let checked = production_ready().check("production", Program::Magiclink).expect("accepted");

    assert!(!checked.needs_ephemeral_secret);
    assert_eq!(checked.base_url.map(String::from).as_deref(), Some("https://auth.example.com/"));
}

#[test]
fn mailer_settings_come_from_the_environment_including_auth_resend_key() {
    Jail::expect_with(|jail| {
        jail.set_env("MAGICLINK_MAILER__KIND", "resend");
        jail.set_env("MAGICLINK_MAILER__FROM", "Acme <no-reply@acme.example>");
        jail.set_env("AUTH_RESEND_KEY", "re_from_env");
        jail.set_env("MAGICLINK_MAILER__SMTP__STARTTLS", "opportunistic");
        jail.set_env("MAGICLINK_OUTBOX__MAX_ATTEMPTS", "3");

        let settings = load(&sources(jail, DEVELOPMENT), &Overrides::default()).expect("loads");

        assert_eq!(settings.mailer.kind, MailerKind::Resend);
        assert_eq!(settings.mailer.from, "Acme <no-reply@acme.example>");
        assert_eq!(settings.mailer.resend.api_key.expose(), "re_from_env");
        assert_eq!(settings.mailer.smtp.starttls, super::StartTlsSetting::Opportunistic);
        assert_eq!(settings.outbox.max_attempts, 3);
        assert!(!format!("{settings:?}").contains("re_from_env"), "the key is redacted");
        Ok(())
    });
}

#[test]
fn configured_clients_come_from_the_file_or_the_environment_and_each_problem_is_named() {
    Jail::expect_with(|jail| {
        jail.create_dir("config")?;
        jail.create_file(
            "config/default.toml",
            &format!(
                "[[oidc.clients]]\nid = \"wiki\"\nname = \"Team wiki\"\nredirect_uris = [\"https://wiki.example.com/cb\"]\nsecret_hash = \"{}\"\nfirst_party = true\nbackchannel_logout_uri = \"https://wiki.example.com/bc\"\n",
                "ab".repeat(32)
            ),
        )?;
        let settings = load(&sources(jail, "development"), &Overrides::default()).expect("loads");
        assert_eq!(settings.oidc.clients.len(), 1);
        let client = settings.oidc.clients[0].to_client(chrono::Utc::now()).expect("a valid client");
        assert!(client.from_config && client.first_party && client.secret_hash.is_some());
        assert_eq!(client.backchannel_logout_uri.map(String::from), Some("https://wiki.example.com/bc".to_owned()));
        jail.set_env(
            "MAGICLINK_OIDC__CLIENTS",
            "[{id=\"spa\",name=\"SPA\",redirect_uris=[\"https://spa.example.com/cb\"],public=true}]",
        );
        let settings = load(&sources(jail, "development"), &Overrides::default()).expect("loads");
        assert_eq!(settings.oidc.clients[0].id, "spa", "the environment replaces the list");
        assert!(settings.oidc.clients[0].public);
        Ok(())
    });
    let mut settings = Settings::default();
    let client = |id: &str, uri: &str, hash: &str, public: bool| crate::settings::ConfiguredClient {
        id: id.to_owned(),
        name: "App".to_owned(),
        redirect_uris: vec![uri.to_owned()],
        post_logout_redirect_uris: vec![],
        secret_hash: hash.to_owned(),
        public,
        first_party: false,
        id_token_alg: "RS256".to_owned(),
        backchannel_logout_uri: String::new(),
    };
    settings.oidc.clients = vec![
        client("a", "http://app.example.com/cb", &"ab".repeat(32), false),
        client("b", "https://app.example.com/cb", "not hex", false),
        client("c", "https://app.example.com/cb", "", true),
        client("c", "https://app.example.com/cb", "", true),
        client("d", "https://app.example.com/cb", &"ab".repeat(32), true),
        crate::settings::ConfiguredClient {
            backchannel_logout_uri: "http://app.example.com/bc".to_owned(),
            ..client("e", "https://app.example.com/cb", "", true)
        },
    ];
    let Err(refusal) = settings.check("development", Program::CargoXtask) else { panic!("refused") };
    let text = refusal.to_string();
    for expected in [
        "a: redirect_uris",
        "b: secret_hash must be",
        "\"c\" is listed twice",
        "d: a public client has no secret_hash",
        "e: backchannel_logout_uri",
    ] {
        assert!(text.contains(expected), "{expected:?} in {text}");
    }
}

#[test]
fn audit_settings_come_from_the_environment_and_a_retention_of_zero_days_is_refused() {
    Jail::expect_with(|jail| {
        jail.set_env("MAGICLINK_AUDIT__CLIENT_ADDRESS", "none");
        jail.set_env("MAGICLINK_AUDIT__RETENTION_DAYS", "30");
        jail.set_env("MAGICLINK_AUDIT__LOG_JSON", "true");
        jail.set_env("MAGICLINK_AUDIT__ENABLED", "false");
        let settings = load(&sources(jail, DEVELOPMENT), &Overrides::default()).expect("loads");
        assert!(!settings.audit.enabled);
        assert_eq!(settings.audit.client_address.policy(), domain::audit::ClientAddressPolicy::None);
        assert_eq!(settings.audit.retention_days, 30);
        assert!(settings.audit.log_json);
        Ok(())
    });
    let mut settings = Settings::default();
    settings.audit.retention_days = 0;
    let Err(refusal) = settings.check("development", Program::CargoXtask) else { panic!("refused") };
    assert!(refusal.to_string().contains("audit.retention_days must be at least 1"), "{refusal}");
}

#[test]
fn webhooks_come_from_json_in_the_environment_and_a_malformed_one_is_refused_without_its_secret() {
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    Jail::expect_with(|jail| {
        jail.set_env(
            "MAGICLINK_WEBHOOKS",
            format!(r#"[{{"url": "https://app.example.com/hooks", "events": ["user.created", "user.deleted"], "secret": "{secret}"}}]"#),
        );
        let settings = load(&sources(jail, "development"), &Overrides::default()).expect("loads");
        assert_eq!(settings.webhooks.len(), 1);
        let endpoint = settings.webhooks[0].to_endpoint().expect("valid");
        assert_eq!(endpoint.url.as_str(), "https://app.example.com/hooks");
        assert_eq!(
            endpoint.events,
            [domain::webhook::WebhookEventType::UserCreated, domain::webhook::WebhookEventType::UserDeleted]
        );
        assert_eq!(endpoint.secrets.len(), 1);
        Ok(())
    });
    let webhook = |url: &str, events: &[&str], secret: &str| crate::settings::WebhookSettings {
        url: url.to_owned(),
        events: events.iter().map(|event| (*event).to_owned()).collect(),
        secret: secret.to_owned().into(),
        previous_secrets: Vec::new(),
    };
    let settings = Settings {
        webhooks: vec![
            webhook("http://app.example.com/a", &["user.created"], secret),
            webhook("https://app.example.com/b", &["user.exploded"], secret),
            webhook("https://app.example.com/c", &["user.created"], "whsec_c2hvcnQ="),
            webhook("https://app.example.com/d", &[], secret),
            webhook("https://app.example.com/d", &["user.created"], secret),
        ],
        ..Settings::default()
    };
    let Err(refusal) = settings.check("development", Program::CargoXtask) else { panic!("refused") };
    let text = refusal.to_string();
    for expected in [
        "/a: a webhook URL must use https",
        "/b: unknown event type \"user.exploded\"",
        "/c: a secret is not valid: it is shorter than 24 bytes",
        "/d: `events` names no event type",
        "/d is listed twice",
    ] {
        assert!(text.contains(expected), "{expected:?} in {text}");
    }
    assert!(!text.contains("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw") && !text.contains("c2hvcnQ"), "no secret: {text}");
}
