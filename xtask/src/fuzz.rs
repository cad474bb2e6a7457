//! `cargo xtask fuzz [--seconds N] [--target T]`: coverage-guided fuzzing of
//! ownership-core's parsers with libFuzzer, on stable Rust.
//!
//! The targets live in `fuzz/`, a cargo project of its own (not a workspace member, its
//! own `Cargo.lock`, its own `fuzz/target`). They are built in release mode with debug
//! assertions and overflow checks and with the SanitizerCoverage instrumentation libFuzzer
//! needs, passed as stable `-C` flags (the set `cargo fuzz --sanitizer none` passes), so no
//! nightly toolchain and no `cargo-fuzz` install is needed. `--target <host>` keeps those
//! flags off build scripts and proc macros.
//!
//! Each target runs for N seconds on a fresh copy of its seed corpus
//! (`fuzz/corpus/<target>/`) in `fuzz/target/runs/<target>/`, so a run never adds to the
//! checked-in corpus. Per target it prints runs, exec/s, coverage (`cov`, `ft`) and
//! crashes; any crash fails the command and names the reproducer file.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::cmd::{self, Result};

/// The fuzz targets, in the order they run (`fuzz/Cargo.toml` names each as a `[[bin]]`).
pub const TARGETS: [&str; 6] = [
    "token",
    "pairing_code",
    "webhook_standard",
    "webhook_stripe",
    "owner_id",
    "channel_name",
];

/// What `cargo fuzz build --sanitizer none` passes to rustc, all stable: libFuzzer's
/// coverage feedback (8-bit edge counters, the PC table, comparison tracing, stack depth)
/// and `--cfg fuzzing`; plus debug assertions and overflow checks, so arithmetic bugs
/// crash instead of wrapping.
const RUSTFLAGS: [&str; 9] = [
    "--cfg=fuzzing",
    "-Cpasses=sancov-module",
    "-Cllvm-args=-sanitizer-coverage-level=4",
    "-Cllvm-args=-sanitizer-coverage-inline-8bit-counters",
    "-Cllvm-args=-sanitizer-coverage-pc-table",
    "-Cllvm-args=-sanitizer-coverage-trace-compares",
    "-Cllvm-args=-sanitizer-coverage-stack-depth",
    "-Cdebug-assertions",
    "-Coverflow-checks",
];

const DEFAULT_SECONDS: u64 = 60;

pub fn run(args: &[String]) -> Result {
    let (seconds, targets) = parse_args(args)?;
    let root = cmd::workspace_root();
    let fuzz_dir = root.join("fuzz");
    let host = host_triple()?;
    build(&fuzz_dir, &host, &targets)?;
    let bin_dir = fuzz_dir.join("target").join(&host).join("release");
    let mut summaries = Vec::new();
    for target in &targets {
        summaries.push(run_target(&fuzz_dir, &bin_dir, target, seconds)?);
    }
    cmd::say("");
    cmd::say(&format!(
        "{:<18} {:>12} {:>9} {:>6} {:>7} {:>8}  crashes",
        "target", "runs", "exec/s", "cov", "ft", "corpus"
    ));
    for s in &summaries {
        cmd::say(&format!(
            "{:<18} {:>12} {:>9} {:>6} {:>7} {:>8}  {}",
            s.target,
            s.runs,
            s.exec_per_sec,
            s.cov,
            s.ft,
            s.corpus,
            s.crashes.len()
        ));
    }
    let crashed: Vec<&Summary> = summaries.iter().filter(|s| !s.crashes.is_empty()).collect();
    if crashed.is_empty() {
        return Ok(());
    }
    for s in &crashed {
        for crash in &s.crashes {
            cmd::say(&format!(
                "CRASH {}: reproduce with `{} {}` (log: {})",
                s.target,
                bin_dir.join(&s.target).display(),
                crash.display(),
                s.log.display()
            ));
        }
    }
    Err(format!(
        "{} target(s) crashed: {}",
        crashed.len(),
        crashed
            .iter()
            .map(|s| s.target.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

fn parse_args(args: &[String]) -> Result<(u64, Vec<String>)> {
    let mut seconds = DEFAULT_SECONDS;
    let mut targets: Vec<String> = Vec::new();
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--seconds" => {
                let value = rest.next().ok_or("`--seconds` needs a number")?;
                seconds = value.parse().ok().filter(|&n| n > 0).ok_or_else(|| {
                    format!("`--seconds` must be a positive integer, got `{value}`")
                })?;
            }
            "--target" => {
                let value = rest.next().ok_or("`--target` needs a target name")?;
                if !TARGETS.contains(&value.as_str()) {
                    return Err(format!(
                        "unknown fuzz target `{value}`; targets: {}",
                        TARGETS.join(", ")
                    ));
                }
                targets.push(value.clone());
            }
            other => {
                return Err(format!(
                    "`fuzz` takes `--seconds N` and `--target T`, got `{other}`"
                ));
            }
        }
    }
    if targets.is_empty() {
        targets = TARGETS.iter().map(|t| (*t).to_owned()).collect();
    }
    Ok((seconds, targets))
}

/// The host target triple, from `rustc -vV`.
fn host_triple() -> Result<String> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let out = cmd::stdout_of(Command::new(rustc).arg("-vV"))?;
    out.lines()
        .find_map(|line| line.strip_prefix("host: "))
        .map(|host| host.trim().to_owned())
        .ok_or_else(|| "`rustc -vV` printed no `host:` line".to_owned())
}

fn build(fuzz_dir: &Path, host: &str, targets: &[String]) -> Result {
    let mut command = cmd::cargo();
    command
        .current_dir(fuzz_dir)
        .args(["build", "--release", "--locked", "--target", host])
        .arg("--target-dir")
        .arg(fuzz_dir.join("target"))
        .env("RUSTFLAGS", RUSTFLAGS.join(" "))
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR");
    for target in targets {
        command.args(["--bin", target]);
    }
    cmd::run(&mut command)
}

#[derive(Debug)]
struct Summary {
    target: String,
    runs: String,
    exec_per_sec: String,
    cov: String,
    ft: String,
    corpus: String,
    crashes: Vec<PathBuf>,
    log: PathBuf,
}

fn run_target(fuzz_dir: &Path, bin_dir: &Path, target: &str, seconds: u64) -> Result<Summary> {
    let run_dir = fuzz_dir.join("target").join("runs").join(target);
    let corpus = run_dir.join("corpus");
    let artifacts = run_dir.join("artifacts");
    if corpus.exists() {
        fs::remove_dir_all(&corpus)
            .map_err(|e| format!("could not clear {}: {e}", corpus.display()))?;
    }
    fs::create_dir_all(&corpus)
        .map_err(|e| format!("could not create {}: {e}", corpus.display()))?;
    fs::create_dir_all(&artifacts)
        .map_err(|e| format!("could not create {}: {e}", artifacts.display()))?;
    let seeds = copy_seeds(&fuzz_dir.join("corpus").join(target), &corpus)?;
    let before = artifact_files(&artifacts)?;
    let log_path = run_dir.join("fuzz.log");
    let log = File::create(&log_path)
        .map_err(|e| format!("could not create {}: {e}", log_path.display()))?;
    let log_err = log
        .try_clone()
        .map_err(|e| format!("could not reopen {}: {e}", log_path.display()))?;
    let mut artifact_prefix = artifacts.into_os_string();
    artifact_prefix.push("/");
    let artifacts = PathBuf::from(&artifact_prefix);
    let mut command = Command::new(bin_dir.join(target));
    command
        .arg(&corpus)
        .arg(format!("-max_total_time={seconds}"))
        .arg("-print_final_stats=1")
        .arg("-timeout=20")
        .arg("-rss_limit_mb=2048")
        .arg({
            let mut prefix = std::ffi::OsString::from("-artifact_prefix=");
            prefix.push(&artifact_prefix);
            prefix
        })
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(log_err));
    cmd::say(&format!(
        "fuzzing `{target}` for {seconds} s from {seeds} seed(s); log: {}",
        log_path.display()
    ));
    let status = command
        .status()
        .map_err(|e| format!("could not start `{}`: {e}", cmd::display(&command)))?;
    let text = fs::read_to_string(&log_path)
        .map_err(|e| format!("could not read {}: {e}", log_path.display()))?;
    let mut crashes: Vec<PathBuf> = artifact_files(&artifacts)?
        .into_iter()
        .filter(|file| !before.contains(file))
        .collect();
    if !status.success() && crashes.is_empty() {
        // A failure that wrote no reproducer (libFuzzer could not start, say) still fails.
        crashes.push(log_path.clone());
    }
    let summary = summarize(target, &text, crashes, log_path);
    cmd::say(&format!(
        "  {target}: {} runs, {} exec/s, cov {}, ft {}, corpus {}, {} crash(es){}",
        summary.runs,
        summary.exec_per_sec,
        summary.cov,
        summary.ft,
        summary.corpus,
        summary.crashes.len(),
        if status.success() {
            String::new()
        } else {
            format!(" ({status})")
        }
    ));
    Ok(summary)
}

/// Copies the checked-in seeds into the scratch corpus; returns how many.
fn copy_seeds(seeds: &Path, corpus: &Path) -> Result<usize> {
    let entries =
        fs::read_dir(seeds).map_err(|e| format!("could not read {}: {e}", seeds.display()))?;
    let mut count = 0;
    for entry in entries {
        let entry = entry.map_err(|e| format!("could not read {}: {e}", seeds.display()))?;
        let path = entry.path();
        if path.is_file() {
            fs::copy(&path, corpus.join(entry.file_name()))
                .map_err(|e| format!("could not copy {}: {e}", path.display()))?;
            count += 1;
        }
    }
    Ok(count)
}

/// Reproducers libFuzzer wrote: `crash-*`, `leak-*`, `timeout-*` and `oom-*` (a
/// `slow-unit-*` is not a failure).
fn artifact_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries =
        fs::read_dir(dir).map_err(|e| format!("could not read {}: {e}", dir.display()))?;
    let mut files = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if ["crash-", "leak-", "timeout-", "oom-"]
            .iter()
            .any(|prefix| name.starts_with(prefix))
        {
            files.push(entry.path());
        }
    }
    files.sort();
    Ok(files)
}

/// Reads libFuzzer's final stats and its last status line (`#N DONE cov: C ft: F corp: K/…`).
fn summarize(target: &str, log: &str, crashes: Vec<PathBuf>, log_path: PathBuf) -> Summary {
    let stat = |name: &str| {
        log.lines()
            .find_map(|line| line.strip_prefix(&format!("stat::{name}:")))
            .map_or_else(|| "?".to_owned(), |v| v.trim().to_owned())
    };
    let status_line = log
        .lines()
        .rev()
        .find(|line| line.starts_with('#') && line.contains(" cov: "))
        .unwrap_or_default();
    let field = |name: &str| {
        let mut words = status_line.split_whitespace();
        words
            .by_ref()
            .find(|word| *word == name)
            .and_then(|_| words.next())
            .map_or_else(|| "?".to_owned(), str::to_owned)
    };
    let corpus = field("corp:");
    Summary {
        target: target.to_owned(),
        runs: stat("number_of_executed_units"),
        exec_per_sec: stat("average_exec_per_sec"),
        cov: field("cov:"),
        ft: field("ft:"),
        corpus: corpus.split('/').next().unwrap_or("?").to_owned(),
        crashes,
        log: log_path,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_target_is_a_bin_of_the_fuzz_project() {
        let root = cmd::workspace_root();
        let manifest = fs::read_to_string(root.join("fuzz/Cargo.toml")).unwrap_or_default();
        for target in TARGETS {
            assert!(
                manifest.contains(&format!("name = \"{target}\"")),
                "fuzz/Cargo.toml has no [[bin]] `{target}`"
            );
            assert!(
                root.join("fuzz/corpus").join(target).is_dir(),
                "no seed corpus for `{target}`"
            );
        }
    }

    #[test]
    fn libfuzzer_status_is_summarized() {
        let log = "#1\tINITED cov: 10 ft: 11 corp: 3/30b exec/s: 0 rss: 28Mb\n\
                   #5000\tDONE   cov: 276 ft: 765 corp: 265/10247b lim: 2050 exec/s: 39688 rss: 28Mb\n\
                   Done 5000 runs in 9 second(s)\n\
                   stat::number_of_executed_units: 5000\n\
                   stat::average_exec_per_sec:     39688\n";
        let s = summarize("token", log, Vec::new(), PathBuf::from("log"));
        assert_eq!(s.runs, "5000");
        assert_eq!(s.exec_per_sec, "39688");
        assert_eq!(s.cov, "276");
        assert_eq!(s.ft, "765");
        assert_eq!(s.corpus, "265");
    }

    #[test]
    fn arguments_are_checked() {
        let args = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            parse_args(&args(&["--seconds", "5", "--target", "token"])),
            Ok((5, vec!["token".to_owned()]))
        );
        assert_eq!(
            parse_args(&args(&[])).map(|(_, t)| t.len()),
            Ok(TARGETS.len())
        );
        assert!(parse_args(&args(&["--seconds", "0"])).is_err());
        assert!(parse_args(&args(&["--target", "nope"])).is_err());
        assert!(parse_args(&args(&["--quick"])).is_err());
    }
}
