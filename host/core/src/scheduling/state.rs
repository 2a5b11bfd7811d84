//! Scheduler state as JSON, read without copying.
//!
//! A scheduler's state names customers (the round-robin cycle, the
//! weighted-fair virtual times), and a decision reads and writes it once.
//! With a hundred customers, allocating a `String` per id and searching
//! string-keyed trees was most of a decision that is otherwise a pass over
//! the backlog, and more so in the WebAssembly builds, where allocation and
//! byte comparison are slower. Here ids borrow from the state bytes, lookups
//! hash, and the state written back borrows the input's ids.

use std::borrow::{Borrow, Cow};
use std::collections::HashMap;
use std::fmt;
use std::hash::BuildHasherDefault;

use serde::de::{self, DeserializeOwned, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::ScheduleError;

/// A map for the ids of one decision. The keys are customer ids the host
/// hands in, a hundred or so, not attacker-chosen volumes, so a fast
/// non-keyed hash is the right trade (and it is deterministic, which the
/// WebAssembly builds need: they have no entropy to seed SipHash with).
pub(crate) type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<rustc_hash::FxHasher>>;

/// A customer id read from state bytes: borrowed unless the JSON escaped
/// something in it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Id<'a>(Cow<'a, str>);

impl Id<'_> {
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for Id<'_> {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Id<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct IdVisitor<'a>(std::marker::PhantomData<&'a ()>);

        impl<'de: 'a, 'a> Visitor<'de> for IdVisitor<'a> {
            type Value = Id<'a>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a customer id")
            }

            fn visit_borrowed_str<E: de::Error>(self, id: &'de str) -> Result<Self::Value, E> {
                Ok(Id(Cow::Borrowed(id)))
            }

            fn visit_str<E: de::Error>(self, id: &str) -> Result<Self::Value, E> {
                Ok(Id(Cow::Owned(id.to_owned())))
            }

            fn visit_string<E: de::Error>(self, id: String) -> Result<Self::Value, E> {
                Ok(Id(Cow::Owned(id)))
            }
        }

        deserializer.deserialize_str(IdVisitor(std::marker::PhantomData))
    }
}

/// A JSON object read as its entries in document order (a later duplicate
/// key is a later entry), for `#[serde(deserialize_with)]`.
pub(crate) fn entries<'de: 'a, 'a, D, V>(deserializer: D) -> Result<Vec<(Id<'a>, V)>, D::Error>
where
    D: Deserializer<'de>,
    V: Deserialize<'de>,
{
    struct EntriesVisitor<'a, V>(std::marker::PhantomData<(&'a (), V)>);

    impl<'de: 'a, 'a, V: Deserialize<'de>> Visitor<'de> for EntriesVisitor<'a, V> {
        type Value = Vec<(Id<'a>, V)>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an object of customer ids")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(0));
            while let Some(entry) = map.next_entry()? {
                entries.push(entry);
            }
            Ok(entries)
        }
    }

    deserializer.deserialize_map(EntriesVisitor(std::marker::PhantomData))
}

/// Entries written as a JSON object, in order, for `#[serde(serialize_with)]`.
pub(crate) fn object<S, V>(entries: &[(&str, V)], serializer: S) -> Result<S::Ok, S::Error>
where
    S: Serializer,
    V: Serialize,
{
    serializer.collect_map(entries.iter().map(|(id, value)| (id, value)))
}

/// Read a scheduler's JSON state, borrowing from `bytes`; empty bytes are
/// the initial state.
pub(crate) fn decode<'a, T: Deserialize<'a> + Default>(bytes: &'a [u8]) -> Result<T, ScheduleError> {
    if bytes.is_empty() {
        return Ok(T::default());
    }
    serde_json::from_slice(bytes).map_err(|e| ScheduleError::InvalidState(e.to_string()))
}

/// [`decode`] into an owned value (for the public state types).
pub(crate) fn decode_owned<T: DeserializeOwned + Default>(bytes: &[u8]) -> Result<T, ScheduleError> {
    decode(bytes)
}

/// Write a scheduler's state as JSON (readable where the host stores it).
pub(crate) fn encode<T: Serialize>(state: &T) -> Vec<u8> {
    serde_json::to_vec(state).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize, Default)]
    struct Sample<'a> {
        #[serde(borrow, deserialize_with = "entries")]
        times: Vec<(Id<'a>, u64)>,
        #[serde(borrow)]
        ids: Vec<Id<'a>>,
    }

    #[test]
    fn ids_borrow_unless_escaped_and_entries_keep_their_order() {
        let bytes = br#"{"times": {"b": 2, "a\"q": 1, "b": 3}, "ids": ["x", "y\u0041"]}"#;
        let sample: Sample = decode(bytes).unwrap();
        let times: Vec<(&str, u64)> = sample.times.iter().map(|(id, t)| (id.as_str(), *t)).collect();
        assert_eq!(times, [("b", 2), ("a\"q", 1), ("b", 3)]);
        assert!(matches!(sample.times[0].0.0, Cow::Borrowed(_)));
        assert!(matches!(sample.times[1].0.0, Cow::Owned(_)));
        assert_eq!(sample.ids[1].as_str(), "yA");
        assert!(decode::<Sample>(b"").unwrap().ids.is_empty());
        assert!(matches!(
            decode::<Sample>(b"{\"times\": []"),
            Err(ScheduleError::InvalidState(_))
        ));
    }

    #[test]
    fn objects_are_written_in_order() {
        #[derive(Serialize)]
        struct Out<'a> {
            #[serde(serialize_with = "object")]
            times: Vec<(&'a str, u64)>,
        }
        let out = Out {
            times: vec![("z", 1), ("a", 2)],
        };
        assert_eq!(encode(&out), br#"{"times":{"z":1,"a":2}}"#);
    }
}
