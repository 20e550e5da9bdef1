//! Where to send a person after sign-in: `callbackUrl`, reduced to a path on this site.
//!
//! An open redirect on a sign-in service is a phishing kit: "sign in at the real site, land on
//! mine". So the rule is an allow-list, not a deny-list: a path that starts with exactly one
//! `/`, or an absolute URL with this site's exact origin. Everything else becomes `/`.

use url::Url;

/// The longest `callbackUrl` considered; a longer one becomes `/` (it would otherwise ride along
/// in every link, email and log line).
pub const MAX_LENGTH: usize = 2048;

/// A path (with query and fragment) on this site that is safe to redirect to: ASCII only, with
/// anything else percent-encoded, so it can go into a `Location` header as it is.
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
        raw.and_then(|raw| Self::accept(raw, site)).unwrap_or_else(Self::root)
    }

    /// The path to put in `Location`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn accept(raw: &str, site: &Url) -> Option<Self> {
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
        let same_origin =
            absolute.origin() == site.origin() && absolute.username().is_empty() && absolute.password().is_none();
        if !same_origin {
            return None;
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
}
