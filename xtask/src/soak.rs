//! `cargo xtask soak [--minutes N] [--store libsql|postgres|both] [--rate OPS]
//! [--report-only]`: mixed
//! load against the real server (release build) per store, by the `soak` bench of
//! `crates/ownership-bench` (which says what the load is and what it checks). It writes
//! `soak-<store>.csv` (one row a minute) and `soak-<store>.summary` under
//! `<target>/soak/`, then a chart of resident memory and p99 latencies per store and a
//! table per store. A run of 10 minutes or more puts them in `docs/img/soak-<store>.svg`
//! and the soak section of `docs/benchmarks.md` (between its `<!-- soak-<store> -->`
//! markers, leaving the rest of the section, such as notes written by hand, alone); a
//! shorter run writes `soak-<store>.svg` and `soak.md` under `<target>/soak/` only. It fails
//! when an operation failed, the audit chain is broken or an acknowledged mutation is
//! lost; it never judges a timing. `--report-only` redraws the chart and the table from the
//! rows of an earlier run (with the `--minutes` it had).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::Path;

use crate::chart::{self, Axis, Series};
use crate::cmd::{self, Result};
use crate::postgres;

/// The operations the soak bench reports, in its CSV's order, with their labels.
const OPS: [(&str, &str); 7] = [
    ("auth", "authenticate (`GET /v1/me`)"),
    ("pair_request", "pairing request"),
    ("pair_redeem", "pairing redeem"),
    ("mint", "token mint"),
    ("rotate", "token rotate"),
    ("revoke", "token revoke"),
    ("stream_open", "event stream open"),
];

/// Runs of at least this many minutes write into `docs/`.
const DOCS_MINUTES: u64 = 10;

struct Args {
    minutes: u64,
    stores: Vec<&'static str>,
    rate: Option<String>,
    /// Only chart and tabulate the rows a run left under `<target>/soak/`.
    report_only: bool,
}

fn parse_args(args: &[String]) -> Result<Args> {
    let mut parsed = Args {
        minutes: DOCS_MINUTES,
        stores: vec!["libsql", "postgres"],
        rate: None,
        report_only: false,
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = || {
            it.next()
                .cloned()
                .ok_or_else(|| format!("`{arg}` needs a value"))
        };
        match arg.as_str() {
            "--minutes" => {
                parsed.minutes = value()?
                    .parse()
                    .ok()
                    .filter(|m| *m >= 1)
                    .ok_or("`--minutes` takes a whole number of 1 or more")?;
            }
            "--store" => {
                parsed.stores = match value()?.as_str() {
                    "libsql" => vec!["libsql"],
                    "postgres" => vec!["postgres"],
                    "both" => vec!["libsql", "postgres"],
                    other => {
                        return Err(format!(
                            "`--store` is libsql, postgres or both, not `{other}`"
                        ));
                    }
                };
            }
            "--rate" => {
                let rate = value()?;
                if !rate.parse::<f64>().is_ok_and(|r| r > 0.0) {
                    return Err(format!(
                        "`--rate` takes operations per second, not `{rate}`"
                    ));
                }
                parsed.rate = Some(rate);
            }
            "--report-only" => parsed.report_only = true,
            other => {
                return Err(format!(
                    "`soak` takes --minutes N, --store libsql|postgres|both, --rate OPS and --report-only, got `{other}`"
                ));
            }
        }
    }
    Ok(parsed)
}

pub fn run(args: &[String]) -> Result {
    let args = parse_args(args)?;
    let bindir = postgres::ensure_bindir()?;
    let out = cmd::target_dir().join("soak");
    fs::create_dir_all(&out).map_err(|e| format!("could not create {}: {e}", out.display()))?;
    if args.report_only {
        for store in &args.stores {
            report(&out, store, args.minutes)?;
        }
        return Ok(());
    }
    let soak = build_bench()?;
    let mut failed = Vec::new();
    for store in &args.stores {
        let mut command = std::process::Command::new(&soak);
        command
            .current_dir(cmd::workspace_root())
            .env(postgres::BINDIR_VAR, &bindir)
            .env("OWNERSHIP_SOAK_MINUTES", args.minutes.to_string())
            .env("OWNERSHIP_SOAK_STORE", store)
            .env("OWNERSHIP_SOAK_DIR", &out);
        if let Some(rate) = &args.rate {
            command.env("OWNERSHIP_SOAK_RATE", rate);
        }
        if let Err(e) = cmd::run(&mut command) {
            failed.push(format!("{store}: {e}"));
        }
        // A failed run still leaves its rows: chart and tabulate what there is.
        if let Err(e) = report(&out, store, args.minutes) {
            failed.push(format!("{store}: {e}"));
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(failed.join("; "))
    }
}

/// Builds the soak bench (bench profile) and returns its executable. It is run directly,
/// not through `cargo bench`, so that the release build of the server it asks cargo for
/// sees the same environment as this build and neither undoes the other's build-script
/// fingerprints (a second `cargo bench` per store rebuilt the TLS stack twice).
fn build_bench() -> Result<std::path::PathBuf> {
    let mut command = cmd::cargo();
    command.args([
        "bench",
        "-p",
        "ownership-bench",
        "--bench",
        "soak",
        "--no-run",
        "--message-format=json-render-diagnostics",
    ]);
    cmd::say(&format!("$ {}", cmd::display(&command)));
    let out = cmd::stdout_of(&mut command)?;
    executable_of(&out, "soak").ok_or_else(|| "cargo reported no soak bench executable".into())
}

/// The `executable` of the compiler artifact named `name` in cargo's JSON messages.
pub(crate) fn executable_of(messages: &str, name: &str) -> Option<std::path::PathBuf> {
    let target = format!("\"name\":\"{name}\"");
    messages
        .lines()
        .filter(|l| l.contains("\"reason\":\"compiler-artifact\"") && l.contains(&target))
        .find_map(|l| {
            let (_, rest) = l.split_once("\"executable\":\"")?;
            let (path, _) = rest.split_once('"')?;
            Some(std::path::PathBuf::from(path))
        })
}

/// The CSV's rows, as maps from column to value.
fn read_csv(path: &Path) -> Result<Vec<BTreeMap<String, f64>>> {
    let text =
        fs::read_to_string(path).map_err(|e| format!("could not read {}: {e}", path.display()))?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
    Ok(lines
        .map(|line| {
            header
                .iter()
                .zip(line.split(','))
                .map(|(k, v)| ((*k).to_owned(), v.parse().unwrap_or(f64::NAN)))
                .collect()
        })
        .collect())
}

fn read_summary(path: &Path) -> BTreeMap<String, String> {
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn store_label(store: &str) -> &'static str {
    if store == "postgres" {
        "PostgreSQL (throwaway local cluster)"
    } else {
        "libSQL file"
    }
}

/// Writes the chart and the table of one store's run.
fn report(out: &Path, store: &str, minutes: u64) -> Result {
    let rows = read_csv(&out.join(format!("soak-{store}.csv")))?;
    let summary = read_summary(&out.join(format!("soak-{store}.summary")));
    let to_docs = writes_docs(minutes);
    let (svg_path, link) = if to_docs {
        (
            cmd::workspace_root().join(format!("docs/img/soak-{store}.svg")),
            format!("img/soak-{store}.svg"),
        )
    } else {
        (
            out.join(format!("soak-{store}.svg")),
            format!("soak-{store}.svg"),
        )
    };
    fs::write(&svg_path, chart(store, &rows)?)
        .map_err(|e| format!("could not write {}: {e}", svg_path.display()))?;
    let section = section(store, &rows, &summary, &link);
    let markdown = if to_docs {
        cmd::workspace_root().join("docs/benchmarks.md")
    } else {
        out.join("soak.md")
    };
    let existing = fs::read_to_string(&markdown).unwrap_or_default();
    fs::write(&markdown, with_store_block(&existing, store, &section))
        .map_err(|e| format!("could not write {}: {e}", markdown.display()))?;
    cmd::say(&section);
    cmd::say(&format!(
        "wrote {} and {}",
        cmd::relative(&svg_path).display(),
        cmd::relative(&markdown).display()
    ));
    Ok(())
}

/// Resident memory growth from the end of minute 1 to the end of the run, in percent.
fn growth_after_first_minute(rows: &[BTreeMap<String, f64>]) -> Option<f64> {
    let first = rows.iter().find(|r| r.get("minute") == Some(&1.0))?;
    let last = rows.last()?;
    let (a, b) = (first.get("rss_kib")?, last.get("rss_kib")?);
    (*a > 0.0).then(|| (b - a) / a * 100.0)
}

fn section(
    store: &str,
    rows: &[BTreeMap<String, f64>],
    summary: &BTreeMap<String, String>,
    link: &str,
) -> String {
    let get = |k: &str| summary.get(k).map_or("?", String::as_str);
    let mut s = format!(
        "### {label}\n\n\
         {minutes} min at about {rate} operations/s over {ids} identities: {ops} operations, \
         {errors} errors; {minted} tokens minted and {revoked} revoked (every one found \
         afterwards: {lost} lost); {hooks} webhook deliveries received; audit chain \
         {chain}.",
        label = store_label(store),
        minutes = get("minutes"),
        rate = get("rate"),
        ids = get("identities"),
        ops = get("ops"),
        errors = get("errors"),
        minted = get("minted"),
        revoked = get("revoked"),
        lost = get("lost"),
        hooks = get("webhooks_delivered"),
        chain = get("audit_chain"),
    );
    if let Some(g) = growth_after_first_minute(rows) {
        let _ = write!(
            s,
            " Resident memory from the end of minute 1 to the end: {g:+.1}%."
        );
    }
    let _ = write!(
        s,
        "\n\n![resident memory and p99 latency per minute, {store}]({link})\n\n\
         | Minute | RSS (MiB) | FDs | Errors | Webhooks delivered | Load (1 min) |"
    );
    for (_, label) in OPS {
        let _ = write!(s, " {label} p50 / p99 (ms) |");
    }
    s.push_str("\n|---|---|---|---|---|---|");
    s.push_str(&"---|".repeat(OPS.len()));
    s.push('\n');
    let num = |r: &BTreeMap<String, f64>, k: &str| r.get(k).copied().unwrap_or(f64::NAN);
    for r in rows {
        let _ = write!(
            s,
            "| {} | {:.1} | {} | {} | {} | {:.2} |",
            num(r, "minute"),
            num(r, "rss_kib") / 1024.0,
            num(r, "fds"),
            num(r, "errors"),
            num(r, "webhooks_delivered"),
            num(r, "load1")
        );
        for (op, _) in OPS {
            let (p50, p99) = (
                num(r, &format!("{op}_p50_ms")),
                num(r, &format!("{op}_p99_ms")),
            );
            if p50.is_nan() {
                s.push_str(" — |");
            } else {
                let _ = write!(s, " {p50:.2} / {p99:.2} |");
            }
        }
        s.push('\n');
    }
    s
}

/// Two panels: resident memory (MiB) and p99 per operation (ms), against the minute.
fn chart(store: &str, rows: &[BTreeMap<String, f64>]) -> Result<String> {
    let minutes = rows
        .iter()
        .filter_map(|r| r.get("minute").copied())
        .fold(1.0_f64, f64::max);
    let minute_axis = || Axis {
        label: "minute",
        range: 0.0..minutes,
        ticks: (0..=minutes as u64).map(|m| m as f64).collect(),
        format: &|v| format!("{v:.0}"),
    };
    let series = |key: &str, scale: f64| -> Vec<(f64, f64)> {
        rows.iter()
            .filter_map(|r| Some((*r.get("minute")?, r.get(key)? / scale)))
            .filter(|(_, v)| v.is_finite())
            .collect()
    };
    let rss = series("rss_kib", 1024.0);
    let rss_top = rss.iter().map(|p| p.1).fold(1.0_f64, f64::max) * 1.15;
    let p99: Vec<Series<'_>> = OPS
        .iter()
        .enumerate()
        .map(|(i, (op, _))| Series {
            label: op,
            colour: chart::palette(i),
            points: series(&format!("{op}_p99_ms"), 1.0),
        })
        .filter(|s| !s.points.is_empty())
        .collect();
    let p99_top = p99
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .fold(1.0_f64, f64::max)
        * 1.15;
    chart::svg((720, 380), 2, |panels| {
        let [memory, latency] = panels else {
            return Err("the soak chart has two panels".into());
        };
        chart::line_chart(
            memory,
            &format!("Soak, {}: resident memory", store_label(store)),
            minute_axis(),
            linear_axis("MiB", rss_top),
            &[Series {
                label: "VmRSS of the server",
                colour: chart::palette(0),
                points: rss,
            }],
        )?;
        chart::line_chart(
            latency,
            "p99 latency per operation (per minute)",
            minute_axis(),
            linear_axis("ms", p99_top),
            &p99,
        )
    })
}

/// A linear axis from 0 to `top` with five ticks.
fn linear_axis(label: &str, top: f64) -> Axis<'_, std::ops::Range<f64>> {
    Axis {
        label,
        range: 0.0..top,
        ticks: (0..=5).map(|i| top * f64::from(i) / 5.0).collect(),
        format: &|v| format!("{v:.1}"),
    }
}

const SOAK_OPEN: &str = "<!-- soak -->";
const SOAK_CLOSE: &str = "<!-- /soak -->";

/// The soak section's frame, put at the end of a document that has none.
fn frame() -> String {
    format!(
        "{SOAK_OPEN}\n## Soak (`cargo xtask soak`)\n\n\
         Written by `cargo xtask soak --minutes 10` (each store's part between its markers is\n\
         replaced by the next run; the rest of this section is kept). Mixed load against the\n\
         real server (release build): authentications over 10k identities, pairing request +\n\
         redeem, token mint + rotate + revoke, webhook deliveries to a loopback receiver, event\n\
         streams opened and closed. Per minute: the server's resident memory (VmRSS), its open\n\
         file descriptors, p50/p99 per operation (of that minute) and the errors so far. At the\n\
         end the server is stopped with SIGTERM, the audit chain is verified and every\n\
         acknowledged mint and revocation is looked up. No timing is judged.\n\n\
         {SOAK_CLOSE}\n"
    )
}

/// `existing` with the block of `store` (between `<!-- soak-<store> -->` and
/// `<!-- /soak-<store> -->`) replaced by `body`, or added at the end of the soak section.
fn with_store_block(existing: &str, store: &str, body: &str) -> String {
    let mut doc = existing.to_owned();
    if !doc.contains(SOAK_OPEN) {
        if !doc.is_empty() && !doc.ends_with("\n\n") {
            doc.push_str(if doc.ends_with('\n') { "\n" } else { "\n\n" });
        }
        doc.push_str(&frame());
    }
    let (open, close) = (
        format!("<!-- soak-{store} -->"),
        format!("<!-- /soak-{store} -->"),
    );
    let block = format!("{open}\n{body}{close}\n");
    match (doc.find(&open), doc.find(&close)) {
        (Some(a), Some(b)) if b > a => {
            let end = b + close.len() + usize::from(doc[b + close.len()..].starts_with('\n'));
            doc.replace_range(a..end, &block);
        }
        _ => {
            let at = doc.find(SOAK_CLOSE).unwrap_or(doc.len());
            doc.insert_str(at, &format!("{block}\n"));
        }
    }
    doc
}

/// The soak section of a `benchmarks.md`, for `cargo xtask bench` to carry over when it
/// rewrites the rest of the file.
pub fn section_of(document: &str) -> Option<&str> {
    let a = document.find(SOAK_OPEN)?;
    let b = document.find(SOAK_CLOSE)? + SOAK_CLOSE.len();
    document.get(a..b)
}

/// Whether a run of `minutes` writes under `docs/` (else under the target directory).
fn writes_docs(minutes: u64) -> bool {
    minutes >= DOCS_MINUTES
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_blocks_are_added_then_replaced_and_the_rest_kept() {
        let doc = with_store_block("# Benchmarks\n\nbody\n", "libsql", "### one\n");
        assert!(doc.starts_with("# Benchmarks\n\nbody\n\n<!-- soak -->"));
        let doc = doc.replace(SOAK_CLOSE, &format!("A note by hand.\n{SOAK_CLOSE}"));
        let doc = with_store_block(&doc, "postgres", "### pg\n");
        let doc = with_store_block(&doc, "libsql", "### two\n");
        assert!(!doc.contains("### one"));
        assert!(doc.contains("<!-- soak-libsql -->\n### two\n<!-- /soak-libsql -->"));
        assert!(doc.contains("### pg") && doc.contains("A note by hand."));
        assert_eq!(doc.matches("<!-- soak-libsql -->").count(), 1);
        assert!(section_of(&doc).is_some_and(|s| s.contains("### pg")));
        assert!(writes_docs(10) && !writes_docs(1));
    }

    #[test]
    fn the_bench_executable_is_found_in_cargo_messages() {
        let messages = "{\"reason\":\"compiler-artifact\",\"target\":{\"name\":\"suite\"},\"executable\":\"/t/suite-1\"}\n\
                        {\"reason\":\"compiler-artifact\",\"target\":{\"name\":\"soak\"},\"executable\":\"/t/soak-2\"}\n\
                        {\"reason\":\"build-finished\",\"success\":true}\n";
        assert_eq!(
            executable_of(messages, "soak"),
            Some(std::path::PathBuf::from("/t/soak-2"))
        );
        assert_eq!(executable_of(messages, "timing"), None);
    }

    #[test]
    fn arguments_are_checked() {
        let args = |a: &[&str]| parse_args(&a.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>());
        let a = args(&["--minutes", "1", "--store", "postgres"]).unwrap();
        assert_eq!((a.minutes, a.stores), (1, vec!["postgres"]));
        assert_eq!(args(&[]).unwrap().stores.len(), 2);
        assert!(args(&["--minutes", "0"]).is_err());
        assert!(args(&["--store", "mysql"]).is_err());
        assert!(args(&["--rate", "-3"]).is_err());
        assert!(args(&["--bogus"]).is_err());
        assert!(args(&["--report-only"]).unwrap().report_only);
    }

    #[test]
    fn csv_rows_make_a_table_and_a_chart() {
        let dir = cmd::target_dir().join("soak-test");
        fs::create_dir_all(&dir).unwrap();
        let csv = dir.join("rows.csv");
        fs::write(
            &csv,
            "minute,rss_kib,fds,errors,ops,webhooks_delivered,auth_p50_ms,auth_p99_ms\n\
             0,10240,20,0,0,0,NaN,NaN\n1,20480,30,0,100,5,0.5,2.0\n2,22528,30,0,200,9,0.4,1.5\n",
        )
        .unwrap();
        let rows = read_csv(&csv).unwrap();
        assert_eq!(rows.len(), 3);
        let growth = growth_after_first_minute(&rows).unwrap();
        assert!((growth - 10.0).abs() < 1e-9, "{growth}");
        let table = section("libsql", &rows, &BTreeMap::new(), "x.svg");
        assert!(
            table.contains("| 2 | 22.0 | 30 | 0 | 9 | NaN | 0.40 / 1.50 |"),
            "{table}"
        );
        let svg = chart("libsql", &rows).unwrap();
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert_eq!(svg.matches("<circle").count(), 3 + 2);
    }
}
