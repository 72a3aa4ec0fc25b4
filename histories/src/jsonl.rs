//! Our own format: JSON Lines, one event per line; a reader and a streaming writer.

use crate::error::{pair, quote, ReadError};
use crate::fields::{event_from_raw, RawEvent};
use crate::{Event, History};
use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::Value;
use std::fmt;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

/// Parses JSON Lines into events, with the 1-based line of each. Blank lines are skipped
/// (a trailing newline, or an editor's empty last line, is not an error).
pub fn parse_events(text: &str, file: &str) -> Result<(Vec<Event>, Vec<usize>), ReadError> {
    let mut events = Vec::new();
    let mut lines = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        if raw.trim().is_empty() {
            continue;
        }
        let raw_event = match serde_json::from_str::<Fields>(raw) {
            Ok(Fields(r)) => r,
            Err(_) => return Err(not_an_object(raw, file, line)),
        };
        let event = event_from_raw(raw_event)
            .map_err(|e| ReadError::parse(file, line, e.expected, e.found))?;
        events.push(event);
        lines.push(line);
    }
    Ok((events, lines))
}

/// The error for a line that does not parse as a JSON object: malformed JSON (with
/// serde_json's description of where), or JSON that is not an object.
fn not_an_object(raw: &str, file: &str, line: usize) -> ReadError {
    let found = match serde_json::from_str::<Value>(raw) {
        Err(e) => format!("{} ({e})", quote(raw.trim())),
        Ok(_) => quote(raw.trim()),
    };
    ReadError::parse(file, line, "a JSON object", found)
}

/// One line's fields, picked out while parsing.
///
/// Parsing a line into a `serde_json::Map` first and then taking fields out of it costs an
/// allocation per key and a tree insert and remove per field; reading the known keys
/// straight into their slots makes reading a large history about twice as fast (see the
/// `read_speed` example). The rules are the same: `event_from_raw` applies them.
struct Fields(RawEvent);

/// A field name, compared without allocating for the named fields.
enum FieldName {
    Process,
    Type,
    F,
    Key,
    Value,
    Time,
    Index,
    Other(String),
}

impl<'de> Deserialize<'de> for FieldName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = FieldName;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<FieldName, E> {
                Ok(match s {
                    "process" => FieldName::Process,
                    "type" => FieldName::Type,
                    "f" => FieldName::F,
                    "key" => FieldName::Key,
                    "value" => FieldName::Value,
                    "time" => FieldName::Time,
                    "index" => FieldName::Index,
                    other => FieldName::Other(other.to_string()),
                })
            }
        }
        d.deserialize_str(V)
    }
}

impl<'de> Deserialize<'de> for Fields {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Fields;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields, A::Error> {
                let mut r = RawEvent::default();
                while let Some(name) = map.next_key::<FieldName>()? {
                    let v: Value = map.next_value()?;
                    match name {
                        FieldName::Process => r.process = Some(v),
                        FieldName::Type => r.kind = Some(v),
                        FieldName::F => r.f = Some(v),
                        FieldName::Key => r.key = Some(v),
                        FieldName::Value => r.value = Some(v),
                        FieldName::Time => r.time = Some(v),
                        FieldName::Index => r.index = Some(v),
                        FieldName::Other(k) => {
                            r.extra.insert(k, v);
                        }
                    }
                }
                Ok(Fields(r))
            }
        }
        d.deserialize_map(V)
    }
}

/// Reads a JSON Lines history and pairs its events into operations.
pub fn read_str(text: &str, file: &str) -> Result<History, ReadError> {
    let (events, lines) = parse_events(text, file)?;
    pair(events, &lines, file)
}

/// Writes events as JSON Lines, one line per event, flushed as soon as it is written.
///
/// Each `write` hands the whole line to the OS before returning, so if the test runner
/// crashes (or is killed) the file holds a prefix of complete lines, which reads as a valid
/// history in which the operations still open count as indeterminate. `sync` additionally
/// asks the OS to put the file on disk, for a machine crash.
#[derive(Debug)]
pub struct JsonlWriter<W: Write> {
    out: W,
    line: Vec<u8>,
    written: u64,
}

impl JsonlWriter<BufWriter<File>> {
    /// Creates (or truncates) the file at `path`.
    pub fn create(path: impl AsRef<Path>) -> io::Result<Self> {
        Ok(Self::from_writer(BufWriter::new(File::create(path)?)))
    }

    /// Flushes and asks the OS to write the file to disk (`fsync`).
    pub fn sync(&mut self) -> io::Result<()> {
        self.out.flush()?;
        self.out.get_ref().sync_all()
    }
}

impl<W: Write> JsonlWriter<W> {
    /// Writes to any `Write` (a `Vec<u8>` in tests, stdout, a socket).
    pub fn from_writer(out: W) -> Self {
        JsonlWriter {
            out,
            line: Vec::with_capacity(256),
            written: 0,
        }
    }

    /// Writes one event as one line and flushes it.
    pub fn write(&mut self, event: &Event) -> io::Result<()> {
        self.line.clear();
        serde_json::to_writer(&mut self.line, event)?;
        self.line.push(b'\n');
        self.out.write_all(&self.line)?;
        self.out.flush()?;
        self.written += 1;
        Ok(())
    }

    /// How many events have been written.
    pub fn events_written(&self) -> u64 {
        self.written
    }

    /// Flushes and returns the underlying writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

/// Writes a whole history's events as JSON Lines (one `write` per event).
pub fn write_jsonl<W: Write>(history: &History, out: W) -> io::Result<W> {
    let mut w = JsonlWriter::from_writer(out);
    for e in &history.events {
        w.write(e)?;
    }
    w.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{EventType, Key, PairingError, Status, F};
    use serde_json::json;

    fn sample() -> Vec<Event> {
        let mut info = Event::client(2, EventType::Info, F::Cas, Some(Key::Int(7)), json!([1, 2]));
        info.extra.insert("error".into(), json!("timeout"));
        vec![
            Event::client(
                1,
                EventType::Invoke,
                F::Read,
                Some(Key::Str("k".into())),
                Value::Null,
            )
            .at(10),
            Event::client(
                2,
                EventType::Invoke,
                F::Cas,
                Some(Key::Int(7)),
                json!([1, 2]),
            )
            .at(11),
            Event::nemesis("start-partition", json!({"halves": [[1], [2, 3]]})).at(12),
            Event::client(
                1,
                EventType::Ok,
                F::Read,
                Some(Key::Str("k".into())),
                Value::Null,
            )
            .at(13),
            Event::client(3, EventType::Invoke, F::Append, None, json!("x 3 0 y")),
            info,
            Event::client(3, EventType::Fail, F::Append, None, json!("x 3 0 y")),
        ]
    }

    #[test]
    fn writer_then_reader_gives_back_the_same_events() {
        let mut w = JsonlWriter::from_writer(Vec::new());
        for e in sample() {
            w.write(&e).unwrap();
        }
        assert_eq!(w.events_written(), 7);
        let bytes = w.finish().unwrap();
        let text = String::from_utf8(bytes).unwrap();
        assert_eq!(text.lines().count(), 7);
        let h = read_str(&text, "mem").unwrap();
        assert_eq!(h.events, sample());
        let st: Vec<Status> = h.operations.iter().map(|o| o.status).collect();
        assert_eq!(st, [Status::Ok, Status::Info, Status::Fail]);
    }

    #[test]
    fn a_crash_mid_run_leaves_a_readable_prefix() {
        let dir = std::env::temp_dir().join(format!("histories-jsonl-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("prefix.jsonl");
        let mut w = JsonlWriter::create(&path).unwrap();
        for e in &sample()[..2] {
            w.write(e).unwrap();
        }
        // Read while the writer is still open, as after a crash: every written line is there.
        let h = crate::read_path(&path, crate::Format::Auto).unwrap();
        assert_eq!(h.events, sample()[..2]);
        assert!(h.operations.iter().all(|o| o.status == Status::Info));
        w.sync().unwrap();
        drop(w);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn blank_lines_are_skipped_and_lines_counted() {
        let text = "\n{\"process\":1,\"type\":\"invoke\",\"f\":\"read\"}\n\n{\"process\":1,\"type\":\"ok\",\"f\":\"read\",\"value\":5}\n";
        let (events, lines) = parse_events(text, "t").unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!(lines, [2, 4]);
    }

    fn err(text: &str) -> String {
        read_str(text, "h.jsonl").unwrap_err().to_string()
    }

    #[test]
    fn malformed_lines_name_file_line_expected_and_found() {
        let ok = "{\"process\":1,\"type\":\"invoke\",\"f\":\"read\"}\n";
        let e = err(&format!("{ok}{{\"process\":1,\"type\":\n"));
        assert!(e.starts_with("h.jsonl:2: expected a JSON object, found \"{\\\"process\\\":1,\\\"type\\\":\" (EOF while parsing"), "{e}");
        assert_eq!(
            err("[1,2]"),
            "h.jsonl:1: expected a JSON object, found \"[1,2]\""
        );
        assert_eq!(
            err("{\"type\":\"invoke\",\"f\":\"read\"}"),
            "h.jsonl:1: expected a \"process\" field, found none"
        );
        assert_eq!(
            err("{\"process\":\"bob\",\"type\":\"invoke\",\"f\":\"read\"}"),
            "h.jsonl:1: expected \"process\" to be a non-negative integer or \"nemesis\", found \"bob\""
        );
        assert_eq!(
            err("{\"process\":1,\"type\":\"started\",\"f\":\"read\"}"),
            "h.jsonl:1: expected \"type\" to be one of \"invoke\", \"ok\", \"fail\", \"info\", found \"started\""
        );
        assert_eq!(
            err(&format!("{ok}{ok}\n{{\"process\":2,\"type\":\"invoke\",\"f\":\"cas\",\"value\":[1]}}")),
            "h.jsonl:4: expected a cas \"value\" to be a 2-element array [expected, new], found [1]"
        );
    }

    #[test]
    fn completion_with_no_open_invocation() {
        let text = "{\"process\":1,\"type\":\"invoke\",\"f\":\"read\"}\n{\"process\":2,\"type\":\"ok\",\"f\":\"read\",\"value\":1}\n";
        let e = read_str(text, "h.jsonl").unwrap_err();
        assert!(matches!(
            e,
            ReadError::Pairing {
                line: 2,
                source: PairingError::CompletionWithoutInvoke { process: 2, .. },
                ..
            }
        ));
        assert_eq!(
            e.to_string(),
            "h.jsonl:2: ok completion by process 2 with no open invocation"
        );
    }

    #[test]
    fn second_invoke_on_a_busy_process() {
        let text = "{\"process\":1,\"type\":\"invoke\",\"f\":\"read\"}\n\n{\"process\":1,\"type\":\"invoke\",\"f\":\"write\",\"value\":3}\n";
        let e = read_str(text, "h.jsonl").unwrap_err();
        assert!(
            matches!(
                e,
                ReadError::Pairing {
                    line: 3,
                    source: PairingError::BusyProcess {
                        process: 1,
                        open: 0,
                        ..
                    },
                    ..
                }
            ),
            "{e}"
        );
    }

    #[test]
    fn process_reused_after_info() {
        let text = "{\"process\":1,\"type\":\"invoke\",\"f\":\"write\",\"value\":3}\n\
                    {\"process\":1,\"type\":\"info\",\"f\":\"write\",\"value\":3}\n\
                    {\"process\":\"nemesis\",\"type\":\"info\",\"f\":\"kill\"}\n\
                    {\"process\":1,\"type\":\"invoke\",\"f\":\"read\"}\n";
        let e = read_str(text, "h.jsonl").unwrap_err();
        assert!(
            matches!(
                e,
                ReadError::Pairing {
                    line: 4,
                    source: PairingError::ReusedAfterInfo {
                        process: 1,
                        crashed: 1,
                        ..
                    },
                    ..
                }
            ),
            "{e}"
        );
    }

    #[test]
    fn malformed_value() {
        let text = "{\"process\":1,\"type\":\"invoke\",\"f\":\"append\",\"value\":[1]}";
        assert_eq!(
            err(text),
            "h.jsonl:1: expected an append \"value\" to be the string appended, found [1]"
        );
    }
}
