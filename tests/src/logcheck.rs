//! "No secret in the logs" (docs/tokens.md, docs/security.md#errors-and-logs): capture what the server logs and prove that no token, pairing
//! code, stored secret value, webhook signing secret, console session or configured key
//! handed out or sent during a run appears in it.
//!
//! - In-process servers ([`crate::app::spawn_app`]): [`capture`] installs, once per test
//!   binary, a global `tracing` subscriber at the most verbose level an operator could
//!   realistically enable ([`VERBOSE_FILTER`]), formatting every event with the same
//!   `tracing_subscriber::fmt` layers `ownership serve` uses (human *and* JSON, so both
//!   `--log-format`s are covered) into one in-memory buffer. `TestApp` records every
//!   secret it sees (configuration, request and response bodies, query-string and bearer
//!   tokens, `Set-Cookie` values: [`Secrets`]) and checks the buffer, from its own start
//!   on, when it stops or is dropped.
//! - Process-based suites (the `ownership` binary): [`assert_text_clean`],
//!   [`assert_serve_log_clean`] and [`process_line`] + [`assert_process_logs_clean`]
//!   check the binary's stderr against every secret recorded in this process
//!   ([`global`]).
//!
//! Every check also looks for anything shaped like one of our tokens (`own_[usr]_` and at
//! least 16 more characters; a display prefix has 4) or signing secrets (`whsec_…`),
//! recorded or not. A recorded value counts only where it stands alone (not inside a
//! longer word: the test value `replaced` is not leaked by the SQL column `replaced_by`).
//! A leak is reported by kind with the log line, the secret itself masked.

use std::collections::HashSet;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use aho_corasick::AhoCorasick;
use base64::Engine as _;
use serde_json::Value;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// The capture's filter: TRACE for our crates and `tower_http` (the request log), DEBUG
/// for everything else (sqlx, libsql, hyper, reqwest, ...).
pub const VERBOSE_FILTER: &str = "debug,ownership_core=trace,ownership_store=trace,\
ownership_http=trace,ownership_cli=trace,ownership=trace,tower_http=trace";

/// The shortest value recorded as a secret: shorter strings (`"x"`, role names) would
/// match log text by chance.
pub const MIN_SECRET_LEN: usize = 8;

/// What a leaked value was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A token value (user, service, resource, provisioned, legacy or bootstrap).
    Token,
    /// A pairing code, displayed (`ABCD-EFGH`) or normalized (`ABCDEFGH`).
    PairingCode,
    /// A stored secret's value (`PUT /v1/me/secrets/{name}`, resource credentials).
    SecretValue,
    /// A webhook signing secret (`whsec_…`).
    SigningSecret,
    /// Key material from the configuration (master or pairing key).
    KeyMaterial,
    /// A console cookie (session, sign-in) or CSRF value.
    ConsoleSession,
    /// Not recorded, but shaped like one of our tokens or signing secrets.
    TokenShaped,
}

impl Kind {
    /// For messages.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Token => "token",
            Kind::PairingCode => "pairing code",
            Kind::SecretValue => "secret value",
            Kind::SigningSecret => "webhook signing secret",
            Kind::KeyMaterial => "configured key material",
            Kind::ConsoleSession => "console session or CSRF value",
            Kind::TokenShaped => "token-shaped string",
        }
    }
}

// ---------------------------------------------------------------------------------------
// The capture

/// The in-memory log every in-process server writes to.
#[derive(Clone, Default)]
pub struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl std::fmt::Debug for LogBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogBuffer")
            .field("len", &self.len())
            .finish()
    }
}

impl LogBuffer {
    fn lock(&self) -> MutexGuard<'_, Vec<u8>> {
        // A panic while holding the lock only ever interrupts an append; the bytes stay
        // usable.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Bytes captured so far.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// True before anything was logged.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The log from byte `from` on, as text.
    pub fn text_since(&self, from: usize) -> String {
        let buf = self.lock();
        String::from_utf8_lossy(buf.get(from..).unwrap_or_default()).into_owned()
    }

    /// Appends raw bytes (what a log line would write).
    pub fn append(&self, bytes: &[u8]) {
        self.lock().extend_from_slice(bytes);
    }

    /// Checks the log from byte `from` on against `secrets` and the token shapes.
    pub fn check_since(&self, from: usize, secrets: &[(Kind, String)]) -> Result<(), Leak> {
        let matcher = Matcher::new(secrets);
        let buf = self.lock();
        matcher.check(buf.get(from..).unwrap_or_default())
    }
}

/// The `MakeWriter` of [`LogBuffer`].
#[derive(Debug, Clone)]
pub struct BufferWriter(LogBuffer);

impl io::Write for BufferWriter {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0.append(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for LogBuffer {
    type Writer = BufferWriter;

    fn make_writer(&'a self) -> Self::Writer {
        BufferWriter(self.clone())
    }
}

static CAPTURE: OnceLock<LogBuffer> = OnceLock::new();

/// For benchmarks only: no capture in this process. Servers started by
/// [`spawn_app`](crate::app::spawn_app) afterwards log through whatever subscriber the
/// caller installs (a benchmark measures the logging an operator runs with, not this
/// capture), and their log checks see an empty buffer. Call it before the first
/// `spawn_app`; returns false if the capture was already installed.
pub fn disable_capture_for_benchmarks() -> bool {
    CAPTURE.set(LogBuffer::default()).is_ok()
}

/// The process's log capture, installed on first use: a global subscriber with
/// [`VERBOSE_FILTER`] and the human and JSON `fmt` layers of `ownership serve`
/// (`crates/ownership-cli/src/main.rs`), without colours, writing to one buffer.
///
/// Panics when another global subscriber (or `log` logger) was installed first: the
/// capture would then see nothing and every check would pass vacuously.
pub fn capture() -> &'static LogBuffer {
    CAPTURE.get_or_init(|| {
        let buffer = LogBuffer::default();
        if let Err(e) = subscriber(buffer.clone()).try_init() {
            panic!(
                "the log capture could not be installed: another global tracing subscriber \
                 or log logger is set in this test binary ({e}); the no-secret-in-logs check \
                 needs to be the only one"
            );
        }
        buffer
    })
}

/// The capture's subscriber writing to `buffer`: [`VERBOSE_FILTER`], then the human
/// (without colours) and the JSON `fmt` layers of `ownership serve`.
pub fn subscriber(buffer: LogBuffer) -> impl tracing::Subscriber + Send + Sync + 'static {
    tracing_subscriber::registry()
        .with(tracing_subscriber::EnvFilter::new(VERBOSE_FILTER))
        .with(
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(buffer.clone()),
        )
        .with(tracing_subscriber::fmt::layer().json().with_writer(buffer))
}

// ---------------------------------------------------------------------------------------
// Recording secrets

/// Secrets seen during a run, each once.
#[derive(Debug, Default)]
pub struct Secrets {
    items: Mutex<Recorded>,
}

/// The secrets in recording order, and the set of their values.
#[derive(Debug, Default)]
struct Recorded {
    list: Vec<(Kind, String)>,
    seen: HashSet<String>,
}

/// Every secret any [`crate::app::TestApp`] or process-based check recorded in this
/// process.
pub fn global() -> &'static Secrets {
    static GLOBAL: OnceLock<Secrets> = OnceLock::new();
    GLOBAL.get_or_init(Secrets::default)
}

/// JSON keys whose string values are secrets (docs/api.md, `ownership-http/src/wire.rs`):
/// tokens (`token`), pairing codes (`code`), stored secret values (`value`) and webhook
/// signing secrets (`secret`, `signing_secret`).
fn kind_of_key(key: &str) -> Option<Kind> {
    match key {
        "token" | "bootstrap_token" | "legacy_token" | "access_token" => Some(Kind::Token),
        "code" => Some(Kind::PairingCode),
        "value" => Some(Kind::SecretValue),
        "secret" | "signing_secret" | "previous_secret" | "webhook_secret" => {
            Some(Kind::SigningSecret)
        }
        _ => None,
    }
}

/// Objects whose contents are not secrets even under a secret-bearing key: error bodies
/// (`{"error":{"code":"forbidden"}}`), audit details and delivery payloads (which name
/// token *ids*), and adapter metadata.
const NOT_SECRET_SUBTREES: &[&str] = &["error", "details", "payload", "meta"];

impl Secrets {
    fn lock(&self) -> MutexGuard<'_, Recorded> {
        self.items
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records `value` (trimmed; ignored when shorter than [`MIN_SECRET_LEN`]). A pairing
    /// code is recorded in its displayed and normalized forms.
    pub fn record(&self, kind: Kind, value: &str) {
        let value = value.trim();
        if value.len() < MIN_SECRET_LEN {
            return;
        }
        if kind == Kind::PairingCode
            && let Ok(code) = ownership_core::pairing::PairingCode::parse(value)
        {
            self.insert(kind, code.display());
            self.insert(kind, code.as_str().to_owned());
        }
        self.insert(kind, value.to_owned());
        if !std::ptr::eq(global(), self) {
            global().record(kind, value);
        }
    }

    fn insert(&self, kind: Kind, value: String) {
        if value.len() < MIN_SECRET_LEN {
            return;
        }
        let mut items = self.lock();
        if items.seen.insert(value.clone()) {
            items.list.push((kind, value));
        }
    }

    /// Records the secrets in a request or response body: the string values of
    /// secret-bearing keys at any depth, and the values of a credentials map
    /// (`{"secrets": {"NAME": "value"}}`).
    pub fn record_json(&self, value: &Value) {
        match value {
            Value::Object(map) => {
                for (key, v) in map {
                    if NOT_SECRET_SUBTREES.contains(&key.as_str()) {
                        continue;
                    }
                    match (kind_of_key(key), v) {
                        (Some(kind), Value::String(s)) => self.record(kind, s),
                        (None, Value::Object(names)) if key == "secrets" => {
                            for secret in names.values() {
                                if let Value::String(s) = secret {
                                    self.record(Kind::SecretValue, s);
                                }
                            }
                        }
                        _ => self.record_json(v),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|v| self.record_json(v)),
            _ => {}
        }
    }

    /// Records what looks like a secret in free text (a command's stdout, its arguments):
    /// our tokens, signing secrets and displayed pairing codes.
    pub fn record_text(&self, text: &str) {
        for (kind, value) in shaped_secrets(text.as_bytes(), true) {
            self.record(kind, &value);
        }
    }

    /// Records a value from the environment or a configuration: the string itself and,
    /// when it is JSON (an `OWNERSHIP_USER_TOKENS` table), the secrets in it.
    pub fn record_config(&self, kind: Kind, value: &str) {
        self.record(kind, value);
        if let Ok(json) = serde_json::from_str::<Value>(value) {
            self.record_json(&json);
        }
    }

    /// Records 32 bytes of key material in the forms an operator writes it (hex,
    /// base64).
    pub fn record_key(&self, key: &[u8]) {
        self.record(Kind::KeyMaterial, &hex::encode(key));
        self.record(Kind::KeyMaterial, &hex::encode_upper(key));
        self.record(
            Kind::KeyMaterial,
            &base64::engine::general_purpose::STANDARD.encode(key),
        );
        self.record(
            Kind::KeyMaterial,
            &base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key),
        );
    }

    /// Records the values of `Set-Cookie` headers (console sessions, sign-in cookies).
    pub fn record_set_cookies(&self, headers: &reqwest::header::HeaderMap) {
        for header in headers.get_all(reqwest::header::SET_COOKIE) {
            let Ok(header) = header.to_str() else {
                continue;
            };
            let pair = header.split(';').next().unwrap_or_default();
            if let Some((_, value)) = pair.split_once('=') {
                self.record(Kind::ConsoleSession, value);
            }
        }
    }

    /// The secrets recorded so far.
    pub fn snapshot(&self) -> Vec<(Kind, String)> {
        self.lock().list.clone()
    }

    /// How many.
    pub fn len(&self) -> usize {
        self.lock().list.len()
    }

    /// True when none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many of `kind`.
    pub fn count(&self, kind: Kind) -> usize {
        self.lock().list.iter().filter(|(k, _)| *k == kind).count()
    }
}

// ---------------------------------------------------------------------------------------
// Checking

/// A secret found in a log.
#[derive(Debug, Clone)]
pub struct Leak {
    /// What it was.
    pub kind: Kind,
    /// The log line, the secret masked.
    pub line: String,
}

impl std::fmt::Display for Leak {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "a {} appears in the log; the line (value masked): {}",
            self.kind.name(),
            self.line
        )
    }
}

fn is_base62(b: u8) -> bool {
    b.is_ascii_alphanumeric()
}

fn is_base64(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'-' | b'_')
}

/// Random characters after a family prefix that make a string a token rather than a
/// display prefix (`own_u_AbCd`, 4 characters).
const TOKEN_SHAPE_MIN: usize = 16;

/// Our tokens (`own_[usr]_` + at least 16 base62 characters) and signing secrets
/// (`whsec_` + at least 16 base64 characters) in `text`, as `(kind, start, end)`;
/// with `codes`, also displayed pairing codes (`ABCD-EFGH`, standing alone).
fn shaped(text: &[u8], codes: bool) -> Vec<(Kind, usize, usize)> {
    let mut found = Vec::new();
    let mut i = 0;
    while i < text.len() {
        let rest = text.get(i..).unwrap_or_default();
        let prefix_len = if rest.len() >= 6
            && rest.starts_with(b"own_")
            && matches!(rest.get(4), Some(b'u' | b's' | b'r'))
            && rest.get(5) == Some(&b'_')
        {
            Some((6, Kind::Token, is_base62 as fn(u8) -> bool))
        } else if rest.starts_with(b"whsec_") {
            Some((6, Kind::SigningSecret, is_base64 as fn(u8) -> bool))
        } else {
            None
        };
        if let Some((p, kind, class)) = prefix_len {
            let body = rest.iter().skip(p).take_while(|b| class(**b)).count();
            if body >= TOKEN_SHAPE_MIN {
                found.push((kind, i, i + p + body));
                i += p + body;
                continue;
            }
        }
        if codes && rest.len() >= 9 && (i == 0 || !text.get(i - 1).is_some_and(|b| is_base62(*b))) {
            let sym = |b: &u8| {
                ownership_core::pairing::PAIRING_ALPHABET
                    .as_bytes()
                    .contains(b)
            };
            let shape = rest.iter().take(4).all(sym)
                && rest.get(4) == Some(&b'-')
                && rest.iter().skip(5).take(4).all(sym)
                && !rest.get(9).is_some_and(|b| is_base62(*b));
            if shape {
                found.push((Kind::PairingCode, i, i + 9));
                i += 9;
                continue;
            }
        }
        i += 1;
    }
    found
}

fn shaped_secrets(text: &[u8], codes: bool) -> Vec<(Kind, String)> {
    shaped(text, codes)
        .into_iter()
        .map(|(kind, s, e)| {
            (
                kind,
                String::from_utf8_lossy(text.get(s..e).unwrap_or_default()).into_owned(),
            )
        })
        .collect()
}

/// The line of `text` around `start..end`, at most ~300 bytes each side, with that range
/// and every other recorded secret masked.
fn masked_line(
    text: &[u8],
    start: usize,
    end: usize,
    kind: Kind,
    secrets: &[(Kind, String)],
) -> String {
    let line_start = text
        .get(..start)
        .and_then(|t| t.iter().rposition(|b| *b == b'\n'))
        .map_or(0, |p| p + 1)
        .max(start.saturating_sub(300));
    let line_end = text
        .get(end..)
        .and_then(|t| t.iter().position(|b| *b == b'\n'))
        .map_or(text.len(), |p| end + p)
        .min(end + 300);
    let before = String::from_utf8_lossy(text.get(line_start..start).unwrap_or_default());
    let after = String::from_utf8_lossy(text.get(end..line_end).unwrap_or_default());
    let mut line = format!("{before}<{} MASKED>{after}", kind.name());
    for (k, s) in secrets {
        if line.contains(s.as_str()) {
            line = line.replace(s.as_str(), &format!("<{} MASKED>", k.name()));
        }
    }
    for (k, s) in shaped_secrets(line.clone().as_bytes(), false) {
        line = line.replace(s.as_str(), &format!("<{} MASKED>", k.name()));
    }
    line
}

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Whether the occurrence `start..end` of `secret` in `text` is the value itself rather
/// than part of a longer word: a test's secret `replaced` is not leaked by the column
/// `replaced_by`, while a value in quotes, after `=` or between spaces is.
fn stands_alone(text: &[u8], start: usize, end: usize, secret: &[u8]) -> bool {
    let open = !secret.first().is_some_and(|b| is_word(*b))
        || start == 0
        || !text.get(start - 1).is_some_and(|b| is_word(*b));
    // A value matched by its first bytes only (see `PATTERN_MAX`) has no known end here.
    let close = secret.len() > end - start
        || !secret.last().is_some_and(|b| is_word(*b))
        || !text.get(end).is_some_and(|b| is_word(*b));
    open && close
}

/// Patterns longer than this are matched by their first bytes: a full leak contains them,
/// and building the automaton for a 32 KiB secret value would take long.
const PATTERN_MAX: usize = 64;

/// The secrets to look for, compiled once.
struct Matcher<'a> {
    secrets: &'a [(Kind, String)],
    automaton: Option<AhoCorasick>,
}

impl<'a> Matcher<'a> {
    fn new(secrets: &'a [(Kind, String)]) -> Self {
        let automaton = (!secrets.is_empty()).then(|| {
            AhoCorasick::new(
                secrets
                    .iter()
                    .map(|(_, s)| s.as_bytes().get(..PATTERN_MAX).unwrap_or(s.as_bytes())),
            )
            .expect("secret patterns compile")
        });
        Self { secrets, automaton }
    }

    /// Checks `text` for any of the secrets and for anything shaped like one of our
    /// tokens or signing secrets.
    fn check(&self, text: &[u8]) -> Result<(), Leak> {
        if let Some(automaton) = &self.automaton {
            for m in automaton.find_overlapping_iter(text) {
                let Some((kind, secret)) = self.secrets.get(m.pattern().as_usize()) else {
                    continue;
                };
                if !stands_alone(text, m.start(), m.end(), secret.as_bytes()) {
                    continue;
                }
                return Err(Leak {
                    kind: *kind,
                    line: masked_line(text, m.start(), m.end(), *kind, self.secrets),
                });
            }
        }
        if let Some((_, start, end)) = shaped(text, false).into_iter().next() {
            return Err(Leak {
                kind: Kind::TokenShaped,
                line: masked_line(text, start, end, Kind::TokenShaped, self.secrets),
            });
        }
        Ok(())
    }
}

/// Checks `text` for any of `secrets` and for anything shaped like one of our tokens or
/// signing secrets.
pub fn check_bytes(text: &[u8], secrets: &[(Kind, String)]) -> Result<(), Leak> {
    Matcher::new(secrets).check(text)
}

/// Panics, naming the leak, when `text` (the output called `what`) contains a secret
/// recorded in this process ([`global`]) or one shaped like ours.
#[track_caller]
pub fn assert_text_clean(what: &str, text: &str) {
    if let Err(leak) = check_bytes(text.as_bytes(), &global().snapshot()) {
        panic!("secret leaked into {what}: {leak}");
    }
}

/// Checks the stderr (log) of an `ownership serve` process: `first_owner_token` (the
/// token it printed once on stdout) and every secret recorded in this process must not
/// be in it, nor anything shaped like a token.
#[track_caller]
pub fn assert_serve_log_clean(first_owner_token: Option<&str>, log: &str) {
    if let Some(token) = first_owner_token {
        global().record(Kind::Token, token);
    }
    assert_text_clean("the log of `ownership serve`", log);
}

/// Keeps one line of a spawned `ownership` process's stderr (its log) for
/// [`assert_process_logs_clean`].
pub fn process_line(line: &str) {
    process_log().append(line.as_bytes());
    process_log().append(b"\n");
}

/// Every line given to [`process_line`].
pub fn process_log() -> &'static LogBuffer {
    static LOG: OnceLock<LogBuffer> = OnceLock::new();
    LOG.get_or_init(LogBuffer::default)
}

/// Checks everything [`process_line`] kept against every secret recorded so far (later
/// secrets included).
#[track_caller]
pub fn assert_process_logs_clean() {
    if let Err(leak) = process_log().check_since(0, &global().snapshot()) {
        panic!("secret leaked into the log of an `ownership` process: {leak}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        let token = format!("own_u_{}", "a".repeat(49));
        let text = format!("x {token} own_u_AbCd ABCD-EFGH whsec_{} y", "Q".repeat(44));
        let found = shaped_secrets(text.as_bytes(), true);
        assert_eq!(found.len(), 3, "{found:?}");
        assert!(check_bytes(b"display own_u_AbCd only", &[]).is_ok());
        assert!(check_bytes(text.as_bytes(), &[]).is_err());
    }
}
