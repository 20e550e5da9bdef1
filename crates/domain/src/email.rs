//! Email addresses as the service accepts them: one mailbox, normalised, safe to put in a header.
//!
//! The rules are deliberately stricter than RFC 5322: no quoted local parts, no comments, no
//! display names, no IP-literal domains. Sign-in addresses are typed by people, and every
//! exotic form we refuse is one fewer way to smuggle a second recipient or a header into a
//! message.

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
        if !is_valid_local_part(local) {
            return Err(InvalidEmail::InvalidLocalPart);
        }
        if !is_valid_domain(domain) {
            return Err(InvalidEmail::InvalidDomain);
        }
        Ok(Self(lowered))
    }

    /// The normalised address.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The address with most of the local part hidden (`a***@example.com`), for logs.
    pub fn masked(&self) -> String {
        let (local, domain) = self.0.split_once('@').unwrap_or((&self.0, ""));
        let first: String = local.chars().take(1).collect();
        format!("{first}***@{domain}")
    }
}

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

/// A host name with at least two labels, each 1 to 63 letters, digits or inner hyphens,
/// and a top-level label that is not all digits (which would be an IP address).
fn is_valid_domain(domain: &str) -> bool {
    let labels: Vec<&str> = domain.split('.').collect();
    let well_formed = labels.len() >= 2
        && labels.iter().all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_alphanumeric() || c == '-')
        });
    well_formed && labels.last().is_some_and(|tld| !tld.chars().all(|c| c.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::{EmailAddress, InvalidEmail};

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
