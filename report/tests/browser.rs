//! A real browser loads generated reports from disk: headless Chromium must run the page's
//! script to the end with no error (the page writes a marker into its DOM, and any error
//! into an `#errors` element), and its screenshot must show a drawn timeline, not a blank
//! page. Skips, saying why, when Chromium is not installed (Debian package `chromium`).

mod common;

use common::*;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Every browser run is killed (its whole process group) after this long, and tried once
/// more: on a loaded machine a headless start occasionally stalls.
const LIMIT: Duration = Duration::from_secs(60);

fn chromium() -> Option<PathBuf> {
    let p = std::env::var_os("REPORT_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    p.is_file().then_some(p)
}

/// Runs Chromium headless on `url` with `extra` flags and a fresh profile; returns stdout,
/// stderr and the wall time.
fn run(bin: &Path, url: &str, extra: &[String], scratch: &Path) -> (String, String, Duration) {
    match attempt(bin, url, extra, scratch) {
        Ok(r) => r,
        Err(first) => {
            eprintln!("chromium stalled, trying once more; its log:\n{first}");
            attempt(bin, url, extra, scratch).unwrap_or_else(|e| {
                panic!("chromium did not finish within {LIMIT:?} twice; stderr:\n{e}")
            })
        }
    }
}

/// One bounded browser run; `Err(stderr)` when it had to be killed.
fn attempt(
    bin: &Path,
    url: &str,
    extra: &[String],
    scratch: &Path,
) -> Result<(String, String, Duration), String> {
    let profile = scratch.join(format!("profile-{}", extra.len()));
    let _ = std::fs::remove_dir_all(&profile);
    let out = scratch.join("chromium.out");
    let err = scratch.join("chromium.err");
    let started = Instant::now();
    let mut child = Command::new(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--hide-scrollbars",
            "--disable-dev-shm-usage",
            "--disable-extensions",
            "--mute-audio",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(url)
        .stdin(Stdio::null())
        // No session bus here; without this Chromium may wait on D-Bus timeouts.
        .env("DBUS_SESSION_BUS_ADDRESS", "disabled:")
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        // Its own process group, so a timeout can stop the browser's helpers too.
        .process_group(0)
        .spawn()
        .expect("starting chromium");
    let pid = child.id();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if started.elapsed() > LIMIT {
            let _ = Command::new("kill")
                .args(["-KILL", &format!("-{pid}")])
                .status();
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let elapsed = started.elapsed();
    let _ = std::fs::remove_dir_all(&profile);
    let stdout = std::fs::read_to_string(&out).unwrap_or_default();
    let stderr = std::fs::read_to_string(&err).unwrap_or_default();
    match status {
        Some(_) => Ok((stdout, stderr, elapsed)),
        None => Err(stderr),
    }
}

/// Loads `page` from disk: asserts the script finished without errors, takes a screenshot
/// and returns its pixels' statistics.
fn load(bin: &Path, page: &Path, fragment: &str, scratch: &Path, shot: &Path) -> Pixels {
    let url = format!("file://{}{fragment}", page.display());
    let (dom, stderr, took) = run(bin, &url, &["--dump-dom".to_string()], scratch);
    eprintln!(
        "{}: DOM after load in {took:.2?} (browser start included)",
        page.display()
    );
    assert!(
        dom.contains("data-rendered=\"ok\""),
        "the page's script did not finish; its DOM ends:\n{}\nstderr:\n{stderr}",
        &dom[dom.len().saturating_sub(2000)..]
    );
    assert!(
        dom.contains("id=\"errors\" data-count=\"0\""),
        "script errors recorded in the page"
    );
    assert!(
        !dom.contains("class=\"error\""),
        "script errors recorded in the page"
    );
    for bad in ["Uncaught", "console error"] {
        assert!(!stderr.contains(bad), "{bad} in chromium's log:\n{stderr}");
    }
    let (_, stderr, _) = run(
        bin,
        &url,
        &[
            format!("--screenshot={}", shot.display()),
            "--window-size=1400,1800".to_string(),
        ],
        scratch,
    );
    assert!(shot.is_file(), "no screenshot written; stderr:\n{stderr}");
    pixels(shot)
}

struct Pixels {
    colours: usize,
    non_white: f64,
    ok_green: usize,
}

/// Decodes a PNG: distinct colours, the fraction of pixels that are not near-white, and
/// how many are the timeline's `ok` green (#3a9d5d), which only a drawn canvas has.
fn pixels(path: &Path) -> Pixels {
    let decoder = png::Decoder::new(std::fs::File::open(path).unwrap());
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let step = match info.color_type {
        png::ColorType::Rgba => 4,
        png::ColorType::Rgb => 3,
        other => panic!("unexpected screenshot colour type {other:?}"),
    };
    let data = &buf[..info.buffer_size()];
    let mut colours = std::collections::HashSet::new();
    let (mut non_white, mut green, mut n) = (0usize, 0usize, 0usize);
    for px in data.chunks_exact(step) {
        let (r, g, b) = (px[0], px[1], px[2]);
        colours.insert((r, g, b));
        n += 1;
        if r < 235 || g < 235 || b < 235 {
            non_white += 1;
        }
        if r.abs_diff(0x3a) < 12 && g.abs_diff(0x9d) < 12 && b.abs_diff(0x5d) < 12 {
            green += 1;
        }
    }
    Pixels {
        colours: colours.len(),
        non_white: non_white as f64 / n as f64,
        ok_green: green,
    }
}

#[test]
fn chromium_renders_reports_without_errors() {
    let Some(bin) = chromium() else {
        eprintln!("SKIPPED: no chromium at /usr/bin/chromium (apt-get install chromium, or set REPORT_CHROMIUM)");
        return;
    };
    let dir = scratch("browser");
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));

    // A real counterexample from the corpus, opened on it (#cex zooms the timeline to it).
    let h = histories::read_path(
        &corpus("porcupine/kv/c10-bad.txt"),
        histories::Format::PorcupineKv,
    )
    .unwrap();
    let opts = checker::Options {
        model: checker::ModelKind::Kv,
        initial: serde_json::json!(""),
        ..checker::Options::default()
    };
    let r = checker::check(&h, &opts);
    let small = dir.join("c10-bad.html");
    report::write(
        &small,
        &report::check_report(&h, &serde_json::to_value(&r).unwrap(), "c10-bad.txt", None),
    )
    .unwrap();
    let shot = shots.join("report-c10-bad.png");
    let p = load(&bin, &small, "#cex", &dir, &shot);
    eprintln!(
        "{}: {} colours, {:.1}% not white, {} ok-green",
        shot.display(),
        p.colours,
        p.non_white * 100.0,
        p.ok_green
    );
    assert!(
        p.colours > 50 && p.non_white > 0.02 && p.ok_green > 500,
        "blank-looking screenshot"
    );

    // The detector itself: the same page with its script broken must show the error and no
    // marker, or the checks above prove nothing.
    let page = std::fs::read_to_string(&small).unwrap();
    let broken = dir.join("broken.html");
    std::fs::write(&broken, page.replacen("JSON.parse(", "JSON.parsee(", 1)).unwrap();
    let url = format!("file://{}", broken.display());
    let (dom, _, _) = run(&bin, &url, &["--dump-dom".to_string()], &dir);
    assert!(!dom.contains("data-rendered=\"ok\""));
    assert!(
        dom.contains("data-count=\"1\"") && dom.contains("Uncaught"),
        "{dom}"
    );

    // 100,000 operations with faults and a counterexample, as a nemesis run.
    let h = synthetic(100_000, 50, 100, 300);
    let big = dir.join("run-100k.html");
    report::write(&big, &report::run_report(&h, &results_for(&h, "<b>x</b>"))).unwrap();
    let shot = shots.join("report-100k.png");
    let p = load(&bin, &big, "", &dir, &shot);
    eprintln!(
        "{}: {} colours, {:.1}% not white, {} ok-green",
        shot.display(),
        p.colours,
        p.non_white * 100.0,
        p.ok_green
    );
    assert!(
        p.colours > 50 && p.non_white > 0.02 && p.ok_green > 2000,
        "blank-looking screenshot"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
