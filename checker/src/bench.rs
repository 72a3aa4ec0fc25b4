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
    let gen_start = Instant::now();
    let h = generate::history(cfg);
    let gen_time = gen_start.elapsed();
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
    let etcd = sorted_files(&corpus.join("porcupine/jepsen"), "log")?;
    bench_set(args, "Jepsen etcd logs", &etcd)?;
    for name in [
        "c01-ok", "c01-bad", "c10-ok", "c10-bad", "c50-ok", "c50-bad",
    ] {
        bench_file(args, &corpus.join(format!("porcupine/kv/{name}.txt")))?;
    }
    let mut knossos = sorted_files(&corpus.join("knossos/cas-register/good"), "edn")?;
    knossos.extend(sorted_files(
        &corpus.join("knossos/cas-register/bad"),
        "edn",
    )?);
    match knossos.iter().map(|f| load(f)).collect::<Result<Vec<_>>>() {
        Ok(_) => bench_set(args, "Knossos cas-register histories", &knossos)?,
        Err(e) => println!("Knossos cas-register histories: skipped ({e})"),
    }
    let small = GenConfig {
        processes: 5,
        keys: 10,
        ops: 10_000,
        info_rate: 0.05,
        values: 5,
        seed: 1,
        ..GenConfig::default()
    };
    bench_generated(
        args,
        "generated 10,000 ops, 10 keys, 5 processes, 5% info",
        &small,
        ModelKind::CasRegister,
    )?;
    if args.quick {
        return Ok(());
    }
    let big = GenConfig {
        processes: 50,
        keys: 1000,
        ops: 1_000_000,
        info_rate: 0.01,
        mix: [2, 1, 1, 0],
        values: 5,
        initial: json!(null),
        seed: 7,
    };
    bench_generated(
        args,
        "generated 1,000,000 ops, 1,000 keys, 50 processes, 1% info",
        &big,
        ModelKind::Kv,
    )?;
    let hot = GenConfig {
        processes: 20,
        keys: 1,
        ops: 2_000,
        info_rate: 0.01,
        mix: [2, 1, 1, 0],
        values: 5,
        initial: json!(null),
        seed: 11,
    };
    bench_generated(
        args,
        "generated single key, 20 processes, 2,000 ops, 1% info",
        &hot,
        ModelKind::CasRegister,
    )?;
    Ok(())
}
