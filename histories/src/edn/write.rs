//! Exporter to Jepsen EDN, so Knossos and Elle users can reuse our histories.
//!
//! The output is one vector, `[` on the first line, then one op map per line, then `]`:
//! Knossos reads a history as one collection (`read-history-2`), and one op per line keeps
//! the file diffable and greppable like Jepsen's own `history.edn`.
//!
//! Fields become keywords (`:process :type :f :value :time :index`, extra fields too),
//! `process: "nemesis"` becomes `:process :nemesis`, `f` and `type` become keywords. JSON
//! values map one to one: `null` → `nil`, arrays → vectors, objects → maps (keyword keys
//! where the key is a plain name, string keys otherwise).
//!
//! Keys: if every client event has a key and a known `f` (read, write, cas, append), values
//! are wrapped as `jepsen.independent` tuples `[key value]`, which Knossos' and Jepsen's
//! independent checkers split on, and which our EDN reader detects and unwraps. Otherwise a
//! key is written as a `:key` field (Porcupine's kv style), which our reader also reads. A
//! single register whose values are all pairs gets `:key nil` fields, so that the reader does
//! not take its values for tuples.

use crate::{Event, History, Process, F};
use serde_json::Value;
use std::fmt::{self, Write as _};
use std::io::{self, Write};

/// Writes `history` as a Jepsen EDN vector of op maps (see the module docs).
pub fn write_edn<W: Write>(history: &History, mut out: W) -> io::Result<W> {
    let keys = if uses_tuples(&history.events) {
        Keys::Tuples
    } else if looks_independent(&history.events) {
        Keys::NilKey
    } else {
        Keys::Field
    };
    out.write_all(b"[\n")?;
    let mut line = String::with_capacity(256);
    for e in &history.events {
        line.clear();
        write_event(e, keys, &mut line).expect("writing to a String cannot fail");
        line.push('\n');
        out.write_all(line.as_bytes())?;
    }
    out.write_all(b"]\n")?;
    out.flush()?;
    Ok(out)
}

/// Whether keys go into `[key value]` tuples: only when the reader can tell them apart from
/// plain values, i.e. every client event has a key and one of the four known `f`s.
fn uses_tuples(events: &[Event]) -> bool {
    let mut clients = events
        .iter()
        .filter(|e| e.process != Process::Nemesis)
        .peekable();
    clients.peek().is_some()
        && clients
            .all(|e| e.key.is_some() && matches!(e.f, F::Read | F::Write | F::Cas | F::Append))
}

/// How keys are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Keys {
    /// `:value [key value]`.
    Tuples,
    /// `:key k` when there is one.
    Field,
    /// `:key k`, and `:key nil` on keyless client events: only for a single register whose
    /// values are all pairs, which the reader would otherwise take for independent tuples
    /// (a `:key` field anywhere turns detection off).
    NilKey,
}

/// Whether the reader's independent-tuple detection would fire on these (keyless) events.
fn looks_independent(events: &[Event]) -> bool {
    let pair = |v: &Value| matches!(v, Value::Array(a) if a.len() == 2);
    let mut invokes = events
        .iter()
        .filter(|e| {
            e.process != Process::Nemesis
                && e.kind == crate::EventType::Invoke
                && matches!(e.f, F::Read | F::Write | F::Cas | F::Append)
        })
        .peekable();
    invokes.peek().is_some()
        && events.iter().all(|e| e.key.is_none())
        && invokes.all(|e| pair(&e.value) && (e.f != F::Cas || pair(&e.value[1])))
}

fn write_event(e: &Event, keys: Keys, out: &mut String) -> fmt::Result {
    match e.process {
        Process::Client(p) => write!(out, "{{:process {p}")?,
        Process::Nemesis => out.write_str("{:process :nemesis")?,
    }
    write!(out, ", :type :{}, :f ", e.kind)?;
    write_name(e.f.as_str(), out)?;
    match (&e.key, keys) {
        (Some(k), Keys::Tuples) => {
            out.write_str(", :value [")?;
            write_value(&key_value(k), out)?;
            out.write_char(' ')?;
            write_value(&e.value, out)?;
            out.write_char(']')?;
        }
        (Some(k), _) => {
            out.write_str(", :key ")?;
            write_value(&key_value(k), out)?;
            out.write_str(", :value ")?;
            write_value(&e.value, out)?;
        }
        (None, Keys::NilKey) if e.process != Process::Nemesis => {
            out.write_str(", :key nil, :value ")?;
            write_value(&e.value, out)?;
        }
        (None, _) => {
            out.write_str(", :value ")?;
            write_value(&e.value, out)?;
        }
    }
    if let Some(t) = e.time {
        write!(out, ", :time {t}")?;
    }
    if let Some(i) = e.index {
        write!(out, ", :index {i}")?;
    }
    for (k, v) in &e.extra {
        out.write_str(", ")?;
        write_name(k, out)?;
        out.write_char(' ')?;
        write_value(v, out)?;
    }
    out.write_char('}')
}

fn key_value(k: &crate::Key) -> Value {
    match k {
        crate::Key::Int(i) => Value::from(*i),
        crate::Key::Str(s) => Value::from(s.as_str()),
    }
}

/// Whether `s` can be written as a keyword and read back as the same name: letters, digits
/// and `* ! _ ? < > = . + -`, not starting with a digit, sign or dot (which read as numbers
/// or are reserved).
fn is_plain_name(s: &str) -> bool {
    let mut chars = s.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    (first.is_ascii_alphabetic() || "*!_?<>=".contains(first))
        && chars.all(|c| c.is_ascii_alphanumeric() || "*!_?<>=.+-".contains(c))
}

/// A name as a keyword if it can be one, else as a string.
fn write_name(s: &str, out: &mut impl fmt::Write) -> fmt::Result {
    if is_plain_name(s) {
        write!(out, ":{s}")
    } else {
        write_string(s, out)
    }
}

/// A JSON value as EDN.
pub fn write_value(v: &Value, out: &mut impl fmt::Write) -> fmt::Result {
    match v {
        Value::Null => out.write_str("nil"),
        Value::Bool(b) => write!(out, "{b}"),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => write!(out, "{i}"),
            (None, Some(u), _) => write!(out, "{u}"),
            (None, None, Some(f)) => write_float(f, out),
            (None, None, None) => out.write_str(&n.to_string()),
        },
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.write_char('[')?;
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.write_char(' ')?;
                }
                write_value(item, out)?;
            }
            out.write_char(']')
        }
        Value::Object(map) => {
            out.write_char('{')?;
            for (i, (k, v)) in map.iter().enumerate() {
                if i > 0 {
                    out.write_str(", ")?;
                }
                write_name(k, out)?;
                out.write_char(' ')?;
                write_value(v, out)?;
            }
            out.write_char('}')
        }
    }
}

/// A float that reads back as the same `f64` and as a float (never as an integer).
pub fn write_float(f: f64, out: &mut impl fmt::Write) -> fmt::Result {
    if f.is_nan() {
        out.write_str("##NaN")
    } else if f.is_infinite() {
        out.write_str(if f > 0.0 { "##Inf" } else { "##-Inf" })
    } else {
        // `{:?}` is the shortest text that parses back to the same f64, and always has a
        // `.` or an exponent (`1.0`, `1e100`).
        write!(out, "{f:?}")
    }
}

/// A string with EDN escapes.
pub fn write_string(s: &str, out: &mut impl fmt::Write) -> fmt::Result {
    out.write_char('"')?;
    for c in s.chars() {
        match c {
            '"' => out.write_str("\\\"")?,
            '\\' => out.write_str("\\\\")?,
            '\n' => out.write_str("\\n")?,
            '\t' => out.write_str("\\t")?,
            '\r' => out.write_str("\\r")?,
            c if c.is_control() => write!(out, "\\u{:04x}", c as u32)?,
            c => out.write_char(c)?,
        }
    }
    out.write_char('"')
}
