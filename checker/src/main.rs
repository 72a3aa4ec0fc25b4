//! The `checker` command line: `check` histories for linearizability, `bench` the checker.
//!
//! Exit codes of `check`: 0 every file linearizable, 1 some file not linearizable or with an
//! append anomaly, 2 bad input or usage (a file that cannot be read or checked wins over any
//! verdict), 3 some file unknown (budget spent) and none of the above.

mod bench;

use anyhow::Result;
use checker::append::{self, AppendReport};
use checker::{try_check, ModelKind, Options, Report, Verdict};
use clap::{Parser, Subcommand};
use histories::Format;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

/// Linearizability checker for Jepsen-style histories.
#[derive(Parser, Debug)]
#[command(name = "checker", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Check history files; prints a verdict line per file and a counterexample for each
    /// key that is not linearizable, then, for a history with appends, the append anomalies
    /// (lost write, stale read, not a prefix, diverged, duplicate, failed but present,
    /// phantom). Exit 0
    /// linearizable, 1 not linearizable or an append anomaly, 2 bad input, 3 unknown.
    Check(CheckArgs),
    /// Time the checker on the shared corpus and on generated histories (check time only,
    /// best of N), and print per-file times.
    Bench(bench::BenchArgs),
    /// Convert a history file to another format (EDN for Knossos and Elle, or our JSON
    /// Lines), written to standard output or --out. Exit 0, or 2 if it cannot be read.
    Convert(ConvertArgs),
    /// Model-check the Raft core with stateright under bounds; prints counts and any
    /// counterexample trace. Exit 0 no violation, 1 violation, 2 bad usage.
    ModelCheck(checker::model_check::cli::Args),
}

/// Arguments of `checker convert`.
#[derive(clap::Args, Debug)]
struct ConvertArgs {
    /// The history file to convert.
    file: PathBuf,
    /// Target format: edn (a Jepsen EDN vector of op maps, as Knossos and Elle read) or
    /// jsonl (one event per line, this project's format).
    #[arg(long, value_parser = ["edn", "jsonl"])]
    to: String,
    /// Input format: auto (detect from the first line), jsonl, edn, porcupine-kv, jepsen-log.
    #[arg(long, default_value = "auto")]
    format: Format,
    /// Write here instead of standard output.
    #[arg(long, value_name = "PATH")]
    out: Option<PathBuf>,
}

/// Reads `args.file` and writes it in the target format.
fn run_convert(args: &ConvertArgs) -> Result<(), String> {
    let (history, _) = read(&args.file, args.format)?;
    let mut buf = Vec::new();
    let written = match args.to.as_str() {
        "edn" => histories::write_edn(&history, &mut buf).map(|_| ()),
        _ => histories::jsonl::write_jsonl(&history, &mut buf).map(|_| ()),
    };
    written.map_err(|e| format!("converting {}: {e}", args.file.display()))?;
    match &args.out {
        Some(path) => {
            std::fs::write(path, &buf).map_err(|e| format!("cannot write {}: {e}", path.display()))
        }
        None => std::io::Write::write_all(&mut std::io::stdout().lock(), &buf)
            .map_err(|e| format!("writing to standard output: {e}")),
    }
}

/// Arguments of `checker check`.
#[derive(clap::Args, Debug)]
struct CheckArgs {
    /// History files to check, each on its own.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// File format: auto (detect from the first line), jsonl, edn, porcupine-kv, jepsen-log.
    #[arg(long, default_value = "auto")]
    format: Format,
    /// Model: register, cas-register, kv, multi-register (Knossos txn histories; give
    /// --initial as a map, e.g. '{"x":0,"y":0}') or mutex (Knossos acquire / release; the
    /// lock starts free, --initial is ignored). Default by format: EDN and etcd logs
    /// cas-register, Porcupine kv logs and JSON Lines kv.
    #[arg(long)]
    model: Option<ModelKind>,
    /// Every key's initial value, as JSON (`null` = absent). Default by format: EDN 0,
    /// Porcupine kv "" (its model starts every key empty), otherwise null.
    #[arg(long, value_parser = parse_json)]
    initial: Option<Value>,
    /// What an `ok` read of nil means: "absent" (our format, Porcupine, Jepsen etcd logs) or
    /// "unknown value" (Knossos, whose models accept a nil read in any state). Default:
    /// unknown for EDN, absent otherwise.
    #[arg(long, value_parser = ["absent", "unknown"])]
    nil_reads: Option<String>,
    /// Give up after this many seconds (verdict unknown, naming the key being searched);
    /// 0 for no limit.
    #[arg(long, value_name = "SECS", default_value_t = 300.0)]
    time_limit: f64,
    /// Give up when the search's memo tables hold more than this many MiB (verdict unknown).
    #[arg(long, value_name = "MIB", default_value_t = 4096)]
    memory_limit: usize,
    /// Keys searched in parallel (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
    /// Print one JSON object per file (the full report, and `append` for a history with
    /// appends) instead of text.
    #[arg(long)]
    json: bool,
    /// Also write a self-contained HTML report (timeline, latency, counterexample) to this
    /// file; takes exactly one history file.
    #[arg(long, value_name = "OUT.html")]
    html: Option<PathBuf>,
}

fn parse_json(s: &str) -> Result<Value, String> {
    serde_json::from_str(s).map_err(|e| format!("not a JSON value ({e}): {s:?}"))
}

/// The model and initial value a format's histories usually mean.
pub(crate) fn defaults(format: Format) -> (ModelKind, Value) {
    match format {
        Format::Edn => (ModelKind::CasRegister, json!(0)),
        Format::JepsenLog => (ModelKind::CasRegister, Value::Null),
        Format::PorcupineKv => (ModelKind::Kv, json!("")),
        Format::Jsonl | Format::Auto => (ModelKind::Kv, Value::Null),
    }
}

/// Reads a file, detecting its format when asked; returns the history and the format.
pub(crate) fn read(path: &Path, format: Format) -> Result<(histories::History, Format), String> {
    let name = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {name}: {e}"))?;
    // A UTF-8 byte order mark (editors on Windows write one) is not part of the history:
    // left in, it hides the first line's `{` from format detection.
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes);
    let Ok(text) = std::str::from_utf8(bytes) else {
        // The histories reader names the file, line and byte of invalid UTF-8.
        let e = histories::read_bytes(bytes, Format::Jsonl, &name).err();
        return Err(e.map_or_else(|| format!("{name}: not UTF-8 text"), |e| e.to_string()));
    };
    let format = match format {
        Format::Auto => histories::detect(text, &name)
            .map_err(|e| e.to_string())?
            .unwrap_or(Format::Jsonl),
        f => f,
    };
    let history = histories::read_str(text, format, &name).map_err(|e| e.to_string())?;
    Ok((history, format))
}

/// The outcome of one file: a report (and the append checks' for a history with appends),
/// or why there is none.
enum FileResult {
    Checked(Report, Option<AppendReport>),
    Bad(String),
}

fn check_file(path: &Path, args: &CheckArgs) -> FileResult {
    let (mut history, format) = match read(path, args.format) {
        Ok(x) => x,
        Err(e) => return FileResult::Bad(e),
    };
    let (model, initial) = defaults(format);
    // Before nil reads become unknown: the append checks read an `ok` nil as empty.
    let appends = append::has_appends(&history).then(|| append::check_append(&history));
    let nil_unknown = match args.nil_reads.as_deref() {
        Some(n) => n == "unknown",
        None => format == Format::Edn,
    };
    if nil_unknown {
        checker::nil_reads_as_unknown(&mut history);
    }
    let opts = Options {
        model: args.model.unwrap_or(model),
        initial: args.initial.clone().unwrap_or(initial),
        time_limit: (args.time_limit > 0.0).then(|| Duration::from_secs_f64(args.time_limit)),
        memory_limit_bytes: Some(args.memory_limit << 20),
        threads: args.threads.unwrap_or(Options::default().threads),
        ..Options::default()
    };
    match try_check(&history, &opts) {
        Ok(report) => match args
            .html
            .as_deref()
            .map(|o| write_html(o, path, &history, &report))
        {
            Some(Err(e)) => FileResult::Bad(e),
            _ => FileResult::Checked(report, appends),
        },
        Err(e) => FileResult::Bad(format!("{}: {e}", path.display())),
    }
}

/// Writes the HTML report of one checked history, with each counterexample's explanation.
fn write_html(
    out: &Path,
    path: &Path,
    history: &histories::History,
    report: &Report,
) -> Result<(), String> {
    let mut v = serde_json::to_value(report).map_err(|e| e.to_string())?;
    if let Some(keys) = v["keys"].as_array_mut() {
        for (k, j) in report.keys.iter().zip(keys) {
            if let Some(c) = &k.counterexample {
                j["explanation"] = c.explain().into();
            }
        }
    }
    let page = report::check_report(history, &v, &path.display().to_string(), None);
    report::write(out, &page).map_err(|e| format!("writing the HTML report: {e}"))
}

fn print_text(path: &Path, report: &Report, appends: Option<&AppendReport>) {
    use std::fmt::Write as _;
    let mut out = String::new();
    let keys = report.keys.len();
    let _ = writeln!(
        out,
        "{}: {} ({} ops, {} key{}, model {}, initial {}, {:.3} s)",
        path.display(),
        report.verdict,
        report.ops,
        keys,
        if keys == 1 { "" } else { "s" },
        report.model,
        report.initial,
        report.time_secs
    );
    for k in report.failures() {
        if let Some(c) = &k.counterexample {
            for line in c.explain().lines() {
                let _ = writeln!(out, "    {line}");
            }
        }
    }
    for k in report.unknowns() {
        let key = k.key.as_ref().map_or("(single register)".to_string(), |k| {
            serde_json::to_string(k).unwrap_or_default()
        });
        let why = k
            .unknown_reason
            .as_ref()
            .map(|r| r.to_string())
            .unwrap_or_default();
        let _ = writeln!(out, "    key {key}: unknown: {why}");
    }
    if let Some(a) = appends {
        let _ = writeln!(
            out,
            "    append: {} acknowledged appends over {} keys, {} anomalies",
            a.acknowledged,
            a.keys,
            a.anomalies.len()
        );
        for an in &a.anomalies {
            let _ = writeln!(
                out,
                "      {}",
                serde_json::to_string(an).unwrap_or_default()
            );
        }
        if !a.keys_without_final_read.is_empty() {
            let _ = writeln!(
                out,
                "      lost writes not checked (no successful read) on keys {}",
                a.keys_without_final_read.join(", ")
            );
        }
    }
    emit(&out);
}

/// Writes to stdout, ignoring a closed pipe (`checker check ... | head`).
fn emit(text: &str) {
    use std::io::Write as _;
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

fn run_check(args: &CheckArgs) -> u8 {
    if args.html.is_some() && args.files.len() != 1 {
        eprintln!("--html writes one report: give exactly one history file");
        return 2;
    }
    let mut code = 0u8;
    let rank = |c: u8| match c {
        2 => 3,
        1 => 2,
        3 => 1,
        _ => 0,
    };
    for path in &args.files {
        let this = match check_file(path, args) {
            FileResult::Bad(msg) => {
                if args.json {
                    emit(&format!("{}\n", json!({"file": path, "error": msg})));
                } else {
                    eprintln!("{msg}");
                }
                2
            }
            FileResult::Checked(report, appends) => {
                if args.json {
                    let mut line = json!({"file": path, "report": report});
                    if let Some(a) = &appends {
                        line["append"] = json!(a);
                    }
                    emit(&format!("{line}\n"));
                } else {
                    print_text(path, &report, appends.as_ref());
                }
                let anomaly = appends.as_ref().is_some_and(|a| !a.valid());
                match report.verdict {
                    Verdict::NotLinearizable => 1,
                    _ if anomaly => 1,
                    Verdict::Linearizable => 0,
                    Verdict::Unknown => 3,
                }
            }
        };
        if rank(this) > rank(code) {
            code = this;
        }
    }
    code
}

fn main() -> Result<ExitCode> {
    let cli = Cli::parse();
    match cli.command {
        Command::Check(args) => Ok(ExitCode::from(run_check(&args))),
        Command::Bench(args) => {
            bench::run(&args)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Convert(args) => Ok(match run_convert(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("{e}");
                ExitCode::from(2)
            }
        }),
        Command::ModelCheck(args) => Ok(ExitCode::from(checker::model_check::cli::run(&args))),
    }
}
