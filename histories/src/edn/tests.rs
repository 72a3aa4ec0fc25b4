//! Tests of the EDN reader, the importer and the exporter.

use super::parse::{parse_all, Edn};
use super::*;
use crate::{EventType, Key, PairingError, Process, Status, F};
use serde_json::json;

fn one(text: &str) -> Edn {
    let mut forms = parse_all(text).unwrap();
    assert_eq!(forms.len(), 1, "{text}");
    forms.remove(0).value
}

#[test]
fn reads_scalars() {
    assert_eq!(one("nil"), Edn::Nil);
    assert_eq!(one("true"), Edn::Bool(true));
    assert_eq!(one("-42"), Edn::Int(-42));
    assert_eq!(one("+7"), Edn::Int(7));
    assert_eq!(one("123N"), Edn::BigNum("123N".into()));
    assert_eq!(
        one("99999999999999999999"),
        Edn::BigNum("99999999999999999999".into())
    );
    assert_eq!(one("1/2"), Edn::BigNum("1/2".into()));
    assert_eq!(one("1.5e3"), Edn::Float(1500.0));
    assert_eq!(one("2.5M"), Edn::BigNum("2.5M".into()));
    assert_eq!(one(":timed-out"), Edn::Keyword("timed-out".into()));
    assert_eq!(one(":jepsen/op"), Edn::Keyword("jepsen/op".into()));
    assert_eq!(one("foo.bar/baz"), Edn::Symbol("foo.bar/baz".into()));
    assert_eq!(one("-"), Edn::Symbol("-".into()));
    assert_eq!(one(r#""a\"b\\c\n\u00e9""#), Edn::Str("a\"b\\c\né".into()));
    assert_eq!(one(r"\a"), Edn::Char('a'));
    assert_eq!(one(r"\newline"), Edn::Char('\n'));
    assert_eq!(one(r"\u00e9"), Edn::Char('é'));
    assert!(matches!(one("##NaN"), Edn::Float(f) if f.is_nan()));
}

#[test]
fn reads_collections_comments_discards_and_tags() {
    let text = "; header\n[1, 2 #_ 3 #_#_ 4 5 6] ; trailing\n";
    let Edn::Vector(items) = one(text) else {
        unreachable!()
    };
    let ints: Vec<Edn> = items.into_iter().map(|n| n.value).collect();
    assert_eq!(ints, [Edn::Int(1), Edn::Int(2), Edn::Int(6)]);
    let Edn::Set(s) = one("#{:a :b}") else {
        unreachable!()
    };
    assert_eq!(s.len(), 2);
    let Edn::Tagged(tag, form) = one("#inst \"2020-01-01\"") else {
        unreachable!()
    };
    assert_eq!(
        (tag.as_str(), &form.value),
        ("inst", &Edn::Str("2020-01-01".into()))
    );
    assert!(matches!(one("(1 (2 [3 {:a #{}}]))"), Edn::List(_)));
    assert_eq!(parse_all("").unwrap(), []);
}

#[test]
fn forms_carry_their_line() {
    let forms = parse_all("\n[{:a 1}\n \"two\nlines\"\n {:b 2}]").unwrap();
    let Edn::Vector(items) = &forms[0].value else {
        unreachable!()
    };
    let lines: Vec<usize> = items.iter().map(|n| n.line).collect();
    assert_eq!(lines, [2, 3, 5]);
}

#[test]
fn syntax_errors_say_where_what_and_found() {
    let cases = [
        (
            "[1 2",
            1,
            "`]` closing the one opened on line 1",
            "the end of the input",
        ),
        (
            "\n\n{:a 1 :b}",
            3,
            "a value for every key of the map",
            "the key :b without one",
        ),
        (
            "\"abc",
            1,
            "`\"` closing the string opened on line 1",
            "the end of the input",
        ),
        (
            "\"a\\qb\"",
            1,
            "a string escape (\\n \\t \\r \\b \\f \\\" \\\\ \\uXXXX)",
            "\"qb\\\"\"",
        ),
        ("[1 ]]", 1, "a form", "\"]\""),
        ("1.2.3", 1, "a number", "\"1.2.3\""),
        (
            "#_",
            1,
            "a form to discard after #_",
            "the end of the input",
        ),
        (
            "\\abc",
            1,
            "a character such as \\a, \\newline or \\u00e9",
            "\"\\\\abc\"",
        ),
        (":", 1, "a keyword name after `:`", "\":\""),
    ];
    for (text, line, expected, found) in cases {
        let e = parse_all(text).unwrap_err();
        assert_eq!(
            (e.line, e.expected.as_str(), e.found.as_str()),
            (line, expected, found),
            "{text}"
        );
    }
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    for text in [
        "[".repeat(100_000),
        "#_".repeat(100_000),
        "#t ".repeat(100_000),
    ] {
        let e = parse_all(&text).unwrap_err();
        assert!(e.expected.contains("200"), "{e:?}");
    }
}

#[test]
fn knossos_quirks_load() {
    let text = "; comment\n[{:process 22  :type :invoke, :f :read, :value 3}\n\
        {:process :nemesis, :type :info, :f :start, :value \"fully connected\"}\n\
        {:type :invoke, :f :acquire, :process 3, :time 371408519, :index 2}\n\
        {:process 22, :type :ok, :f :read, :value 3}\n\
        {:type :fail, :f :acquire, :process 3, :time 371408600, :error :not-held, :index 4}]";
    let h = read_str(text, "k.edn").unwrap();
    assert_eq!(h.events[0].value, json!(3));
    assert_eq!(h.events[1].process, Process::Nemesis);
    assert_eq!(h.events[1].f, F::Other("start".into()));
    assert_eq!(h.events[2].f, F::Other("acquire".into()));
    assert_eq!(h.events[2].index, Some(2));
    assert_eq!(h.events[4].extra["error"], "not-held");
    assert_eq!(h.operations.len(), 2);
    assert_eq!(h.operations[1].status, Status::Fail);
}

#[test]
fn multi_register_values_stay_json() {
    let text = "({:process 1, :type :invoke, :f :txn, :value [[:read :x nil] [:write :y 2]]}\n\
                 {:process 1, :type :ok, :f :txn, :value {:x 1, \"y\" 2}})";
    let h = read_str(text, "m.edn").unwrap();
    assert_eq!(
        h.events[0].value,
        json!([["read", "x", null], ["write", "y", 2]])
    );
    assert_eq!(h.events[1].value, json!({"x": 1, "y": 2}));
    assert_eq!(h.events[0].key, None);
}

#[test]
fn maps_one_after_another_read_like_a_vector() {
    let text = "{:process 0, :type :invoke, :f :write, :value 1, :time 5}\n\
                {:process 0, :type :ok, :f :write, :value 1, :time 9}\n";
    let h = read_str(text, "h.edn").unwrap();
    assert_eq!(h.operations[0].status, Status::Ok);
    assert_eq!(h.events[1].time, Some(9));
}

#[test]
fn ops_printed_as_records_read_as_their_maps() {
    let text =
        "#jepsen.history.Op{:index 0, :time 5, :type :invoke, :process 0, :f :read, :value nil}\n\
                #jepsen.history.Op{:index 1, :time 9, :type :ok, :process 0, :f :read, :value 2}\n";
    let h = read_str(text, "r.edn").unwrap();
    assert_eq!(h.operations[0].output, Some(json!(2)));
    assert_eq!(h.events[1].index, Some(1));
}

#[test]
fn independent_tuples_are_detected_and_unwrapped() {
    let text = "[{:process 0, :type :invoke, :f :cas, :value [7 [1 2]]}\n\
                 {:process 1, :type :invoke, :f :read, :value [\"k\" nil]}\n\
                 {:process 0, :type :ok, :f :cas, :value [7 [1 2]]}\n\
                 {:process 1, :type :ok, :f :read, :value #jepsen.independent.Tuple{:key \"k\", :value 4}}\n\
                 {:process 2, :type :invoke, :f :write, :value [7 3]}\n\
                 {:process 2, :type :info, :f :write, :value nil}]";
    let h = read_str(text, "i.edn").unwrap();
    let keys: Vec<Option<Key>> = h.operations.iter().map(|o| o.key.clone()).collect();
    assert_eq!(
        keys,
        [
            Some(Key::Int(7)),
            Some(Key::Str("k".into())),
            Some(Key::Int(7))
        ]
    );
    assert_eq!(h.operations[0].input, json!([1, 2]));
    assert_eq!(h.operations[1].output, Some(json!(4)));
    assert_eq!(
        h.events[5].key, None,
        "a completion without a tuple keeps no key"
    );
}

#[test]
fn plain_registers_are_not_mistaken_for_independent_ones() {
    // cas [1 4] is a plain cas, and a read invoked with a scalar (Knossos' quirk) is no tuple.
    for text in [
        "[{:process 0, :type :invoke, :f :cas, :value [1 4]}]",
        "[{:process 0, :type :invoke, :f :cas, :value [1 4]} {:process 1, :type :invoke, :f :read, :value [1 2]}]",
        "[{:process 0, :type :invoke, :f :write, :value [1 2]} {:process 1, :type :invoke, :f :read, :value nil}]",
    ] {
        let h = read_str(text, "p.edn").unwrap();
        assert!(h.events.iter().all(|e| e.key.is_none()), "{text}");
    }
    let text = "[{:process 0, :type :invoke, :f :write, :value [1 2]}]";
    let never = EdnOptions {
        independent: Independent::Never,
    };
    assert_eq!(
        read_str_with(text, "p", never).unwrap().events[0].value,
        json!([1, 2])
    );
    let h = read_str(text, "p").unwrap();
    assert_eq!(
        (h.events[0].key.clone(), &h.events[0].value),
        (Some(Key::Int(1)), &json!(2))
    );
}

#[test]
fn forced_independent_rejects_a_bare_value() {
    let text = "[{:process 0, :type :invoke, :f :write, :value [1 2]}\n {:process 1, :type :invoke, :f :write, :value 3}]";
    let always = EdnOptions {
        independent: Independent::Always,
    };
    let e = read_str_with(text, "f.edn", always).unwrap_err();
    assert_eq!(
        e.to_string(),
        "f.edn:2: expected an independent [key value] tuple as the value, found 3"
    );
}

#[test]
fn bad_ops_are_errors_with_the_op_line() {
    let e = read_str("[{:process 0, :type :invoke, :f :read}\n 42]", "b.edn").unwrap_err();
    assert_eq!(e.to_string(), "b.edn:2: expected an op map {:process …, :type …, :f …, :value …} (or one vector of them), found \"42\"");
    let e = read_str("[{:process :bob, :type :invoke, :f :read}]", "b.edn").unwrap_err();
    assert_eq!(
        e.to_string(),
        "b.edn:1: expected \"process\" to be a non-negative integer or \"nemesis\", found \"bob\""
    );
    let e = read_str("[{:process 1, :type :invoke, :f :cas, :value 3}]", "b.edn").unwrap_err();
    assert!(
        e.to_string()
            .starts_with("b.edn:1: expected a cas \"value\" to be a 2-element array"),
        "{e}"
    );
    let text = "[{:process 1, :type :invoke, :f :read}\n\n {:process 1, :type :info, :f :read}\n {:process 1, :type :invoke, :f :read}]";
    let e = read_str(text, "b.edn").unwrap_err();
    assert!(
        matches!(
            e,
            ReadError::Pairing {
                line: 4,
                source: PairingError::ReusedAfterInfo { .. },
                ..
            }
        ),
        "{e}"
    );
}

fn round_trip(events: Vec<Event>) {
    let h = History::from_events(events).unwrap();
    let bytes = write_edn(&h, Vec::new()).unwrap();
    let text = String::from_utf8(bytes).unwrap();
    let back = crate::read_str(&text, crate::Format::Auto, "rt.edn")
        .unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(back.events, h.events, "{text}");
}

#[test]
fn export_then_import_gives_the_same_events() {
    let mut odd = Event::client(
        1,
        EventType::Invoke,
        F::Write,
        None,
        json!({"a b": [1.5, -2, "q\"\n"], "ok": true}),
    );
    odd.extra
        .insert("weird key".into(), json!(18446744073709551615u64));
    odd.extra.insert("node".into(), json!("n1"));
    round_trip(vec![
        Event::client(0, EventType::Invoke, F::Read, None, Value::Null).at(1),
        Event::nemesis("start-partition", json!("halves")).at(2),
        Event::client(0, EventType::Ok, F::Read, None, json!(3)).at(3),
        odd,
        Event::client(2, EventType::Invoke, F::Cas, None, json!([1, 2])),
        Event::client(2, EventType::Fail, F::Cas, None, json!([1, 2])),
    ]);
    // Every client event keyed: written as [key value] tuples.
    round_trip(vec![
        Event::client(
            0,
            EventType::Invoke,
            F::Cas,
            Some(Key::Str("k7".into())),
            json!([1, 2]),
        ),
        Event::client(
            1,
            EventType::Invoke,
            F::Append,
            Some(Key::Int(3)),
            json!("x"),
        ),
        Event::client(
            0,
            EventType::Info,
            F::Cas,
            Some(Key::Str("k7".into())),
            json!([1, 2]),
        ),
        Event::client(1, EventType::Ok, F::Append, Some(Key::Int(3)), json!("x")),
    ]);
    // A single register of pairs: `:key nil` keeps the reader from taking them for tuples.
    round_trip(vec![
        Event::client(0, EventType::Invoke, F::Write, None, json!(["a", 1])),
        Event::client(0, EventType::Ok, F::Write, None, json!(["a", 1])),
        Event::client(1, EventType::Invoke, F::Read, None, json!([1, 2])),
    ]);
    // Some keyed, some not: written as :key fields.
    round_trip(vec![
        Event::client(0, EventType::Invoke, F::Write, Some(Key::Int(1)), json!(5)),
        Event::client(
            1,
            EventType::Invoke,
            F::Other("acquire".into()),
            None,
            Value::Null,
        ),
    ]);
}

#[test]
fn keyed_exports_use_tuples_knossos_can_split() {
    let h = History::from_events(vec![Event::client(
        0,
        EventType::Invoke,
        F::Write,
        Some(Key::Int(4)),
        json!(2),
    )
    .at(10)])
    .unwrap();
    let text = String::from_utf8(write_edn(&h, Vec::new()).unwrap()).unwrap();
    assert_eq!(
        text,
        "[\n{:process 0, :type :invoke, :f :write, :value [4 2], :time 10}\n]\n"
    );
}
