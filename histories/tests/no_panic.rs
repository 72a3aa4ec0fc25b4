//! Bad input is an error, never a panic: every reader on arbitrary bytes and on arbitrary
//! lines made of history-like fragments, and round trips of arbitrary events.

use histories::{read_bytes, read_str, write_edn, Event, EventType, Format, History, Key, F};
use proptest::prelude::*;
use serde_json::{json, Map, Value};

const FORMATS: [Format; 5] = [
    Format::Auto,
    Format::Jsonl,
    Format::Edn,
    Format::PorcupineKv,
    Format::JepsenLog,
];

/// Pieces of real lines of every format, so that random lines get past the first checks
/// and reach the deeper ones (values, pairing) instead of failing on the first byte.
const FRAGMENTS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    "(",
    ")",
    "#{",
    "#_",
    "#inst ",
    "##NaN",
    ",",
    " ",
    "\t",
    "\n",
    ";c\n",
    "\"",
    "\\",
    "\\u00e9",
    "\"process\":",
    "\"type\":",
    "\"f\":",
    "\"value\":",
    "\"key\":",
    "\"time\":",
    "\"invoke\"",
    "\"ok\"",
    "\"info\"",
    "\"fail\"",
    "\"read\"",
    "\"cas\"",
    "\"append\"",
    "\"nemesis\"",
    ":process ",
    ":type ",
    ":f ",
    ":value ",
    ":key ",
    ":invoke ",
    ":ok ",
    ":info ",
    ":fail ",
    ":read ",
    ":write ",
    ":cas ",
    ":get ",
    ":put ",
    ":append ",
    ":nemesis ",
    ":timed-out",
    "nil",
    "null",
    "true",
    "0",
    "1",
    "-1",
    "2",
    "1.5",
    "1e999",
    "99999999999999999999",
    "123N",
    "[1 2]",
    "[1, 2]",
    "INFO  jepsen.util - ",
    "é",
    "\u{0}",
];

fn lines() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(FRAGMENTS), 0..60).prop_map(|v| v.concat())
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-1e300f64..1e300).prop_map(|f| json!(f)),
        ".{0,8}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z -]{0,6}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// A history of sequential processes: each op is an invoke then (maybe) a completion,
/// interleaved by taking ops in order; values fit each `f`.
fn history() -> impl Strategy<Value = Vec<Event>> {
    let op = (
        0u8..4,
        0u8..4,
        prop::option::of(prop_oneof![
            any::<i64>().prop_map(Key::Int),
            "[a-z0-9]{0,4}".prop_map(Key::Str)
        ]),
        json_value(),
        json_value(),
        prop::option::of(any::<u64>()),
        // Extra fields are the unknown ones: never a named field.
        prop::option::of(("x[a-z]{0,4}", json_value())),
    );
    prop::collection::vec(op, 0..12).prop_map(|ops| {
        let mut events = Vec::new();
        for (p, (f, end, key, v, out, time, extra)) in ops.into_iter().enumerate() {
            let (f, input) = match f {
                0 => (F::Read, Value::Null),
                1 => (F::Write, v),
                2 => (F::Cas, json!([v, out.clone()])),
                _ => (F::Append, Value::from(v.to_string())),
            };
            let mut inv = Event::client(p as u64, EventType::Invoke, f.clone(), key.clone(), input);
            inv.time = time;
            if let Some((k, x)) = extra {
                inv.extra.insert(k, x);
            }
            events.push(inv);
            let kind = [EventType::Ok, EventType::Fail, EventType::Info][end as usize % 3];
            if end < 3 {
                events.push(Event::client(p as u64, kind, f, key, out));
            }
            if p % 3 == 0 {
                events.push(Event::nemesis("start-partition", json!("halves")));
            }
        }
        events
    })
}

proptest! {
    // 512 cases each by default (about a second); PROPTEST_CASES=N for a longer run.
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(512)
    ))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        for format in FORMATS {
            if let Err(e) = read_bytes(&bytes, format, "fuzz") {
                prop_assert!(e.to_string().starts_with("fuzz:"), "{e}");
            }
        }
    }

    #[test]
    fn arbitrary_text_never_panics(text in "(?s).{0,300}") {
        for format in FORMATS {
            if let Err(e) = read_str(&text, format, "fuzz") {
                prop_assert!(e.to_string().starts_with("fuzz:"), "{e}");
            }
        }
    }

    #[test]
    fn arbitrary_lines_never_panic(text in lines()) {
        for format in FORMATS {
            if let Err(e) = read_str(&text, format, "fuzz") {
                prop_assert!(e.line().is_some(), "{e}");
                prop_assert!(e.to_string().starts_with("fuzz:"), "{e}");
            }
        }
    }

    #[test]
    fn events_round_trip_through_jsonl_and_edn(events in history()) {
        let h = History::from_events(events).unwrap();
        let jsonl = histories::jsonl::write_jsonl(&h, Vec::new()).unwrap();
        let back = read_bytes(&jsonl, Format::Jsonl, "rt").unwrap();
        prop_assert_eq!(&back.events, &h.events);
        let edn = String::from_utf8(write_edn(&h, Vec::new()).unwrap()).unwrap();
        let again = read_str(&edn, Format::Edn, "rt").unwrap();
        prop_assert_eq!(&again.events, &h.events, "{}", edn);
    }
}
