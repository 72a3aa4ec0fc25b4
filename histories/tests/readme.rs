//! The examples in README.md are real: the history parses, pairs, and means what the text
//! after it says.

use histories::{read_str, Format, Process, Status, F};

fn readme_history() -> String {
    let readme = include_str!("../README.md");
    let start = readme
        .find("### Examples")
        .expect("README has an Examples section");
    let block = &readme[start..];
    let open = block.find("```json\n").expect("a json block") + "```json\n".len();
    let close = block[open..].find("```").expect("closed") + open;
    block[open..close].to_string()
}

#[test]
fn the_readme_example_history_means_what_the_readme_says() {
    let h = read_str(&readme_history(), Format::Auto, "README.md").unwrap();
    assert_eq!(h.events.len(), 10);
    let nemesis = h
        .events
        .iter()
        .filter(|e| e.process == Process::Nemesis)
        .count();
    assert_eq!(nemesis, 2);
    let summary: Vec<(u64, F, Status)> = h
        .operations
        .iter()
        .map(|o| (o.process, o.f.clone(), o.status))
        .collect();
    assert_eq!(
        summary,
        [
            (0, F::Read, Status::Ok),
            (1, F::Write, Status::Info),
            (2, F::Cas, Status::Fail),
            (2, F::Append, Status::Ok),
        ]
    );
    assert_eq!(h.operations[0].output, Some(serde_json::Value::Null));
}

#[test]
fn the_readme_edn_export_example_is_what_write_edn_writes() {
    let readme = include_str!("../README.md");
    let h = read_str(
        "{\"process\":0,\"type\":\"invoke\",\"f\":\"write\",\"key\":4,\"value\":2,\"time\":10}\n\
         {\"process\":\"nemesis\",\"type\":\"info\",\"f\":\"start-partition\",\"value\":\"halves\"}\n",
        Format::Jsonl,
        "t",
    )
    .unwrap();
    let edn = String::from_utf8(histories::write_edn(&h, Vec::new()).unwrap()).unwrap();
    assert!(readme.contains(&format!("```clojure\n{edn}```")), "{edn}");
}
