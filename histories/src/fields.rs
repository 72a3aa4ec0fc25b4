//! Builds an [`Event`] from a JSON object field by field, saying exactly which field is wrong.
//!
//! Every reader (JSON Lines, EDN, the importers) turns its input into a JSON object first and
//! comes through here, so one set of rules decides what a valid event is, whatever the format.
//! serde's derived `Deserialize` for `Event` stays available to other crates, but its
//! messages ("data did not match any variant of untagged enum Process") do not say what was
//! expected and what was found, which is what a user fixing a history needs.

use crate::{Event, EventType, Key, Process, F};
use serde_json::{Map, Value};

/// What was wrong with one event: the text after "expected" and after "found".
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FieldError {
    pub expected: String,
    pub found: String,
}

fn err(expected: impl Into<String>, found: impl Into<String>) -> FieldError {
    FieldError {
        expected: expected.into(),
        found: found.into(),
    }
}

/// A JSON value as written, shortened for a message.
pub(crate) fn show(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 60 {
        let head: String = s.chars().take(60).collect();
        format!("{head}…")
    } else {
        s
    }
}

/// [`show`] for a field that may be absent (`none`).
pub(crate) fn show_opt(v: Option<&Value>) -> String {
    v.map_or("none".to_string(), show)
}

/// An event's fields before validation: the named ones picked out, the rest in `extra`.
#[derive(Debug, Default)]
pub(crate) struct RawEvent {
    pub process: Option<Value>,
    pub kind: Option<Value>,
    pub f: Option<Value>,
    pub key: Option<Value>,
    pub value: Option<Value>,
    pub time: Option<Value>,
    pub index: Option<Value>,
    pub extra: Map<String, Value>,
}

impl RawEvent {
    /// Puts a field in its slot (a later field of the same name wins, as in a JSON object).
    pub fn set(&mut self, name: &str, v: Value) {
        let slot = match name {
            "process" => &mut self.process,
            "type" => &mut self.kind,
            "f" => &mut self.f,
            "key" => &mut self.key,
            "value" => &mut self.value,
            "time" => &mut self.time,
            "index" => &mut self.index,
            other => {
                self.extra.insert(other.to_string(), v);
                return;
            }
        };
        *slot = Some(v);
    }

    /// Whether this is a client event (its process is present and not the nemesis).
    pub fn is_client(&self) -> bool {
        self.process.as_ref().is_some_and(|p| p != "nemesis")
    }

    /// Whether its type is `invoke`.
    pub fn is_invoke(&self) -> bool {
        self.kind.as_ref().is_some_and(|t| t == "invoke")
    }

    /// Picks the named fields out of a JSON object.
    #[cfg(test)]
    pub fn from_object(mut obj: Map<String, Value>) -> Self {
        RawEvent {
            process: obj.remove("process"),
            kind: obj.remove("type"),
            f: obj.remove("f"),
            key: obj.remove("key"),
            value: obj.remove("value"),
            time: obj.remove("time"),
            index: obj.remove("index"),
            extra: obj,
        }
    }
}

/// Validates one event given as a JSON object (see README.md, "The format").
#[cfg(test)]
pub(crate) fn event_from_object(obj: Map<String, Value>) -> Result<Event, FieldError> {
    event_from_raw(RawEvent::from_object(obj))
}

/// Validates one event (see README.md, "The format").
pub(crate) fn event_from_raw(raw: RawEvent) -> Result<Event, FieldError> {
    let process = process(raw.process)?;
    let kind = event_type(raw.kind)?;
    let f = function(raw.f)?;
    let key = match raw.key {
        None | Some(Value::Null) => None,
        Some(v) => Some(key_from_value(&v)?),
    };
    let value = raw.value.unwrap_or(Value::Null);
    let time = non_negative(raw.time, "time")?;
    let index = non_negative(raw.index, "index")?;
    if process != Process::Nemesis && kind == EventType::Invoke {
        check_invoke_value(&f, &value)?;
    }
    Ok(Event {
        process,
        kind,
        f,
        key,
        value,
        time,
        index,
        extra: raw.extra,
    })
}

fn process(v: Option<Value>) -> Result<Process, FieldError> {
    match v {
        None => Err(err("a \"process\" field", "none")),
        Some(Value::String(s)) if s == "nemesis" => Ok(Process::Nemesis),
        Some(v) => match v.as_u64() {
            Some(p) => Ok(Process::Client(p)),
            None => Err(err(
                "\"process\" to be a non-negative integer or \"nemesis\"",
                show(&v),
            )),
        },
    }
}

fn event_type(v: Option<Value>) -> Result<EventType, FieldError> {
    let expected = "\"type\" to be one of \"invoke\", \"ok\", \"fail\", \"info\"";
    match v {
        None => Err(err("a \"type\" field", "none")),
        Some(Value::String(s)) => match s.as_str() {
            "invoke" => Ok(EventType::Invoke),
            "ok" => Ok(EventType::Ok),
            "fail" => Ok(EventType::Fail),
            "info" => Ok(EventType::Info),
            _ => Err(err(expected, format!("{s:?}"))),
        },
        Some(v) => Err(err(expected, show(&v))),
    }
}

fn function(v: Option<Value>) -> Result<F, FieldError> {
    match v {
        None => Err(err("an \"f\" field", "none")),
        Some(Value::String(s)) if !s.is_empty() => Ok(F::from(s.as_str())),
        Some(v) => Err(err("\"f\" to be a non-empty string", show(&v))),
    }
}

/// A key: a JSON string or an integer that fits in an `i64`.
pub(crate) fn key_from_value(v: &Value) -> Result<Key, FieldError> {
    match v {
        Value::String(s) => Ok(Key::Str(s.clone())),
        _ => match v.as_i64() {
            Some(i) => Ok(Key::Int(i)),
            None => Err(err("\"key\" to be a string or an integer", show(v))),
        },
    }
}

fn non_negative(v: Option<Value>, name: &str) -> Result<Option<u64>, FieldError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_u64() {
            Some(n) => Ok(Some(n)),
            None => Err(err(
                format!("{name:?} to be a non-negative integer"),
                show(&v),
            )),
        },
    }
}

/// The invocation values the checkers rely on. Completions are not checked: their values
/// are either the result (reads) or an echo the checkers ignore.
fn check_invoke_value(f: &F, value: &Value) -> Result<(), FieldError> {
    match f {
        F::Cas => match value {
            Value::Array(a) if a.len() == 2 => Ok(()),
            _ => Err(err(
                "a cas \"value\" to be a 2-element array [expected, new]",
                show(value),
            )),
        },
        F::Append => match value {
            Value::String(_) => Ok(()),
            _ => Err(err(
                "an append \"value\" to be the string appended",
                show(value),
            )),
        },
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!("test input is an object"),
        }
    }

    #[test]
    fn accepts_the_documented_example_and_keeps_extra_fields() {
        let e = event_from_object(obj(json!({
            "process": 3, "type": "invoke", "f": "cas", "key": "k7",
            "value": [1, 2], "time": 1234567, "node": "n1"
        })))
        .unwrap();
        assert_eq!(e.process, Process::Client(3));
        assert_eq!(e.key, Some(Key::Str("k7".into())));
        assert_eq!(e.time, Some(1234567));
        assert_eq!(e.extra["node"], "n1");
    }

    #[test]
    fn names_the_field_and_the_bad_value() {
        let cases = [
            (
                json!({"type": "ok", "f": "read"}),
                "a \"process\" field",
                "none",
            ),
            (
                json!({"process": -1, "type": "ok", "f": "read"}),
                "\"process\" to be a non-negative integer or \"nemesis\"",
                "-1",
            ),
            (
                json!({"process": 1, "type": "done", "f": "read"}),
                "\"type\" to be one of \"invoke\", \"ok\", \"fail\", \"info\"",
                "\"done\"",
            ),
            (
                json!({"process": 1, "type": "ok", "f": 7}),
                "\"f\" to be a non-empty string",
                "7",
            ),
            (
                json!({"process": 1, "type": "ok", "f": "read", "key": 1.5}),
                "\"key\" to be a string or an integer",
                "1.5",
            ),
            (
                json!({"process": 1, "type": "ok", "f": "read", "time": "now"}),
                "\"time\" to be a non-negative integer",
                "\"now\"",
            ),
            (
                json!({"process": 1, "type": "invoke", "f": "cas", "value": [1, 2, 3]}),
                "a cas \"value\" to be a 2-element array [expected, new]",
                "[1,2,3]",
            ),
            (
                json!({"process": 1, "type": "invoke", "f": "append", "value": 4}),
                "an append \"value\" to be the string appended",
                "4",
            ),
        ];
        for (input, expected, found) in cases {
            let e = event_from_object(obj(input.clone())).unwrap_err();
            assert_eq!(
                (e.expected.as_str(), e.found.as_str()),
                (expected, found),
                "{input}"
            );
        }
    }

    #[test]
    fn nemesis_events_take_any_value() {
        let e = event_from_object(obj(json!({
            "process": "nemesis", "type": "info", "f": "start-partition",
            "value": {"halves": [[1, 2], [3]]}
        })))
        .unwrap();
        assert_eq!(e.process, Process::Nemesis);
        assert_eq!(e.f, F::Other("start-partition".into()));
    }
}
