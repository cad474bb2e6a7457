//! The configuration: one typed structure, read from a TOML file, `OWNERSHIP_*`
//! environment variables and command-line flags, in that order of precedence (flags over
//! the environment over the file over the defaults).
//!
//! - **File**: `--config FILE`, else `./ownership.toml` when it exists, else none. An
//!   unknown key or a value of the wrong type is refused with its name and line.
//! - **Environment**: `OWNERSHIP_<SECTION>__<KEY>` sets `[section] key` (for example
//!   `OWNERSHIP_LIMITS__IDENTITY_PER_SECOND=100`); `OWNERSHIP_LISTEN`,
//!   `OWNERSHIP_DATABASE_URL` (or `DATABASE_URL`) and `OWNERSHIP_FIRST_OWNER` set the
//!   top-level keys; the key variables keep their short names (`OWNERSHIP_MASTER_KEY`,
//!   `OWNERSHIP_MASTER_KEY_FILE`, …). Values are read as TOML values (`5`, `true`,
//!   `["10.0.0.0/8"]`), secrets as plain text. A variable of the section form naming no
//!   setting is refused; other `OWNERSHIP_*` variables are not ours to judge and are left
//!   alone.
//! - **Flags**: the few `serve` flags (`--listen`, `--first-owner`, …) and the global
//!   `--database-url` and `--log-format`.
//!
//! The reference of every key is in `docs/operations.md`; a test fails when a key is
//! missing from it. Secrets may be given by value or, better, through a `_file` key whose
//! file holds the value.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use figment::Figment;
use figment::providers::{Format as _, Serialized, Toml};
use figment::value::Value as FigValue;
use ipnet::IpNet;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::backend::Location;

/// The file read when `--config` is not given, if it exists.
pub const DEFAULT_FILE: &str = "ownership.toml";

/// How often `serve` anchors the owner audit chains by default (`audit.anchor_interval_seconds`).
pub const DEFAULT_ANCHOR_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);

/// Every setting of the `ownership` binary.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where the REST service listens.
    pub listen: SocketAddr,
    /// The store: a libSQL file path or `postgres://…`.
    pub database_url: String,
    /// PostgreSQL: a direct URL for the cache-invalidation listener (`LISTEN` needs a
    /// session of its own); unset, `database_url`.
    pub database_listen_url: Option<String>,
    /// PostgreSQL: the most connections each process's pool opens.
    pub database_max_connections: u32,
    /// PostgreSQL: `none`, or `transaction` when `database_url` goes through a pooler in
    /// transaction mode (PgBouncer).
    pub database_pooler: String,
    /// The id of the Owner created on an empty store.
    pub first_owner: String,
    /// Apply pending migrations at start (else refuse to start when any are pending).
    pub migrate: bool,
    /// HTTP settings.
    pub http: HttpSection,
    /// Rate limits and failure budgets.
    pub limits: LimitsSection,
    /// Per-owner quotas.
    pub quotas: QuotasSection,
    /// Channel pairing.
    pub pairing: PairingSection,
    /// The in-process cache.
    pub cache: CacheSection,
    /// The webhook delivery worker.
    pub webhooks: WebhooksSection,
    /// Native TLS.
    pub tls: TlsSection,
    /// The Prometheus metrics listener.
    pub metrics: MetricsSection,
    /// Logging.
    pub log: LogSection,
    /// Keys and static secrets.
    pub keys: KeysSection,
    /// Reports of leaked tokens from secret scanners.
    pub secret_scanning: SecretScanningSection,
    /// Passkey sign-in to the console.
    pub passkeys: PasskeysSection,
    /// Console sessions.
    pub sessions: SessionsSection,
    /// Console sign-in with an OpenID Connect provider.
    pub oidc: OidcSection,
    /// The audit log.
    pub audit: AuditSection,
}

/// `[audit]`: the audit log's chains.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct AuditSection {
    /// How often `serve` commits the heads of the owner chains that changed into the
    /// system chain, in seconds (1 to 86400).
    pub anchor_interval_seconds: u64,
}

impl Default for AuditSection {
    fn default() -> Self {
        Self {
            anchor_interval_seconds: DEFAULT_ANCHOR_INTERVAL.as_secs(),
        }
    }
}

impl AuditSection {
    /// The anchor period, checked.
    pub fn anchor_interval(&self) -> Result<Duration, String> {
        match self.anchor_interval_seconds {
            1..=86_400 => Ok(Duration::from_secs(self.anchor_interval_seconds)),
            _ => Err("`audit.anchor_interval_seconds` must be 1 to 86400".into()),
        }
    }
}

/// `[oidc]`: console sign-in with an OpenID Connect provider. Off while `issuer` is unset.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct OidcSection {
    /// The provider's issuer URL (`https://`, or `http://` on loopback).
    pub issuer: Option<String>,
    /// The console's client id at the provider.
    pub client_id: Option<String>,
    /// The client secret (hidden in `config show`).
    pub client_secret: Option<String>,
    /// A file holding `client_secret`.
    pub client_secret_file: Option<PathBuf>,
    /// The provider's name on the sign-in page ("Sign in with …").
    pub display_name: String,
    /// The console's public base URL, for the redirect URI (default: `http.public_url`).
    pub redirect_base: Option<String>,
    /// Verified email → user id: such an account is linked to that user at its first
    /// sign-in.
    pub allowed_emails: std::collections::BTreeMap<String, String>,
}

impl Default for OidcSection {
    fn default() -> Self {
        Self {
            issuer: None,
            client_id: None,
            client_secret: None,
            client_secret_file: None,
            display_name: "your identity provider".into(),
            redirect_base: None,
            allowed_emails: std::collections::BTreeMap::new(),
        }
    }
}

impl fmt::Debug for OidcSection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OidcSection")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "****"),
            )
            .field("client_secret_file", &self.client_secret_file)
            .field("display_name", &self.display_name)
            .field("redirect_base", &self.redirect_base)
            .field("allowed_emails", &self.allowed_emails.len())
            .finish()
    }
}

/// `[sessions]`: console sessions, kept in the store.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct SessionsSection {
    /// A session ends after this many seconds without a request.
    pub idle_seconds: u64,
    /// A session ends this many seconds after sign-in, however active.
    pub lifetime_seconds: u64,
    /// Most open sessions per user; a new sign-in ends the oldest beyond it.
    pub per_user: u32,
    /// A session's last-seen time is written at most once per this many seconds.
    pub touch_seconds: u64,
}

impl Default for SessionsSection {
    fn default() -> Self {
        let p = ownership_core::sessions::SessionPolicy::default();
        Self {
            idle_seconds: p.idle.as_secs(),
            lifetime_seconds: p.lifetime.as_secs(),
            per_user: p.per_user,
            touch_seconds: p.touch_every.as_secs(),
        }
    }
}

/// `[passkeys]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct PasskeysSection {
    /// The WebAuthn relying-party id: the console's host name or a domain it is under.
    /// Unset: the host of `origin`.
    pub rp_id: Option<String>,
    /// The origin browsers show for the console (`https://auth.example.com`). Unset: the
    /// origin of `http.public_url`; with neither, passkeys are off.
    pub origin: Option<String>,
}

/// `[secret_scanning]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct SecretScanningSection {
    /// GitHub's secret-scanning public keys (PEM, P-256), by key identifier. Empty: the
    /// partner endpoint `POST /v1/secret-scanning/github` answers 404.
    pub github_public_keys: std::collections::BTreeMap<String, String>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            database_url: "ownership.db".into(),
            database_listen_url: None,
            database_max_connections: ownership_store::postgres::MAX_CONNECTIONS,
            database_pooler: "none".into(),
            first_owner: "owner".into(),
            migrate: true,
            http: HttpSection::default(),
            limits: LimitsSection::default(),
            quotas: QuotasSection::default(),
            pairing: PairingSection::default(),
            sessions: SessionsSection::default(),
            audit: AuditSection::default(),
            oidc: OidcSection::default(),
            cache: CacheSection::default(),
            webhooks: WebhooksSection::default(),
            tls: TlsSection::default(),
            metrics: MetricsSection::default(),
            log: LogSection::default(),
            keys: KeysSection::default(),
            secret_scanning: SecretScanningSection::default(),
            passkeys: PasskeysSection::default(),
        }
    }
}

/// `[http]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSection {
    /// Peers whose `X-Forwarded-For` / `Forwarded` headers are believed (CIDRs or
    /// addresses). Empty: the TCP peer is the client.
    pub trusted_proxies: Vec<Cidr>,
    /// The address people reach the service at. An `https://` URL turns on `Secure` and
    /// `__Host-` console cookies.
    pub public_url: Option<String>,
    /// Largest accepted request body, in bytes.
    pub body_limit_bytes: usize,
    /// Longest a request may take, in seconds (event streams excepted).
    pub request_timeout_seconds: u64,
    /// How often an event stream looks for new events, in milliseconds.
    pub events_poll_ms: u64,
    /// How long a stream ticket lives, in seconds.
    pub stream_ticket_seconds: u64,
    /// Let webhook endpoints be on loopback and private addresses (development only).
    pub allow_private_webhooks: bool,
    /// At shutdown, how long in-flight requests may take to finish, in seconds.
    pub drain_timeout_seconds: u64,
}

impl Default for HttpSection {
    fn default() -> Self {
        let service = ownership_http::ServiceConfig::default();
        Self {
            trusted_proxies: Vec::new(),
            public_url: None,
            body_limit_bytes: service.body_limit,
            request_timeout_seconds: service.request_timeout.as_secs(),
            events_poll_ms: millis(service.events_poll),
            stream_ticket_seconds: service.stream_ticket_ttl.as_secs(),
            allow_private_webhooks: false,
            drain_timeout_seconds: service.drain_timeout.as_secs(),
        }
    }
}

/// `[limits]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsSection {
    /// Requests per second each identity may sustain.
    pub identity_per_second: u32,
    /// Requests each identity may spend at once.
    pub identity_burst: u32,
    /// Failed authentications an address may make per window before its failures get 429.
    pub failed_auth_per_address: u32,
    /// The window of `failed_auth_per_address`, in seconds.
    pub failed_auth_window_seconds: u64,
    /// Failed pairing redemptions a user may make per window.
    pub redeem_failures_per_user: u32,
    /// The window of `redeem_failures_per_user`, in seconds.
    pub redeem_window_seconds: u64,
    /// Failed redemptions a channel absorbs per window before its pending codes are burned.
    pub channel_failure_budget: u32,
    /// The window of `channel_failure_budget`, in seconds.
    pub channel_window_seconds: u64,
    /// Leaked-token reports an address may send per window.
    pub leak_reports_per_address: u32,
    /// The window of `leak_reports_per_address`, in seconds.
    pub leak_reports_window_seconds: u64,
    /// Event streams one user may hold open at once.
    pub event_streams_per_user: u32,
    /// Event streams the process holds open at once, for everyone.
    pub event_streams_total: u32,
}

/// `[quotas]`: how much one owner may keep, enforced inside the transaction that writes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct QuotasSection {
    /// Secrets one owner may hold.
    pub secrets_per_owner: u64,
    /// Total bytes of one owner's secret values.
    pub secret_bytes_per_owner: u64,
    /// Live resource credentials one owner may hold.
    pub resources_per_owner: u64,
    /// Live tokens one owner may hold (minted ones are refused past it).
    pub tokens_per_owner: u64,
}

impl Default for QuotasSection {
    fn default() -> Self {
        let q = ownership_core::quotas::Quotas::default();
        Self {
            secrets_per_owner: q.secrets,
            secret_bytes_per_owner: q.secret_bytes,
            resources_per_owner: q.resources,
            tokens_per_owner: q.tokens,
        }
    }
}

impl Default for LimitsSection {
    fn default() -> Self {
        let l = ownership_http::limits::LimitsConfig::default();
        let p = ownership_core::quotas::PairingBudget::default();
        Self {
            identity_per_second: l.identity_per_second,
            identity_burst: l.identity_burst,
            failed_auth_per_address: l.failed_auth_per_address,
            failed_auth_window_seconds: l.failed_auth_window.as_secs(),
            redeem_failures_per_user: p.per_user,
            redeem_window_seconds: p.user_window.as_secs(),
            channel_failure_budget: p.per_channel,
            channel_window_seconds: p.channel_window.as_secs(),
            leak_reports_per_address: l.leak_reports_per_address,
            leak_reports_window_seconds: l.leak_reports_window.as_secs(),
            event_streams_per_user: l.event_streams_per_user,
            event_streams_total: l.event_streams_total,
        }
    }
}

/// `[pairing]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct PairingSection {
    /// How long a pairing code lives, in seconds.
    pub code_ttl_seconds: u64,
    /// Most live pairing requests per channel.
    pub max_pending_per_channel: u32,
}

impl Default for PairingSection {
    fn default() -> Self {
        let p = ownership_core::ports::PairingPolicy::default();
        Self {
            code_ttl_seconds: p.ttl.as_secs(),
            max_pending_per_channel: p.max_pending_per_channel,
        }
    }
}

/// `[cache]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct CacheSection {
    /// Most entries per cached lookup (tokens, chat identities, resource credentials).
    pub capacity: u64,
    /// How long an entry may be served before it is read again, in seconds.
    pub ttl_seconds: u64,
    /// How often batched `last_used_at` times are written, in seconds.
    pub last_used_flush_seconds: u64,
    /// How often a libSQL server checks for changes another process (the CLI) committed,
    /// in milliseconds.
    pub external_poll_ms: u64,
}

impl Default for CacheSection {
    fn default() -> Self {
        let c = ownership_store::cache::CacheConfig::default();
        Self {
            capacity: c.capacity,
            ttl_seconds: c.ttl.as_secs(),
            last_used_flush_seconds: c.last_used_flush.as_secs(),
            external_poll_ms: u64::try_from(c.external_poll.as_millis()).unwrap_or(u64::MAX),
        }
    }
}

/// `[webhooks]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct WebhooksSection {
    /// Run the delivery worker in this process.
    pub worker: bool,
    /// Deliveries sent at once.
    pub concurrency: usize,
    /// Longest one delivery may take, in seconds.
    pub timeout_seconds: u64,
    /// Longest the connection may take, in seconds.
    pub connect_timeout_seconds: u64,
    /// Attempts before a delivery is marked failed.
    pub max_attempts: u32,
    /// Wait after the first failed attempt, in seconds; it doubles after each further one.
    pub retry_base_seconds: u64,
    /// Longest wait between two attempts, in seconds.
    pub retry_max_delay_seconds: u64,
    /// How often the worker looks for new events and due deliveries, in milliseconds.
    pub poll_interval_ms: u64,
    /// The most due deliveries read at a time.
    pub batch: u32,
    /// Deliveries of one owner sent at once.
    pub concurrency_per_owner: usize,
    /// Failures in a row (timeouts, connection errors, 5xx) that open an endpoint's
    /// circuit; 0 turns the breaker off.
    pub breaker_threshold: u32,
    /// How long an open circuit holds an endpoint's deliveries back, in seconds.
    pub breaker_cooldown_seconds: u64,
}

impl Default for WebhooksSection {
    fn default() -> Self {
        let w = ownership_webhooks::WebhookSettings::default();
        Self {
            worker: w.worker,
            concurrency: w.concurrency,
            timeout_seconds: w.request_timeout.as_secs(),
            connect_timeout_seconds: w.connect_timeout.as_secs(),
            max_attempts: w.retry.max_attempts,
            retry_base_seconds: w.retry.base.as_secs(),
            retry_max_delay_seconds: w.retry.max_delay.as_secs(),
            poll_interval_ms: millis(w.poll_interval),
            batch: w.batch,
            concurrency_per_owner: w.per_owner,
            breaker_threshold: w.breaker.threshold,
            breaker_cooldown_seconds: w.breaker.cool_down.as_secs(),
        }
    }
}

/// `[tls]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct TlsSection {
    /// PEM certificate chain; with `key_file`, the service speaks HTTPS itself.
    pub cert_file: Option<PathBuf>,
    /// PEM private key of `cert_file`.
    pub key_file: Option<PathBuf>,
}

/// `[metrics]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSection {
    /// Where Prometheus metrics are served (`GET /metrics`); off when absent.
    pub listen: Option<SocketAddr>,
}

/// `[log]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct LogSection {
    /// `human` or `json`.
    pub format: LogFormatSetting,
    /// An `EnvFilter` directive (`info`, `warn,ownership_http=debug`); `RUST_LOG` wins.
    pub level: String,
}

impl Default for LogSection {
    fn default() -> Self {
        Self {
            format: LogFormatSetting::Human,
            level: "info".into(),
        }
    }
}

/// How log lines look.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormatSetting {
    /// One readable line per event.
    Human,
    /// One JSON object per line.
    Json,
}

/// `[keys]`: keys and static secrets. Each may be given by value or through its `_file`
/// key (a file holding the value; a trailing newline is dropped). The value wins when both
/// are set.
#[derive(Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct KeysSection {
    /// Base64 of 32 random bytes: wraps per-owner data keys, seals webhook signing secrets.
    pub master_key: Option<String>,
    /// A file holding `master_key`. On the embedded libSQL store, when no key is configured,
    /// a key is generated into `<database>.master-key` (or this path) on first start.
    pub master_key_file: Option<PathBuf>,
    /// The master key's version (default 1).
    pub master_key_version: Option<u32>,
    /// During a rotation, the previous master key.
    pub previous_master_key: Option<String>,
    /// A file holding `previous_master_key`.
    pub previous_master_key_file: Option<PathBuf>,
    /// The previous key's version (default: the current minus one).
    pub previous_master_key_version: Option<u32>,
    /// Base64 of 32 random bytes: the pairing-code key itself (default: derived from the
    /// master key).
    pub pairing_key: Option<String>,
    /// A file holding `pairing_key`.
    pub pairing_key_file: Option<PathBuf>,
    /// Enables `POST /v1/bootstrap` with this secret instead of printing a first token.
    pub bootstrap_token: Option<String>,
    /// A file holding `bootstrap_token`.
    pub bootstrap_token_file: Option<PathBuf>,
    /// An existing token grandfathered as the first Owner's.
    pub legacy_token: Option<String>,
    /// A file holding `legacy_token`.
    pub legacy_token_file: Option<PathBuf>,
    /// A static user-token table (JSON), provisioned at start.
    pub user_tokens: Option<String>,
    /// A file holding `user_tokens`.
    pub user_tokens_file: Option<PathBuf>,
}

impl fmt::Debug for KeysSection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hidden = |v: &Option<String>| v.as_ref().map(|_| "****");
        f.debug_struct("KeysSection")
            .field("master_key", &hidden(&self.master_key))
            .field("master_key_file", &self.master_key_file)
            .field("master_key_version", &self.master_key_version)
            .field("previous_master_key", &hidden(&self.previous_master_key))
            .field("previous_master_key_file", &self.previous_master_key_file)
            .field(
                "previous_master_key_version",
                &self.previous_master_key_version,
            )
            .field("pairing_key", &hidden(&self.pairing_key))
            .field("pairing_key_file", &self.pairing_key_file)
            .field("bootstrap_token", &hidden(&self.bootstrap_token))
            .field("bootstrap_token_file", &self.bootstrap_token_file)
            .field("legacy_token", &hidden(&self.legacy_token))
            .field("legacy_token_file", &self.legacy_token_file)
            .field("user_tokens", &hidden(&self.user_tokens))
            .field("user_tokens_file", &self.user_tokens_file)
            .finish()
    }
}

/// A network in CIDR form (`10.0.0.0/8`, `::1/128`); a bare address means just it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr(pub IpNet);

impl std::str::FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        s.parse::<IpNet>()
            .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from))
            .map(|net| Self(net.trunc()))
            .map_err(|_| format!("`{s}` is not an address or a CIDR network (`10.0.0.0/8`)"))
    }
}

impl Serialize for Cidr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        raw.parse().map_err(serde::de::Error::custom)
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Settings given as flags, which override everything else. `None` means "not given".
#[derive(Debug, Clone, Default)]
pub struct Flags {
    /// `--database-url`.
    pub database_url: Option<String>,
    /// `--log-format`.
    pub log_format: Option<LogFormatSetting>,
    /// `serve --listen`.
    pub listen: Option<SocketAddr>,
    /// `serve --first-owner`.
    pub first_owner: Option<String>,
    /// `serve --no-migrate`.
    pub no_migrate: bool,
    /// `serve --allow-private-webhooks`.
    pub allow_private_webhooks: bool,
    /// `serve --no-webhook-worker`.
    pub no_webhook_worker: bool,
    /// `serve --metrics-listen`.
    pub metrics_listen: Option<SocketAddr>,
    /// `serve --tls-cert-file`.
    pub tls_cert_file: Option<PathBuf>,
    /// `serve --tls-key-file`.
    pub tls_key_file: Option<PathBuf>,
}

impl Flags {
    /// The flags as (dotted key, value, flag name).
    fn entries(&self) -> Vec<(&'static str, FigValue, &'static str)> {
        let mut out = Vec::new();
        let mut put = |key, value: Option<FigValue>, flag| {
            if let Some(v) = value {
                out.push((key, v, flag));
            }
        };
        put(
            "database_url",
            self.database_url.clone().map(FigValue::from),
            "--database-url",
        );
        put(
            "log.format",
            self.log_format.map(|f| {
                FigValue::from(match f {
                    LogFormatSetting::Human => "human",
                    LogFormatSetting::Json => "json",
                })
            }),
            "--log-format",
        );
        put(
            "listen",
            self.listen.map(|a| FigValue::from(a.to_string())),
            "--listen",
        );
        put(
            "first_owner",
            self.first_owner.clone().map(FigValue::from),
            "--first-owner",
        );
        put(
            "migrate",
            self.no_migrate.then(|| FigValue::from(false)),
            "--no-migrate",
        );
        put(
            "http.allow_private_webhooks",
            self.allow_private_webhooks.then(|| FigValue::from(true)),
            "--allow-private-webhooks",
        );
        put(
            "webhooks.worker",
            self.no_webhook_worker.then(|| FigValue::from(false)),
            "--no-webhook-worker",
        );
        put(
            "metrics.listen",
            self.metrics_listen.map(|a| FigValue::from(a.to_string())),
            "--metrics-listen",
        );
        put(
            "tls.cert_file",
            self.tls_cert_file
                .as_ref()
                .map(|p| FigValue::from(p.display().to_string())),
            "--tls-cert-file",
        );
        put(
            "tls.key_file",
            self.tls_key_file
                .as_ref()
                .map(|p| FigValue::from(p.display().to_string())),
            "--tls-key-file",
        );
        out
    }
}

/// Keys whose environment values are taken as plain text, never parsed as TOML values:
/// secrets and URLs (a token of digits must stay a string).
const PLAIN_TEXT_KEYS: &[&str] = &[
    "database_url",
    "database_listen_url",
    "database_pooler",
    "first_owner",
    "keys.master_key",
    "keys.previous_master_key",
    "keys.pairing_key",
    "keys.bootstrap_token",
    "keys.legacy_token",
    "keys.user_tokens",
    "http.public_url",
    "passkeys.rp_id",
    "passkeys.origin",
    "log.level",
    "oidc.issuer",
    "oidc.client_id",
    "oidc.client_secret",
    "oidc.display_name",
    "oidc.redirect_base",
];

/// `OWNERSHIP_*` names that set a key without the section form.
const SHORT_ENV_NAMES: &[(&str, &str)] = &[
    ("LISTEN", "listen"),
    ("DATABASE_URL", "database_url"),
    ("DATABASE_LISTEN_URL", "database_listen_url"),
    ("DATABASE_MAX_CONNECTIONS", "database_max_connections"),
    ("DATABASE_POOLER", "database_pooler"),
    ("FIRST_OWNER", "first_owner"),
    ("MIGRATE", "migrate"),
    ("MASTER_KEY", "keys.master_key"),
    ("MASTER_KEY_FILE", "keys.master_key_file"),
    ("MASTER_KEY_VERSION", "keys.master_key_version"),
    ("PREVIOUS_MASTER_KEY", "keys.previous_master_key"),
    ("PREVIOUS_MASTER_KEY_FILE", "keys.previous_master_key_file"),
    (
        "PREVIOUS_MASTER_KEY_VERSION",
        "keys.previous_master_key_version",
    ),
    ("PAIRING_KEY", "keys.pairing_key"),
    ("PAIRING_KEY_FILE", "keys.pairing_key_file"),
    ("BOOTSTRAP_TOKEN", "keys.bootstrap_token"),
    ("BOOTSTRAP_TOKEN_FILE", "keys.bootstrap_token_file"),
    ("LEGACY_TOKEN", "keys.legacy_token"),
    ("LEGACY_TOKEN_FILE", "keys.legacy_token_file"),
    ("USER_TOKENS", "keys.user_tokens"),
    ("USER_TOKENS_FILE", "keys.user_tokens_file"),
];

/// The setting an environment variable names: `Ok(None)` for a variable that is not
/// ours, `Err` for a section-form variable that names no setting.
fn env_key(name: &str, known: &[String]) -> Result<Option<String>, String> {
    if name == "DATABASE_URL" {
        return Ok(Some("database_url".into()));
    }
    let Some(rest) = name.strip_prefix("OWNERSHIP_") else {
        return Ok(None);
    };
    if let Some((_, key)) = SHORT_ENV_NAMES.iter().find(|(n, _)| *n == rest) {
        return Ok(Some((*key).to_owned()));
    }
    if !rest.contains("__") {
        return Ok(None);
    }
    let key = rest.to_ascii_lowercase().replace("__", ".");
    if known.contains(&key) {
        Ok(Some(key))
    } else {
        Err(format!(
            "environment variable {name}: unknown setting `{key}` (see the configuration reference in docs/operations.md)"
        ))
    }
}

/// Where one value of the effective configuration came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "name")]
pub enum Source {
    /// The built-in default.
    Default,
    /// The configuration file (its path).
    File(String),
    /// An environment variable (its name).
    Env(String),
    /// A command-line flag.
    Flag(String),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Default => f.write_str("default"),
            Self::File(p) => write!(f, "file {p}"),
            Self::Env(n) => write!(f, "env {n}"),
            Self::Flag(n) => write!(f, "flag {n}"),
        }
    }
}

/// A configuration read from its sources, with where each value came from.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The effective configuration.
    pub config: Config,
    /// The file read, if any.
    pub file: Option<PathBuf>,
    sources: BTreeMap<String, Source>,
}

/// Every leaf key of the configuration, dotted (`limits.identity_per_second`), in order.
pub fn keys() -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(value) = serde_json::to_value(Config::default()) {
        leaves("", &value, &mut out);
    }
    out
}

fn leaves(prefix: &str, value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                leaves(&key, v, out);
            }
        }
        _ => out.push(prefix.to_owned()),
    }
}

/// "line L" of byte offset `at` in `text`.
fn line_of(text: &str, at: usize) -> usize {
    text.get(..at)
        .map_or(0, |before| before.matches('\n').count())
        + 1
}

/// Reads the file alone, strictly, so that an error names its line.
fn check_file(path: &Path, text: &str) -> Result<toml::Table, String> {
    let shown = path.display();
    if let Err(e) = toml::from_str::<Config>(text) {
        let place = e
            .span()
            .map(|s| format!(" line {}", line_of(text, s.start)))
            .unwrap_or_default();
        return Err(format!(
            "configuration file {shown}{place}: {}",
            e.message().trim()
        ));
    }
    toml::from_str::<toml::Table>(text).map_err(|e| format!("configuration file {shown}: {e}"))
}

fn table_has(table: &toml::Table, key: &str) -> bool {
    let mut parts = key.split('.');
    let Some(first) = parts.next() else {
        return false;
    };
    let mut at = table.get(first);
    for part in parts {
        at = at.and_then(|v| v.as_table()).and_then(|t| t.get(part));
    }
    at.is_some()
}

/// Reads the configuration: `file` (or `./ownership.toml` when it exists), the process
/// environment, then `flags`.
pub fn load(file: Option<&Path>, flags: &Flags) -> Result<Loaded, String> {
    load_from(file, std::env::vars(), flags)
}

/// [`load`] with the environment given (tests).
pub fn load_from(
    file: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
    flags: &Flags,
) -> Result<Loaded, String> {
    let known = keys();
    let mut sources: BTreeMap<String, Source> =
        known.iter().map(|k| (k.clone(), Source::Default)).collect();
    let mut figment = Figment::from(Serialized::defaults(Config::default()));

    let file = match file {
        Some(p) => Some(p.to_path_buf()),
        None => Some(PathBuf::from(DEFAULT_FILE)).filter(|p| p.is_file()),
    };
    if let Some(path) = &file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the configuration file {}: {e}", path.display()))?;
        let table = check_file(path, &text)?;
        for key in &known {
            if table_has(&table, key) {
                sources.insert(key.clone(), Source::File(path.display().to_string()));
            }
        }
        figment = figment.merge(Toml::string(&text));
    }

    // DATABASE_URL first, so that OWNERSHIP_DATABASE_URL wins over it.
    let mut env: Vec<(String, String)> = env.into_iter().collect();
    env.sort_by_key(|(name, _)| name != "DATABASE_URL");
    for (name, raw) in env {
        let Some(key) = env_key(&name, &known)? else {
            continue;
        };
        let raw = raw.trim().to_owned();
        if raw.is_empty() {
            continue;
        }
        let value = if PLAIN_TEXT_KEYS.contains(&key.as_str()) {
            FigValue::from(raw)
        } else {
            raw.parse::<FigValue>()
                .unwrap_or_else(|never| match never {})
        };
        figment = figment.merge(Serialized::default(&key, value));
        sources.insert(key, Source::Env(name));
    }

    for (key, value, flag) in flags.entries() {
        figment = figment.merge(Serialized::default(key, value));
        sources.insert(key.to_owned(), Source::Flag(flag.to_owned()));
    }

    let config: Config = figment.extract().map_err(|e| {
        let errors: Vec<String> = e.into_iter().map(|e| one_error(&e)).collect();
        format!("invalid configuration: {}", errors.join("; "))
    })?;
    Ok(Loaded {
        config,
        file,
        sources,
    })
}

fn one_error(e: &figment::Error) -> String {
    let key = e.path.join(".");
    let origin = e
        .metadata
        .as_ref()
        .map(|m| format!(" (from {})", m.name))
        .unwrap_or_default();
    if key.is_empty() {
        format!("{}{origin}", e.kind)
    } else {
        format!("`{key}`: {}{origin}", e.kind)
    }
}

/// A value as `config show` prints it: secrets replaced, passwords in URLs masked.
fn shown(key: &str, value: &serde_json::Value) -> String {
    let secret =
        (key.starts_with("keys.") && !key.ends_with("_file") && !key.ends_with("_version"))
            || key == "oidc.client_secret";
    match value {
        serde_json::Value::Null => "(none)".into(),
        _ if secret => "(set, hidden)".into(),
        serde_json::Value::String(s) if key == "database_url" || key == "database_listen_url" => {
            crate::backend::redact(s)
        }
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// One row of `config show`.
#[derive(Debug, Clone, Serialize)]
pub struct Shown {
    /// The dotted key.
    pub key: String,
    /// The value, secrets hidden.
    pub value: String,
    /// Where it came from.
    pub source: Source,
}

impl Loaded {
    /// `key` for a message, with its source unless it is the default.
    pub fn describe(&self, key: &str) -> String {
        match self.sources.get(key) {
            None | Some(Source::Default) => plain(key),
            Some(source) => format!("`{key}` ({source})"),
        }
    }

    /// Where `key`'s value came from.
    pub fn source(&self, key: &str) -> Option<&Source> {
        self.sources.get(key)
    }

    /// Every key with its effective value (secrets hidden) and its source.
    pub fn show(&self) -> Vec<Shown> {
        let value = serde_json::to_value(&self.config).unwrap_or_default();
        keys()
            .into_iter()
            .map(|key| {
                let v = key
                    .split('.')
                    .try_fold(&value, |v, part| v.get(part))
                    .unwrap_or(&serde_json::Value::Null);
                Shown {
                    value: shown(&key, v),
                    source: self.sources.get(&key).cloned().unwrap_or(Source::Default),
                    key,
                }
            })
            .collect()
    }
}

/// Names a setting in a message, with where its value came from when that was not the
/// default: "`keys.master_key` (env OWNERSHIP_MASTER_KEY)".
pub type Describe<'a> = &'a dyn Fn(&str) -> String;

/// [`Describe`] without sources: just the key.
pub fn plain(key: &str) -> String {
    format!("`{key}`")
}

/// Reads a secret given by value or by file: the value when set, else the file's content
/// (trailing whitespace dropped), else `None`. An empty value counts as not set.
pub fn value_or_file(
    describe: Describe<'_>,
    name: &str,
    value: Option<&String>,
    file: Option<&PathBuf>,
) -> Result<Option<String>, String> {
    if let Some(v) = value.map(|v| v.trim()).filter(|v| !v.is_empty()) {
        return Ok(Some(v.to_owned()));
    }
    match file {
        None => Ok(None),
        Some(path) => std::fs::read_to_string(path)
            .map(|v| Some(v.trim().to_owned()).filter(|v| !v.is_empty()))
            .map_err(|e| {
                format!(
                    "cannot read {} {}: {e}",
                    describe(&format!("keys.{name}_file")),
                    path.display()
                )
            }),
    }
}

/// [`value_or_file`] for a secret outside `[keys]`: the file setting is `<name>_file`.
fn value_or_file_named(
    name: &str,
    value: Option<&String>,
    file: Option<&PathBuf>,
) -> Result<Option<String>, String> {
    if let Some(v) = value.map(|v| v.trim()).filter(|v| !v.is_empty()) {
        return Ok(Some(v.to_owned()));
    }
    match file {
        None => Ok(None),
        Some(path) => std::fs::read_to_string(path)
            .map(|v| Some(v.trim().to_owned()).filter(|v| !v.is_empty()))
            .map_err(|e| format!("cannot read `{name}_file` {}: {e}", path.display())),
    }
}

/// A 32-byte key from its base64 text; the error names the setting, never the value.
pub fn key32(
    describe: Describe<'_>,
    name: &str,
    raw: Option<String>,
) -> Result<Option<[u8; 32]>, String> {
    let Some(raw) = raw else { return Ok(None) };
    let named = || describe(&format!("keys.{name}"));
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(raw.trim().as_bytes())
        .map_err(|_| {
            format!(
                "{} must be the base64 of 32 random bytes (`ownership keys generate` makes one)",
                named()
            )
        })?;
    <[u8; 32]>::try_from(bytes.as_slice())
        .map(Some)
        .map_err(|_| {
            format!(
                "{} must be the base64 of exactly 32 bytes (`ownership keys generate` makes one)",
                named()
            )
        })
}

/// A fresh master key: the base64 of 32 bytes from the operating system.
pub fn generate_key() -> String {
    let mut bytes = [0u8; 32];
    ownership_core::RandomSource::fill(&mut ownership_store::OsRandom, &mut bytes);
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The file a generated master key is kept in beside a libSQL database:
/// `<database>.master-key`.
pub fn generated_key_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(".master-key");
    PathBuf::from(name)
}

impl Config {
    /// The store this configuration names.
    pub fn location(&self) -> Result<Location, String> {
        Location::parse(&self.database_url)
    }

    /// How a PostgreSQL store connects (`database_max_connections`, `database_pooler`,
    /// `database_listen_url`).
    pub fn postgres(&self) -> Result<crate::backend::PgSettings, String> {
        use ownership_store::postgres::{PgOptions, Pooler};
        if self.database_max_connections == 0 {
            return Err("`database_max_connections` must be at least 1".into());
        }
        let pooler = Pooler::parse(self.database_pooler.trim()).map_err(|_| {
            format!(
                "`database_pooler` must be `none` or `transaction`, not `{}`",
                self.database_pooler
            )
        })?;
        let listen_url = match self.database_listen_url.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(url) => match Location::parse(url)? {
                Location::Postgres(url) => Some(url),
                Location::LibsqlFile(_) => {
                    return Err("`database_listen_url` must be a `postgres://…` URL".into());
                }
            },
        };
        Ok(crate::backend::PgSettings {
            options: PgOptions {
                max_connections: self.database_max_connections,
                pooler,
            },
            listen_url,
        })
    }

    /// Whether the console is served over HTTPS (from `http.public_url`).
    pub fn https_public_url(&self) -> Result<bool, String> {
        match self.http.public_url.as_deref().map(str::trim) {
            None | Some("") => Ok(self.tls.cert_file.is_some()),
            Some(url) => {
                let parsed = url::Url::parse(url)
                    .map_err(|e| format!("`http.public_url` `{url}` is not a URL: {e}"))?;
                match parsed.scheme() {
                    "https" => Ok(true),
                    "http" => Ok(false),
                    other => Err(format!(
                        "`http.public_url` must be an http:// or https:// URL, not `{other}:`"
                    )),
                }
            }
        }
    }

    /// Passkey sign-in's relying party: `passkeys.origin` (else the origin of
    /// `http.public_url`) and `passkeys.rp_id` (else that origin's host). `None` when
    /// neither origin is set, or when only `http.public_url` is and it names an IP
    /// address rather than a domain: passkeys are off.
    pub fn passkey_settings(
        &self,
    ) -> Result<Option<ownership_http::console::PasskeySettings>, String> {
        let given = |v: &Option<String>| {
            v.as_deref()
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        let origin = match given(&self.passkeys.origin) {
            Some(o) => o,
            None => match given(&self.http.public_url) {
                Some(public) => {
                    let url = url::Url::parse(&public)
                        .map_err(|e| format!("`http.public_url` `{public}` is not a URL: {e}"))?;
                    // WebAuthn needs a domain: a public URL on an IP address leaves
                    // passkeys off unless they are configured on their own.
                    if self.passkeys.rp_id.is_none()
                        && !matches!(url.host(), Some(url::Host::Domain(_)))
                    {
                        return Ok(None);
                    }
                    url.origin().ascii_serialization()
                }
                None => return Ok(None),
            },
        };
        let rp_id = match given(&self.passkeys.rp_id) {
            Some(id) => id,
            None => url::Url::parse(&origin)
                .ok()
                .and_then(|u| u.host_str().map(str::to_owned))
                .ok_or_else(|| format!("`passkeys.origin` `{origin}` is not a URL with a host"))?,
        };
        ownership_http::console::PasskeySettings::new(&rp_id, &origin)
            .map(Some)
            .map_err(|e| format!("`passkeys`: {e}"))
    }

    /// What the store enforces inside its transactions: the `[quotas]` and the wrong
    /// pairing-code budgets of `[limits]`.
    pub fn store_limits(&self) -> Result<ownership_core::quotas::Limits, String> {
        use ownership_core::quotas::{Limits, PairingBudget, Quotas};
        let (q, l) = (&self.quotas, &self.limits);
        Limits {
            quotas: Quotas {
                secrets: q.secrets_per_owner,
                secret_bytes: q.secret_bytes_per_owner,
                resources: q.resources_per_owner,
                tokens: q.tokens_per_owner,
            },
            pairing: PairingBudget {
                per_user: l.redeem_failures_per_user,
                user_window: Duration::from_secs(l.redeem_window_seconds),
                per_channel: l.channel_failure_budget,
                channel_window: Duration::from_secs(l.channel_window_seconds),
            },
        }
        .checked()
        .map_err(|e| match e {
            ownership_core::Error::Invalid { field, .. } => format!("`{field}` must be at least 1"),
            other => other.to_string(),
        })
    }

    /// The console's OpenID Connect provider (`[oidc]`), `None` while `oidc.issuer` is
    /// unset; every other `[oidc]` setting is checked once it is set.
    pub fn oidc_config(&self) -> Result<Option<ownership_http::console::OidcConfig>, String> {
        let o = &self.oidc;
        let Some(issuer) = o.issuer.as_deref().map(str::trim).filter(|i| !i.is_empty()) else {
            return Ok(None);
        };
        let url = url::Url::parse(issuer)
            .map_err(|e| format!("`oidc.issuer` `{issuer}` is not a URL: {e}"))?;
        let loopback = url.host().is_some_and(|h| match h {
            url::Host::Domain(d) => d == "localhost",
            url::Host::Ipv4(a) => a.is_loopback(),
            url::Host::Ipv6(a) => a.is_loopback(),
        });
        if url.scheme() != "https" && !(url.scheme() == "http" && loopback) {
            return Err(
                "`oidc.issuer` must be an https:// URL (http:// only on a loopback host)".into(),
            );
        }
        let client_id = o
            .client_id
            .as_deref()
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .ok_or("`oidc.client_id` must be set with `oidc.issuer`")?;
        let client_secret = value_or_file_named(
            "oidc.client_secret",
            o.client_secret.as_ref(),
            o.client_secret_file.as_ref(),
        )?;
        let base = o
            .redirect_base
            .as_deref()
            .or(self.http.public_url.as_deref())
            .map(str::trim)
            .filter(|b| !b.is_empty())
            .ok_or("`oidc.redirect_base` (or `http.public_url`) must be set with `oidc.issuer`: the provider sends people back to it")?;
        let parsed = url::Url::parse(base)
            .map_err(|e| format!("`oidc.redirect_base` `{base}` is not a URL: {e}"))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.query().is_some() {
            return Err(
                "`oidc.redirect_base` must be an http:// or https:// URL without a query".into(),
            );
        }
        let mut entries = Vec::new();
        for (email, user) in &o.allowed_emails {
            let user = ownership_core::OwnerId::parse(user)
                .map_err(|e| format!("`oidc.allowed_emails` `{email}`: {e}"))?;
            entries.push((email.as_str(), user));
        }
        let allowed_emails = ownership_core::oidc::AllowList::new(entries)
            .map_err(|e| format!("`oidc.allowed_emails`: {e}"))?;
        let display_name = o.display_name.trim();
        if display_name.is_empty() || display_name.chars().count() > 64 {
            return Err("`oidc.display_name` must be 1 to 64 characters".into());
        }
        Ok(Some(ownership_http::console::OidcConfig {
            issuer: issuer.to_owned(),
            client_id: client_id.to_owned(),
            client_secret,
            display_name: display_name.to_owned(),
            redirect_base: base.to_owned(),
            allowed_emails,
        }))
    }

    /// The REST service's settings.
    pub fn service(&self) -> Result<ownership_http::ServiceConfig, String> {
        use ownership_http::ServiceConfig;
        let positive = |name: &str, v: u64| {
            if v == 0 {
                Err(format!("`{name}` must be at least 1"))
            } else {
                Ok(v)
            }
        };
        let l = &self.limits;
        for (name, v) in [
            ("limits.identity_per_second", l.identity_per_second),
            ("limits.identity_burst", l.identity_burst),
            ("limits.failed_auth_per_address", l.failed_auth_per_address),
            (
                "limits.redeem_failures_per_user",
                l.redeem_failures_per_user,
            ),
            ("limits.channel_failure_budget", l.channel_failure_budget),
            (
                "limits.leak_reports_per_address",
                l.leak_reports_per_address,
            ),
            (
                "pairing.max_pending_per_channel",
                self.pairing.max_pending_per_channel,
            ),
            ("webhooks.max_attempts", self.webhooks.max_attempts),
            ("webhooks.batch", self.webhooks.batch),
        ] {
            positive(name, u64::from(v))?;
        }
        let secs = |name: &str, v: u64| positive(name, v).map(Duration::from_secs);
        let ms = |name: &str, v: u64| positive(name, v).map(Duration::from_millis);
        let mut service = ServiceConfig::default();
        service.pairing.ttl = secs("pairing.code_ttl_seconds", self.pairing.code_ttl_seconds)?;
        service.pairing.max_pending_per_channel = self.pairing.max_pending_per_channel;
        let ss = &self.sessions;
        service.console_sessions = ownership_core::sessions::SessionPolicy {
            idle: secs("sessions.idle_seconds", ss.idle_seconds)?,
            lifetime: secs("sessions.lifetime_seconds", ss.lifetime_seconds)?,
            per_user: u32::try_from(positive("sessions.per_user", u64::from(ss.per_user))?)
                .unwrap_or(u32::MAX),
            touch_every: secs("sessions.touch_seconds", ss.touch_seconds)?,
        };
        service
            .console_sessions
            .validate()
            .map_err(|e| format!("`[sessions]`: {e}"))?;
        service.limits = ownership_http::limits::LimitsConfig {
            identity_per_second: l.identity_per_second,
            identity_burst: l.identity_burst,
            failed_auth_per_address: l.failed_auth_per_address,
            failed_auth_window: secs(
                "limits.failed_auth_window_seconds",
                l.failed_auth_window_seconds,
            )?,
            leak_reports_per_address: l.leak_reports_per_address,
            leak_reports_window: secs(
                "limits.leak_reports_window_seconds",
                l.leak_reports_window_seconds,
            )?,
            event_streams_per_user: l.event_streams_per_user,
            event_streams_total: l.event_streams_total,
        };
        service.body_limit = usize::try_from(positive(
            "http.body_limit_bytes",
            u64::try_from(self.http.body_limit_bytes).unwrap_or(u64::MAX),
        )?)
        .unwrap_or(usize::MAX);
        service.request_timeout = secs(
            "http.request_timeout_seconds",
            self.http.request_timeout_seconds,
        )?;
        service.events_poll = ms("http.events_poll_ms", self.http.events_poll_ms)?;
        service.stream_ticket_ttl = secs(
            "http.stream_ticket_seconds",
            self.http.stream_ticket_seconds.min(3600),
        )?;
        service.drain_timeout = secs(
            "http.drain_timeout_seconds",
            self.http.drain_timeout_seconds,
        )?;
        service.allow_private_webhooks = self.http.allow_private_webhooks;
        service.console_secure_cookies = self.https_public_url()?;
        service.oidc = self.oidc_config()?;
        service.trusted_proxies = self.http.trusted_proxies.iter().map(|c| c.0).collect();
        let w = &self.webhooks;
        service.webhooks.worker = w.worker;
        service.webhooks.concurrency = usize::try_from(positive(
            "webhooks.concurrency",
            u64::try_from(w.concurrency).unwrap_or(u64::MAX),
        )?)
        .unwrap_or(usize::MAX);
        service.webhooks.request_timeout = secs("webhooks.timeout_seconds", w.timeout_seconds)?;
        service.webhooks.connect_timeout = secs(
            "webhooks.connect_timeout_seconds",
            w.connect_timeout_seconds,
        )?;
        service.webhooks.retry.max_attempts = w.max_attempts;
        service.webhooks.retry.base = secs("webhooks.retry_base_seconds", w.retry_base_seconds)?;
        service.webhooks.retry.max_delay = secs(
            "webhooks.retry_max_delay_seconds",
            w.retry_max_delay_seconds,
        )?;
        service.webhooks.poll_interval = ms("webhooks.poll_interval_ms", w.poll_interval_ms)?;
        service.webhooks.batch = w.batch;
        service.webhooks.per_owner = usize::try_from(positive(
            "webhooks.concurrency_per_owner",
            u64::try_from(w.concurrency_per_owner).unwrap_or(u64::MAX),
        )?)
        .unwrap_or(usize::MAX);
        service.webhooks.breaker = ownership_webhooks::BreakerSettings {
            threshold: w.breaker_threshold,
            cool_down: secs(
                "webhooks.breaker_cooldown_seconds",
                w.breaker_cooldown_seconds,
            )?,
        };
        service.github_keys = ownership_http::github::GitHubKeys::from_pem(
            self.secret_scanning
                .github_public_keys
                .iter()
                .map(|(id, pem)| (id.as_str(), pem.as_str())),
        )
        .map_err(|e| format!("`secret_scanning.github_public_keys`: {e}"))?;
        service.passkeys = self.passkey_settings()?;
        Ok(service)
    }

    /// The cache's settings.
    pub fn cache(&self) -> Result<ownership_store::cache::CacheConfig, String> {
        if self.cache.capacity == 0 {
            return Err("`cache.capacity` must be at least 1".into());
        }
        if self.cache.ttl_seconds == 0 || self.cache.last_used_flush_seconds == 0 {
            return Err(
                "`cache.ttl_seconds` and `cache.last_used_flush_seconds` must be at least 1".into(),
            );
        }
        // The CLI promises that a running server refuses what it revoked within 1 s.
        if !(10..=800).contains(&self.cache.external_poll_ms) {
            return Err(
                "`cache.external_poll_ms` must be between 10 and 800 (changes made by the CLI \
                 are promised to reach a running server within 1 s)"
                    .into(),
            );
        }
        Ok(ownership_store::cache::CacheConfig {
            capacity: self.cache.capacity,
            ttl: Duration::from_secs(self.cache.ttl_seconds),
            last_used_flush: Duration::from_secs(self.cache.last_used_flush_seconds),
            external_poll: Duration::from_millis(self.cache.external_poll_ms),
        })
    }

    /// The TLS files, when both are set; one without the other is an error.
    pub fn tls_files(&self) -> Result<Option<(PathBuf, PathBuf)>, String> {
        match (&self.tls.cert_file, &self.tls.key_file) {
            (None, None) => Ok(None),
            (Some(c), Some(k)) => Ok(Some((c.clone(), k.clone()))),
            _ => Err("`tls.cert_file` and `tls.key_file` go together: set both or neither".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn write(dir: &tempfile::TempDir, text: &str) -> PathBuf {
        let path = dir.path().join("ownership.toml");
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn defaults_match_the_crates_defaults() {
        let loaded = load_from(None, env(&[]), &Flags::default()).unwrap();
        assert_eq!(loaded.config, Config::default());
        let service = loaded.config.service().unwrap();
        let reference = ownership_http::ServiceConfig::default();
        assert_eq!(service.limits, reference.limits);
        assert_eq!(service.webhooks, reference.webhooks);
        assert_eq!(service.body_limit, reference.body_limit);
        assert!(!service.console_secure_cookies);
        assert!(loaded.show().iter().all(|s| s.source == Source::Default));
    }

    #[test]
    fn postgres_pooling_and_the_poll_interval_are_checked() {
        let loaded = load_from(
            None,
            env(&[
                ("OWNERSHIP_DATABASE_POOLER", "transaction"),
                ("OWNERSHIP_DATABASE_MAX_CONNECTIONS", "4"),
                (
                    "OWNERSHIP_DATABASE_LISTEN_URL",
                    "postgres://u:secret@db:5432/o",
                ),
                ("OWNERSHIP_CACHE__EXTERNAL_POLL_MS", "100"),
            ]),
            &Flags::default(),
        )
        .unwrap();
        let pg = loaded.config.postgres().unwrap();
        assert_eq!(
            pg.options.pooler,
            ownership_store::postgres::Pooler::Transaction
        );
        assert_eq!(pg.options.max_connections, 4);
        assert_eq!(
            pg.listen_url.as_deref(),
            Some("postgres://u:secret@db:5432/o")
        );
        assert_eq!(
            loaded.config.cache().unwrap().external_poll,
            Duration::from_millis(100)
        );
        let shown = loaded.show();
        let listen = shown
            .iter()
            .find(|s| s.key == "database_listen_url")
            .unwrap();
        assert!(!listen.value.contains("secret"), "{}", listen.value);

        let bad = Config {
            database_pooler: "session".into(),
            ..Config::default()
        };
        assert!(bad.postgres().unwrap_err().contains("database_pooler"));
        let bad = Config {
            database_max_connections: 0,
            ..Config::default()
        };
        assert!(bad.postgres().is_err());
        let bad = Config {
            database_listen_url: Some("ownership.db".into()),
            ..Config::default()
        };
        assert!(bad.postgres().unwrap_err().contains("postgres://"));
        for ms in [0, 5_000] {
            let mut bad = Config::default();
            bad.cache.external_poll_ms = ms;
            assert!(bad.cache().unwrap_err().contains("external_poll_ms"));
        }
    }

    #[test]
    fn flags_win_over_env_over_file_over_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            &dir,
            "listen = \"127.0.0.1:1000\"\n[limits]\nidentity_per_second = 7\nidentity_burst = 9\n",
        );
        let loaded = load_from(
            Some(&path),
            env(&[
                ("OWNERSHIP_LIMITS__IDENTITY_BURST", "11"),
                ("OWNERSHIP_LISTEN", "127.0.0.1:2000"),
                ("OWNERSHIP_PG_BINDIR", "/not/ours"),
            ]),
            &Flags {
                listen: Some("127.0.0.1:3000".parse().unwrap()),
                ..Flags::default()
            },
        )
        .unwrap();
        assert_eq!(loaded.config.limits.identity_per_second, 7);
        assert_eq!(loaded.config.limits.identity_burst, 11);
        assert_eq!(loaded.config.listen.port(), 3000);
        assert_eq!(
            loaded.source("limits.identity_per_second"),
            Some(&Source::File(path.display().to_string()))
        );
        assert_eq!(
            loaded.source("limits.identity_burst"),
            Some(&Source::Env("OWNERSHIP_LIMITS__IDENTITY_BURST".into()))
        );
        assert_eq!(
            loaded.source("listen"),
            Some(&Source::Flag("--listen".into()))
        );
        assert_eq!(loaded.source("cache.capacity"), Some(&Source::Default));
    }

    #[test]
    fn an_unknown_key_is_refused_with_its_name_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            &dir,
            "listen = \"127.0.0.1:1000\"\n\n[limits]\nidentity_per_secnd = 7\n",
        );
        let e = load_from(Some(&path), env(&[]), &Flags::default()).unwrap_err();
        assert!(e.contains("identity_per_secnd"), "{e}");
        assert!(e.contains("line 4"), "{e}");
        let path = write(&dir, "[limts]\nx = 1\n");
        let e = load_from(Some(&path), env(&[]), &Flags::default()).unwrap_err();
        assert!(e.contains("limts") && e.contains("line 1"), "{e}");
        let path = write(&dir, "[limits]\nidentity_burst = \"many\"\n");
        let e = load_from(Some(&path), env(&[]), &Flags::default()).unwrap_err();
        assert!(e.contains("line 2"), "{e}");

        let e = load_from(
            None,
            env(&[("OWNERSHIP_LIMITS__IDENTITY_PER_SECND", "7")]),
            &Flags::default(),
        )
        .unwrap_err();
        assert!(e.contains("OWNERSHIP_LIMITS__IDENTITY_PER_SECND"), "{e}");
        let e = load_from(
            None,
            env(&[("OWNERSHIP_LIMITS__IDENTITY_BURST", "lots")]),
            &Flags::default(),
        )
        .unwrap_err();
        assert!(e.contains("limits.identity_burst"), "{e}");
    }

    #[test]
    fn a_missing_named_file_is_an_error() {
        let e = load_from(
            Some(Path::new("/nonexistent/ownership.toml")),
            env(&[]),
            &Flags::default(),
        )
        .unwrap_err();
        assert!(e.contains("/nonexistent/ownership.toml"), "{e}");
    }

    #[test]
    fn secrets_stay_text_and_are_hidden_when_shown() {
        let loaded = load_from(
            None,
            env(&[
                ("OWNERSHIP_BOOTSTRAP_TOKEN", "123456789012345678901234"),
                ("OWNERSHIP_MASTER_KEY", "AAAA"),
                ("DATABASE_URL", "postgres://u:hunter2@localhost/db"),
            ]),
            &Flags::default(),
        )
        .unwrap();
        assert_eq!(
            loaded.config.keys.bootstrap_token.as_deref(),
            Some("123456789012345678901234")
        );
        let shown = format!("{:?}", loaded.show());
        assert!(!shown.contains("123456789012345678901234"), "{shown}");
        assert!(!shown.contains("AAAA"), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(!format!("{:?}", loaded.config).contains("123456789012"));
    }

    #[test]
    fn the_prefixed_database_url_wins_over_the_plain_one() {
        let loaded = load_from(
            None,
            env(&[("OWNERSHIP_DATABASE_URL", "b.db"), ("DATABASE_URL", "a.db")]),
            &Flags::default(),
        )
        .unwrap();
        assert_eq!(loaded.config.database_url, "b.db");
    }

    #[test]
    fn passkeys_follow_the_public_url_unless_set() {
        let settings = |pairs: &[(&str, &str)]| {
            load_from(None, env(pairs), &Flags::default()).and_then(|l| l.config.passkey_settings())
        };
        assert_eq!(settings(&[]).unwrap(), None, "off without an origin");
        assert_eq!(
            settings(&[("OWNERSHIP_HTTP__PUBLIC_URL", "https://127.0.0.1:8443")]).unwrap(),
            None,
            "off for a public URL on an IP address"
        );
        let derived = settings(&[("OWNERSHIP_HTTP__PUBLIC_URL", "https://auth.example.com/x")])
            .unwrap()
            .unwrap();
        assert_eq!(derived.rp_id(), "auth.example.com");
        assert_eq!(derived.origin().as_str(), "https://auth.example.com/");
        let set = settings(&[
            ("OWNERSHIP_HTTP__PUBLIC_URL", "https://auth.example.com"),
            ("OWNERSHIP_PASSKEYS__RP_ID", "example.com"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(set.rp_id(), "example.com");
        let e = settings(&[
            ("OWNERSHIP_PASSKEYS__ORIGIN", "https://auth.example.com"),
            ("OWNERSHIP_PASSKEYS__RP_ID", "example.org"),
        ])
        .unwrap_err();
        assert!(e.contains("passkeys") && e.contains("example.org"), "{e}");
    }

    #[test]
    fn proxies_public_url_and_tls_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            &dir,
            "[http]\ntrusted_proxies = [\"10.0.0.0/8\", \"::1\", \"192.168.1.7/24\"]\npublic_url = \"https://auth.example.com\"\n",
        );
        let loaded = load_from(Some(&path), env(&[]), &Flags::default()).unwrap();
        let service = loaded.config.service().unwrap();
        assert!(service.console_secure_cookies);
        let shown: Vec<String> = service
            .trusted_proxies
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(shown, ["10.0.0.0/8", "::1/128", "192.168.1.0/24"]);

        let path = write(&dir, "[http]\ntrusted_proxies = [\"10.0.0.0/33\"]\n");
        let e = load_from(Some(&path), env(&[]), &Flags::default()).unwrap_err();
        assert!(e.contains("10.0.0.0/33") && e.contains("line 2"), "{e}");

        let path = write(&dir, "[tls]\ncert_file = \"/c.pem\"\n");
        let loaded = load_from(Some(&path), env(&[]), &Flags::default()).unwrap();
        assert!(loaded.config.tls_files().is_err());
    }

    #[test]
    fn zero_limits_are_refused() {
        let loaded = load_from(
            None,
            env(&[("OWNERSHIP_LIMITS__IDENTITY_PER_SECOND", "0")]),
            &Flags::default(),
        )
        .unwrap();
        let e = loaded.config.service().unwrap_err();
        assert!(e.contains("limits.identity_per_second"), "{e}");
    }

    #[test]
    fn every_key_is_in_the_reference() {
        let reference = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/operations.md"),
        )
        .unwrap();
        let missing: Vec<String> = keys()
            .into_iter()
            .filter(|k| !reference.contains(&format!("`{k}`")))
            .collect();
        assert!(
            missing.is_empty(),
            "docs/operations.md lacks these configuration keys: {missing:?}"
        );
    }

    #[test]
    fn keys_decode_and_name_the_setting_not_the_value() {
        let k = generate_key();
        assert!(key32(&plain, "master_key", Some(k)).unwrap().is_some());
        let e = key32(&plain, "master_key", Some("c2VjcmV0".into())).unwrap_err();
        assert!(
            e.contains("keys.master_key") && !e.contains("c2VjcmV0"),
            "{e}"
        );
    }
}
