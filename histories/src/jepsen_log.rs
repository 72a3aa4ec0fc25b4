//! Importer for the Jepsen etcd logs in Porcupine's test data (`INFO  jepsen.util - ...`).
//!
//! One event per line: `INFO  jepsen.util - PROCESS TYPE F VALUE`, fields separated by tabs
//! or runs of spaces (both occur in the corpus), `TYPE` one of `:invoke :ok :fail :info`, `F`
//! one of `:read :write :cas`, `VALUE` one of `nil`, an integer, `[A B]` or `:timed-out`.
//! The history is a single register (no key).
//!
//! How a line becomes an event:
//! - invoke: read with `null`, write with the integer, cas with `[A, B]`;
//! - ok / fail with a value: that value (a read's `nil` is `null`, the register is absent);
//! - a keyword value such as `:timed-out` on a completion: the event gets the invocation's
//!   value (`null` for a read) and `"error": "timed-out"` in its extra fields, like
//!   Jepsen's `:error`. So `:info :cas :timed-out` is an indeterminate cas of the invoked
//!   `[A B]`, and `:fail :read :timed-out` a read that did not happen (Porcupine treats it
//!   as a read with unknown output, which constrains nothing: the same verdict).

use crate::error::{pair, quote, ReadError};
use crate::{Event, EventType, History, Process, F};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

const EXPECTED_LINE: &str = "a line `INFO  jepsen.util - PROCESS TYPE F VALUE`";

/// Reads an etcd log and pairs its events into operations.
pub fn read_str(text: &str, file: &str) -> Result<History, ReadError> {
    let (events, lines) = parse_events(text, file)?;
    pair(events, &lines, file)
}

/// Parses an etcd log into events, with the 1-based line of each. Blank lines are skipped.
pub fn parse_events(text: &str, file: &str) -> Result<(Vec<Event>, Vec<usize>), ReadError> {
    let mut events = Vec::new();
    let mut lines = Vec::new();
    // process -> value of its open invocation, to fill in `:timed-out` completions
    let mut open: BTreeMap<u64, Value> = BTreeMap::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        if raw.trim().is_empty() {
            continue;
        }
        let e = parse_line(raw, &mut open)
            .map_err(|(expected, found)| ReadError::parse(file, line, expected, found))?;
        events.push(e);
        lines.push(line);
    }
    Ok((events, lines))
}

type LineError = (String, String);

fn line_err(expected: impl Into<String>, found: impl Into<String>) -> LineError {
    (expected.into(), found.into())
}

fn parse_line(raw: &str, open: &mut BTreeMap<u64, Value>) -> Result<Event, LineError> {
    let mut tokens = raw.split_whitespace();
    let prefix: Vec<&str> = tokens.by_ref().take(3).collect();
    if prefix != ["INFO", "jepsen.util", "-"] {
        return Err(line_err(EXPECTED_LINE, quote(raw)));
    }
    let process = match tokens.next() {
        Some(p) => p
            .parse::<u64>()
            .map_err(|_| line_err("a process number", quote(p)))?,
        None => return Err(line_err("a process number", "the end of the line")),
    };
    let kind = match tokens.next() {
        Some(":invoke") => EventType::Invoke,
        Some(":ok") => EventType::Ok,
        Some(":fail") => EventType::Fail,
        Some(":info") => EventType::Info,
        Some(t) => return Err(line_err("one of :invoke :ok :fail :info", quote(t))),
        None => {
            return Err(line_err(
                "one of :invoke :ok :fail :info",
                "the end of the line",
            ))
        }
    };
    let f = match tokens.next() {
        Some(":read") => F::Read,
        Some(":write") => F::Write,
        Some(":cas") => F::Cas,
        Some(t) => return Err(line_err("one of :read :write :cas", quote(t))),
        None => return Err(line_err("one of :read :write :cas", "the end of the line")),
    };
    let rest: Vec<&str> = tokens.collect();
    let text = rest.join(" ");
    let mut extra = Map::new();
    let value = match parse_value(&text)? {
        Parsed::Value(v) => {
            check_value(kind, &f, &v, &text)?;
            v
        }
        Parsed::Keyword(k) if kind != EventType::Invoke => {
            extra.insert("error".into(), Value::String(k));
            open.get(&process).cloned().unwrap_or(Value::Null)
        }
        Parsed::Keyword(k) => {
            return Err(line_err(
                "an invocation value (nil, an integer or [A B])",
                quote(&format!(":{k}")),
            ))
        }
    };
    match kind {
        EventType::Invoke => {
            open.insert(process, value.clone());
        }
        _ => {
            open.remove(&process);
        }
    }
    Ok(Event {
        process: Process::Client(process),
        kind,
        f,
        key: None,
        value,
        time: None,
        index: None,
        extra,
    })
}

enum Parsed {
    Value(Value),
    Keyword(String),
}

fn parse_value(text: &str) -> Result<Parsed, LineError> {
    let expected = "a value: nil, an integer, [A B] or a keyword such as :timed-out";
    if text.is_empty() {
        return Err(line_err(expected, "the end of the line"));
    }
    if text == "nil" {
        return Ok(Parsed::Value(Value::Null));
    }
    if let Some(k) = text.strip_prefix(':') {
        if !k.is_empty() && !k.contains(char::is_whitespace) {
            return Ok(Parsed::Keyword(k.to_string()));
        }
    }
    if let Ok(n) = text.parse::<i64>() {
        return Ok(Parsed::Value(json!(n)));
    }
    if let Some(inner) = text.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
        let parts: Vec<&str> = inner.split_whitespace().collect();
        if let [a, b] = parts[..] {
            if let (Ok(a), Ok(b)) = (a.parse::<i64>(), b.parse::<i64>()) {
                return Ok(Parsed::Value(json!([a, b])));
            }
        }
    }
    Err(line_err(expected, quote(text)))
}

/// The value shapes each function takes here: reads are invoked with nil and return nil or
/// an integer; writes carry an integer; cas carries `[A B]`.
fn check_value(kind: EventType, f: &F, value: &Value, text: &str) -> Result<(), LineError> {
    let ok = match (f, kind) {
        (F::Read, EventType::Invoke) => value.is_null(),
        (F::Read, _) => value.is_null() || value.is_i64(),
        (F::Write, _) => value.is_i64(),
        (F::Cas, _) => value.is_array(),
        _ => true,
    };
    if ok {
        Ok(())
    } else {
        let expected = match (f, kind) {
            (F::Read, EventType::Invoke) => "nil for a read invocation",
            (F::Read, _) => "nil or an integer for a read",
            (F::Write, _) => "an integer for a write",
            _ => "[A B] for a cas",
        };
        Err(line_err(expected, quote(text)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Status;

    #[test]
    fn reads_tabs_and_space_padding_alike() {
        let text = "INFO  jepsen.util - 1\t:invoke\t:cas\t[1 4]\n\
                    INFO  jepsen.util - 17  :invoke :read   nil\n\
                    INFO  jepsen.util - 17  :ok     :read   3\n\
                    INFO  jepsen.util - 1\t:fail\t:cas\t[1 4]\n";
        let h = read_str(text, "t.log").unwrap();
        assert_eq!(h.events.len(), 4);
        assert_eq!(h.events[0].value, json!([1, 4]));
        assert_eq!(h.operations[1].output, Some(json!(3)));
        assert_eq!(h.operations[0].status, Status::Fail);
        assert_eq!(h.events[0].key, None);
    }

    #[test]
    fn timed_out_completions_carry_the_invoked_value() {
        let text = "INFO  jepsen.util - 4\t:invoke\t:write\t2\n\
                    INFO  jepsen.util - 5\t:invoke\t:read\tnil\n\
                    INFO  jepsen.util - 4\t:info\t:write\t:timed-out\n\
                    INFO  jepsen.util - 5\t:fail\t:read\t:timed-out\n\
                    INFO  jepsen.util - 5\t:invoke\t:read\tnil\n";
        let h = read_str(text, "t.log").unwrap();
        assert_eq!(h.events[2].value, json!(2));
        assert_eq!(h.events[2].extra["error"], "timed-out");
        assert_eq!(h.events[3].value, Value::Null);
        let st: Vec<Status> = h.operations.iter().map(|o| o.status).collect();
        assert_eq!(st, [Status::Info, Status::Fail, Status::Info]);
    }

    #[test]
    fn bad_lines_say_what_was_expected_and_where() {
        let cases = [
            ("INFO  jepsen.util - x :invoke :read nil", "t:1: expected a process number, found \"x\""),
            ("INFO  jepsen.util - 1 :begin :read nil", "t:1: expected one of :invoke :ok :fail :info, found \":begin\""),
            ("INFO  jepsen.util - 1 :invoke :cas [1]", "t:1: expected a value: nil, an integer, [A B] or a keyword such as :timed-out, found \"[1]\""),
            ("INFO  jepsen.util - 1 :invoke :write nil", "t:1: expected an integer for a write, found \"nil\""),
            ("INFO  jepsen.util - 1 :invoke :write :timed-out", "t:1: expected an invocation value (nil, an integer or [A B]), found \":timed-out\""),
            ("WARN something else", "t:1: expected a line `INFO  jepsen.util - PROCESS TYPE F VALUE`, found \"WARN something else\""),
        ];
        for (text, want) in cases {
            assert_eq!(read_str(text, "t").unwrap_err().to_string(), want);
        }
    }

    #[test]
    fn pairing_errors_point_at_the_line() {
        let text = "INFO  jepsen.util - 1\t:invoke\t:read\tnil\n\n\
                    INFO  jepsen.util - 1\t:invoke\t:read\tnil\n";
        let e = read_str(text, "t.log").unwrap_err();
        assert!(matches!(e, ReadError::Pairing { line: 3, .. }), "{e}");
    }
}
