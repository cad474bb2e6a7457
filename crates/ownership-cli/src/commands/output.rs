//! What the commands print: JSON for scripts (`--json`), aligned tables and short sentences
//! for people.
//!
//! Data goes to stdout; explanations meant for a person (the "shown once" warning beside a
//! revealed token, say) go to stderr, so `TOKEN=$(ownership users add bob)` captures the
//! token alone. A closed pipe (`ownership audit tail | head -n 3`) ends the output quietly
//! instead of failing.

use std::io::{self, Write};

use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::CliError;

/// How to print: JSON or human.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Output {
    json: bool,
}

fn written(result: io::Result<()>) -> Result<(), CliError> {
    match result {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(CliError::new(format!("cannot write the output: {e}"))),
    }
}

impl Output {
    /// JSON when `json`, else human.
    pub fn new(json: bool) -> Self {
        Self { json }
    }

    /// Whether `--json` was given.
    pub fn is_json(self) -> bool {
        self.json
    }

    /// Prints `value` as JSON with `--json`, else runs `human`.
    pub fn show<T: Serialize>(
        self,
        value: &T,
        human: impl FnOnce(Self) -> Result<(), CliError>,
    ) -> Result<(), CliError> {
        if self.json {
            self.json_value(value)
        } else {
            human(self)
        }
    }

    /// Prints `value` as pretty JSON on stdout, whatever the mode.
    pub fn json_value<T: Serialize>(self, value: &T) -> Result<(), CliError> {
        let text = serde_json::to_string_pretty(value)
            .map_err(|e| CliError::new(format!("cannot encode the output as JSON: {e}")))?;
        self.line(&text)
    }

    /// One line on stdout.
    pub fn line(self, text: &str) -> Result<(), CliError> {
        let mut out = io::stdout().lock();
        written(writeln!(out, "{text}").and_then(|()| out.flush()))
    }

    /// One line on stderr, for a person reading along (never data a script needs).
    pub fn note(self, text: &str) -> Result<(), CliError> {
        let mut err = io::stderr().lock();
        written(writeln!(err, "{text}"))
    }

    /// `label: value` lines with the values aligned.
    pub fn fields(self, pairs: &[(&str, String)]) -> Result<(), CliError> {
        let width = pairs
            .iter()
            .map(|(k, _)| k.chars().count())
            .max()
            .unwrap_or(0);
        let mut text = String::new();
        for (key, value) in pairs {
            let pad = width.saturating_sub(key.chars().count());
            text.push_str(&format!("{key}:{} {}\n", " ".repeat(pad), cell(value)));
        }
        self.block(&text)
    }

    /// An aligned table with a header row, or `empty` when there are no rows.
    pub fn table(
        self,
        headers: &[&str],
        rows: &[Vec<String>],
        empty: &str,
    ) -> Result<(), CliError> {
        if rows.is_empty() {
            return self.line(empty);
        }
        self.block(&render_table(headers, rows))
    }

    fn block(self, text: &str) -> Result<(), CliError> {
        let mut out = io::stdout().lock();
        written(out.write_all(text.as_bytes()).and_then(|()| out.flush()))
    }
}

/// Renders rows under headers, columns two spaces apart, the last column unpadded.
pub fn render_table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let header: Vec<String> = headers.iter().map(|h| (*h).to_owned()).collect();
    let all: Vec<Vec<String>> = std::iter::once(header)
        .chain(rows.iter().map(|r| r.iter().map(|c| cell(c)).collect()))
        .collect();
    let columns = headers.len();
    let widths: Vec<usize> = (0..columns)
        .map(|i| {
            all.iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut text = String::new();
    for row in &all {
        let mut line = String::new();
        for (i, value) in row.iter().enumerate().take(columns) {
            if i + 1 == columns {
                line.push_str(value);
            } else {
                let width = widths.get(i).copied().unwrap_or(0);
                let pad = width.saturating_sub(value.chars().count());
                line.push_str(value);
                line.push_str(&" ".repeat(pad + 2));
            }
        }
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}

/// A value made safe for a terminal: control characters (escape sequences included)
/// become `?`.
pub fn cell(value: &str) -> String {
    value
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// A time for people: RFC 3339 in UTC, to the second.
pub fn when(at: OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    at.replace_nanosecond(0)
        .unwrap_or(at)
        .format(&Rfc3339)
        .unwrap_or_else(|_| at.unix_timestamp().to_string())
}

/// An optional time for people, `-` when absent.
pub fn when_opt(at: Option<OffsetDateTime>) -> String {
    at.map_or_else(|| "-".to_owned(), when)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_and_trim() {
        let text = render_table(
            &["ID", "ROLE", "STATUS"],
            &[
                vec!["alice".into(), "owner".into(), "active".into()],
                vec!["b".into(), "member".into(), "suspended".into()],
            ],
        );
        assert_eq!(
            text,
            "ID     ROLE    STATUS\nalice  owner   active\nb      member  suspended\n"
        );
    }

    #[test]
    fn cells_lose_control_characters() {
        assert_eq!(cell("a\u{1b}[31mb\n"), "a?[31mb?");
    }

    #[test]
    fn times_are_utc_seconds() {
        let at = OffsetDateTime::from_unix_timestamp_nanos(1_700_000_000_123_456_789).unwrap();
        assert_eq!(when(at), "2023-11-14T22:13:20Z");
        assert_eq!(when_opt(None), "-");
    }
}
