//! A check on JSON bodies that serde does not make: no object names a key twice.
//!
//! `serde_json::Value` (and so poem-openapi, which parses into it) keeps the last of two equal
//! keys without a word. Two readers of one body could then act on different values, so a body
//! like `{"email":"a@x","email":"b@y"}` is refused before any handler sees it.

use std::collections::HashSet;
use std::fmt;

use serde::de::{DeserializeSeed, Error as _, MapAccess, SeqAccess, Visitor};

/// `Ok` when `body` is JSON in which no object repeats a key; otherwise why not (a syntax error
/// is left to the handler, which answers it in its own words).
///
/// # Errors
/// The first repeated key, as `duplicate key `name``.
pub fn without_duplicate_keys(body: &[u8]) -> Result<(), String> {
    let mut parser = serde_json::Deserializer::from_slice(body);
    match UniqueKeys.deserialize(&mut parser) {
        Err(error) if error.is_data() => Err(error.to_string()),
        // Syntax errors and empty bodies are the handler's to answer.
        _ => Ok(()),
    }
}

/// Walks any JSON value, checking each object's keys.
struct UniqueKeys;

impl<'de> DeserializeSeed<'de> for UniqueKeys {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for UniqueKeys {
    type Value = ();

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut items: A) -> Result<(), A::Error> {
        while items.next_element_seed(UniqueKeys)?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut entries: A) -> Result<(), A::Error> {
        let mut seen = HashSet::new();
        while let Some(key) = entries.next_key::<String>()? {
            entries.next_value_seed(UniqueKeys)?;
            if !seen.insert(key) {
                return Err(A::Error::custom("duplicate key in an object"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::without_duplicate_keys;

    #[test]
    fn a_key_named_twice_at_any_depth_is_refused_and_everything_else_passes() {
        for refused in [
            r#"{"email":"a@example.com","email":"b@example.com"}"#,
            r#"{"outer":{"k":1,"k":2}}"#,
            r#"[{"a":1},{"b":[{"c":1,"c":1}]}]"#,
        ] {
            assert!(without_duplicate_keys(refused.as_bytes()).is_err(), "{refused}");
        }
        for passed in [r#"{"a":1,"b":{"a":2}}"#, r#"[{"a":1},{"a":2}]"#, "", "not json", r#"{"a":"#, "null"] {
            assert!(without_duplicate_keys(passed.as_bytes()).is_ok(), "{passed}");
        }
    }
}
