//! Jepsen / Knossos EDN histories: reader, independent-key detection, and exporter.
//!
//! A history is either one vector or list of op maps (Knossos' `data/`), or op maps one
//! after the other (Jepsen's `history.edn`, Porcupine's kv logs); an op printed as a Clojure
//! record (`#jepsen.history.Op{…}`) is its map. Each op map's entries become event fields
//! (keywords become their names: `:type :invoke` is `"type": "invoke"`, `:process :nemesis`
//! is `"process": "nemesis"`) and then go through the same rules as a JSON Lines event, so
//! both formats accept exactly the same events.
//!
//! Values: nil → `null`, integers and floats → numbers, strings → strings, keywords and
//! symbols → their names as strings (`:timed-out` → `"timed-out"`), vectors, lists and sets
//! → arrays, maps → objects (the multi-register's `{:x 1}` → `{"x": 1}`), tagged literals →
//! their EDN text as a string (`#inst "2020"` → `"#inst \"2020\""`), big numbers → their
//! text. So keyword and string values become indistinguishable; no checker needs the
//! difference.

pub mod parse;
mod write;

pub use write::write_edn;

use crate::error::{pair, ReadError};
use crate::fields::{event_from_raw, key_from_value, RawEvent};
use crate::{Event, History};
use parse::{for_each_op, print, Edn, Node, OpError};
use serde_json::{Map, Number, Value};

/// Whether op values are `jepsen.independent` `[key value]` tuples.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Independent {
    /// Decide from the history: tuples when every client invocation of read, write, cas or
    /// append has a `[key value]` value (for cas `[key [expected new]]`) and no op has a
    /// `:key` field (README.md, "Formats read").
    #[default]
    Auto,
    /// Every client invocation's value is a `[key value]` tuple; anything else is an error.
    Always,
    /// Values are taken as they are (a register that holds 2-element vectors).
    Never,
}

/// Options for reading EDN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EdnOptions {
    /// How to treat `[key value]` tuples.
    pub independent: Independent,
}

/// Reads an EDN history with the default options (independent tuples auto-detected).
pub fn read_str(text: &str, file: &str) -> Result<History, ReadError> {
    read_str_with(text, file, EdnOptions::default())
}

/// Reads an EDN history.
pub fn read_str_with(text: &str, file: &str, options: EdnOptions) -> Result<History, ReadError> {
    let mut ops = parse_ops(text, file)?;
    let unwrap = match options.independent {
        Independent::Auto => is_independent(&ops),
        Independent::Always => true,
        Independent::Never => false,
    };
    if unwrap {
        unwrap_tuples(&mut ops, file, options.independent == Independent::Always)?;
    }
    let (events, lines) = events_from_ops(ops, file)?;
    pair(events, &lines, file)
}

/// One op map's fields, and the line it starts on.
pub(crate) type Op = (RawEvent, usize);

/// Parses the text into op maps (see [`parse::for_each_op`]).
pub(crate) fn parse_ops(text: &str, file: &str) -> Result<Vec<Op>, ReadError> {
    let mut ops = Vec::new();
    let result = for_each_op(text, |node: Node| match unwrap_record(node.value) {
        Edn::Map(pairs) => {
            let mut raw = RawEvent::default();
            for (k, v) in pairs {
                raw.set(&key_name(k.value), to_json(v.value));
            }
            ops.push((raw, node.line));
            Ok(())
        }
        other => Err(ReadError::parse(
            file,
            node.line,
            "an op map {:process …, :type …, :f …, :value …} (or one vector of them)",
            crate::error::quote(&print(&other)),
        )),
    });
    match result {
        Ok(()) => Ok(ops),
        Err(OpError::Syntax(e)) => Err(ReadError::parse(file, e.line, e.expected, e.found)),
        Err(OpError::Op(e)) => Err(e),
    }
}

/// An op printed as a Clojure record (`#jepsen.history.Op{:index 0, :type :invoke, …}`) is
/// its map: the tag names a Clojure class, nothing a checker needs.
fn unwrap_record(v: Edn) -> Edn {
    match v {
        Edn::Tagged(_, form) if matches!(form.value, Edn::Map(_)) => form.value,
        other => other,
    }
}

/// Validates each op and collects events with their lines.
pub(crate) fn events_from_ops(
    ops: Vec<Op>,
    file: &str,
) -> Result<(Vec<Event>, Vec<usize>), ReadError> {
    let mut events = Vec::with_capacity(ops.len());
    let mut lines = Vec::with_capacity(ops.len());
    for (raw, line) in ops {
        let e =
            event_from_raw(raw).map_err(|e| ReadError::parse(file, line, e.expected, e.found))?;
        events.push(e);
        lines.push(line);
    }
    Ok((events, lines))
}

fn map_to_object(pairs: Vec<(Node, Node)>) -> Map<String, Value> {
    pairs
        .into_iter()
        .map(|(k, v)| (key_name(k.value), to_json(v.value)))
        .collect()
}

fn key_name(k: Edn) -> String {
    match k {
        Edn::Keyword(s) | Edn::Str(s) | Edn::Symbol(s) => s,
        other => print(&other),
    }
}

/// An EDN value as JSON (see the module docs for the mapping).
pub fn to_json(v: Edn) -> Value {
    match v {
        Edn::Nil => Value::Null,
        Edn::Bool(b) => Value::Bool(b),
        Edn::Int(i) => Value::from(i),
        Edn::BigNum(s) => match s.trim_end_matches('N').parse::<u64>() {
            Ok(u) => Value::from(u),
            Err(_) => Value::String(s),
        },
        Edn::Float(f) => {
            Number::from_f64(f).map_or_else(|| Value::String(print(&Edn::Float(f))), Value::Number)
        }
        Edn::Str(s) | Edn::Keyword(s) | Edn::Symbol(s) => Value::String(s),
        Edn::Char(c) => Value::String(c.to_string()),
        Edn::List(items) | Edn::Vector(items) | Edn::Set(items) => {
            Value::Array(items.into_iter().map(|n| to_json(n.value)).collect())
        }
        Edn::Map(pairs) => Value::Object(map_to_object(pairs)),
        Edn::Tagged(tag, form) => match tuple_record(&tag, form.value) {
            Ok(pair) => pair,
            Err(form) => Value::String(print(&Edn::Tagged(
                tag,
                Box::new(Node {
                    value: form,
                    line: 0,
                }),
            ))),
        },
    }
}

/// Jepsen prints an independent tuple as a Clojure record,
/// `#jepsen.independent.Tuple{:key 1, :value 2}`: that becomes the `[1, 2]` Knossos writes.
fn tuple_record(tag: &str, form: Edn) -> Result<Value, Edn> {
    if !tag.ends_with("independent.Tuple") {
        return Err(form);
    }
    let Edn::Map(pairs) = form else {
        return Err(form);
    };
    let find = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k.value == Edn::Keyword(name.to_string()))
            .map(|(_, v)| to_json(v.value.clone()))
    };
    match (find("key"), find("value")) {
        (Some(k), Some(v)) => Ok(Value::Array(vec![k, v])),
        _ => Err(Edn::Map(pairs)),
    }
}

fn is_tuple(v: &Value) -> bool {
    matches!(v, Value::Array(a) if a.len() == 2 && key_from_value(&a[0]).is_ok())
}

/// The auto-detection rule for `jepsen.independent` histories: values are `[key value]`
/// tuples when no op has a `:key` field, and every client invocation of read, write, cas or
/// append (there must be at least one) has a 2-element vector value whose first element is
/// a string or integer, and for cas whose second element is itself a 2-element vector
/// (`[k [expected new]]`).
///
/// The cas rule is what tells a plain cas register (`[1 4]`) from an independent one
/// (`[k [1 4]]`); the read and write rules tell a plain register (reads `nil` or a number,
/// writes a number) from an independent one (`[k nil]`, `[k 3]`). A plain register whose
/// values are themselves pairs would be misread: use [`Independent::Never`].
pub(crate) fn is_independent(ops: &[Op]) -> bool {
    if ops.iter().any(|(o, _)| o.key.is_some()) {
        return false;
    }
    let mut invokes = ops
        .iter()
        .map(|(o, _)| o)
        .filter(|o| o.is_client() && o.is_invoke())
        .filter_map(|o| {
            let f = o.f.as_ref()?.as_str()?;
            matches!(f, "read" | "write" | "cas" | "append")
                .then(|| (f, o.value.as_ref().unwrap_or(&Value::Null)))
        })
        .peekable();
    invokes.peek().is_some()
        && invokes.all(|(f, v)| {
            is_tuple(v) && (f != "cas" || matches!(&v[1], Value::Array(a) if a.len() == 2))
        })
}

/// Moves the key of each client op's `[key value]` tuple into `key`. Completions whose value
/// is not a tuple (a crashed op's `:info` without a value) are left without a key, which
/// pairing accepts; with `strict`, an invocation without a tuple is an error.
fn unwrap_tuples(ops: &mut [Op], file: &str, strict: bool) -> Result<(), ReadError> {
    for (obj, line) in ops.iter_mut() {
        if !obj.is_client() || obj.key.is_some() {
            continue;
        }
        let invoke = obj.is_invoke();
        match &mut obj.value {
            Some(Value::Array(a)) if a.len() == 2 && key_from_value(&a[0]).is_ok() => {
                let v = a.pop().unwrap_or(Value::Null);
                let k = a.pop().unwrap_or(Value::Null);
                obj.key = Some(k);
                obj.value = Some(v);
            }
            other if strict && invoke => {
                let found = crate::fields::show_opt(other.as_ref());
                return Err(ReadError::parse(
                    file,
                    *line,
                    "an independent [key value] tuple as the value",
                    found,
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
