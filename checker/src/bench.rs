//! `checker bench`: check time only (histories are read and generated before the clock
//! starts), best of N runs, on the shared corpus and on generated histories.

use crate::{defaults, read};
use anyhow::{bail, Context, Result};
use checker::generate::{self, GenConfig};
use checker::{check, ModelKind, Options, Report, Verdict};
use histories::{Format, History};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Arguments of `checker bench`.
#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// The corpus directory (with porcupine/ and knossos/); default: ../shared/corpus from
    /// the workspace root.
    #[arg(long)]
    corpus: Option<PathBuf>,
    /// Runs per measurement; the best is reported.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Keys searched in parallel (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
    /// Skip the large generated workloads (1,000,000 ops; 20 processes on one key).
    #[arg(long)]
    quick: bool,
    /// Print every file's time, not only totals and the named files.
    #[arg(long)]
    per_file: bool,
    /// Run only the measurements whose name contains this text (e.g. `skewed`, `c50`).
    #[arg(long, value_name = "TEXT")]
    only: Option<String>,
    /// Turn the search's issue-12 reductions off (the search before them), for before /
    /// after figures.
    #[arg(long)]
    no_reductions: bool,
    /// Override the generated workloads' seeds.
    #[arg(long)]
    seed: Option<u64>,
    /// Override the generated workloads' rate of indeterminate operations.
    #[arg(long, value_name = "RATE")]
    info_rate: Option<f64>,
    /// Also write each generated history as JSON Lines into this directory (for
    /// `checker check`, or Porcupine elsewhere).
    #[arg(long, value_name = "DIR")]
    save: Option<PathBuf>,
}

impl BenchArgs {
    fn wanted(&self, name: &str) -> bool {
        self.only.as_ref().is_none_or(|o| name.contains(o.as_str()))
    }
}

fn corpus_dir(args: &BenchArgs) -> PathBuf {
    args.corpus.clone().unwrap_or_else(|| {
        PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/corpus"))
    })
}

fn options(args: &BenchArgs, model: ModelKind, initial: Value) -> Options {
    Options {
        model,
        initial,
        threads: args.threads.unwrap_or(Options::default().threads),
        reductions: !args.no_reductions,
        ..Options::default()
    }
}

/// Best wall time of `runs` runs of `f`, and the last result.
fn best<T>(runs: usize, mut f: impl FnMut() -> T) -> (Duration, T) {
    let mut best = Duration::MAX;
    let mut last = None;
    for _ in 0..runs.max(1) {
        let t = Instant::now();
        let r = f();
        best = best.min(t.elapsed());
        last = Some(r);
    }
    (best, last.expect("at least one run"))
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

/// Peak resident set size of this process so far (VmHWM), in MiB.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn sorted_files(dir: &Path, ext: &str) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    files.sort();
    Ok(files)
}

/// Reads a corpus file with the CLI's defaults (Knossos nil reads are unknown reads).
fn load(path: &Path) -> Result<(History, Format)> {
    let (mut h, format) = read(path, Format::Auto).map_err(anyhow::Error::msg)?;
    if format == Format::Edn {
        checker::nil_reads_as_unknown(&mut h);
    }
    Ok((h, format))
}

/// Checks a set of files together, best of N for the total and for each file.
fn bench_set(args: &BenchArgs, name: &str, files: &[PathBuf]) -> Result<()> {
    let mut loaded = Vec::new();
    for f in files {
        let (h, format) = load(f)?;
        let (model, initial) = defaults(format);
        loaded.push((f, h, options(args, model, initial)));
    }
    let (total, verdicts) = best(args.runs, || {
        loaded
            .iter()
            .map(|(_, h, o)| check(h, o).verdict)
            .collect::<Vec<_>>()
    });
    let ok = verdicts
        .iter()
        .filter(|v| **v == Verdict::Linearizable)
        .count();
    let bad = verdicts
        .iter()
        .filter(|v| **v == Verdict::NotLinearizable)
        .count();
    let unknown = verdicts.len() - ok - bad;
    println!(
        "{name}: {} files together {} (best of {}): {ok} linearizable, {bad} not, {unknown} unknown",
        files.len(),
        ms(total),
        args.runs
    );
    let mut per_file: Vec<(Duration, &PathBuf, Verdict)> = loaded
        .iter()
        .map(|(f, h, o)| {
            let (t, r) = best(args.runs, || check(h, o));
            (t, *f, r.verdict)
        })
        .collect();
    per_file.sort_by_key(|p| std::cmp::Reverse(p.0));
    let shown = if args.per_file { per_file.len() } else { 3 };
    for (t, f, v) in per_file.iter().take(shown) {
        println!("    {:<40} {:>10}  {v}", file_name(f), ms(*t));
    }
    Ok(())
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn bench_file(args: &BenchArgs, path: &Path) -> Result<()> {
    let (h, format) = load(path)?;
    let (model, initial) = defaults(format);
    let opts = options(args, model, initial);
    let (t, report) = best(args.runs, || check(&h, &opts));
    let explored: u64 = report.keys.iter().map(|k| k.states_explored).sum();
    println!(
        "{:<44} {:>10}  {} ({} ops, {} configurations)",
        file_name(path),
        ms(t),
        report.verdict,
        report.ops,
        explored
    );
    Ok(())
}

fn bench_generated(
    args: &BenchArgs,
    name: &str,
    cfg: &GenConfig,
    model: ModelKind,
) -> Result<Report> {
    let mut cfg = cfg.clone();
    cfg.seed = args.seed.unwrap_or(cfg.seed);
    cfg.info_rate = args.info_rate.unwrap_or(cfg.info_rate);
    let cfg = &cfg;
    let gen_start = Instant::now();
    let h = generate::history(cfg);
    let gen_time = gen_start.elapsed();
    if let Some(dir) = &args.save {
        let slug: String = name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        let path = dir.join(format!("{slug}-seed{}.jsonl", cfg.seed));
        let file = std::fs::File::create(&path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        histories::jsonl::write_jsonl(&h, std::io::BufWriter::new(file))
            .with_context(|| format!("cannot write {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    let opts = options(args, model, cfg.initial.clone());
    let (t, report) = best(args.runs, || check(&h, &opts));
    println!(
        "{name}: {} (best of {}), verdict {}, {} ops over {} keys, peak RSS of the process {:.0} MiB (generation {} not counted)",
        ms(t),
        args.runs,
        report.verdict,
        report.ops,
        report.keys.len(),
        peak_rss_mib().unwrap_or(f64::NAN),
        ms(gen_time)
    );
    Ok(report)
}

/// Runs every benchmark and prints the figures.
pub fn run(args: &BenchArgs) -> Result<()> {
    let corpus = corpus_dir(args);
    if !corpus.is_dir() {
        bail!(
            "corpus directory {} not found (pass --corpus)",
            corpus.display()
        );
    }
    println!(
        "checker bench: threads {}, best of {} runs, check time only",
        options(args, ModelKind::Kv, Value::Null).threads,
        args.runs
    );
    if args.wanted("Jepsen etcd logs") {
        let etcd = sorted_files(&corpus.join("porcupine/jepsen"), "log")?;
        bench_set(args, "Jepsen etcd logs", &etcd)?;
    }
    for name in [
        "c01-ok", "c01-bad", "c10-ok", "c10-bad", "c50-ok", "c50-bad",
    ] {
        if args.wanted(name) {
            bench_file(args, &corpus.join(format!("porcupine/kv/{name}.txt")))?;
        }
    }
    if args.wanted("Knossos cas-register histories") {
        bench_knossos(args, &corpus)?;
    }
    bench_generated_all(args)
}

fn bench_knossos(args: &BenchArgs, corpus: &Path) -> Result<()> {
    let mut knossos = sorted_files(&corpus.join("knossos/cas-register/good"), "edn")?;
    knossos.extend(sorted_files(
        &corpus.join("knossos/cas-register/bad"),
        "edn",
    )?);
    match knossos.iter().map(|f| load(f)).collect::<Result<Vec<_>>>() {
        Ok(_) => bench_set(args, "Knossos cas-register histories", &knossos)?,
        Err(e) => println!("Knossos cas-register histories: skipped ({e})"),
    }
    Ok(())
}

/// The generated workloads, from REFERENCE.md §2 and issue 12 (skewed keys, many `info`).
/// Each entry: name, configuration, model, and whether `--quick` skips it.
fn bench_generated_all(args: &BenchArgs) -> Result<()> {
    let register = |processes, keys, ops, info_rate, key_skew, seed| GenConfig {
        processes,
        keys,
        ops,
        info_rate,
        mix: [2, 1, 1, 0],
        values: 5,
        initial: json!(null),
        seed,
        key_skew,
    };
    let small = GenConfig {
        processes: 5,
        keys: 10,
        ops: 10_000,
        info_rate: 0.05,
        values: 5,
        seed: 1,
        ..GenConfig::default()
    };
    // Appends and reads only, unique strings (`values: 0`), one key.
    let append = GenConfig {
        processes: 10,
        keys: 1,
        ops: 20_000,
        mix: [1, 0, 0, 1],
        values: 0,
        seed: 5,
        ..small.clone()
    };
    // One line per workload: name, configuration, model, skipped by --quick.
    #[rustfmt::skip]
    let shapes = [
        ("generated 10,000 ops, 10 keys, 5 processes, 5% info", small, ModelKind::CasRegister, false),
        ("generated append key, 20,000 ops, 10 processes, 5% info", append, ModelKind::Kv, false),
        ("generated skewed keys (Pareto 1.2), 20,000 ops, 100 keys, 50 processes, 1% info",
         register(50, 100, 20_000, 0.01, 1.2, 3), ModelKind::CasRegister, false),
        ("generated single key, 10 processes, 2,000 ops, 20% info (high info)",
         register(10, 1, 2_000, 0.2, 0.0, 13), ModelKind::CasRegister, false),
        ("generated 1,000,000 ops, 1,000 keys, 50 processes, 1% info",
         register(50, 1000, 1_000_000, 0.01, 0.0, 7), ModelKind::Kv, true),
        ("generated skewed keys (Pareto 1.2), 1,000,000 ops, 1,000 keys, 50 processes, 1% info",
         register(50, 1000, 1_000_000, 0.01, 1.2, 9), ModelKind::Kv, true),
        ("generated single key, 20 processes, 2,000 ops, 1% info",
         register(20, 1, 2_000, 0.01, 0.0, 11), ModelKind::CasRegister, true),
    ];
    for (name, cfg, model, big) in shapes {
        if args.wanted(name) && !(big && args.quick) {
            bench_generated(args, name, &cfg, model)?;
        }
    }
    Ok(())
}
