//! The language a request is answered in, and the emails it causes are written in.
//!
//! Chosen once per request by the route table's middleware ([`choose`]): `?lang=xx` when `xx`
//! is on offer (remembered in a cookie for a year, so the choice survives the next click), else
//! that cookie, else the best match for `Accept-Language`, else English. Handlers read the
//! choice with [`of`]. JSON problem documents stay English: their `type` is what programs read.

use std::time::Duration;

use poem::Request;

use crate::cookies::{self, Kind};
use crate::AppState;

/// How long a chosen language is remembered.
const REMEMBERED: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// The language chosen for a request, kept in its extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Chosen(String);

/// Chooses the language of `req` and keeps it with the request; a valid `?lang=` is also
/// remembered in a cookie. Returns the choice.
pub(crate) fn choose(req: &mut Request, state: &AppState) -> String {
    let translations = state.pages.translations();
    let asked = req.uri().query().and_then(|query| {
        url::form_urlencoded::parse(query.as_bytes())
            .find(|(name, _)| name == "lang")
            .map(|(_, value)| value.into_owned())
    });
    let asked = asked.filter(|lang| translations.languages().any(|offered| offered == lang));
    if let Some(lang) = &asked {
        cookies::set(req.cookie(), &state.settings, Kind::Lang, lang, Some(REMEMBERED));
    }
    let chosen = asked.or_else(|| cookies::read(req.cookie(), &state.settings, Kind::Lang));
    let accept = req.header(poem::http::header::ACCEPT_LANGUAGE);
    let lang = translations.pick(chosen.as_deref(), accept).to_owned();
    req.extensions_mut().insert(Chosen(lang.clone()));
    lang
}

/// The language of `req`'s pages and of the emails it causes ([`i18n::DEFAULT`] if none was
/// chosen, as for a request that did not pass through the route table).
pub fn of(req: &Request) -> String {
    req.extensions().get::<Chosen>().map_or_else(|| i18n::DEFAULT.to_owned(), |chosen| chosen.0.clone())
}
