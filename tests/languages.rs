//! Pages and emails in the person's language, through the real wiring: `Accept-Language`, the
//! `lang` choice and its cookie, German pages, emails and error sentences, JSON problems that
//! stay English, an operator's sentence override and a third language added with one file, and
//! every message id the templates and the code use existing in English.

use std::collections::BTreeSet;

use poem::http::StatusCode;
use system_tests::TestApp;

const GERMAN: (&str, &str) = ("accept-language", "de-DE,de;q=0.9,en;q=0.5");

#[tokio::test]
async fn pages_follow_accept_language_and_a_chosen_language_is_remembered() {
    let app = TestApp::spawn().await;

    let english = app.get("/signin").await;
    let german = app.get_with("/signin", &[GERMAN]).await;
    let unknown = app.get_with("/signin", &[("accept-language", "ja, fr;q=0.8")]).await;
    let chosen = app.get("/signin?lang=de").await;
    let remembered = app.get("/").await;
    let overruled = app.get_with("/signin?lang=en", &[GERMAN]).await;
    let ignored = app.get("/signin?lang=xx").await;

    assert!(english.body.contains("<html lang=\"en\">") && english.body.contains("Sign in to magiclink"));
    assert_eq!(english.header("content-language"), "en");
    assert!(german.body.contains("<html lang=\"de\">"), "{}", german.body);
    assert!(german.body.contains("Bei magiclink anmelden") && german.body.contains("10 Minuten ab"), "{}", german.body);
    assert_eq!(german.header("content-language"), "de");
    assert!(unknown.body.contains("Sign in to magiclink"), "English when nothing matches");
    assert!(chosen.body.contains("Bei magiclink anmelden"));
    assert!(chosen.header("set-cookie").contains("magiclink.session-token.lang=de"), "{}", chosen.header("set-cookie"));
    assert!(remembered.body.contains("Sie sind nicht angemeldet."), "the cookie keeps the choice: {}", remembered.body);
    assert!(overruled.body.contains("Sign in to magiclink"), "an explicit choice beats Accept-Language");
    assert!(ignored.body.contains("Sign in to magiclink"), "a language not on offer is ignored");
}

#[tokio::test]
async fn a_link_asked_for_in_german_arrives_in_german_and_refusals_read_in_german() {
    let app = TestApp::spawn().await;
    app.get("/signin?lang=de").await;
    let csrf = app.csrf_token().await;

    let refused = app.post_form("/api/auth/signin/email", &[("csrfToken", &csrf), ("email", "")], None).await;
    app.request_link("de@example.com", "/").await;
    app.deliver().await;
    let mail = app.get_json("/dev/mailbox?to=de@example.com").await.json()[0].clone();
    let preview = app.get("/dev/mailbox?to=de@example.com").await.body;
    let missing = app.get("/nope").await;
    let problem = app.get_json("/api/auth/nope").await.json();

    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert!(refused.body.contains("Geben Sie Ihre E-Mail-Adresse ein."), "{}", refused.body);
    assert_eq!(mail["subject"], "Bei magiclink anmelden");
    assert!(preview.contains("lang=&quot;de&quot;") && preview.contains("läuft in 10 Minuten ab"), "{preview}");
    assert!(missing.body.contains("Seite nicht gefunden"), "{}", missing.body);
    assert_eq!(problem["title"], "Page not found", "problem documents stay English for programs");
}

#[tokio::test]
async fn an_operator_overrides_a_sentence_and_adds_a_language_with_one_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir(dir.path().join("locales")).expect("locales folder");
    std::fs::write(dir.path().join("locales/de.ftl"), "sign-in-button = Link schicken, bitte\n").expect("written");
    std::fs::write(
        dir.path().join("locales/fr.ftl"),
        "sign-in-heading = Se connecter à { $site }\nsign-in-button = Recevoir un lien\n",
    )
    .expect("written");
    let path = dir.path().display().to_string();
    let app = TestApp::spawn_with(|settings| settings.templates.dir = path).await;

    let german = app.get_with("/signin", &[GERMAN]).await;
    let french = app.get_with("/signin", &[("accept-language", "fr-CH, fr;q=0.9")]).await;

    assert!(german.body.contains("Link schicken, bitte"), "{}", german.body);
    assert!(german.body.contains("Bei magiclink anmelden"), "the other German messages stay");
    assert!(french.body.contains("<html lang=\"fr\">") && french.body.contains("Se connecter à magiclink"));
    assert!(french.body.contains("Recevoir un lien"));
    assert!(french.body.contains("Email address"), "what French lacks falls back to English: {}", french.body);
}

/// The message ids a source file names: `t(key="...")` in templates, `Sentence::new("...")`,
/// `.then("...")` and `Some("account-...")` in code.
fn ids_in(source: &str) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    for opener in ["t(key=\"", "Sentence::new(\"", ".then(\"", "Some(\"account-done-"] {
        for (index, _) in source.match_indices(opener) {
            let rest = &source[index + opener.len()..];
            let id = rest.split('"').next().unwrap_or_default();
            let prefix = if opener.starts_with("Some") { "account-done-" } else { "" };
            ids.insert(format!("{prefix}{id}"));
        }
    }
    ids
}

#[test]
fn every_message_the_templates_and_the_code_name_exists_in_english() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let translations = i18n::Translations::builtin().expect("built-in translations");
    let mut named = BTreeSet::new();
    for folder in ["crates/web/templates", "crates/adapters/templates/email", "crates/web/src"] {
        for entry in std::fs::read_dir(root.join(folder)).expect("readable folder").flatten() {
            let source = std::fs::read_to_string(entry.path()).unwrap_or_default();
            named.extend(ids_in(&source));
        }
    }

    let missing: Vec<_> = named.iter().filter(|id| translations.message("en", id, None).is_err()).collect();
    assert!(named.len() > 100, "the scan found the ids: {}", named.len());
    assert!(missing.is_empty(), "named but not in en.ftl: {missing:?}");
}
