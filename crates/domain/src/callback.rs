//! Where to send a person after sign-in: `callbackUrl`, reduced to a path on this site, or an
//! absolute URL on one of the apps this service signs people in for (behind forward auth).
//!
//! An open redirect on a sign-in service is a phishing kit: "sign in at the real site, land on
//! mine". So the rule is an allow-list, not a deny-list: a path that starts with exactly one
//! `/`, an absolute URL with this site's exact origin, or an absolute URL whose exact origin the
//! operator listed (`forward_auth.allowed_origins`). Everything else becomes `/`.

use url::{Origin, Url};

/// The longest `callbackUrl` considered; a longer one becomes `/` (it would otherwise ride along
/// in every link, email and log line).
pub const MAX_LENGTH: usize = 2048;

/// A place that is safe to redirect to: a path (with query and fragment) on this site, or an
/// absolute URL on an allowed app origin. ASCII only, with anything else percent-encoded, so it
/// can go into a `Location` header as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackPath(String);

impl CallbackPath {
    /// The site root, used when no callback URL is given or the given one is refused.
    pub fn root() -> Self {
        Self("/".to_owned())
    }

    /// Reduces `raw` to a safe same-site path, falling back to `/`.
    ///
    /// `site` is the configured base URL; only its origin (scheme, host, port) counts.
    pub fn resolve(raw: Option<&str>, site: &Url) -> Self {
        Self::resolve_among(raw, site, &[])
    }

    /// As [`CallbackPath::resolve`], also accepting an absolute URL on one of `apps`' exact
    /// origins (kept absolute, since it is another site).
    pub fn resolve_among(raw: Option<&str>, site: &Url, apps: &[Origin]) -> Self {
        raw.and_then(|raw| Self::accept_among(raw, site, apps)).unwrap_or_else(Self::root)
    }

    /// Whether this is an absolute URL on another (allowed) origin rather than a path here.
    pub fn is_absolute(&self) -> bool {
        !self.0.starts_with('/')
    }

    /// The path to put in `Location`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `raw` as a safe place to return to, or `None` when it is refused (for callers that must
    /// tell a refusal from the root).
    pub fn accept_among(raw: &str, site: &Url, apps: &[Origin]) -> Option<Self> {
        // Browsers drop tabs and newlines inside URLs and read `\` as `/`, so any of them could
        // turn an innocent-looking path into `//evil.example`. Refuse them outright.
        if raw.is_empty()
            || raw.len() > MAX_LENGTH
            || raw.chars().any(|c| c.is_control() || c.is_whitespace() || c == '\\')
        {
            return None;
        }
        // A path is resolved against the site, which also percent-encodes it; anything else
        // must be an absolute URL of this very origin.
        let absolute = if raw.starts_with('/') {
            if raw.starts_with("//") {
                return None;
            }
            site.join(raw).ok()?
        } else {
            Url::parse(raw).ok()?
        };
        if !absolute.username().is_empty() || absolute.password().is_some() {
            return None;
        }
        let origin = absolute.origin();
        if origin != site.origin() {
            // `Origin::Opaque` (data:, file:, ...) never equals anything, so only http(s) and
            // the like with a listed scheme, host and port get through.
            return apps.contains(&origin).then(|| Self(absolute.into()));
        }
        let mut path = absolute.path().to_owned();
        if let Some(query) = absolute.query() {
            path.push('?');
            path.push_str(query);
        }
        if let Some(fragment) = absolute.fragment() {
            path.push('#');
            path.push_str(fragment);
        }
        // A same-origin URL whose path begins `//` would be protocol-relative once reduced.
        (!path.starts_with("//")).then_some(Self(path))
    }
}

#[cfg(test)]
mod tests {
    use url::Url;

    use super::CallbackPath;

    fn site() -> Url {
        Url::parse("https://auth.example.com").expect("valid URL")
    }

    #[test]
    fn safe_callbacks_are_kept_as_paths() {
        let cases = [
            (None, "/"),
            (Some("/"), "/"),
            (Some("/dashboard"), "/dashboard"),
            (Some("/a/b?c=d#e"), "/a/b?c=d#e"),
            (Some("/%2F%2Fevil.example"), "/%2F%2Fevil.example"),
            (Some("https://auth.example.com/account?tab=1"), "/account?tab=1"),
            (Some("https://auth.example.com"), "/"),
            (Some("https://AUTH.example.com:443/x"), "/x"),
            (Some("/café?q=ü#ä"), "/caf%C3%A9?q=%C3%BC#%C3%A4"),
            (Some("/a/../b"), "/b"),
        ];
        for (raw, expected) in cases {
            assert_eq!(CallbackPath::resolve(raw, &site()).as_str(), expected, "input {raw:?}");
        }
    }

    #[test]
    fn an_overlong_callback_falls_back_to_the_root() {
        let long = format!("/{}", "a".repeat(super::MAX_LENGTH));
        let just_fits = format!("/{}", "a".repeat(super::MAX_LENGTH - 1));

        assert_eq!(CallbackPath::resolve(Some(&long), &site()).as_str(), "/");
        assert_eq!(CallbackPath::resolve(Some(&just_fits), &site()).as_str(), just_fits);
    }

    #[test]
    fn accepted_callbacks_are_ascii() {
        for raw in ["/ünïcödé", "/\u{202e}rtl", "https://auth.example.com/日本?語=1"] {
            let path = CallbackPath::resolve(Some(raw), &site());
            assert!(path.as_str().is_ascii(), "{raw:?} became {:?}", path.as_str());
        }
    }

    /// Known open-redirect payloads, each of which must land on `/`.
    #[test]
    fn open_redirect_payloads_fall_back_to_the_root() {
        let payloads = [
            "",
            "//evil.example",
            "//evil.example/path",
            "///evil.example",
            "/\\evil.example",
            "\\\\evil.example",
            "\\/evil.example",
            "/\t/evil.example",
            "/\n/evil.example",
            " /evil",
            "https://evil.example",
            "http://auth.example.com/downgrade",
            "https://auth.example.com:8443/other-port",
            "https://auth.example.com.evil.example/",
            "https://auth.example.com@evil.example/",
            "https://user:pass@auth.example.com/",
            "https:evil.example",
            "http:/evil.example",
            "javascript:alert(1)",
            "JavaScript:alert(document.cookie)",
            "data:text/html,<script>alert(1)</script>",
            "evil.example",
            "relative/path",
            "https://auth.example.com//evil.example",
            "//%65vil.example",
            "/\u{3000}/evil.example",
            "/./%2e/evil.example/..//evil.example",
        ];
        for payload in payloads {
            assert_eq!(CallbackPath::resolve(Some(payload), &site()).as_str(), "/", "payload {payload:?}");
        }
    }

    fn apps() -> Vec<url::Origin> {
        ["https://app.example.com", "http://127.0.0.1:8080"]
            .iter()
            .map(|origin| Url::parse(origin).expect("valid URL").origin())
            .collect()
    }

    #[test]
    fn a_url_on_an_allowed_app_origin_is_kept_whole() {
        let cases = [
            ("https://app.example.com/reports?q=1#top", "https://app.example.com/reports?q=1#top"),
            ("https://APP.example.com:443", "https://app.example.com/"),
            ("http://127.0.0.1:8080/private", "http://127.0.0.1:8080/private"),
        ];
        for (raw, expected) in cases {
            let target = CallbackPath::resolve_among(Some(raw), &site(), &apps());
            assert_eq!(target.as_str(), expected, "input {raw:?}");
            assert!(target.is_absolute());
        }
        let here = CallbackPath::resolve_among(Some("https://auth.example.com/x"), &site(), &apps());
        assert_eq!(here.as_str(), "/x");
        assert!(!here.is_absolute());
    }

    #[test]
    fn only_the_exact_allowed_origins_are_accepted() {
        let refused = [
            "http://app.example.com/",
            "https://app.example.com:8443/",
            "https://evil.app.example.com/",
            "https://app.example.com.evil.example/",
            "https://user:pass@app.example.com/",
            "https://user@app.example.com/",
            "http://127.0.0.1:8081/",
            "http://localhost:8080/",
            "//app.example.com/",
            "javascript://app.example.com/%0aalert(1)",
        ];
        for raw in refused {
            assert_eq!(CallbackPath::resolve_among(Some(raw), &site(), &apps()).as_str(), "/", "input {raw:?}");
        }
        // Without the list, an app's URL is refused like any other site's.
        assert_eq!(CallbackPath::resolve(Some("https://app.example.com/reports"), &site()).as_str(), "/");
    }
}
