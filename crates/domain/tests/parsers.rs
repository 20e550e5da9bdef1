//! Every parser that takes outside input, under property tests (proptest) and a table of
//! hand-written hostile payloads: nothing panics, and what is accepted keeps its promise.

use domain::{CallbackPath, EmailAddress, LinkToken, SignInCode};
use proptest::prelude::*;
use url::Url;

fn site() -> Url {
    Url::parse("https://auth.example.com").expect("valid URL")
}

/// Strings biased towards what matters to these parsers: separators, dots, slashes, quotes,
/// control characters, non-ASCII look-alikes, encoded forms.
fn hostile_text() -> impl Strategy<Value = String> {
    let pieces = prop::sample::select(vec![
        "a",
        "Z",
        "0",
        "@",
        ".",
        "..",
        "/",
        "//",
        "\\",
        ":",
        "?",
        "#",
        "%",
        "%2f",
        "%00",
        "=?",
        "?=",
        " ",
        "\t",
        "\r\n",
        "\u{0}",
        "<",
        ">",
        "\"",
        "'",
        ",",
        ";",
        "-",
        "_",
        "+",
        "xn--",
        "example.com",
        "https://",
        "javascript:",
        "\u{ff45}",
        "\u{0430}",
        "\u{3002}",
        "\u{200b}",
        "\u{202e}",
        "\u{1d41e}",
        "ü",
        "日本",
        "auth.example.com",
    ]);
    prop::collection::vec(prop_oneof![pieces.prop_map(str::to_owned), any::<String>()], 0..12).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn accepted_addresses_round_trip_and_are_safe_in_a_header(raw in hostile_text()) {
        if let Ok(address) = EmailAddress::parse(&raw) {
            let again = EmailAddress::parse(address.as_str());
            prop_assert_eq!(again.as_ref().map(EmailAddress::as_str), Ok(address.as_str()));
            prop_assert!(!address.as_str().chars().any(|c| c.is_control() || c.is_whitespace() || matches!(c, ',' | ';' | '<' | '>' | '"')));
            prop_assert!(address.domain().is_ascii(), "domains are stored as A-labels");
            prop_assert!(address.as_str().len() <= domain::email::MAX_LENGTH);
        }
    }

    #[test]
    fn accepted_callbacks_stay_on_this_site_and_are_ascii(raw in hostile_text()) {
        let path = CallbackPath::resolve(Some(&raw), &site());
        let target = site().join(path.as_str());
        prop_assert!(path.as_str().starts_with('/') && !path.as_str().starts_with("//"), "{:?}", path.as_str());
        prop_assert!(path.as_str().is_ascii());
        prop_assert_eq!(target.map(|url| url.origin()), Ok(site().origin()));
    }

    #[test]
    fn decoded_tokens_are_exactly_32_bytes(raw in hostile_text()) {
        if let Ok(token) = LinkToken::parse(&raw) {
            let encoded = token.encode();
            prop_assert_eq!(encoded.len(), 43);
            prop_assert_eq!(&encoded, &raw, "only the canonical encoding of 32 bytes is accepted");
        }
    }

    #[test]
    fn any_32_bytes_make_a_token_that_parses_back(bytes in any::<[u8; 32]>()) {
        let encoded = LinkToken::from_random_bytes(bytes).encode();
        prop_assert_eq!(LinkToken::parse(&encoded).map(|t| t.encode()), Ok(encoded));
    }

    #[test]
    fn accepted_codes_are_eight_characters_that_read_back(raw in hostile_text()) {
        if let Ok(code) = SignInCode::parse(&raw) {
            let shown = code.display();
            prop_assert_eq!(shown.len(), 9);
            prop_assert_eq!(SignInCode::parse(&shown).map(|c| c.display()), Ok(shown));
        }
    }
}

/// Open-redirect payloads: none may lead off the site.
const REDIRECTS: &[&str] = &[
    "//evil.example",
    "//evil.example/",
    "//evil.example/path?x=1",
    "///evil.example",
    "////evil.example",
    "/\\evil.example",
    "/\\/evil.example",
    "\\\\evil.example",
    "\\/evil.example",
    "/\t/evil.example",
    "/\n/evil.example",
    "/\r/evil.example",
    "/ /evil.example",
    " /evil",
    "\t/evil",
    "/\u{0}/evil.example",
    "/\u{3000}/evil.example",
    "/\u{a0}/evil.example",
    "https://evil.example",
    "http://evil.example",
    "HTTPS://EVIL.EXAMPLE",
    "https:evil.example",
    "https:/evil.example",
    "http:/evil.example",
    "https:\\\\evil.example",
    "//evil.example@auth.example.com",
    "https://auth.example.com@evil.example/",
    "https://auth.example.com.evil.example/",
    "https://auth.example.com%2eevil.example/",
    "https://evil.example#https://auth.example.com",
    "https://evil.example?https://auth.example.com",
    "https://user:pass@auth.example.com/",
    "https://user@auth.example.com/",
    "http://auth.example.com/",
    "https://auth.example.com:8443/",
    "https://auth.example.com:80/",
    "ftp://auth.example.com/",
    "ws://auth.example.com/",
    "javascript:alert(1)",
    "JavaScript:alert(1)",
    "javascript://%0aalert(1)",
    "java\tscript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "vbscript:msgbox(1)",
    "file:///etc/passwd",
    "blob:https://evil.example/x",
    "evil.example",
    "evil.example/path",
    "relative/path",
    "../evil",
    "./evil",
    "?next=//evil",
    "#//evil",
    "https://auth.example.com//evil.example",
    "https://auth.example.com///evil.example",
    "//%65vil.example",
    "//evil%2eexample",
    "/%09/evil.example",
    "//evil.example%2f..",
    "/./%2e/evil.example/..//evil.example",
    "%2f%2fevil.example",
    "%5c%5cevil.example",
    "https://xn--exmple-4nf.com/",
    "//\u{ff45}vil.example",
    "https://auth.example.com\\@evil.example",
    "//[::1]/",
    "//127.0.0.1/",
    "//0x7f000001/",
    "https://auth.example.com\u{0}.evil.example",
    "/\u{2028}/evil.example",
    "//evil.example:443",
    "https://evil.example/https://auth.example.com/",
];

/// Header-injection payloads for the address field: each must be refused.
const HEADER_INJECTIONS: &[&str] = &[
    "a@example.com\r\nBcc: victim@example.com",
    "a@example.com\nBcc: victim@example.com",
    "a@example.com\rBcc: victim@example.com",
    "a@example.com\r\n\r\nbody",
    "a@example.com%0d%0aBcc:victim@example.com",
    "a@example.com\u{85}Bcc: v@example.com",
    "a@example.com\u{2028}Bcc: v@example.com",
    "a@example.com\u{2029}Bcc: v@example.com",
    "a@example.com\u{0}",
    "a\u{0}@example.com",
    "a@example.com, victim@example.com",
    "a@example.com;victim@example.com",
    "a@example.com victim@example.com",
    "Name <a@example.com>",
    "<a@example.com>",
    "\"Name\" <a@example.com>",
    "a@example.com>",
    "<a@example.com",
    "\"a\"@example.com",
    "\"a@b\"@example.com",
    "a(comment)@example.com",
    "a@example.com(comment)",
    "a@[127.0.0.1]",
    "a@[IPv6:::1]",
    "=?utf-8?q?a?=@example.com",
    "=?utf-8?b?YQ==?=@example.com",
    "a@exa\u{b}mple.com",
    "a@exa\u{c}mple.com",
    "a@example.com\u{7f}",
    "a@exam ple.com",
    "a @example.com",
    "a@@example.com",
    "@example.com",
    "a@",
    "a@.com",
    "a@example..com",
    "a@-example.com",
    "a@example.com.",
    "a..b@example.com",
    ".a@example.com",
    "a.@example.com",
    "a@exa_mple.com",
    "a@localhost",
    "a@123",
];

#[test]
fn no_open_redirect_payload_leaves_the_site() {
    assert!(REDIRECTS.len() + HEADER_INJECTIONS.len() >= 100, "at least 100 payloads in all");
    for payload in REDIRECTS {
        let path = CallbackPath::resolve(Some(payload), &site());
        let target = site().join(path.as_str()).expect("a path on the site");
        assert_eq!(target.origin(), site().origin(), "payload {payload:?} became {:?}", path.as_str());
        assert!(!path.as_str().starts_with("//") && !path.as_str().contains('\\'), "payload {payload:?}");
        // Almost all of them are refused outright; the rest are harmless same-site paths.
        assert!(path.as_str() == "/" || payload.starts_with('/'), "payload {payload:?} became {:?}", path.as_str());
    }
}

#[test]
fn every_header_injection_payload_is_refused() {
    for payload in HEADER_INJECTIONS {
        assert!(EmailAddress::parse(payload).is_err(), "payload {payload:?} was accepted");
    }
}
