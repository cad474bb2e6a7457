//! `cargo xtask timing [--samples N]`: runs the dudect-style timing test
//! (`crates/ownership-bench/benches/timing.rs`) and prints its Welch's t values as a table.
//!
//! A measurement for a person to read, not a gate: only a bench that fails to run fails
//! the command. |t| < 4.5 reads as "no evidence of a leak"; the `leaky_early_exit` row is
//! the method's sanity check and should be far above 4.5.

use crate::cmd::{self, Result};

/// The dudect paper's threshold.
const T_THRESHOLD: f64 = 4.5;

/// Tests that are expected to show a difference (a sanity check or a contrast).
const EXPECTED_TO_DIFFER: [&str; 2] = ["leaky_early_exit", "verify_hit_vs_miss"];

/// Tests shown for information only: plain `[u8] ==` (`memcmp`) makes no constant-time
/// promise and compares no secret in this code base.
const INFORMATION: [&str; 1] = ["slice_eq"];

pub fn run(args: &[String]) -> Result {
    let mut samples: Option<u64> = None;
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--samples" => {
                let value = rest.next().ok_or("`--samples` needs a number")?;
                samples =
                    Some(value.parse().ok().filter(|&n| n >= 1_000).ok_or_else(|| {
                        format!("`--samples` must be at least 1000, got `{value}`")
                    })?);
            }
            other => return Err(format!("`timing` takes only `--samples N`, got `{other}`")),
        }
    }
    let mut command = cmd::cargo();
    command.args(["bench", "-p", "ownership-bench", "--bench", "timing"]);
    if let Some(n) = samples {
        command.env("OWNERSHIP_TIMING_SAMPLES", n.to_string());
    }
    cmd::say(&format!("$ {}", cmd::display(&command)));
    let out = cmd::stdout_of(&mut command)?;
    let rows = parse(&out);
    for line in out.lines().filter(|line| !line.starts_with("TIMING ")) {
        cmd::say(line);
    }
    if rows.is_empty() {
        return Err("the timing bench printed no `TIMING` lines".into());
    }
    cmd::say("");
    cmd::say(&format!(
        "{:<20} {:>8} {:>9} {:>12} {:>12}  reading",
        "test", "max |t|", "samples", "mean A ns", "mean B ns"
    ));
    for row in &rows {
        cmd::say(&format!(
            "{:<20} {:>8.2} {:>9} {:>12.1} {:>12.1}  {}",
            row.name,
            row.t,
            row.samples,
            row.mean_a,
            row.mean_b,
            reading(row)
        ));
    }
    Ok(())
}

#[derive(Debug, PartialEq)]
struct Row {
    name: String,
    t: f64,
    samples: u64,
    mean_a: f64,
    mean_b: f64,
}

/// `TIMING <name> <max |t|> <samples> <mean A ns> <mean B ns>` lines; anything else is ignored.
fn parse(out: &str) -> Vec<Row> {
    out.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            if words.next() != Some("TIMING") {
                return None;
            }
            Some(Row {
                name: words.next()?.to_owned(),
                t: words.next()?.parse().ok()?,
                samples: words.next()?.parse().ok()?,
                mean_a: words.next()?.parse().ok()?,
                mean_b: words.next()?.parse().ok()?,
            })
        })
        .collect()
}

fn reading(row: &Row) -> &'static str {
    let differs = row.t >= T_THRESHOLD;
    if INFORMATION.contains(&row.name.as_str()) {
        return if differs {
            "for information: differs (memcmp promises nothing; used on no secret)"
        } else {
            "for information: no difference seen"
        };
    }
    match (EXPECTED_TO_DIFFER.contains(&row.name.as_str()), differs) {
        (false, false) => "no evidence of a leak",
        (false, true) => "TIMING DIFFERENCE: look into it (rerun on a quiet machine first)",
        (true, true) => "differs, as expected",
        (true, false) => "did NOT differ though it should: the method lacks sensitivity here",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timing_lines_are_parsed_and_read() {
        let out = "noise\nTIMING digest_ct_eq 1.250 180000 310.5 309.9\n\
                   TIMING leaky_early_exit 812.000 180000 900.0 100.0\nTIMING broken x\n";
        let rows = parse(out);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].name, "digest_ct_eq");
        assert_eq!(rows[0].samples, 180_000);
        assert_eq!(reading(&rows[0]), "no evidence of a leak");
        assert_eq!(reading(&rows[1]), "differs, as expected");
    }
}
