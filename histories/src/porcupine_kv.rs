//! Importer for Porcupine's kv test logs (`kv/c01-ok.txt` …).
//!
//! Each line is an EDN map, `{:process 0, :type :invoke, :f :get, :key "1", :value nil}`,
//! so this is the EDN reader with Porcupine's names mapped to ours: `:get` → `read`,
//! `:put` → `write`, `:append` → `append`. Keys and values are strings and are kept as
//! written. Note Porcupine's kv model starts every key at `""` (a read of a key never
//! written returns `""`), where ours starts at absent (`null`): check these histories with
//! an initial value of `""`.

use crate::edn::{events_from_ops, parse_ops};
use crate::error::{pair, ReadError};
use crate::History;
use serde_json::Value;

/// Reads a Porcupine kv log and pairs its events into operations.
pub fn read_str(text: &str, file: &str) -> Result<History, ReadError> {
    let mut ops = parse_ops(text, file)?;
    for (obj, line) in ops.iter_mut() {
        let ours = match &obj.f {
            Some(Value::String(f)) => match f.as_str() {
                "get" => "read",
                "put" => "write",
                "append" => "append",
                other => {
                    return Err(ReadError::parse(
                        file,
                        *line,
                        ":f to be :get, :put or :append",
                        format!(":{other}"),
                    ))
                }
            },
            other => {
                let found = crate::fields::show_opt(other.as_ref());
                return Err(ReadError::parse(
                    file,
                    *line,
                    ":f to be :get, :put or :append",
                    found,
                ));
            }
        };
        obj.f = Some(Value::from(ours));
        if !matches!(obj.key, Some(Value::String(_))) {
            let found = crate::fields::show_opt(obj.key.as_ref());
            return Err(ReadError::parse(file, *line, "a string :key", found));
        }
    }
    let (events, lines) = events_from_ops(ops, file)?;
    pair(events, &lines, file)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Key, Status, F};
    use serde_json::json;

    #[test]
    fn maps_get_put_append_to_read_write_append() {
        let text = "{:process 9, :type :invoke, :f :append, :key \"0\", :value \"x 9 0 y\"}\n\
                    {:process 1, :type :invoke, :f :get, :key \"9\", :value nil}\n\
                    {:process 9, :type :ok, :f :append, :key \"0\", :value \"x 9 0 y\"}\n\
                    {:process 1, :type :ok, :f :get, :key \"9\", :value \"\"}\n\
                    {:process 0, :type :invoke, :f :put, :key \"1\", :value \"x 0 2 y\"}\n";
        let h = read_str(text, "kv.txt").unwrap();
        let fs: Vec<&F> = h.operations.iter().map(|o| &o.f).collect();
        assert_eq!(fs, [&F::Append, &F::Read, &F::Write]);
        assert_eq!(h.operations[1].key, Some(Key::Str("9".into())));
        assert_eq!(h.operations[1].output, Some(json!("")));
        assert_eq!(h.operations[2].status, Status::Info);
    }

    #[test]
    fn other_functions_and_missing_keys_are_errors() {
        let e = read_str(
            "{:process 1, :type :invoke, :f :cas, :key \"1\", :value nil}",
            "kv.txt",
        );
        assert_eq!(
            e.unwrap_err().to_string(),
            "kv.txt:1: expected :f to be :get, :put or :append, found :cas"
        );
        let e = read_str(
            "\n{:process 1, :type :invoke, :f :get, :value nil}",
            "kv.txt",
        );
        assert_eq!(
            e.unwrap_err().to_string(),
            "kv.txt:2: expected a string :key, found none"
        );
    }
}
