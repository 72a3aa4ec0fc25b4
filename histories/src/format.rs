//! The entry point other crates call: choose (or detect) a format, read a file into a
//! [`History`].

use crate::error::{quote, ReadError};
use crate::{edn, jepsen_log, jsonl, porcupine_kv, History};
use std::fmt;
use std::path::Path;
use std::str::FromStr;

/// A history file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Format {
    /// Detect from the first non-empty line (see [`detect`]).
    #[default]
    Auto,
    /// Our JSON Lines format (README.md).
    Jsonl,
    /// Jepsen / Knossos `history.edn`: a vector or list of op maps, or op maps one after
    /// the other.
    Edn,
    /// Porcupine's kv test logs (`{:process 0, :type :invoke, :f :get, :key "1", ...}`).
    PorcupineKv,
    /// The Jepsen etcd logs in Porcupine's test data (`INFO  jepsen.util - 3 :invoke ...`).
    JepsenLog,
}

impl Format {
    /// Every format's name, as accepted by `FromStr` and printed by `Display`.
    pub const NAMES: [&'static str; 5] = ["auto", "jsonl", "edn", "porcupine-kv", "jepsen-log"];

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Format::Auto => "auto",
            Format::Jsonl => "jsonl",
            Format::Edn => "edn",
            Format::PorcupineKv => "porcupine-kv",
            Format::JepsenLog => "jepsen-log",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An unknown format name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown history format {0:?}: expected one of auto, jsonl, edn, porcupine-kv, jepsen-log")]
pub struct UnknownFormatName(pub String);

impl FromStr for Format {
    type Err = UnknownFormatName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(Format::Auto),
            "jsonl" => Ok(Format::Jsonl),
            "edn" => Ok(Format::Edn),
            "porcupine-kv" => Ok(Format::PorcupineKv),
            "jepsen-log" => Ok(Format::JepsenLog),
            other => Err(UnknownFormatName(other.to_string())),
        }
    }
}

/// Detects the format from the first non-empty line; `Ok(None)` if there is none (an empty
/// file, which every format reads as the empty history).
///
/// Content, not the file name, decides: the corpus' `.log`, `.txt` and `.edn` names say
/// little, and users rename files. The rules, in order:
/// - `{"` (after optional spaces): JSON Lines;
/// - `INFO` followed by `jepsen.util`: a Jepsen etcd log;
/// - `{:process` with a `:key "` on the same line and `:f :get`, `:f :put` or `:f :append`:
///   a Porcupine kv log (EDN maps one per line, with Porcupine's names);
/// - `[`, `(`, `{`, `;` or `#`: EDN.
pub fn detect(text: &str, file: &str) -> Result<Option<Format>, ReadError> {
    let Some((i, line)) = text.lines().enumerate().find(|(_, l)| !l.trim().is_empty()) else {
        return Ok(None);
    };
    let t = line.trim_start();
    let after_brace = t.strip_prefix('{').map(str::trim_start);
    if after_brace.is_some_and(|r| r.starts_with('"') || r.starts_with('}')) {
        return Ok(Some(Format::Jsonl));
    }
    if t.starts_with("INFO") && t.contains("jepsen.util") {
        return Ok(Some(Format::JepsenLog));
    }
    let kv_f = [":f :get", ":f :put", ":f :append"];
    if t.starts_with("{:process") && t.contains(":key \"") && kv_f.iter().any(|f| t.contains(f)) {
        return Ok(Some(Format::PorcupineKv));
    }
    if t.starts_with(['[', '(', '{', ';', '#']) {
        return Ok(Some(Format::Edn));
    }
    Err(ReadError::UnknownFormat {
        file: file.to_string(),
        line: i + 1,
        found: quote(t),
    })
}

/// Reads a history from text. `source_name` is used in error messages (`file:line: ...`).
pub fn read_str(text: &str, format: Format, source_name: &str) -> Result<History, ReadError> {
    // A byte-order mark (some Windows editors write one) is not part of the first line.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let format = match format {
        Format::Auto => match detect(text, source_name)? {
            Some(f) => f,
            None => return Ok(History::default()),
        },
        f => f,
    };
    match format {
        Format::Auto | Format::Jsonl => jsonl::read_str(text, source_name),
        Format::Edn => edn::read_str(text, source_name),
        Format::PorcupineKv => porcupine_kv::read_str(text, source_name),
        Format::JepsenLog => jepsen_log::read_str(text, source_name),
    }
}

/// Reads a history from bytes, which must be UTF-8 (the error names the line of the first
/// byte that is not).
pub fn read_bytes(bytes: &[u8], format: Format, source_name: &str) -> Result<History, ReadError> {
    match std::str::from_utf8(bytes) {
        Ok(text) => read_str(text, format, source_name),
        Err(e) => {
            let at = e.valid_up_to();
            let line = 1 + bytes[..at].iter().filter(|&&b| b == b'\n').count();
            Err(ReadError::parse(
                source_name,
                line,
                "UTF-8 text",
                format!("the byte 0x{:02x}", bytes[at]),
            ))
        }
    }
}

/// Reads the history file at `path` (the path, as given, names it in errors).
pub fn read_path(path: &Path, format: Format) -> Result<History, ReadError> {
    let bytes = std::fs::read(path).map_err(|source| ReadError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    read_bytes(&bytes, format, &path.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_names_round_trip() {
        for name in Format::NAMES {
            let f: Format = name.parse().unwrap();
            assert_eq!(f.to_string(), name);
        }
        assert_eq!(
            "xml".parse::<Format>(),
            Err(UnknownFormatName("xml".into()))
        );
    }

    #[test]
    fn detects_each_format_by_its_first_non_empty_line() {
        let cases = [
            (
                "\n{\"process\":1,\"type\":\"invoke\",\"f\":\"read\"}\n",
                Format::Jsonl,
            ),
            (
                "INFO  jepsen.util - 3\t:invoke\t:read\tnil\n",
                Format::JepsenLog,
            ),
            (
                "{:process 9, :type :invoke, :f :append, :key \"0\", :value \"x\"}\n",
                Format::PorcupineKv,
            ),
            (
                "; a comment\n[{:process 1 :type :invoke :f :read :value nil}]",
                Format::Edn,
            ),
            ("[{:process 1, :type :invoke, :f :read}]", Format::Edn),
            (
                "{:process 1, :type :invoke, :f :read, :value nil}",
                Format::Edn,
            ),
            (
                "({:type :invoke, :f :cas, :value [1 4], :process 101})",
                Format::Edn,
            ),
        ];
        for (text, want) in cases {
            assert_eq!(detect(text, "t").unwrap(), Some(want), "{text}");
        }
        assert_eq!(detect(" \n\n", "t").unwrap(), None);
    }

    #[test]
    fn unknown_content_is_an_error_with_the_line() {
        let e = detect("\n\nhello world\n", "x.txt").unwrap_err();
        assert!(matches!(e, ReadError::UnknownFormat { line: 3, .. }), "{e}");
        assert!(e.to_string().starts_with("x.txt:3: cannot tell"), "{e}");
    }

    #[test]
    fn a_byte_order_mark_is_skipped() {
        let text = "\u{feff}{\"process\":1,\"type\":\"invoke\",\"f\":\"read\"}\n";
        assert_eq!(
            read_str(text, Format::Auto, "bom")
                .unwrap()
                .operations
                .len(),
            1
        );
    }

    #[test]
    fn non_utf8_bytes_name_their_line() {
        let e = read_bytes(b"{\"process\":1}\n\xff\n", Format::Jsonl, "b").unwrap_err();
        assert_eq!(
            e.to_string(),
            "b:2: expected UTF-8 text, found the byte 0xff"
        );
    }
}
