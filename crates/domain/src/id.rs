//! Ids of stored records: UUIDs in their hyphenated lower-case text form (stores issue UUIDv7,
//! so ids sort by creation time). One generic type with a marker per kind, so a session id can
//! never be passed where a user id is meant, and every id read back is checked once.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::marker::PhantomData;

/// An id of a record of kind `K`.
pub struct Id<K> {
    text: String,
    kind: PhantomData<fn() -> K>,
}

/// Marks user ids.
#[derive(Debug)]
pub enum UserKind {}
/// Marks session ids.
#[derive(Debug)]
pub enum SessionKind {}
/// Marks outbox message ids.
#[derive(Debug)]
pub enum OutboxKind {}

/// A user's id.
pub type UserId = Id<UserKind>;
/// A session's own id (not its token).
pub type SessionId = Id<SessionKind>;
/// An outbox message's id; also the idempotency key its sends carry.
pub type OutboxId = Id<OutboxKind>;

/// The text is not a hyphenated lower-case UUID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed id")]
pub struct MalformedId;

impl<K> Id<K> {
    /// Reads an id issued by a store.
    ///
    /// # Errors
    /// [`MalformedId`] unless the text is `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` in lower-case hex.
    pub fn parse(text: &str) -> Result<Self, MalformedId> {
        let well_formed = text.len() == 36
            && text.char_indices().all(|(i, c)| match i {
                8 | 13 | 18 | 23 => c == '-',
                _ => c.is_ascii_digit() || ('a'..='f').contains(&c),
            });
        if well_formed {
            Ok(Self { text: text.to_owned(), kind: PhantomData })
        } else {
            Err(MalformedId)
        }
    }

    /// The id's text.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl<K> Clone for Id<K> {
    fn clone(&self) -> Self {
        Self { text: self.text.clone(), kind: PhantomData }
    }
}

impl<K> PartialEq for Id<K> {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl<K> Eq for Id<K> {}

impl<K> Hash for Id<K> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.text.hash(state);
    }
}

impl<K> fmt::Display for Id<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl<K> fmt::Debug for Id<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Id({})", self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::{SessionId, UserId};

    #[test]
    fn only_hyphenated_lower_case_uuids_are_ids() {
        let good = "01a21c0e-9ad3-7543-baa5-66e17918a337";
        assert_eq!(UserId::parse(good).map(|id| id.to_string()), Ok(good.to_owned()));
        for bad in [
            "",
            "s1",
            "0190-user",
            &good.to_uppercase(),
            &good.replace('-', ""),
            &format!("{good}0"),
            "01a21c0e-9ad3-7543-baa5-66e17918a33g",
        ] {
            assert!(SessionId::parse(bad).is_err(), "{bad:?}");
        }
    }
}
