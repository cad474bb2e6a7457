//! `cargo xtask bench [--quick]`: runs the benchmark suite (`crates/ownership-bench`),
//! turns its `BENCH <key> <value>` lines into a table of ratios against baselines measured
//! in the same run, prints it, and writes `docs/benchmarks.md` and
//! `docs/img/verify-growth.svg` (with `--quick`: `benchmarks.md` and `verify-growth.svg`
//! in `<target>/bench/`, so a quick run never rewrites the committed report). Nothing
//! here judges a number: the targets are shown beside the ratios, for a person to read.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::PathBuf;
use std::process::Command;

use plotters::prelude::IntoLogRange as _;

use crate::chart::{self, Axis, Series};
use crate::cmd::{self, Result};
use crate::postgres;

/// Growth points, in the order the suite measures them.
const GROWTH_SIZES: [u64; 4] = [1, 1_000, 100_000, 1_000_000];

type Results = BTreeMap<String, f64>;

pub fn run(args: &[String]) -> Result {
    let mut quick = false;
    for arg in args {
        match arg.as_str() {
            "--quick" => quick = true,
            other => return Err(format!("`bench` takes only `--quick`, got `{other}`")),
        }
    }
    let bindir = postgres::ensure_bindir()?;
    let mut command = cmd::cargo();
    command
        .args(["bench", "-p", "ownership-bench", "--bench", "suite"])
        .env(postgres::BINDIR_VAR, &bindir);
    if quick {
        command.env("OWNERSHIP_BENCH_QUICK", "1");
    }
    cmd::say(&format!("$ {}", cmd::display(&command)));
    let out = cmd::stdout_of(&mut command)?;
    let results = parse(&out);
    if results.is_empty() {
        return Err("the bench printed no `BENCH` lines".into());
    }
    let table = table(&results);
    cmd::say("");
    cmd::say(table.trim_end());
    // Only a full run refreshes the committed report: a quick run's numbers (smaller
    // sizes, fewer passes) go under the target directory, so it never dirties the tree.
    let (typed, markdown, svg, svg_link) = outputs(quick);
    if let Some(svg_dir) = svg.parent() {
        fs::create_dir_all(svg_dir)
            .map_err(|e| format!("could not create {}: {e}", svg_dir.display()))?;
    }
    // The soak section (`cargo xtask soak`) is not this run's: carry it over.
    let previous = fs::read_to_string(&markdown).unwrap_or_default();
    let mut report = document(typed, &results, &table, svg_link);
    if let Some(soak) = crate::soak::section_of(&previous) {
        report.push('\n');
        report.push_str(soak);
        report.push('\n');
    }
    fs::write(&markdown, report)
        .map_err(|e| format!("could not write {}: {e}", markdown.display()))?;
    fs::write(&svg, growth_svg(&results)?)
        .map_err(|e| format!("could not write {}: {e}", svg.display()))?;
    cmd::say(&format!(
        "wrote {} and {}",
        cmd::relative(&markdown).display(),
        cmd::relative(&svg).display()
    ));
    if quick {
        cmd::say("(a quick run; only `cargo xtask bench` rewrites docs/benchmarks.md)");
    }
    Ok(())
}

/// What to call the run, where its report and chart go, and the chart's link from the
/// report. Only a full run writes into `docs/`.
fn outputs(quick: bool) -> (&'static str, PathBuf, PathBuf, &'static str) {
    let (typed, dir, svg_link) = if quick {
        (
            "cargo xtask bench --quick",
            cmd::target_dir().join("bench"),
            "verify-growth.svg",
        )
    } else {
        (
            "cargo xtask bench",
            cmd::workspace_root().join("docs"),
            "img/verify-growth.svg",
        )
    };
    (
        typed,
        dir.join("benchmarks.md"),
        dir.join(svg_link),
        svg_link,
    )
}

/// `BENCH key value` lines; anything else is ignored.
fn parse(out: &str) -> Results {
    out.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            match (words.next(), words.next(), words.next()) {
                (Some("BENCH"), Some(key), Some(value)) => {
                    value.parse().ok().map(|v| (key.to_owned(), v))
                }
                _ => None,
            }
        })
        .collect()
}

/// A duration in nanoseconds, in the unit that reads best.
fn time(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{ns:.0} ns")
    }
}

fn ratio(r: f64) -> String {
    if r >= 100.0 {
        format!("{r:.0}×")
    } else {
        format!("{r:.2}×")
    }
}

/// One row: what, ours, baseline, ratio, target.
struct Row([String; 5]);

fn rows(r: &Results) -> Vec<Row> {
    let get = |k: &str| r.get(k).copied();
    let missing = || "not measured".to_owned();
    let mut rows = Vec::new();
    let mut push = |cells: [&str; 5]| rows.push(Row(cells.map(str::to_owned)));

    match (get("warm.ours_ns"), get("warm.floor_ns")) {
        (Some(o), Some(f)) => push([
            "Warm authenticate (100k tokens cached, random order)",
            &time(o),
            &format!("{} (SHA-256 + std HashMap)", time(f)),
            &ratio(o / f),
            "≤ 2×",
        ]),
        _ => push(["Warm authenticate", &missing(), "", "", "≤ 2×"]),
    }
    if let (Some(c), Some(l), Some(f)) = (
        get("warm.check_digest_ns"),
        get("warm.lookup_ns"),
        get("warm.floor_ns"),
    ) {
        push([
            "… of which: format check + SHA-256 / cache lookup by digest",
            &format!("{} / {}", time(c), time(l)),
            &time(f),
            &format!("{} / {}", ratio(c / f), ratio(l / f)),
            "—",
        ]);
    }

    let top = GROWTH_SIZES
        .iter()
        .rev()
        .copied()
        .find(|n| r.contains_key(&format!("growth.ours_ns.{n}")));
    match (top, get("growth.ours_ns.1")) {
        (Some(n), Some(one)) => {
            let ours = get(&format!("growth.ours_ns.{n}")).unwrap_or(f64::NAN);
            let scan_top = get(&format!("growth.scan_ns.{n}")).unwrap_or(f64::NAN);
            let scan_one = get("growth.scan_ns.1").unwrap_or(f64::NAN);
            push([
                &format!(
                    "Verify growth, {} / 1 stored tokens (libSQL, uncached)",
                    count(n)
                ),
                &format!("{} → {}", time(one), time(ours)),
                &format!(
                    "scan: {} → {} ({})",
                    time(scan_one),
                    time(scan_top),
                    ratio(scan_top / scan_one)
                ),
                &ratio(ours / one),
                "≤ 1.5× (1M / 1)",
            ]);
        }
        _ => push(["Verify growth", &missing(), "", "", "≤ 1.5× (1M / 1)"]),
    }

    for (name, label) in [("libsql", "libSQL"), ("postgres", "PostgreSQL")] {
        match (
            get(&format!("cold.{name}.ours_ns")),
            get(&format!("cold.{name}.raw_ns")),
        ) {
            (Some(o), Some(b)) => push([
                &format!("Cold authenticate (cache miss), {label}"),
                &time(o),
                &format!("{} (point SELECT by primary key)", time(b)),
                &ratio(o / b),
                "≤ 1.5×",
            ]),
            _ => push([
                &format!("Cold authenticate, {label}"),
                &missing(),
                "",
                "",
                "≤ 1.5×",
            ]),
        }
    }

    match (get("http.ours_rps"), get("http.bare_rps")) {
        (Some(o), Some(b)) => push([
            &format!(
                "HTTP `GET /v1/me`, {} connections",
                get("http.concurrency").unwrap_or(0.0)
            ),
            &format!(
                "{o:.0} req/s, {} errors",
                get("http.errors").unwrap_or(f64::NAN)
            ),
            &format!("{b:.0} req/s (same JSON and layers, no auth)"),
            &ratio(o / b),
            "≥ 0.85×",
        ]),
        _ => push(["HTTP `GET /v1/me`", &missing(), "", "", "≥ 0.85×"]),
    }

    for (name, label) in [("libsql", "libSQL file"), ("postgres", "PostgreSQL")] {
        match (
            get(&format!("pairing.{name}.per_s")),
            get(&format!("pairing.{name}.p99_ms")),
        ) {
            (Some(s), Some(p)) => push([
                &format!("Pairing request + redeem, 64 clients, {label}"),
                &format!("{s:.0} redemptions/s, p99 {p:.1} ms"),
                "—",
                "—",
                "—",
            ]),
            _ => push([&format!("Pairing, {label}"), &missing(), "", "", "—"]),
        }
    }

    match (
        get("memory.entries"),
        get("memory.ours_bytes_per_entry"),
        get("memory.map_bytes_per_entry"),
    ) {
        (Some(n), Some(o), Some(m)) => push([
            &format!(
                "Memory, {} cached principals (resident bytes per entry)",
                count(n as u64)
            ),
            &format!("{o:.0} B"),
            &format!("{m:.0} B (std HashMap of digest → principal struct)"),
            &ratio(o / m),
            "—",
        ]),
        _ => push(["Memory", &missing(), "", "", "—"]),
    }
    rows
}

fn count(n: u64) -> String {
    match n {
        1_000_000 => "1M".into(),
        100_000 => "100k".into(),
        10_000 => "10k".into(),
        1_000 => "1k".into(),
        n => n.to_string(),
    }
}

/// The results as a Markdown table.
fn table(r: &Results) -> String {
    let mut out = String::from(
        "| Measurement | Ours | Baseline (same run) | Ratio | Target |\n|---|---|---|---|---|\n",
    );
    for Row(cells) in rows(r) {
        let _ = writeln!(out, "| {} |", cells.join(" | "));
    }
    out
}

/// `nproc` and the CPU model, as the machine reports them.
fn machine() -> String {
    let nproc = Command::new("nproc")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "?".into());
    let model = fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let kernel = Command::new("uname")
        .arg("-sr")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    format!("{nproc} CPUs (`nproc`), {model}; {kernel}")
}

fn document(typed: &str, r: &Results, table: &str, svg_link: &str) -> String {
    let mut growth = String::from(
        "| Tokens stored | libSQL lookup by digest | Constant-time scan |\n|---|---|---|\n",
    );
    for n in GROWTH_SIZES {
        if let (Some(o), Some(s)) = (
            r.get(&format!("growth.ours_ns.{n}")),
            r.get(&format!("growth.scan_ns.{n}")),
        ) {
            let _ = writeln!(growth, "| {} | {} | {} |", count(n), time(*o), time(*s));
        }
    }
    format!(
        "# Benchmarks\n\
         \n\
         Generated by `{typed}` (do not edit by hand: run it again). Every number is\n\
         paired with a baseline measured in the same run on the same machine, and the\n\
         ratio is what to compare between machines and runs. Benchmarks never assert\n\
         timings; the targets are for people to read.\n\
         \n\
         - Machine: {machine}\n\
         - Command: `{typed}` (runs `cargo bench -p ownership-bench --bench suite`{quick_env})\n\
         - Client and server share the machine's cores in the HTTP and pairing rows.\n\
         \n\
         ## Results\n\
         \n\
         {table}\n\
         ## How each row is measured\n\
         \n\
         1. **Warm authenticate**: `ownership_core::service::authenticate` (classify the\n\
            token, SHA-256 it, look it up) on `Cached<LibsqlStore>` with 100k distinct\n\
            tokens cached, looked up in a shuffled order, every lookup a hit. Baseline: one\n\
            SHA-256 of the token and one lookup in a std `HashMap` of the same 100k digests.\n\
            Best mean of several passes over all 100k tokens. The breakdown row times the\n\
            two halves apart: the offline format check plus SHA-256, and the cache lookup by\n\
            a digest computed beforehand (through the port).\n\
         2. **Verify growth**: `LibsqlStore::authenticate` by digest, no cache, on an\n\
            in-memory database holding 1, 1k, 100k (and 1M in the full run) tokens. Baseline:\n\
            a static authenticator's constant-time linear scan (`subtle`) over the same\n\
            number of digests. The ratio is ours at the largest size over ours at one token.\n\
         3. **Cold authenticate**: the store's lookup by digest (cache miss path) with 1k\n\
            tokens stored, against a raw point `SELECT` of a token row by primary key through\n\
            the same driver and connection (libSQL: the store's own database thread;\n\
            PostgreSQL: the store's pool, on a throwaway local cluster), in alternating\n\
            batches of 100; the best batch of each side.\n\
         4. **HTTP**: requests per second of `GET /v1/me` with a bearer token on the real\n\
            server (`ownership_cli::server`, libSQL file, cache on), against the same JSON\n\
            from a handler without the auth extractor under the same layers\n\
            (`ownership_http::standard_layers`: request id, tracing, timeout, body limit,\n\
            JSON errors) and the same default logging (`info`, JSON, to a sink), both in the\n\
            same process over loopback, driven by the same keep-alive load generator (fixed\n\
            concurrency, fixed duration after a warm-up), in alternating rounds with the\n\
            order swapped each round; the best round of each side. Errors are non-200\n\
            answers.\n\
         5. **Pairing**: 64 concurrent clients, each repeatedly requesting a pairing code\n\
            (service token scope) and redeeming it (owner scope) through the store API;\n\
            throughput of completed redemptions and the 99th percentile of one\n\
            request + redeem round.\n\
         6. **Memory**: growth of the resident set while 100k (quick) or 1M (full)\n\
            principals are read from an in-memory libSQL store into the cache, per entry,\n\
            against a std `HashMap` from digest bytes to the same principal struct filled\n\
            from the same store; each side in a fresh process of its own, so neither reuses\n\
            memory freed earlier. The cache keeps two maps (digest → principal, token id →\n\
            digest for revocation), an eviction queue and a deadline and last-use stamp per\n\
            entry.\n\
         \n\
         ## Verify cost against stored tokens\n\
         \n\
         ![verify cost against the number of stored tokens]({svg_link})\n\
         \n\
         {growth}",
        machine = machine(),
        quick_env = if typed.ends_with("--quick") {
            " with `OWNERSHIP_BENCH_QUICK=1`"
        } else {
            ""
        },
    )
}

/// An axis label for 10^`exponent` nanoseconds: `100 ns`, `1 µs`, `10 ms`.
fn decade(exponent: f64) -> String {
    let (unit, shift) = match exponent {
        e if e >= 6.0 => ("ms", 6.0),
        e if e >= 3.0 => ("µs", 3.0),
        _ => ("ns", 0.0),
    };
    format!("{} {unit}", 10_f64.powf(exponent - shift))
}

/// A log–log chart of verify cost (ns) against tokens stored: ours and the scan.
fn growth_svg(r: &Results) -> Result<String> {
    let series = |prefix: &str| -> Vec<(f64, f64)> {
        GROWTH_SIZES
            .iter()
            .filter_map(|n| {
                r.get(&format!("{prefix}.{n}"))
                    .map(|v| (*n as f64, v.max(1.0)))
            })
            .collect()
    };
    let ours = series("growth.ours_ns");
    let scan = series("growth.scan_ns");
    let ys: Vec<f64> = ours.iter().chain(&scan).map(|p| p.1).collect();
    let y_lo = ys
        .iter()
        .copied()
        .fold(f64::INFINITY, f64::min)
        .log10()
        .floor();
    let y_hi = ys
        .iter()
        .copied()
        .fold(f64::NEG_INFINITY, f64::max)
        .log10()
        .ceil();
    let (y_lo, y_hi) = if y_lo.is_finite() && y_hi > y_lo {
        (y_lo, y_hi)
    } else {
        (1.0, 8.0)
    };
    let decades = |lo: f64, hi: f64| -> Vec<f64> {
        let mut points = Vec::new();
        let mut e = lo;
        while e <= hi {
            points.push(10_f64.powf(e));
            e += 1.0;
        }
        points
    };
    let x = Axis {
        label: "tokens stored",
        range: (1.0..1e6).log_scale(),
        ticks: decades(0.0, 6.0),
        format: &|v| count(v.round() as u64),
    };
    let y = Axis {
        label: "time per verify",
        range: (10_f64.powf(y_lo)..10_f64.powf(y_hi)).log_scale(),
        ticks: decades(y_lo, y_hi),
        format: &|v| decade(v.log10().round()),
    };
    chart::svg((640, 400), 1, |panels| {
        let Some(panel) = panels.first() else {
            return Ok(());
        };
        chart::line_chart(
            panel,
            "Verify cost against tokens stored (log–log)",
            x,
            y,
            &[
                Series {
                    label: "ours: libSQL lookup by digest (uncached)",
                    colour: chart::palette(0),
                    points: ours,
                },
                Series {
                    label: "baseline: constant-time scan of all digests",
                    colour: chart::palette(3),
                    points: scan,
                },
            ],
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_full_run_writes_into_docs() {
        let target = cmd::target_dir();
        let (typed, markdown, svg, link) = outputs(true);
        assert_eq!(typed, "cargo xtask bench --quick");
        assert_eq!(markdown, target.join("bench/benchmarks.md"));
        assert_eq!(svg, target.join("bench/verify-growth.svg"));
        assert_eq!(markdown.parent().map(|dir| dir.join(link)), Some(svg));

        let docs = cmd::workspace_root().join("docs");
        let (typed, markdown, svg, link) = outputs(false);
        assert_eq!(typed, "cargo xtask bench");
        assert_eq!(markdown, docs.join("benchmarks.md"));
        assert_eq!(svg, docs.join("img/verify-growth.svg"));
        assert_eq!(markdown.parent().map(|dir| dir.join(link)), Some(svg));
    }

    #[test]
    fn parses_bench_lines_and_ignores_the_rest() {
        let r = parse("noise\nBENCH warm.ratio 1.500\nBENCH bad\nBENCH x.y 2\n");
        assert_eq!(r.len(), 2);
        assert_eq!(r.get("warm.ratio"), Some(&1.5));
    }

    #[test]
    fn table_and_chart_render_with_partial_results() {
        let mut r = Results::new();
        r.insert("growth.ours_ns.1".into(), 2_000.0);
        r.insert("growth.scan_ns.1".into(), 50.0);
        r.insert("growth.ours_ns.1000".into(), 2_500.0);
        r.insert("growth.scan_ns.1000".into(), 50_000.0);
        let t = table(&r);
        assert!(t.contains("1.25×"), "{t}");
        assert!(t.contains("not measured"), "{t}");
        let svg = growth_svg(&r).unwrap();
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert_eq!(svg.matches("<circle").count(), 4);
    }
}
