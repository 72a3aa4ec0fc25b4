//! The run browser: a tiny loopback-only HTTP server listing the runs in a runs directory
//! (verdict, date, target, faults) and serving each run's report and files.
//!
//! It is std only: a `TcpListener` and one thread per connection, at most [`MAX_CONNECTIONS`]
//! at once. It serves one person's browser on this machine, a handful of connections, so
//! threads cost nothing worth an async runtime in a library the checker links too; but they
//! must be concurrent, since a browser keeps idle connections open and one idle client must
//! never stall another. Every connection is bounded: 5 s to send its request, a 16 KiB
//! request head, GET and HEAD only, and paths that name a run directory and a regular file
//! inside it whose canonical path lies inside the runs directory (a symlink that leaves it is
//! a 404), nothing else.

use crate::escape::html;
use crate::page::verdict_class;
use crate::ReportError;
use serde_json::Value;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Connections served at once; past it a new connection is closed at once. Each costs a
/// thread for at most its timeouts (5 s to read the request, 30 s per write).
pub const MAX_CONNECTIONS: usize = 64;

/// One run as the index lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSummary {
    /// Directory name.
    pub name: String,
    /// `YYYY-MM-DD HH:MM:SS UTC` from a `YYYYMMDDTHHMMSSZ` name, else empty.
    pub date: String,
    /// `valid`, `invalid`, `unknown`, or `no results` when `results.json` is missing.
    pub verdict: String,
    /// Target system.
    pub target: String,
    /// Workload.
    pub workload: String,
    /// Faults.
    pub faults: String,
    /// Operations.
    pub operations: Option<u64>,
    /// Whether a report can be shown (written, or derivable from the history).
    pub has_report: bool,
}

fn date_of(name: &str) -> String {
    let b = name.as_bytes();
    let digits = |r: std::ops::Range<usize>| {
        b.get(r.clone())
            .is_some_and(|s| s.iter().all(u8::is_ascii_digit))
    };
    if b.len() >= 16 && digits(0..8) && b[8] == b'T' && digits(9..15) && b[15] == b'Z' {
        format!(
            "{}-{}-{} {}:{}:{} UTC",
            &name[0..4],
            &name[4..6],
            &name[6..8],
            &name[9..11],
            &name[11..13],
            &name[13..15]
        )
    } else {
        String::new()
    }
}

/// Lists the runs under `runs`, newest first (by name: names are timestamps).
pub fn list_runs(runs: &Path) -> Vec<RunSummary> {
    let Ok(entries) = std::fs::read_dir(runs) else {
        return Vec::new();
    };
    let mut out: Vec<RunSummary> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter(|n| !n.starts_with('.'))
        .map(|name| {
            let dir = runs.join(&name);
            let results: Option<Value> = std::fs::read_to_string(dir.join("results.json"))
                .ok()
                .and_then(|t| serde_json::from_str(&t).ok());
            let r = results.as_ref();
            let field = |k: &str| {
                r.and_then(|r| r[k].as_str())
                    .unwrap_or_default()
                    .to_string()
            };
            RunSummary {
                date: date_of(&name),
                verdict: if r.is_some() {
                    field("verdict")
                } else {
                    "no results".to_string()
                },
                target: field("target"),
                workload: field("workload"),
                faults: field("faults"),
                operations: r.and_then(|r| r["stats"]["operations"].as_u64()),
                has_report: dir.join("report.html").is_file()
                    || (r.is_some() && dir.join("history.jsonl").is_file()),
                name,
            }
        })
        .collect();
    out.sort_by(|a, b| b.name.cmp(&a.name));
    out
}

/// The index page for the runs under `runs`.
pub fn index_page(runs: &Path) -> String {
    let list = list_runs(runs);
    let latest = std::fs::read_link(runs.join("latest"))
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()));
    let mut s = String::new();
    let _ = write!(
        s,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>nemesis runs</title>\
         <style>{}</style></head><body><header><h1>Runs</h1><p class=\"sub\">{} runs in {}</p>\
         </header><section><table><tr><th>run</th><th>date</th><th>verdict</th><th>target</th>\
         <th>workload</th><th>faults</th><th>operations</th><th>files</th></tr>",
        include_str!("../assets/report.css"),
        list.len(),
        html(&runs.display().to_string())
    );
    for r in &list {
        let name = html(&r.name);
        let report = if r.has_report {
            format!("<a href=\"/runs/{name}/report.html\">{name}</a>")
        } else {
            name.clone()
        };
        let _ = write!(
            s,
            "<tr><td>{report}{}</td><td>{}</td><td><span class=\"badge small {}\">{}</span></td>\
             <td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><a href=\"/runs/{name}/\">files</a></td></tr>",
            if latest.as_deref() == Some(r.name.as_str()) { " <i>(latest)</i>" } else { "" },
            html(&r.date),
            verdict_class(&r.verdict),
            html(&r.verdict),
            html(&r.target),
            html(&r.workload),
            html(&r.faults),
            r.operations.map(|o| o.to_string()).unwrap_or_default(),
        );
    }
    s.push_str("</table></section></body></html>\n");
    s
}

/// Serves the run browser for `runs` on `addr` (a loopback address) until the process is
/// interrupted (Ctrl-C).
pub fn serve(runs: &Path, addr: SocketAddr) -> Result<(), ReportError> {
    if !addr.ip().is_loopback() {
        return Err(ReportError::NotLoopback(addr));
    }
    let listener = TcpListener::bind(addr).map_err(|source| ReportError::Io {
        path: PathBuf::from(addr.to_string()),
        source,
    })?;
    let local = listener.local_addr().unwrap_or(addr);
    println!(
        "serving the runs in {} on http://{local}/ (Ctrl-C stops)",
        runs.display()
    );
    serve_on(listener, runs, &AtomicBool::new(false))
}

/// Serves on a bound loopback listener until `stop` is set (checked every 50 ms).
pub fn serve_on(listener: TcpListener, runs: &Path, stop: &AtomicBool) -> Result<(), ReportError> {
    let local = listener.local_addr().map_err(|source| ReportError::Io {
        path: PathBuf::from("listener"),
        source,
    })?;
    if !local.ip().is_loopback() {
        return Err(ReportError::NotLoopback(local));
    }
    listener
        .set_nonblocking(true)
        .map_err(|source| ReportError::Io {
            path: PathBuf::from(local.to_string()),
            source,
        })?;
    let runs: Arc<Path> = Arc::from(runs);
    let live = Arc::new(AtomicUsize::new(0));
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, _)) => {
                if live.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
                    live.fetch_sub(1, Ordering::SeqCst);
                    continue;
                }
                let (runs, done) = (runs.clone(), live.clone());
                // A client that misbehaves costs its own thread at most its timeouts; it
                // never stops or stalls the server.
                let spawned =
                    std::thread::Builder::new()
                        .name("serve-conn".into())
                        .spawn(move || {
                            let _ = handle(stream, &runs);
                            done.fetch_sub(1, Ordering::SeqCst);
                        });
                if spawned.is_err() {
                    live.fetch_sub(1, Ordering::SeqCst);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
    Ok(())
}

struct Response {
    status: &'static str,
    kind: &'static str,
    body: Body,
}

enum Body {
    Bytes(Vec<u8>),
    File(std::fs::File, u64),
}

fn text(status: &'static str, msg: &str) -> Response {
    Response {
        status,
        kind: "text/plain; charset=utf-8",
        body: Body::Bytes(msg.as_bytes().to_vec()),
    }
}

fn handle(stream: TcpStream, runs: &Path) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.set_write_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(stream.try_clone()?).take(16 * 1024);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    // Read the rest of the head so the client sees a clean close.
    let mut rest = String::new();
    while reader.read_line(&mut rest)? > 2 {
        rest.clear();
    }
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let resp = if method != "GET" && method != "HEAD" {
        text("405 Method Not Allowed", "only GET and HEAD")
    } else {
        route(target, runs)
    };
    respond(stream, resp, method == "HEAD")
}

fn respond(mut stream: TcpStream, resp: Response, head_only: bool) -> std::io::Result<()> {
    let len = match &resp.body {
        Body::Bytes(b) => b.len() as u64,
        Body::File(_, n) => *n,
    };
    write!(
        stream,
        "HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {len}\r\nConnection: close\r\n\
         Cache-Control: no-store\r\n\r\n",
        resp.status, resp.kind
    )?;
    if !head_only {
        match resp.body {
            Body::Bytes(b) => stream.write_all(&b)?,
            Body::File(mut f, _) => {
                std::io::copy(&mut f, &mut stream)?;
            }
        }
    }
    stream.flush()
}

/// A path segment that names an entry directly inside a directory: no separators, no
/// `.`/`..`, no hidden files, no percent-encoding (run and file names never need it).
fn plain_name(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('.')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit_once('.').map(|(_, e)| e) {
        Some("html") => "text/html; charset=utf-8",
        Some("json") => "application/json",
        _ => "text/plain; charset=utf-8",
    }
}

fn route(target: &str, runs: &Path) -> Response {
    let path = target.split(['?', '#']).next().unwrap_or("");
    if path == "/" {
        return Response {
            status: "200 OK",
            kind: "text/html; charset=utf-8",
            body: Body::Bytes(index_page(runs).into_bytes()),
        };
    }
    let Some(rest) = path.strip_prefix("/runs/") else {
        return text("404 Not Found", "not found");
    };
    let (run, file) = rest.split_once('/').unwrap_or((rest, ""));
    if !plain_name(run) || !(file.is_empty() || plain_name(file)) {
        return text("404 Not Found", "not found");
    }
    // Canonical paths from here on: a run or file name may be a symlink (`latest` is one),
    // and only what resolves inside the runs directory is served.
    let Some(dir) = inside(runs, &runs.join(run)).filter(|d| d.is_dir()) else {
        return text("404 Not Found", "no such run");
    };
    if file.is_empty() {
        return listing(&dir, run);
    }
    let p = dir.join(file);
    let inputs_inside = ["results.json", "history.jsonl"].iter().all(|f| {
        let q = dir.join(f);
        !q.exists() || inside(runs, &q).is_some()
    });
    if file == "report.html" && !p.exists() && inputs_inside {
        // Runs recorded before reports existed: draw it now from their history.
        return match crate::render_run_dir(&dir) {
            Ok(page) => Response {
                status: "200 OK",
                kind: "text/html; charset=utf-8",
                body: Body::Bytes(page.into_bytes()),
            },
            Err(e) => text(
                "500 Internal Server Error",
                &format!("cannot draw the report: {e}"),
            ),
        };
    }
    let Some(p) = inside(runs, &p) else {
        return text("404 Not Found", "no such file");
    };
    match std::fs::File::open(&p) {
        Ok(f) if f.metadata().is_ok_and(|m| m.is_file()) => {
            let len = f.metadata().map(|m| m.len()).unwrap_or(0);
            Response {
                status: "200 OK",
                kind: content_type(file),
                body: Body::File(f, len),
            }
        }
        _ => text("404 Not Found", "no such file"),
    }
}

/// The canonical form of `path` when it exists and lies inside the runs directory `runs`
/// (itself canonicalized, so a runs directory reached through a symlink still works).
fn inside(runs: &Path, path: &Path) -> Option<PathBuf> {
    let root = runs.canonicalize().ok()?;
    let real = path.canonicalize().ok()?;
    real.starts_with(&root).then_some(real)
}

fn listing(dir: &Path, run: &str) -> Response {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                .filter_map(|e| e.file_name().to_str().map(str::to_string))
                .filter(|n| plain_name(n))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    let mut s = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{0}</title>\
         <style>{1}</style></head><body><header><h1>Run {0}</h1><nav><a href=\"/\">all runs</a> · \
         <a href=\"report.html\">report</a></nav></header><section><ul>",
        html(run),
        include_str!("../assets/report.css")
    );
    for n in names {
        let n = html(&n);
        let _ = write!(s, "<li><a href=\"{n}\">{n}</a></li>");
    }
    s.push_str("</ul></section></body></html>\n");
    Response {
        status: "200 OK",
        kind: "text/html; charset=utf-8",
        body: Body::Bytes(s.into_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_from_run_names() {
        assert_eq!(date_of("20261126T234749Z"), "2026-11-26 23:47:49 UTC");
        assert_eq!(date_of("20261126T234749Z-2"), "2026-11-26 23:47:49 UTC");
        assert_eq!(date_of("my-run"), "");
    }

    #[test]
    fn names_that_could_leave_the_directory_are_refused() {
        for bad in ["..", ".", ".hidden", "a/b", "a%2fb", "", "a\\b", "x y"] {
            assert!(!plain_name(bad), "{bad}");
        }
        assert!(plain_name("20261126T234749Z-2") && plain_name("history.jsonl"));
    }
}
