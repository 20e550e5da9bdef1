//! Email addresses as the service accepts them: one mailbox, normalised, safe to put in a header.
//!
//! The rules are deliberately stricter than RFC 5322: no quoted local parts, no comments, no
//! display names, no IP-literal domains, no RFC 2047 encoded-words. Sign-in addresses are
//! typed by people, and every exotic form we refuse is one fewer way to smuggle a second
//! recipient or a header into a message.
//!
//! Domains are normalised by UTS #46 (IDNA) and kept as A-labels: fullwidth and other
//! compatibility forms fold to the ASCII they imitate (`ｅｘａｍｐｌｅ.com` is `example.com`,
//! one account), while a domain in another script stays distinct and visibly so
//! (`exаmple.com` with a Cyrillic `а` is stored, sent and shown as `xn--exmple-4nf.com`).
//! Local parts may be Unicode here; whether a deployment accepts them is a policy decided where
//! addresses come in ([`EmailAddress::has_ascii_local_part`]).

use std::fmt;

/// The longest address that fits in SMTP's forward path (RFC 5321 §4.5.3.1.3).
pub const MAX_LENGTH: usize = 254;
/// The longest local part SMTP guarantees to carry (RFC 5321 §4.5.3.1.1).
pub const MAX_LOCAL_LENGTH: usize = 64;

/// A parsed, normalised email address: trimmed, lower-cased, a single mailbox.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct EmailAddress(String);

/// Why a string is not an acceptable email address. Messages are meant for people.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidEmail {
    /// Nothing was typed.
    #[error("enter an email address")]
    Empty,
    /// Longer than [`MAX_LENGTH`].
    #[error("that address is too long")]
    TooLong,
    /// Whitespace or control characters inside the address (header injection, two addresses).
    #[error("an email address cannot contain spaces or control characters")]
    ForbiddenCharacter,
    /// Not exactly one `@`, or several addresses.
    #[error("enter a single address like name@example.com")]
    NotOneAddress,
    /// The part before `@` is empty, too long or uses characters we do not accept.
    #[error("the part before @ is not valid")]
    InvalidLocalPart,
    /// The part after `@` is not a dotted host name.
    #[error("the part after @ must be a domain like example.com")]
    InvalidDomain,
    /// The part before `@` is an RFC 2047 encoded-word (`=?utf-8?q?...?=`), which mail software
    /// may decode into something else.
    #[error("the part before @ is an encoded-word")]
    EncodedWord,
    /// The part before `@` has non-ASCII characters and the deployment accepts only ASCII.
    #[error("the part before @ must be ASCII")]
    NonAsciiLocalPart,
}

impl EmailAddress {
    /// Parses what a person typed into an address.
    ///
    /// # Errors
    /// Returns the first rule the input breaks; see [`InvalidEmail`].
    pub fn parse(raw: &str) -> Result<Self, InvalidEmail> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(InvalidEmail::Empty);
        }
        if trimmed.len() > MAX_LENGTH {
            return Err(InvalidEmail::TooLong);
        }
        if trimmed.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(InvalidEmail::ForbiddenCharacter);
        }
        let lowered = trimmed.to_lowercase();
        if lowered.contains([',', ';']) {
            return Err(InvalidEmail::NotOneAddress);
        }
        let mut parts = lowered.split('@');
        let (Some(local), Some(domain), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(InvalidEmail::NotOneAddress);
        };
        if local.contains("=?") && local.contains("?=") {
            return Err(InvalidEmail::EncodedWord);
        }
        if !is_valid_local_part(local) {
            return Err(InvalidEmail::InvalidLocalPart);
        }
        // UTS #46: map compatibility forms, fold case, then encode as A-labels. Anything IDNA
        // refuses (or that leaves a trailing dot, an empty label...) is not a domain.
        let domain = idna::domain_to_ascii(domain).map_err(|_| InvalidEmail::InvalidDomain)?;
        if !is_valid_domain(&domain) {
            return Err(InvalidEmail::InvalidDomain);
        }
        let normalised = format!("{local}@{domain}");
        if normalised.len() > MAX_LENGTH {
            return Err(InvalidEmail::TooLong);
        }
        Ok(Self(normalised))
    }

    /// The part after `@`, as stored (A-labels for internationalised domains).
    pub fn domain(&self) -> &str {
        self.0.rsplit_once('@').map_or("", |(_, domain)| domain)
    }

    /// The part before `@`, as stored.
    pub fn local_part(&self) -> &str {
        self.0.rsplit_once('@').map_or(self.0.as_str(), |(local, _)| local)
    }

    /// Whether the part before `@` is plain ASCII: what every mail server accepts. Others need
    /// SMTPUTF8 end to end, so deployments accept them only when configured to.
    pub fn has_ascii_local_part(&self) -> bool {
        self.0.split('@').next().is_some_and(str::is_ascii)
    }

    /// The normalised address.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The mailbox this address delivers to, as far as rate limits need to know: lowercase,
    /// a `+tag` dropped, and dots dropped at [`DOTS_IGNORED_AT`]. `ada+1@example.com` and
    /// `a.d.a@gmail.com` then share one limit with `ada@...`. For counting only: the address
    /// a link is sent to, and the user it signs in, stay exactly as typed.
    pub fn canonical_mailbox(&self) -> String {
        let domain = self.domain().to_lowercase();
        let local = self.local_part().to_lowercase();
        let local = local.split_once('+').map_or(local.as_str(), |(mailbox, _tag)| mailbox);
        let local = if DOTS_IGNORED_AT.contains(&domain.as_str()) { local.replace('.', "") } else { local.to_owned() };
        format!("{local}@{domain}")
    }

    /// The address with most of the local part hidden (`a***@example.com`), for logs.
    pub fn masked(&self) -> String {
        let (local, domain) = self.0.split_once('@').unwrap_or((&self.0, ""));
        let first: String = local.chars().take(1).collect();
        format!("{first}***@{domain}")
    }
}

/// Mail providers known to ignore dots in the local part (`a.d.a@gmail.com` is `ada@gmail.com`),
/// for [`EmailAddress::canonical_mailbox`]. Listed in `docs/security.md`.
pub const DOTS_IGNORED_AT: &[&str] = &["gmail.com", "googlemail.com"];

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Addresses are personal data: debug output masks them so they cannot reach a log whole.
impl fmt::Debug for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EmailAddress({})", self.masked())
    }
}

/// Dot-atoms of RFC 5322 `atext`: no quoting, no leading, trailing or doubled dots.
fn is_valid_local_part(local: &str) -> bool {
    const SPECIALS: &str = "!#$%&'*+/=?^_`{|}~-";
    !local.is_empty()
        && local.len() <= MAX_LOCAL_LENGTH
        && local
            .split('.')
            .all(|atom| !atom.is_empty() && atom.chars().all(|c| c.is_alphanumeric() || SPECIALS.contains(c)))
}

/// A host name in ASCII (A-labels for internationalised ones) with at least two labels, each 1
/// to 63 letters, digits or inner hyphens, and a top-level label that is not all digits (which
/// would be an IP address).
fn is_valid_domain(domain: &str) -> bool {
    let labels: Vec<&str> = domain.split('.').collect();
    let well_formed = labels.len() >= 2
        && labels.iter().all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    well_formed && labels.last().is_some_and(|tld| !tld.chars().all(|c| c.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::{EmailAddress, InvalidEmail};

    #[test]
    fn tagged_and_dotted_variants_of_one_mailbox_share_its_canonical_form() {
        let canonical = |raw: &str| EmailAddress::parse(raw).expect("valid").canonical_mailbox();
        assert_eq!(canonical("Ada+news@Example.com"), "ada@example.com");
        assert_eq!(canonical("ada+a+b@example.com"), "ada@example.com");
        assert_eq!(canonical("A.D.A+x@gmail.com"), "ada@gmail.com");
        assert_eq!(canonical("a.da@googlemail.com"), "ada@googlemail.com");
        assert_eq!(canonical("a.da@example.com"), "a.da@example.com", "dots count elsewhere");
        assert_eq!(EmailAddress::parse("ada+news@example.com").expect("valid").as_str(), "ada+news@example.com");
    }

    #[test]
    fn accepts_and_normalises_ordinary_addresses() {
        let cases = [
            ("a@example.com", "a@example.com"),
            ("  A@Example.COM  ", "a@example.com"),
            ("first.last+tag@sub.example.co.uk", "first.last+tag@sub.example.co.uk"),
            ("o'brien@example.ie", "o'brien@example.ie"),
            ("user_name-1@my-host.example", "user_name-1@my-host.example"),
            ("\tb@example.org\n", "b@example.org"),
        ];
        for (raw, expected) in cases {
            let parsed = EmailAddress::parse(raw).unwrap_or_else(|e| panic!("{raw:?}: {e}"));
            assert_eq!(parsed.as_str(), expected, "input {raw:?}");
        }
    }

    #[test]
    fn refuses_each_broken_rule_with_its_reason() {
        let long_local = format!("{}@example.com", "a".repeat(65));
        let too_long = format!("{}@{}.com", "a".repeat(60), "b".repeat(200));
        let cases: Vec<(&str, InvalidEmail)> = vec![
            ("", InvalidEmail::Empty),
            ("   ", InvalidEmail::Empty),
            (&too_long, InvalidEmail::TooLong),
            ("a b@example.com", InvalidEmail::ForbiddenCharacter),
            ("a@example.com\r\nBcc: victim@example.com", InvalidEmail::ForbiddenCharacter),
            ("a@exa\u{0}mple.com", InvalidEmail::ForbiddenCharacter),
            ("a@example.com\nb@example.com", InvalidEmail::ForbiddenCharacter),
            ("a@example.com,b@example.com", InvalidEmail::NotOneAddress),
            ("a@example.com;b@example.com", InvalidEmail::NotOneAddress),
            ("example.com", InvalidEmail::NotOneAddress),
            ("a@b@example.com", InvalidEmail::NotOneAddress),
            ("@example.com", InvalidEmail::InvalidLocalPart),
            (&long_local, InvalidEmail::InvalidLocalPart),
            (".a@example.com", InvalidEmail::InvalidLocalPart),
            ("a.@example.com", InvalidEmail::InvalidLocalPart),
            ("a..b@example.com", InvalidEmail::InvalidLocalPart),
            ("\"a\"@example.com", InvalidEmail::InvalidLocalPart),
            ("Name <a@example.com>", InvalidEmail::ForbiddenCharacter),
            ("<a@example.com>", InvalidEmail::InvalidLocalPart),
            ("a@", InvalidEmail::InvalidDomain),
            ("a@localhost", InvalidEmail::InvalidDomain),
            ("a@example..com", InvalidEmail::InvalidDomain),
            ("a@.example.com", InvalidEmail::InvalidDomain),
            ("a@example.com.", InvalidEmail::InvalidDomain),
            ("a@-example.com", InvalidEmail::InvalidDomain),
            ("a@example-.com", InvalidEmail::InvalidDomain),
            ("a@127.0.0.1", InvalidEmail::InvalidDomain),
            ("a@[127.0.0.1]", InvalidEmail::InvalidDomain),
            ("a@exa_mple.com", InvalidEmail::InvalidDomain),
        ];
        for (raw, expected) in cases {
            assert_eq!(EmailAddress::parse(raw), Err(expected), "input {raw:?}");
        }
    }

    /// Look-alike domains: compatibility forms fold to the real domain (one account); other
    /// scripts stay distinct and become visibly different A-labels.
    #[test]
    fn look_alike_domains_fold_or_stay_visibly_apart() {
        let cases = [
            (
                "user@\u{ff45}\u{ff58}\u{ff41}\u{ff4d}\u{ff50}\u{ff4c}\u{ff45}.com",
                "user@example.com",
                "fullwidth letters",
            ),
            ("user@example\u{ff0e}com", "user@example.com", "fullwidth full stop"),
            ("user@example\u{3002}com", "user@example.com", "ideographic full stop"),
            ("user@EXAMPLE.COM", "user@example.com", "case"),
            ("user@\u{1d41e}xample.com", "user@example.com", "mathematical bold letters"),
            ("user@ex\u{0430}mple.com", "user@xn--exmple-4nf.com", "a Cyrillic a among Latin letters"),
            (
                "user@\u{0435}\u{0445}\u{0430}\u{043c}\u{0440}\u{04cf}\u{0435}.com",
                "user@xn--80ajb1au1a38g.com",
                "all Cyrillic",
            ),
            ("user@b\u{fc}cher.de", "user@xn--bcher-kva.de", "a real internationalised domain"),
            ("user@xn--bcher-kva.de", "user@xn--bcher-kva.de", "already an A-label"),
        ];
        for (raw, expected, why) in cases {
            let parsed = EmailAddress::parse(raw).unwrap_or_else(|e| panic!("{why}: {raw:?}: {e}"));
            assert_eq!(parsed.as_str(), expected, "{why}");
            assert!(parsed.as_str().split('@').nth(1).is_some_and(str::is_ascii), "{why}: stored as ASCII");
        }
    }

    #[test]
    fn encoded_words_and_unicode_local_parts_are_told_apart() {
        assert_eq!(EmailAddress::parse("=?utf-8?q?admin?=@example.com"), Err(InvalidEmail::EncodedWord));
        assert_eq!(EmailAddress::parse("=?UTF-8?B?YWRtaW4=?=@example.com"), Err(InvalidEmail::EncodedWord));
        let unicode = EmailAddress::parse("\u{fc}ser@example.com").expect("structurally valid");
        assert!(!unicode.has_ascii_local_part());
        assert!(EmailAddress::parse("user@b\u{fc}cher.de").expect("valid").has_ascii_local_part());
    }

    #[test]
    fn an_address_of_exactly_the_maximum_length_is_accepted() {
        let domain = format!("{}.{}.{}.com", "b".repeat(63), "c".repeat(63), "d".repeat(57));
        let raw = format!("{}@{domain}", "a".repeat(64));
        assert_eq!(raw.len(), super::MAX_LENGTH);
        assert!(EmailAddress::parse(&raw).is_ok());
        assert_eq!(EmailAddress::parse(&format!("a{raw}")), Err(InvalidEmail::TooLong));
    }

    #[test]
    fn debug_and_masked_forms_hide_the_local_part() {
        let email = EmailAddress::parse("alice@example.com").expect("valid");
        assert_eq!(email.masked(), "a***@example.com");
        assert_eq!(format!("{email:?}"), "EmailAddress(a***@example.com)");
        assert_eq!(email.to_string(), "alice@example.com");
    }
}
