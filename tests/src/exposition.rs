//! Reading the Prometheus text exposition in tests: samples by name and labels, every
//! label value, and the check that no label value carries something a client chose.

/// One sample line: `name{k="v",…} value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The series name (with `_bucket`, `_sum`, `_count` for histograms).
    pub name: String,
    /// Its labels, in order.
    pub labels: Vec<(String, String)>,
    /// Its value.
    pub value: f64,
}

/// Every sample of `text` (comments and blank lines skipped). Panics on a line it cannot
/// read: the exposition is ours and must be well-formed.
pub fn samples(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|line| parse_line(line).unwrap_or_else(|| panic!("unreadable sample: {line}")))
        .collect()
}

fn parse_line(line: &str) -> Option<Sample> {
    let (series, value) = line.rsplit_once(' ')?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    let (name, labels) = match series.split_once('{') {
        None => (series, Vec::new()),
        Some((name, rest)) => (name, parse_labels(rest.strip_suffix('}')?)?),
    };
    Some(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

/// `k="v",k2="v2"` with `\"`, `\\` and `\n` escapes in values.
fn parse_labels(mut rest: &str) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    while !rest.is_empty() {
        let (key, after) = rest.split_once("=\"")?;
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            let (i, c) = chars.next()?;
            match c {
                '\\' => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                '"' => break i,
                c => value.push(c),
            }
        };
        out.push((key.trim_start_matches(',').to_owned(), value));
        rest = after.get(end + 1..)?;
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
    Some(out)
}

/// The value of the sample named `name` whose labels include every pair of `labels`
/// (summed when several match); 0 when none does.
pub fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    samples(text)
        .iter()
        .filter(|s| s.name == name && has_labels(s, labels))
        .map(|s| s.value)
        .sum()
}

/// Whether some sample is named `name` with every pair of `labels`.
pub fn present(text: &str, name: &str, labels: &[(&str, &str)]) -> bool {
    samples(text)
        .iter()
        .any(|s| s.name == name && has_labels(s, labels))
}

fn has_labels(s: &Sample, labels: &[(&str, &str)]) -> bool {
    labels
        .iter()
        .all(|(k, v)| s.labels.iter().any(|(sk, sv)| sk == k && sv == v))
}

/// Panics when a label value of `text` contains any of `forbidden` (tokens, ids, raw
/// paths a test used), naming the sample.
pub fn assert_no_label_carries(text: &str, forbidden: &[&str]) {
    for s in samples(text) {
        for (key, value) in &s.labels {
            for f in forbidden {
                assert!(
                    f.is_empty() || !value.contains(f),
                    "label {key}=\"{value}\" of {} carries `{f}`",
                    s.name
                );
            }
        }
    }
}

/// Panics unless every label value of `text` is one of a bounded vocabulary: a route
/// template (fixed text and `{param}` placeholders only), `unmatched`, a method, a
/// three-digit status, a histogram bound, or a lower-case word.
pub fn assert_labels_bounded(text: &str) {
    for s in samples(text) {
        for (key, value) in &s.labels {
            let ok = match key.as_str() {
                "route" => {
                    value == "unmatched"
                        || (value.starts_with('/')
                            && value.split('/').skip(1).all(|seg| {
                                (seg.starts_with('{') && seg.ends_with('}'))
                                    || seg.chars().all(|c| {
                                        c.is_ascii_lowercase()
                                            || c.is_ascii_digit()
                                            || "-_.".contains(c)
                                    })
                            }))
                }
                "status" => value.len() == 3 && value.chars().all(|c| c.is_ascii_digit()),
                "method" => value.chars().all(|c| c.is_ascii_uppercase()) || value == "other",
                "le" => value == "+Inf" || value.parse::<f64>().is_ok(),
                _ => !value.is_empty() && value.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
            };
            assert!(
                ok,
                "unbounded-looking label {key}=\"{value}\" on {}",
                s.name
            );
        }
    }
}
