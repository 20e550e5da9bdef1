//! Translations: every sentence a person reads on a page or in an email, kept in Fluent files
//! (`locales/{lang}.ftl`, <https://projectfluent.org>), one per language.
//!
//! Templates say `{{ t(key="sign-in-title", site=site_name) }}` instead of English. For each
//! language, [`Translations::localize`] clones the parsed templates and gives the clone a `t`
//! function bound to that language, so a template never names a language and one parse serves
//! them all. A message missing from a language falls back to English ([`DEFAULT`]), so a
//! partial translation still renders whole pages.
//!
//! English and German are built in. An operator's `{templates.dir}/locales/{lang}.ftl`
//! overrides messages of a built-in language, or adds a language: adding a third language is
//! adding that one file (docs/configuration.md says how). The language of a request comes from
//! an explicit choice (the `lang` parameter or cookie) if it is offered, else from
//! `Accept-Language`, else English.
//!
//! This crate reads no files: xtask reads the overrides and hands their text in, as it does for
//! templates.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use anyhow::Context as _;
use fluent_bundle::concurrent::FluentBundle;
use fluent_bundle::{FluentArgs, FluentResource, FluentValue};
use fluent_langneg::{negotiate_languages, NegotiationStrategy};
use unic_langid::LanguageIdentifier;

/// The language used when nothing else matches, and the fallback for missing messages.
pub const DEFAULT: &str = "en";

/// The built-in translations, by language tag.
pub const BUILTIN: [(&str, &str); 2] =
    [("en", include_str!("../locales/en.ftl")), ("de", include_str!("../locales/de.ftl"))];

/// One language's messages.
type Bundle = FluentBundle<FluentResource>;

/// Every language on offer and its messages.
pub struct Translations {
    /// By tag (`en`, `de`, ...), as configured; always holds [`DEFAULT`].
    bundles: BTreeMap<String, Bundle>,
    /// The same tags, parsed, for negotiation.
    available: Vec<LanguageIdentifier>,
}

impl std::fmt::Debug for Translations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Translations").field("languages", &self.bundles.keys().collect::<Vec<_>>()).finish()
    }
}

impl Translations {
    /// The built-in languages.
    ///
    /// # Errors
    /// Fails if a built-in file does not parse (caught by the tests).
    pub fn builtin() -> anyhow::Result<Self> {
        Self::with_overrides(Vec::new())
    }

    /// The built-in languages plus `overrides` (language tag, Fluent source): a file for a
    /// built-in language replaces the messages it defines; one for another language adds it.
    ///
    /// # Errors
    /// Names the language whose file does not parse or whose tag is not a language tag.
    pub fn with_overrides(overrides: Vec<(String, String)>) -> anyhow::Result<Self> {
        let mut bundles = BTreeMap::new();
        let builtin = BUILTIN.iter().map(|(tag, source)| ((*tag).to_owned(), (*source).to_owned(), false));
        let extra = overrides.into_iter().map(|(tag, source)| (tag, source, true));
        for (tag, source, is_override) in builtin.chain(extra) {
            let what = if is_override { "the override" } else { "the built-in file" };
            let resource = FluentResource::try_new(source)
                .map_err(|(_, errors)| anyhow::anyhow!("{what} for language `{tag}` does not parse: {errors:?}"))?;
            let bundle = match bundles.entry(tag.clone()) {
                std::collections::btree_map::Entry::Occupied(entry) => entry.into_mut(),
                std::collections::btree_map::Entry::Vacant(entry) => {
                    let id: LanguageIdentifier =
                        tag.parse().with_context(|| format!("`{tag}` is not a language tag (like `fr` or `pt-BR`)"))?;
                    let mut bundle = Bundle::new_concurrent(vec![id]);
                    // Unicode isolation marks around arguments help right-to-left scripts but
                    // show up as stray characters in plain-text email; every built-in language
                    // is left-to-right.
                    bundle.set_use_isolating(false);
                    entry.insert(bundle)
                }
            };
            bundle.add_resource_overriding(resource);
        }
        let available = bundles.keys().filter_map(|tag| tag.parse().ok()).collect();
        Ok(Self { bundles, available })
    }

    /// The language tags on offer, in order.
    pub fn languages(&self) -> impl Iterator<Item = &str> {
        self.bundles.keys().map(String::as_str)
    }

    /// The language to answer in: `chosen` if it is on offer, else the best match for
    /// `accept_language` (an `Accept-Language` header), else [`DEFAULT`].
    pub fn pick(&self, chosen: Option<&str>, accept_language: Option<&str>) -> &str {
        if let Some((tag, _)) = chosen.and_then(|chosen| self.bundles.get_key_value(chosen)) {
            return tag;
        }
        // Most requests (programs: the session check, forward auth) name no language at all.
        let Some(accept_language) = accept_language else {
            return DEFAULT;
        };
        let requested = fluent_langneg::accepted_languages::parse(accept_language);
        let default: LanguageIdentifier = DEFAULT.parse().unwrap_or_default();
        let best = negotiate_languages(&requested, &self.available, Some(&default), NegotiationStrategy::Lookup);
        best.first()
            .map(|id| id.to_string())
            .and_then(|tag| self.bundles.get_key_value(tag.as_str()).map(|(tag, _)| tag.as_str()))
            .unwrap_or(DEFAULT)
    }

    /// The message `id` in `lang` (or English when `lang` lacks it), with `args`.
    ///
    /// # Errors
    /// When no language has the message: a template asks for a key that does not exist.
    pub fn message(&self, lang: &str, id: &str, args: Option<&FluentArgs<'_>>) -> anyhow::Result<String> {
        let found = [lang, DEFAULT].into_iter().find_map(|tag| {
            let bundle = self.bundles.get(tag)?;
            Some((bundle, bundle.get_message(id)?.value()?))
        });
        let (bundle, pattern) = found.with_context(|| format!("no message `{id}` in {DEFAULT}.ftl"))?;
        // A formatting error (an argument the caller did not pass) still yields the text with
        // the placeholder shown; that is better than failing a page.
        let mut errors = Vec::new();
        Ok(bundle.format_pattern(pattern, args, &mut errors).into_owned())
    }

    /// `seconds` as a person says it in `lang` ("10 minutes", "1 Tag"), rounded as
    /// [`spoken_duration`] rounds.
    pub fn duration(&self, lang: &str, seconds: u64) -> String {
        let (count, unit) = spoken_duration(seconds);
        let mut args = FluentArgs::new();
        args.set("count", count);
        args.set("unit", unit);
        // The message is built in; a template override that dropped it still reads as numbers.
        self.message(lang, "duration", Some(&args)).unwrap_or_else(|_| format!("{count} {unit}s"))
    }

    /// The message ids of `lang`'s built-in file (without fallback), for completeness checks.
    pub fn builtin_ids(&self, lang: &str) -> Vec<String> {
        let source = BUILTIN.iter().find(|(tag, _)| *tag == lang).map(|(_, source)| *source).unwrap_or_default();
        source
            .lines()
            .filter(|line| line.starts_with(|c: char| c.is_ascii_lowercase()))
            .filter_map(|line| line.split_once(" =").map(|(id, _)| id.trim().to_owned()))
            .collect()
    }

    /// One copy of `templates` per language, each with a `t` function in that language.
    pub fn localize(self: &Arc<Self>, templates: &tera::Tera) -> Localized {
        let by_lang = self
            .languages()
            .map(|lang| {
                let mut tera = templates.clone();
                tera.register_function("t", Translate { translations: Arc::clone(self), lang: lang.to_owned() });
                tera.register_function(
                    "duration",
                    SpokenDuration { translations: Arc::clone(self), lang: lang.to_owned() },
                );
                (lang.to_owned(), tera)
            })
            .collect();
        Localized { by_lang }
    }
}

/// A value passed to a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arg {
    /// A whole number (plural rules apply).
    Number(i64),
    /// Text, shown as is.
    Text(String),
}

impl From<i64> for Arg {
    fn from(value: i64) -> Self {
        Arg::Number(value)
    }
}

impl From<u32> for Arg {
    fn from(value: u32) -> Self {
        Arg::Number(i64::from(value))
    }
}

impl From<u64> for Arg {
    fn from(value: u64) -> Self {
        Arg::Number(i64::try_from(value).unwrap_or(i64::MAX))
    }
}

impl From<&str> for Arg {
    fn from(value: &str) -> Self {
        Arg::Text(value.to_owned())
    }
}

impl From<String> for Arg {
    fn from(value: String) -> Self {
        Arg::Text(value)
    }
}

/// What code says to a person, before it is put in a language: one or more messages (ids and
/// arguments), shown one after the other. [`Translations::say`] renders it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sentence {
    parts: Vec<(&'static str, Vec<(&'static str, Arg)>)>,
}

impl Sentence {
    /// The message `id`.
    pub fn new(id: &'static str) -> Self {
        Self { parts: vec![(id, Vec::new())] }
    }

    /// Gives the last message the argument `name`.
    #[must_use]
    pub fn arg(mut self, name: &'static str, value: impl Into<Arg>) -> Self {
        if let Some((_, args)) = self.parts.last_mut() {
            args.push((name, value.into()));
        }
        self
    }

    /// Adds the message `id` after the others.
    #[must_use]
    pub fn then(mut self, id: &'static str) -> Self {
        self.parts.push((id, Vec::new()));
        self
    }

    /// The first message's id.
    pub fn id(&self) -> &'static str {
        self.parts.first().map_or("", |(id, _)| id)
    }
}

impl Translations {
    /// `sentence` in `lang`, its messages joined by spaces. A message no language has shows
    /// its id, which a test catches before anyone reads it.
    pub fn say(&self, lang: &str, sentence: &Sentence) -> String {
        let said: Vec<String> = sentence
            .parts
            .iter()
            .map(|(id, args)| {
                let mut fluent_args = FluentArgs::new();
                for (name, value) in args {
                    match value {
                        Arg::Number(number) => fluent_args.set(*name, *number),
                        Arg::Text(text) => fluent_args.set(*name, text.clone()),
                    }
                }
                self.message(lang, id, Some(&fluent_args)).unwrap_or_else(|_| (*id).to_owned())
            })
            .collect();
        said.join(" ")
    }
}

/// The names of a set of built-in templates, `(name, source)` pairs, in order: the file names
/// an operator's overrides must have (pages and emails list theirs this way).
pub const fn template_names<const N: usize>(builtin: &[(&'static str, &'static str); N]) -> [&'static str; N] {
    let mut names = [""; N];
    let mut i = 0;
    while i < N {
        names[i] = builtin[i].0;
        i += 1;
    }
    names
}

/// Templates ready to render in each language on offer.
#[derive(Debug)]
pub struct Localized {
    by_lang: HashMap<String, tera::Tera>,
}

impl Localized {
    /// Renders `template` in `lang` (English if `lang` is not on offer), with `lang` in the
    /// context for `<html lang>`.
    ///
    /// # Errors
    /// As [`tera::Tera::render`].
    pub fn render(&self, lang: &str, template: &str, context: &mut tera::Context) -> tera::Result<String> {
        let (lang, tera) = match self.by_lang.get_key_value(lang) {
            Some(found) => found,
            None => self
                .by_lang
                .get_key_value(DEFAULT)
                .ok_or_else(|| tera::Error::msg("no templates for the default language"))?,
        };
        context.insert("lang", lang);
        tera.render(template, context)
    }
}

/// `seconds` as a count of one unit (`second`, `minute`, `hour` or `day`), the way people say
/// a length of time: the largest unit of which there are at least two, or exactly one, rounded
/// to the nearest whole one. So 5 s is "5 seconds", 60 s "1 minute", 90 s "90 seconds", 598 s
/// "10 minutes", 6,000 s "100 minutes", 90 days "90 days"; never "1 minutes" or "0 minutes".
pub fn spoken_duration(seconds: u64) -> (u64, &'static str) {
    const UNITS: [(u64, &str); 4] = [(86_400, "day"), (3_600, "hour"), (60, "minute"), (1, "second")];
    for (size, unit) in UNITS {
        if seconds >= 2 * size || seconds == size {
            return ((seconds + size / 2) / size, unit);
        }
    }
    (seconds, "second")
}

/// The `duration` function of one language's templates: `duration(seconds=600)` is
/// "10 minutes" in English, "10 Minuten" in German.
struct SpokenDuration {
    translations: Arc<Translations>,
    lang: String,
}

impl tera::Function for SpokenDuration {
    fn call(&self, args: &HashMap<String, tera::Value>) -> tera::Result<tera::Value> {
        let seconds = args
            .get("seconds")
            .and_then(tera::Value::as_u64)
            .ok_or_else(|| tera::Error::msg("duration() needs seconds=<a whole number>"))?;
        Ok(tera::Value::String(self.translations.duration(&self.lang, seconds)))
    }

    fn is_safe(&self) -> bool {
        false
    }
}

/// The `t` function of one language's templates: `t(key="id", name=value, ...)`.
struct Translate {
    translations: Arc<Translations>,
    lang: String,
}

impl tera::Function for Translate {
    fn call(&self, args: &HashMap<String, tera::Value>) -> tera::Result<tera::Value> {
        let key =
            args.get("key").and_then(tera::Value::as_str).ok_or_else(|| tera::Error::msg("t() needs key=\"...\""))?;
        let mut fluent_args = FluentArgs::new();
        for (name, value) in args.iter().filter(|(name, _)| name.as_str() != "key") {
            let value = match value {
                // Whole numbers stay integers, so plural rules and formatting see "1", not "1.0".
                tera::Value::Number(number) => match number.as_i64() {
                    Some(whole) => FluentValue::from(whole),
                    None => FluentValue::from(number.as_f64().unwrap_or_default()),
                },
                tera::Value::String(text) => FluentValue::from(text.clone()),
                tera::Value::Null => FluentValue::from(""),
                other => FluentValue::from(other.to_string()),
            };
            fluent_args.set(name.clone(), value);
        }
        self.translations
            .message(&self.lang, key, Some(&fluent_args))
            .map(tera::Value::String)
            .map_err(|error| tera::Error::msg(format!("{error:#}")))
    }

    fn is_safe(&self) -> bool {
        // Translations are text: the template escapes them like any other value.
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn translations() -> Translations {
        Translations::builtin().expect("the built-in files parse")
    }

    #[test]
    fn an_explicit_choice_wins_then_accept_language_then_english() {
        let t = translations();
        assert_eq!(t.pick(Some("de"), Some("en-US")), "de");
        assert_eq!(t.pick(Some("xx"), Some("de-AT,de;q=0.9,en;q=0.5")), "de", "an unknown choice is ignored");
        assert_eq!(t.pick(None, Some("fr-CH, fr;q=0.9, de;q=0.8")), "de");
        assert_eq!(t.pick(None, Some("fr, ja")), "en");
        assert_eq!(t.pick(None, Some("garbage;;;,")), "en");
        assert_eq!(t.pick(None, None), "en");
    }

    #[test]
    fn every_english_message_is_translated_into_german() {
        let t = translations();
        let english = t.builtin_ids("en");
        let german = t.builtin_ids("de");
        assert!(english.len() > 20, "{english:?}");
        let missing: Vec<_> = english.iter().filter(|id| !german.contains(id)).collect();
        let extra: Vec<_> = german.iter().filter(|id| !english.contains(id)).collect();
        assert!(missing.is_empty() && extra.is_empty(), "missing in de: {missing:?}; only in de: {extra:?}");
    }

    #[test]
    fn plurals_follow_each_languages_rules() {
        let t = translations();
        assert_eq!(t.duration("en", 60), "1 minute");
        assert_eq!(t.duration("en", 600), "10 minutes");
        assert_eq!(t.duration("de", 60), "1 Minute");
        assert_eq!(t.duration("de", 600), "10 Minuten");
        assert_eq!(t.duration("de", 86_400), "1 Tag");
        assert_eq!(t.duration("en", 1), "1 second");
    }

    #[test]
    fn a_duration_is_said_in_the_largest_unit_there_are_two_of_rounded_to_the_nearest() {
        let cases = [
            (0, (0, "second")),
            (5, (5, "second")),
            (59, (59, "second")),
            (60, (1, "minute")),
            (90, (90, "second")),
            (119, (119, "second")),
            (120, (2, "minute")),
            (598, (10, "minute")),
            (600, (10, "minute")),
            (3_600, (1, "hour")),
            (6_000, (100, "minute")),
            (7_200, (2, "hour")),
            (86_400, (1, "day")),
            (90 * 86_400, (90, "day")),
        ];
        for (seconds, expected) in cases {
            assert_eq!(spoken_duration(seconds), expected, "{seconds} s");
        }
    }

    #[test]
    fn an_override_replaces_a_message_and_a_new_file_adds_a_language_falling_back_to_english() {
        let t = Translations::with_overrides(vec![
            ("de".to_owned(), "sign-in-button = Anmelden, bitte\n".to_owned()),
            ("fr".to_owned(), "sign-in-button = Se connecter\n".to_owned()),
        ])
        .expect("the overrides parse");

        assert_eq!(t.message("de", "sign-in-button", None).expect("a message"), "Anmelden, bitte");
        assert_eq!(t.message("fr", "sign-in-button", None).expect("a message"), "Se connecter");
        let english_title = t.message("en", "account-title", None).expect("a message");
        assert_eq!(t.message("fr", "account-title", None).expect("a message"), english_title);
        assert_eq!(t.languages().collect::<Vec<_>>(), ["de", "en", "fr"]);
        assert_eq!(t.pick(None, Some("fr-FR")), "fr");
        assert!(t.message("en", "no-such-message", None).is_err());
    }

    #[test]
    fn a_sentence_joins_its_messages_with_their_arguments_in_the_language_asked_for() {
        let t = translations();
        let sentence = Sentence::new("account-done-renamed").then("duration").arg("count", 2_u32).arg("unit", "minute");
        assert_eq!(t.say("en", &sentence), "Your name was saved. 2 minutes");
        assert_eq!(t.say("de", &sentence), "Ihr Name wurde gespeichert. 2 Minuten");
        assert_eq!(t.say("de", &Sentence::new("no-such-id")), "no-such-id");
    }

    #[test]
    fn a_broken_override_or_tag_is_refused_naming_the_language() {
        let broken = Translations::with_overrides(vec![("de".to_owned(), "= nope".to_owned())]);
        let bad_tag = Translations::with_overrides(vec![("not a tag".to_owned(), "a = b\n".to_owned())]);
        assert!(broken.expect_err("refused").to_string().contains("`de`"));
        assert!(bad_tag.expect_err("refused").to_string().contains("not a tag"));
    }

    #[test]
    fn templates_render_in_the_language_asked_for_and_escape_translations() {
        let translations = Arc::new(translations());
        let mut tera = tera::Tera::default();
        tera.add_raw_template("x.html", r#"<p>{{ t(key="check-email-expires", duration=duration(seconds=n)) }}</p>"#)
            .expect("parses");
        tera.autoescape_on(vec![".html"]);
        let localized = translations.localize(&tera);
        let mut context = tera::Context::new();
        context.insert("n", &180);

        assert_eq!(
            localized.render("de", "x.html", &mut context).expect("renders"),
            "<p>Er läuft in 3 Minuten ab.</p>"
        );
        assert_eq!(localized.render("xx", "x.html", &mut context).expect("renders"), "<p>It expires in 3 minutes.</p>");
    }
}
