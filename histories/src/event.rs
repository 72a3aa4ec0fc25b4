//! One line of a history: an event in Jepsen's vocabulary.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::fmt;

/// Who produced an event: a logical client process, or the nemesis.
///
/// A client process is sequential (at most one open operation) and, once one of its
/// operations completes with `info`, its id is never used again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Process {
    /// A client process id.
    Client(u64),
    /// The fault injector (`"nemesis"` in JSON).
    #[serde(with = "nemesis_tag")]
    Nemesis,
}

mod nemesis_tag {
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("nemesis")
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<(), D::Error> {
        let s = String::deserialize(d)?;
        if s == "nemesis" {
            Ok(())
        } else {
            Err(D::Error::custom(format!(
                "process must be an integer or \"nemesis\", found {s:?}"
            )))
        }
    }
}

impl fmt::Display for Process {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Process::Client(p) => write!(f, "{p}"),
            Process::Nemesis => f.write_str("nemesis"),
        }
    }
}

/// The kind of event (Jepsen's `:type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventType {
    /// An operation starts.
    Invoke,
    /// The operation happened.
    Ok,
    /// The operation definitely did not happen.
    Fail,
    /// Unknown outcome: it may take effect at any time after its invocation, or never.
    Info,
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EventType::Invoke => "invoke",
            EventType::Ok => "ok",
            EventType::Fail => "fail",
            EventType::Info => "info",
        })
    }
}

/// The operation's function (Jepsen's `:f`).
///
/// Client operations use the four known names; nemesis events use free-form names such as
/// `start-partition`, kept in [`F::Other`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum F {
    /// Read a register / key.
    Read,
    /// Overwrite a register / key.
    Write,
    /// Compare-and-set: `value` is `[expected, new]`.
    Cas,
    /// Append a string to a key.
    Append,
    /// Any other name (nemesis events).
    Other(String),
}

impl F {
    /// The name as written in a history.
    pub fn as_str(&self) -> &str {
        match self {
            F::Read => "read",
            F::Write => "write",
            F::Cas => "cas",
            F::Append => "append",
            F::Other(s) => s,
        }
    }
}

impl From<&str> for F {
    fn from(s: &str) -> Self {
        match s {
            "read" => F::Read,
            "write" => F::Write,
            "cas" => F::Cas,
            "append" => F::Append,
            other => F::Other(other.to_string()),
        }
    }
}

impl fmt::Display for F {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for F {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for F {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(F::from(s.as_str()))
    }
}

/// A key: a JSON string or integer. Absent (`None` in [`Event::key`]) means a single register.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Key {
    /// An integer key (Jepsen's independent keys are usually integers).
    Int(i64),
    /// A string key.
    Str(String),
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Key::Int(i) => write!(f, "{i}"),
            Key::Str(s) => f.write_str(s),
        }
    }
}

/// One event of a history, as one JSON Lines record.
///
/// `value` keeps the JSON value as written: `null` for a read's invocation and for a read of
/// an absent key, the written value, `[expected, new]` for cas, the appended string for append.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Who produced the event.
    pub process: Process,
    /// Invoke, ok, fail or info.
    #[serde(rename = "type")]
    pub kind: EventType,
    /// The function.
    pub f: F,
    /// The key, absent for a single register.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<Key>,
    /// The value (see the type's docs).
    #[serde(default)]
    pub value: Value,
    /// Nanoseconds since the test started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<u64>,
    /// Position in the history, if the producer numbered events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<u64>,
    /// Unknown fields, kept so that a round trip loses nothing; checkers ignore them. Never
    /// one of the named fields above (a writer would write that name twice).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Event {
    /// A client event with no time, index or extra fields.
    pub fn client(process: u64, kind: EventType, f: F, key: Option<Key>, value: Value) -> Self {
        Event {
            process: Process::Client(process),
            kind,
            f,
            key,
            value,
            time: None,
            index: None,
            extra: Map::new(),
        }
    }

    /// A nemesis event (type `info`), e.g. `f = "start-partition"`.
    pub fn nemesis(f: &str, value: Value) -> Self {
        Event {
            process: Process::Nemesis,
            kind: EventType::Info,
            f: F::from(f),
            key: None,
            value,
            time: None,
            index: None,
            extra: Map::new(),
        }
    }

    /// Sets the time (builder style).
    pub fn at(mut self, nanos: u64) -> Self {
        self.time = Some(nanos);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_the_documented_example() {
        let line =
            r#"{"process":3,"type":"invoke","f":"cas","key":"k7","value":[1,2],"time":1234567}"#;
        let e: Event = serde_json::from_str(line).unwrap();
        assert_eq!(e.process, Process::Client(3));
        assert_eq!(e.kind, EventType::Invoke);
        assert_eq!(e.f, F::Cas);
        assert_eq!(e.key, Some(Key::Str("k7".into())));
        assert_eq!(e.value, serde_json::json!([1, 2]));
        assert_eq!(serde_json::to_string(&e).unwrap(), line);
    }

    #[test]
    fn keeps_unknown_fields_and_reads_nemesis() {
        let line = r#"{"process":"nemesis","type":"info","f":"start-partition","value":"halves","node":"n1"}"#;
        let e: Event = serde_json::from_str(line).unwrap();
        assert_eq!(e.process, Process::Nemesis);
        assert_eq!(e.f, F::Other("start-partition".into()));
        assert_eq!(e.extra["node"], "n1");
        let back: Event = serde_json::from_str(&serde_json::to_string(&e).unwrap()).unwrap();
        assert_eq!(back, e);
    }

    #[test]
    fn rejects_a_process_that_is_neither_integer_nor_nemesis() {
        let line = r#"{"process":"bob","type":"invoke","f":"read","value":null}"#;
        assert!(serde_json::from_str::<Event>(line).is_err());
    }
}
