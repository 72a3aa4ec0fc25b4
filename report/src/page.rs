//! Assembles the self-contained HTML page: header and verdicts, the canvases the script
//! draws, the counterexample tables, statistics and parameters, then the embedded data.

use crate::cex::Failure;
use crate::data::{self, Timeline, OP_FIELDS};
use crate::escape::{html, script_json};
use crate::series::{self, Series};
use histories::History;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write as _;

const CSS: &str = include_str!("../assets/report.css");
const JS: &str = include_str!("../assets/report.js");

/// A check and its verdict, one row of the verdict table.
#[derive(Debug, Clone)]
pub struct CheckRow {
    /// What was checked (`linearizability (kv model)`).
    pub name: String,
    /// Its verdict (`linearizable`, `not linearizable`, `unknown`, `valid`, `invalid`).
    pub verdict: String,
    /// A line of detail.
    pub detail: String,
}

/// Everything a page shows besides what it derives from the history.
#[derive(Debug, Clone, Default)]
pub struct PageInput {
    /// Page title.
    pub title: String,
    /// The overall verdict.
    pub verdict: String,
    /// One row per check.
    pub checks: Vec<CheckRow>,
    /// Keys that are not linearizable.
    pub failures: Vec<Failure>,
    /// Parameters, as name and value.
    pub params: Vec<(String, String)>,
    /// Extra tables (title, array of objects), e.g. a run's fault windows.
    pub tables: Vec<(String, Value)>,
    /// Free-text notes.
    pub notes: Vec<String>,
}

/// The JSON the page's script reads.
#[derive(Serialize)]
struct Data<'a> {
    timeline: &'a Timeline,
    series: &'a Series,
    cex: Vec<crate::cex::CexMarks>,
}

/// The CSS class of a verdict's badge.
pub fn verdict_class(v: &str) -> &'static str {
    match v {
        "linearizable" | "valid" | "ok" => "good",
        "not linearizable" | "not-linearizable" | "invalid" => "bad",
        _ => "unknown",
    }
}

/// Renders the page.
pub fn render(h: &History, input: &PageInput) -> String {
    let timeline = data::timeline(h);
    let series = series::series(&timeline);
    let data = Data {
        timeline: &timeline,
        series: &series,
        cex: input.failures.iter().filter_map(Failure::marks).collect(),
    };
    // Serializing plain structs of numbers and strings cannot fail; an empty object keeps
    // the page loadable if it ever did.
    let json = script_json(&data).unwrap_or_else(|_| "{}".to_string());
    let mut s = String::with_capacity(json.len() + 64 * 1024);
    let title = html(&input.title);
    let _ = write!(
        s,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title><style>{CSS}</style>\
         <script>{ERROR_HOOK}</script></head><body>\n"
    );
    header(&mut s, h, &timeline, input);
    checks(&mut s, input);
    panels(&mut s, &timeline, input);
    for (i, f) in input.failures.iter().enumerate() {
        failure(&mut s, i, f);
    }
    stats(&mut s, h, &timeline);
    params(&mut s, input);
    for (title, rows) in &input.tables {
        table_of_objects(&mut s, title, rows);
    }
    if !input.notes.is_empty() {
        s.push_str("<section><h2>Notes</h2><ul>");
        for n in &input.notes {
            let _ = write!(s, "<li>{}</li>", html(n));
        }
        s.push_str("</ul></section>");
    }
    let _ = write!(
        s,
        "<footer><span id=\"render-status\">not rendered: the page's script did not run</span>\
         </footer>\n<script type=\"application/json\" id=\"report-data\">{json}</script>\n\
         <script>{JS}</script>\n</body></html>\n"
    );
    s
}

/// Records script errors in the page itself, so that a headless browser's DOM dump shows
/// them (the browser test fails on any).
const ERROR_HOOK: &str = "window.reportErrors=[];\
function reportError(m){window.reportErrors.push(String(m));\
var e=document.getElementById('errors');if(e){e.hidden=false;\
var d=document.createElement('div');d.className='error';d.textContent=String(m);e.appendChild(d);\
e.dataset.count=String(window.reportErrors.length);}}\
window.addEventListener('error',function(e){reportError('Uncaught '+e.message);});\
window.addEventListener('unhandledrejection',function(e){reportError('Unhandled '+e.reason);});\
(function(){var c=console.error;console.error=function(){reportError('console error: '+\
Array.prototype.join.call(arguments,' '));c.apply(console,arguments);};})();";

fn header(s: &mut String, h: &History, t: &Timeline, input: &PageInput) {
    let duration = match t.unit {
        data::Unit::Us => format!("{:.1} s", t.t_end as f64 / 1e6),
        data::Unit::Event => format!("{} events (no times)", h.events.len()),
    };
    let _ = write!(
        s,
        "<header><h1>{}</h1><span class=\"badge {}\">{}</span>\
         <p class=\"sub\">{} operations by {} processes over {}; {} fault intervals</p>\
         <div id=\"errors\" data-count=\"0\" hidden></div>\
         <nav><a href=\"#timeline-panel\">timeline</a> · <a href=\"#perf\">latency and \
         throughput</a>{} · <a href=\"#stats\">statistics</a> · <a href=\"#params\">parameters</a></nav>\
         </header>",
        html(&input.title),
        verdict_class(&input.verdict),
        html(&input.verdict),
        h.operations.len(),
        t.lanes.len(),
        duration,
        t.faults.len(),
        if input.failures.is_empty() {
            String::new()
        } else {
            " · <a href=\"#cex-0\">counterexample</a>".to_string()
        }
    );
}

fn checks(s: &mut String, input: &PageInput) {
    s.push_str("<section id=\"checks\"><h2>Verdict per check</h2><table><tr><th>check</th><th>verdict</th><th>detail</th></tr>");
    for c in &input.checks {
        let _ = write!(
            s,
            "<tr><td>{}</td><td><span class=\"badge small {}\">{}</span></td><td>{}</td></tr>",
            html(&c.name),
            verdict_class(&c.verdict),
            html(&c.verdict),
            html(&c.detail)
        );
    }
    s.push_str("</table></section>\n");
}

fn panels(s: &mut String, t: &Timeline, input: &PageInput) {
    s.push_str(
        "<section id=\"timeline-panel\"><h2>Timeline</h2>\
         <p class=\"help\">One lane per process (when a process crashes with info, the worker's \
         next process continues in its lane); each operation is a bar from invocation to \
         completion. Scroll to zoom, drag to pan, double-click to reset; hover for details. \
         Shaded bands are faults.</p><div class=\"toolbar\"><label>key <select id=\"key-filter\">\
         <option value=\"-1\">all keys</option>",
    );
    // Every key is offered when there are few; otherwise the keys of counterexamples only,
    // since a select of thousands of keys is no help.
    let shown: Vec<usize> = if t.keys.len() <= 500 {
        (0..t.keys.len()).collect()
    } else {
        input
            .failures
            .iter()
            .filter_map(|f| t.keys.iter().position(|k| *k == f.key))
            .collect()
    };
    for k in shown {
        let _ = write!(s, "<option value=\"{k}\">{}</option>", html(&t.keys[k]));
    }
    s.push_str("</select></label><button id=\"reset\">reset zoom</button>");
    for (i, f) in input.failures.iter().enumerate() {
        if f.cex.is_some() {
            let _ = write!(
                s,
                "<button class=\"cex-focus\" data-cex=\"{i}\">show counterexample on key {}</button>",
                html(&f.key)
            );
        }
    }
    s.push_str(
        "<span class=\"legend\"><i class=\"ok\"></i>ok <i class=\"fail\"></i>fail \
         <i class=\"info\"></i>info / unknown <i class=\"cexop\"></i>cannot be linearized \
         <i class=\"conc\"></i>concurrent with it</span><span id=\"fault-legend\"></span></div>\
         <div class=\"canvas-wrap\" id=\"timeline-wrap\"><canvas id=\"timeline\"></canvas>\
         <div id=\"tip\" hidden></div></div></section>\n\
         <section id=\"perf\"><h2>Latency</h2><p class=\"help\">Each dot is an operation at its \
         invocation (the highest and lowest of each status per pixel column are kept); lines \
         are p50 and p99 of ok operations per bucket. Log scale.</p>\
         <div class=\"canvas-wrap\"><canvas id=\"latency\"></canvas></div>\
         <h2>Throughput</h2><p class=\"help\">Completions per second by outcome.</p>\
         <div class=\"canvas-wrap\"><canvas id=\"throughput\"></canvas></div></section>\n",
    );
}

fn failure(s: &mut String, i: usize, f: &Failure) {
    let _ = write!(
        s,
        "<section id=\"cex-{i}\" class=\"cex\"><h2>Counterexample: key {}</h2>",
        html(&f.key)
    );
    if let Some(c) = &f.cex {
        let line = |id: usize| match c.op(id) {
            Some(o) => format!("#{} process {} {}", o.id, o.process, o.describe()),
            None => format!("#{id}"),
        };
        let _ = write!(
            s,
            "<p>Operation <b class=\"cexop-text\">{}</b> cannot be linearized: no order of the \
             operations that respects real time and the model puts it before its completion. \
             Initial value <code>{}</code>.</p>",
            html(&line(c.op)),
            html(&data::show(&c.initial_state, 200))
        );
        if !c.concurrent.is_empty() {
            s.push_str("<p>Concurrent with it: ");
            let list: Vec<String> = c.concurrent.iter().map(|&id| html(&line(id))).collect();
            s.push_str(&list.join("; "));
            s.push_str("</p>");
        }
        for (n, lin) in c.linearizations.iter().enumerate() {
            let _ = write!(
                s,
                "<h3>Longest partial linearization{} ({} steps; {} completed operations had to \
                 be placed)</h3><div class=\"scroll\"><table class=\"lin\"><tr><th>step</th>\
                 <th>op</th><th>process</th><th>operation</th><th>status</th><th>value after</th></tr>\
                 <tr><td>start</td><td></td><td></td><td></td><td></td><td><code>{}</code></td></tr>",
                if c.linearizations.len() > 1 { format!(" {}", n + 1) } else { String::new() },
                lin.steps.len(),
                c.searched_ok_ops,
                html(&data::show(&c.initial_state, 200))
            );
            for (k, st) in lin.steps.iter().enumerate() {
                let (p, d, status) = match c.op(st.op) {
                    Some(o) => (o.process.to_string(), o.describe(), o.status.clone()),
                    None => (String::new(), String::new(), String::new()),
                };
                let _ = write!(
                    s,
                    "<tr><td>{}</td><td>#{}</td><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td></tr>",
                    k + 1,
                    st.op,
                    html(&p),
                    html(&d),
                    html(&status),
                    html(&data::show(&st.state_after, 200))
                );
            }
            s.push_str("</table></div>");
            if !lin.blocked.is_empty() {
                let _ = write!(
                    s,
                    "<p>Then the value is <code>{}</code>, and every operation that could come \
                     next is impossible:</p><ul>",
                    html(&data::show(&lin.final_state, 200))
                );
                for b in &lin.blocked {
                    let _ = write!(s, "<li>{}: {}</li>", html(&line(b.op)), html(&b.reason));
                }
                s.push_str("</ul>");
            }
        }
    }
    if !f.explanation.is_empty() {
        let _ = write!(
            s,
            "<details><summary>The checker's explanation as text</summary><pre>{}</pre></details>",
            html(&f.explanation)
        );
    }
    s.push_str("</section>\n");
}

fn fmt_lat(unit: data::Unit, v: i64) -> String {
    match unit {
        data::Unit::Us => format!("{:.2} ms", v as f64 / 1000.0),
        data::Unit::Event => format!("{v} ev"),
    }
}

fn stats(s: &mut String, h: &History, t: &Timeline) {
    // f -> ([ok, fail, info], ok latencies)
    let mut by_f: BTreeMap<&str, ([usize; 3], Vec<i64>)> = BTreeMap::new();
    for op in t.ops.chunks_exact(OP_FIELDS) {
        let e = by_f.entry(t.fs[op[4] as usize].as_str()).or_default();
        e.0[op[3] as usize] += 1;
        if op[3] == data::OK && op[2] >= 0 {
            e.1.push(op[2] - op[1]);
        }
    }
    let _ = write!(
        s,
        "<section id=\"stats\"><h2>Statistics</h2><p>{} operations, {} processes, {} keys, {} \
         events ({} by the nemesis).</p><table><tr><th>f</th><th>ok</th><th>fail</th><th>info</th>\
         <th>ok latency p50</th><th>p95</th><th>p99</th><th>max</th></tr>",
        h.operations.len(),
        t.lanes.len(),
        t.keys.len(),
        h.events.len(),
        h.events
            .iter()
            .filter(|e| e.process == histories::Process::Nemesis)
            .count()
    );
    let mut total = [0usize; 3];
    for (f, (c, lat)) in &mut by_f {
        lat.sort_unstable();
        let q = |p: f64| {
            if lat.is_empty() {
                "–".to_string()
            } else {
                fmt_lat(t.unit, series::quantile(lat, p))
            }
        };
        let _ = write!(
            s,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            html(f),
            c[0],
            c[1],
            c[2],
            q(0.5),
            q(0.95),
            q(0.99),
            q(1.0)
        );
        for i in 0..3 {
            total[i] += c[i];
        }
    }
    let _ = write!(
        s,
        "<tr class=\"total\"><td>all</td><td>{}</td><td>{}</td><td>{}</td><td colspan=\"4\">{}</td></tr></table></section>",
        total[0],
        total[1],
        total[2],
        match t.unit {
            data::Unit::Us if t.t_end > 0 =>
                format!("{:.1} ok operations per second", total[0] as f64 / (t.t_end as f64 / 1e6)),
            _ => String::new(),
        }
    );
}

fn params(s: &mut String, input: &PageInput) {
    s.push_str("<section id=\"params\"><h2>Parameters</h2><table>");
    for (k, v) in &input.params {
        let _ = write!(s, "<tr><th>{}</th><td>{}</td></tr>", html(k), html(v));
    }
    s.push_str("</table></section>\n");
}

/// A table from an array of JSON objects, columns from the first object's fields; at most
/// 500 rows.
fn table_of_objects(s: &mut String, title: &str, rows: &Value) {
    let Some(rows) = rows.as_array().filter(|r| !r.is_empty()) else {
        return;
    };
    let cols: Vec<String> = match rows[0].as_object() {
        Some(o) => o.keys().cloned().collect(),
        None => return,
    };
    let _ = write!(
        s,
        "<section><h2>{}</h2><div class=\"scroll\"><table><tr>",
        html(title)
    );
    for c in &cols {
        let _ = write!(s, "<th>{}</th>", html(c));
    }
    s.push_str("</tr>");
    for r in rows.iter().take(500) {
        s.push_str("<tr>");
        for c in &cols {
            let cell = match &r[c] {
                Value::String(v) => v.clone(),
                Value::Number(n) if n.is_f64() => format!("{:.3}", n.as_f64().unwrap_or(0.0)),
                Value::Null => String::new(),
                v => v.to_string(),
            };
            let _ = write!(s, "<td>{}</td>", html(&cell));
        }
        s.push_str("</tr>");
    }
    if rows.len() > 500 {
        let _ = write!(
            s,
            "<tr><td colspan=\"{}\">… {} more rows</td></tr>",
            cols.len(),
            rows.len() - 500
        );
    }
    s.push_str("</table></div></section>\n");
}
