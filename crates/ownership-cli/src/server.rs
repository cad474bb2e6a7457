//! `ownership serve`: open the store, migrate, make sure there is an Owner, and serve the
//! REST service until asked to stop. Takes its listener and its shutdown signal from the
//! caller (the binary, or a test), so tests run the very same server.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::serve::ListenerExt as _;
use ownership_core::OwnerId;
use ownership_core::authz::{AdminScope, SystemScope};
use ownership_core::crypto::{MasterKey, MasterKeys};
use ownership_core::pairing::PairingKey;
use ownership_core::ports::{Clock, FreshToken, LegacyOutcome, NewToken, Store};
use ownership_core::service;
use ownership_core::token::{TokenSecret, digest_of};
use ownership_http::{AppState, ServiceConfig};
use ownership_store::cache::CacheConfig;
use ownership_store::{OsRandom, SystemClock};
use tokio::net::TcpListener;

use crate::backend::{Location, Opened};
use crate::tls::{ReloadOnHangup, Tls, TlsFiles};

/// Secrets the server needs. Read from the environment or files, never from arguments
/// (which anyone on the machine can read in `ps`).
#[derive(Default, Clone)]
pub struct Secrets {
    /// 32 bytes: wraps per-owner data keys and seals webhook signing secrets (and derives
    /// the pairing-code key). Without it, secrets, resources and webhooks are off.
    pub master_key: Option<[u8; 32]>,
    /// The master key's version (`OWNERSHIP_MASTER_KEY_VERSION`, default 1).
    pub master_key_version: Option<u32>,
    /// During a master-key rotation, the previous key, so keys wrapped under it still open
    /// until `ownership secrets rewrap` has moved them (see `docs/secrets.md`).
    pub previous_master_key: Option<[u8; 32]>,
    /// The previous key's version (`OWNERSHIP_PREVIOUS_MASTER_KEY_VERSION`, default: the
    /// current version minus one).
    pub previous_master_key_version: Option<u32>,
    /// 32 bytes: the pairing-code key, if given explicitly.
    pub pairing_key: Option<[u8; 32]>,
    /// Enables `POST /v1/bootstrap` with this secret (instead of printing a first token).
    pub bootstrap_token: Option<String>,
    /// Grandfathered as the first Owner's token (docs/tokens.md).
    pub legacy_token: Option<String>,
    /// A static user-token table (JSON), provisioned at start (docs/tokens.md).
    pub user_tokens: Option<String>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secrets")
            .field("master_key", &self.master_key.map(|_| "****"))
            .field("master_key_version", &self.master_key_version)
            .field(
                "previous_master_key",
                &self.previous_master_key.map(|_| "****"),
            )
            .field(
                "previous_master_key_version",
                &self.previous_master_key_version,
            )
            .field("pairing_key", &self.pairing_key.map(|_| "****"))
            .field(
                "bootstrap_token",
                &self.bootstrap_token.as_ref().map(|_| "****"),
            )
            .field("legacy_token", &self.legacy_token.as_ref().map(|_| "****"))
            .field("user_tokens", &self.user_tokens.as_ref().map(|_| "****"))
            .finish()
    }
}

impl Secrets {
    /// The secrets of a configuration's `[keys]` section, each given by value or by file.
    /// A malformed key is refused with a message naming its setting (through `describe`),
    /// never its value.
    pub fn from_keys(
        keys: &crate::config::KeysSection,
        describe: crate::config::Describe<'_>,
    ) -> Result<Self, String> {
        use crate::config::{key32, value_or_file};
        let read = |name: &str, value: &Option<String>, file: &Option<std::path::PathBuf>| {
            value_or_file(describe, name, value.as_ref(), file.as_ref())
        };
        let key = |name: &str, value: &Option<String>, file: &Option<std::path::PathBuf>| {
            key32(describe, name, read(name, value, file)?)
        };
        let version = |name: &str, v: Option<u32>| match v {
            Some(0) => Err(format!(
                "{} must be a whole number of 1 or more",
                describe(&format!("keys.{name}"))
            )),
            other => Ok(other),
        };
        // Static secrets must be strong (the rule of `users import`, docs/tokens.md); the
        // error names the setting, never the value.
        let strong = |name: &str, value: Option<String>| match value {
            Some(v) => ownership_core::provision::check_static_strength(&v)
                .map(|()| Some(v))
                .map_err(|reason| format!("{}: {reason}", describe(&format!("keys.{name}")))),
            None => Ok(None),
        };
        Ok(Self {
            master_key: key("master_key", &keys.master_key, &keys.master_key_file)?,
            master_key_version: version("master_key_version", keys.master_key_version)?,
            previous_master_key: key(
                "previous_master_key",
                &keys.previous_master_key,
                &keys.previous_master_key_file,
            )?,
            previous_master_key_version: version(
                "previous_master_key_version",
                keys.previous_master_key_version,
            )?,
            pairing_key: key("pairing_key", &keys.pairing_key, &keys.pairing_key_file)?,
            bootstrap_token: strong(
                "bootstrap_token",
                read(
                    "bootstrap_token",
                    &keys.bootstrap_token,
                    &keys.bootstrap_token_file,
                )?,
            )?,
            legacy_token: strong(
                "legacy_token",
                read("legacy_token", &keys.legacy_token, &keys.legacy_token_file)?,
            )?,
            user_tokens: read("user_tokens", &keys.user_tokens, &keys.user_tokens_file)?,
        })
    }

    /// The secrets as the server and the operator commands share them: on the embedded
    /// libSQL store with no master key given by value, `keys.master_key_file` (default
    /// `<database>.master-key`) is read when it exists. Returns the secrets and, when the
    /// key file does not exist yet, where `serve` generates one on first start (see
    /// [`ServerConfig::generate_master_key`]). On PostgreSQL nothing is generated: every
    /// process must share one key, so an operator gives it.
    pub fn resolve(
        keys: &crate::config::KeysSection,
        location: &Location,
        describe: crate::config::Describe<'_>,
    ) -> Result<(Self, Option<std::path::PathBuf>), String> {
        let by_value = keys
            .master_key
            .as_deref()
            .is_some_and(|k| !k.trim().is_empty());
        let Location::LibsqlFile(db) = location else {
            return Self::from_keys(keys, describe).map(|s| (s, None));
        };
        if by_value {
            return Self::from_keys(keys, describe).map(|s| (s, None));
        }
        let path = keys
            .master_key_file
            .clone()
            .unwrap_or_else(|| crate::config::generated_key_path(db));
        let mut keys = keys.clone();
        if path.exists() {
            keys.master_key_file = Some(path);
            Self::from_keys(&keys, describe).map(|s| (s, None))
        } else {
            keys.master_key_file = None;
            Self::from_keys(&keys, describe).map(|s| (s, Some(path)))
        }
    }

    /// The master keys these secrets configure: `None` without a master key; the current
    /// key (version 1 unless set) and, when given, the previous one (version: as set, else
    /// the current minus one). A previous key without a master key, or two keys of one
    /// version, is an error.
    pub fn master_keys(&self) -> Result<Option<MasterKeys>, String> {
        let Some(key) = self.master_key else {
            if self.previous_master_key.is_some() {
                return Err("`keys.previous_master_key` is set without `keys.master_key`".into());
            }
            return Ok(None);
        };
        let version = self.master_key_version.unwrap_or(1);
        let current = MasterKey::new(version, key).map_err(|e| e.to_string())?;
        let previous = match self.previous_master_key {
            None => None,
            Some(old) => {
                let old_version = match self.previous_master_key_version {
                    Some(v) => v,
                    None if version > 1 => version - 1,
                    None => {
                        return Err("`keys.previous_master_key` needs \
                             `keys.previous_master_key_version` when the master key is \
                             version 1"
                            .into());
                    }
                };
                Some(MasterKey::new(old_version, old).map_err(|e| e.to_string())?)
            }
        };
        MasterKeys::new(current, previous)
            .map(Some)
            .map_err(|e| e.to_string())
    }
}

/// Writes a fresh master key to `path`, readable by its owner only; never replaces a file.
fn write_new_key(path: &std::path::Path) -> Result<(), String> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(|e| {
        format!(
            "cannot create the master key file {}: {e} (set `keys.master_key_file` to a writable path, or give `keys.master_key`)",
            path.display()
        )
    })?;
    let key = crate::config::generate_key();
    file.write_all(key.as_bytes())
        .and_then(|()| file.write_all(b"\n"))
        .and_then(|()| file.sync_all())
        .map_err(|e| format!("cannot write the master key file {}: {e}", path.display()))
}

/// How to run the server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Where the data lives.
    pub location: Location,
    /// Apply pending migrations at start (else refuse to start when any are pending).
    pub migrate: bool,
    /// The id of the Owner created on an empty store (and of the legacy token's owner).
    pub first_owner: OwnerId,
    /// Cache bounds.
    pub cache: CacheConfig,
    /// How a PostgreSQL store connects (pool size, pooler, listener URL).
    pub postgres: crate::backend::PgSettings,
    /// The quotas and wrong pairing-code budgets the store enforces.
    pub limits: ownership_core::quotas::Limits,
    /// REST service settings.
    pub service: ServiceConfig,
    /// Secrets.
    pub secrets: Secrets,
    /// Where to serve Prometheus metrics (`GET /metrics`) on a listener of their own;
    /// `None` (the default) turns metrics off: no recorder, no listener.
    pub metrics_listen: Option<SocketAddr>,
    /// Serve HTTPS with this certificate and key (reloaded on SIGHUP) instead of plain
    /// HTTP (`[tls] cert_file`, `key_file`).
    pub tls: Option<TlsFiles>,
    /// Where to generate a master key when [`Secrets::master_key`] is unset: the embedded
    /// store's key file on first start. Generated only once the store is open and
    /// migrated, so a start that fails leaves nothing behind.
    pub generate_master_key: Option<std::path::PathBuf>,
    /// How often the heads of the owner audit chains that changed are anchored into the
    /// system chain (`[audit] anchor_interval_seconds`).
    pub anchor_interval: std::time::Duration,
}

/// The default of [`ServerConfig::anchor_interval`] (kept with the configuration file's
/// defaults).
pub use crate::config::DEFAULT_ANCHOR_INTERVAL;

impl ServerConfig {
    /// The defaults for a location.
    pub fn new(location: Location) -> Result<Self, String> {
        Ok(Self {
            location,
            migrate: true,
            first_owner: OwnerId::parse("owner").map_err(|e| e.to_string())?,
            cache: CacheConfig::default(),
            postgres: crate::backend::PgSettings::default(),
            limits: ownership_core::quotas::Limits::default(),
            service: ServiceConfig::default(),
            secrets: Secrets::default(),
            metrics_listen: None,
            tls: None,
            generate_master_key: None,
            anchor_interval: DEFAULT_ANCHOR_INTERVAL,
        })
    }
}

/// A server ready to accept connections.
pub struct Prepared {
    /// The open store.
    pub opened: Opened,
    /// The service state.
    pub state: AppState,
    /// The first Owner's token when this start created them: show it once.
    pub first_owner_token: Option<(OwnerId, TokenSecret)>,
    /// How many migrations this start applied.
    pub migrations_applied: usize,
    /// TLS, when configured, with its reload-on-SIGHUP task.
    tls: Option<(Tls, ReloadOnHangup)>,
    /// Held for the server's lifetime: the libSQL single-server lock, the
    /// cache-invalidation listener (PostgreSQL) or watcher (libSQL).
    _held: (Option<std::fs::File>, crate::backend::InvalidationListener),
    /// The metrics address and recorder, when metrics are on.
    metrics: Option<(SocketAddr, ownership_http::metrics::PrometheusHandle)>,
    /// How often the owner chains are anchored.
    anchor_interval: std::time::Duration,
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prepared")
            .field("opened", &self.opened)
            .field("tls", &self.tls.as_ref().map(|(tls, _)| tls.files()))
            .finish_non_exhaustive()
    }
}

fn os_random() -> ownership_http::state::RandomFn {
    Arc::new(|buf: &mut [u8]| ownership_core::RandomSource::fill(&mut OsRandom, buf))
}

/// The key that pairing codes are hashed under, resolved the same way by the server and
/// by the operator's `ownership pairing approve`: `OWNERSHIP_PAIRING_KEY` when given, else
/// derived from `OWNERSHIP_MASTER_KEY`, else the key kept in the store (generated and kept
/// there on first use). Two processes that resolve different keys cannot redeem each
/// other's codes, so both must see the same secrets.
pub async fn pairing_key(store: &dyn Store, secrets: &Secrets) -> Result<PairingKey, String> {
    match (secrets.pairing_key, secrets.master_key) {
        (Some(k), _) => Ok(PairingKey::from_bytes(k)),
        (None, Some(master)) => Ok(PairingKey::derive_from_master(&master)),
        (None, None) => store
            .stored_pairing_key(
                &SystemScope::background(),
                &PairingKey::generate(&mut OsRandom),
            )
            .await
            .map_err(|e| format!("reading the pairing-code key failed: {e}")),
    }
}

/// The configured secrets, with the master key generated now when the configuration says
/// where ([`ServerConfig::generate_master_key`]) and none was given. Logs what it did, and
/// warns when secrets, resource credentials and webhooks stay off.
fn first_start_key(config: &ServerConfig) -> Result<Secrets, String> {
    let mut secrets = config.secrets.clone();
    if secrets.master_key.is_none()
        && let Some(path) = &config.generate_master_key
    {
        if !path.exists() {
            write_new_key(path)?;
            tracing::warn!(
                path = %path.display(),
                "generated a master key for secrets, resource credentials and webhooks; back this file up with the database. In production, give your own key (`keys.master_key_file`, from `ownership keys generate`)"
            );
        }
        let keys = crate::config::KeysSection {
            master_key_file: Some(path.clone()),
            ..crate::config::KeysSection::default()
        };
        secrets.master_key = Secrets::from_keys(&keys, &crate::config::plain)?.master_key;
    }
    if secrets.master_key.is_none() {
        tracing::warn!(
            "no master key: secrets, resource credentials and webhooks are off (they answer 503). Every process on one PostgreSQL must share one key: set `keys.master_key_file` (or OWNERSHIP_MASTER_KEY_FILE) to a file made by `ownership keys generate`"
        );
    }
    Ok(secrets)
}

/// Loads the TLS certificate (when configured; before anything else, so a bad file stops
/// the start at once), opens and migrates the store, installs the legacy token, creates
/// the first Owner on an empty store (unless a bootstrap secret is configured), and
/// builds the service state.
pub async fn prepare(config: &ServerConfig) -> Result<Prepared, String> {
    let tls = match &config.tls {
        None => None,
        Some(files) => {
            let tls = Tls::new(files.clone())?;
            tls.warn_if_key_exposed();
            let reloading = crate::tls::reload_on_hangup(tls.clone())?;
            Some((tls, reloading))
        }
    };
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    // The recorder goes in before the store opens: the cache makes its metric handles then.
    let metrics = match config.metrics_listen {
        Some(address) => Some((
            address,
            ownership_http::metrics::install().map_err(|e| e.to_string())?,
        )),
        None => None,
    };
    // libSQL is single-process: a second server on the same file is refused.
    let lock = match &config.location {
        Location::LibsqlFile(path) => Some(crate::backend::lock_libsql_for_serving(path)?),
        Location::Postgres(_) => None,
    };
    let opened = Opened::open(
        &config.location,
        Arc::clone(&clock),
        config.cache,
        &config.postgres,
        config.limits,
    )
    .await?;
    let migrations_applied = opened
        .ensure_migrated(config.migrate)
        .await
        .map_err(|e| e.to_string())?;
    opened
        .check_writable()
        .await
        .map_err(|e| format!("the store cannot be written: {e}"))?;
    // Listening starts once the store is known to be usable, so a refused start says one
    // thing only.
    let listener =
        opened.listen_for_invalidations(&config.location, &config.cache, &config.postgres);
    let store = opened.store();
    let mut rng = OsRandom;
    let secrets = first_start_key(config)?;
    // With a master key the audit chain is keyed (docs/security.md#audit-log): every event
    // from now on, and a marker event when the newest one is not keyed yet.
    if let Some(keys) = secrets.master_keys()? {
        opened.set_chain_keys(ownership_core::audit::ChainKeys::from_master(&keys));
        if store
            .key_chain()
            .await
            .map_err(|e| format!("keying the audit chain failed: {e}"))?
        {
            tracing::info!("the audit chain is keyed from this start on");
        }
    }

    if let Some(legacy) = &secrets.legacy_token {
        let secret_digest = digest_of(legacy);
        let token = NewToken {
            fresh: FreshToken {
                id: ownership_core::ids::TokenId::generate(&mut rng),
                digest: secret_digest,
                display_prefix: ownership_core::token::classify(legacy)
                    .map(|p| p.secret().display_prefix())
                    .unwrap_or_else(|_| ownership_core::token::DisplayPrefix::hidden()),
            },
            label: ownership_core::ids::Label::parse("legacy").ok(),
            expires_at: None,
        };
        let outcome = store
            .install_legacy_token(&config.first_owner, token)
            .await
            .map_err(|e| format!("installing the legacy token failed: {e}"))?;
        if outcome == LegacyOutcome::Revoked {
            tracing::warn!(
                owner = %config.first_owner,
                "the configured legacy token was revoked by its user; it stays revoked. \
                 Configure a new value to restore access"
            );
        } else {
            tracing::info!(?outcome, owner = %config.first_owner, "legacy token");
        }
    }

    if let Some(table) = &secrets.user_tokens {
        // Validated whole before anything is written; a bad table stops the start.
        let scope = AdminScope::operator("OWNERSHIP_USER_TOKENS");
        let plan = service::provision(&*store, &scope, table, false)
            .await
            .map_err(|e| format!("OWNERSHIP_USER_TOKENS: {e}"))?;
        tracing::info!(
            users_created = plan.users_created.len(),
            roles_changed = plan.roles_changed.len(),
            tokens_added = plan.tokens_added.len(),
            tokens_updated = plan.tokens_updated.len(),
            tokens_revoked = plan.tokens_revoked.len(),
            "user-token table provisioned"
        );
        for kept in &plan.tokens_kept_revoked {
            tracing::warn!(
                entry = kept.entry,
                user = %kept.user_id,
                token_id = %kept.token_id,
                "OWNERSHIP_USER_TOKENS: this entry's token was revoked; it stays revoked. \
                 Provision a new value for the user to restore access"
            );
        }
    }

    let mut first_owner_token = None;
    if !store.has_owner().await.map_err(|e| e.to_string())? && secrets.bootstrap_token.is_none() {
        let (user, secret) = service::bootstrap_owner(&*store, &config.first_owner, &mut rng)
            .await
            .map_err(|e| format!("creating the first Owner failed: {e}"))?;
        first_owner_token = Some((user.id, secret));
    }

    let pairing_key = pairing_key(&*store, &secrets).await?;

    let mut state = AppState::new(
        Arc::clone(&store),
        clock,
        os_random(),
        pairing_key,
        config.service.clone(),
    );
    if let Some(b) = &secrets.bootstrap_token {
        state = state.with_bootstrap_secret(b);
    }
    if let Some(healthy) = listener.healthy() {
        state = state.with_readiness(healthy);
    }
    if let Some(keys) = secrets.master_keys()? {
        state = state.with_master_keys(keys);
    }
    state.set_foreign_tokens_allowed(
        store
            .has_foreign_tokens()
            .await
            .map_err(|e| e.to_string())?,
    );
    Ok(Prepared {
        opened,
        state,
        first_owner_token,
        migrations_applied,
        tls,
        _held: (lock, listener),
        metrics,
        anchor_interval: config.anchor_interval,
    })
}

/// Anchors the owner audit chains every `every` until `stop` resolves
/// ([`ownership_core::audit_log::AuditLog::anchor_chains`]; docs/security.md#audit-log).
async fn anchor_periodically(
    store: Arc<dyn Store>,
    every: std::time::Duration,
    stop: impl Future<Output = ()> + Send,
) {
    let mut stop = std::pin::pin!(stop);
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = &mut stop => return,
            _ = ticks.tick() => anchor_once(&*store).await,
        }
    }
}

/// One anchor; a failure is logged (the next tick tries again).
async fn anchor_once(store: &dyn Store) {
    match store.anchor_chains().await {
        Ok(0) => {}
        Ok(chains) => tracing::debug!(chains, "audit chains anchored"),
        Err(e) => tracing::warn!(error = %e, "anchoring the audit chains failed"),
    }
}

/// Serves until `shutdown` resolves, then drains (see `docs/operations.md`, "Graceful shutdown"):
/// stops accepting connections, ends every event stream with a final `shutdown` event,
/// gives in-flight requests and the webhook worker's attempts until `http.drain_timeout_seconds`
/// after the signal, cuts off what is left, and flushes the written-behind `last_used_at`
/// times. With TLS configured, serves HTTPS and reloads the certificate on SIGHUP; the
/// metrics listener drains the same way.
pub async fn serve(
    prepared: Prepared,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    enum Listening {
        Plain(TcpListener),
        Tls(crate::tls::TlsListener),
    }
    let listening = match &prepared.tls {
        None => Listening::Plain(listener),
        Some((tls, _)) => Listening::Tls(
            tls.listen(listener)
                .map_err(|e| format!("cannot serve TLS: {e}"))?,
        ),
    };
    let drain = prepared.state.drain().clone();
    let drain_timeout = prepared.state.config().drain_timeout;
    // Metrics on their own listener, bound before serving so a bad address stops the start.
    let metrics = match prepared.metrics.clone() {
        Some((address, handle)) => {
            let listener = TcpListener::bind(address)
                .await
                .map_err(|e| format!("cannot listen for metrics on {address}: {e}"))?;
            let bound = listener.local_addr().unwrap_or(address);
            tracing::info!(address = %bound, "metrics listening");
            tokio::spawn(ownership_http::metrics::run_upkeep(
                handle.clone(),
                drain.stopping(),
            ));
            Some(tokio::spawn(
                axum::serve(listener, ownership_http::metrics::router(handle))
                    .with_graceful_shutdown(drain.stopping())
                    .into_future(),
            ))
        }
        None => None,
    };
    let app = ownership_http::router(prepared.state.clone());
    // The webhook delivery worker reads every owner's events as the operator who runs
    // this server; asked to stop with the rest, it finishes its attempts in flight
    // within the deadline.
    let worker = tokio::spawn(ownership_webhooks::run_worker(
        prepared.state.webhook_worker_deps(),
        AdminScope::operator("webhook-worker"),
        drain.stopping(),
    ));
    let anchoring = tokio::spawn(anchor_periodically(
        prepared.opened.store(),
        prepared.anchor_interval,
        drain.stopping(),
    ));
    let make_service = app.into_make_service_with_connect_info::<SocketAddr>();
    let serving = async {
        match listening {
            Listening::Plain(listener) => {
                axum::serve(listener, make_service)
                    .with_graceful_shutdown(drain.stopping())
                    .await
            }
            // `tap_io` also gives `ConnectInfo<SocketAddr>` for any listener whose address
            // is a `SocketAddr`: the client address the limits and the audit log use.
            Listening::Tls(tls_listener) => {
                let tls_listener = tls_listener.tap_io(|stream| {
                    let _ = stream.get_ref().0.set_nodelay(true);
                });
                axum::serve(tls_listener, make_service)
                    .with_graceful_shutdown(drain.stopping())
                    .await
            }
        }
        .map_err(|e| format!("server failed: {e}"))
    };
    let mut serving = std::pin::pin!(serving);
    let mut shutdown = std::pin::pin!(shutdown);
    // `Some` when the server ended by itself (it failed): the rest stops the same way.
    let ended = tokio::select! {
        result = &mut serving => Some(result),
        () = &mut shutdown => None,
    };
    let signalled = tokio::time::Instant::now();
    drain.begin();
    let deadline = signalled + drain_timeout;
    tracing::info!(
        in_flight = drain.in_flight(),
        drain_timeout_seconds = drain_timeout.as_secs(),
        "draining: no new connections; event streams told to reconnect"
    );
    // The rest of the connections get until the deadline; then they are dropped.
    let (result, aborted) = match ended {
        Some(result) => (result, 0),
        None => match tokio::time::timeout_at(deadline, &mut serving).await {
            Ok(result) => (result, 0),
            Err(_) => (Ok(()), drain.in_flight()),
        },
    };
    let metrics_drained = match metrics {
        Some(task) => finish_by(deadline, task, "metrics server").await,
        None => true,
    };
    let worker_drained = finish_by(deadline, worker, "webhook worker").await;
    // What was written up to the end is anchored once more.
    finish_by(deadline, anchoring, "audit anchoring").await;
    anchor_once(&*prepared.opened.store()).await;
    let flushed = prepared.opened.flush().await;
    let flush = match &flushed {
        Ok(n) => format!("{n} last-used times written"),
        Err(e) => format!("failed: {e}"),
    };
    tracing::info!(
        streams_closed = drain.streams_closed(),
        requests_aborted = aborted,
        webhook_worker_finished = worker_drained,
        metrics_finished = metrics_drained,
        flush = %flush,
        elapsed_ms = signalled.elapsed().as_millis(),
        "shutdown complete"
    );
    if aborted > 0 {
        tracing::warn!(
            requests_aborted = aborted,
            "the drain timeout cut off requests still in flight"
        );
    }
    if let Err(e) = flushed {
        tracing::warn!(error = %e, "flushing last-used times at shutdown failed");
    }
    result
}

/// Waits for a background task until `deadline`, then aborts it. Returns whether it ended
/// by itself; logs how it ended otherwise.
async fn finish_by<T: std::fmt::Debug>(
    deadline: tokio::time::Instant,
    mut task: tokio::task::JoinHandle<T>,
    what: &str,
) -> bool {
    match tokio::time::timeout_at(deadline, &mut task).await {
        Ok(Ok(ended)) => {
            tracing::debug!(task = what, ?ended, "stopped");
            true
        }
        Ok(Err(e)) => {
            tracing::warn!(task = what, error = %e, "ended abnormally");
            false
        }
        Err(_) => {
            task.abort();
            tracing::warn!(
                task = what,
                "still busy at the drain deadline: aborted (unrecorded webhook attempts are sent again)"
            );
            false
        }
    }
}

/// A stop signal: SIGINT or SIGTERM.
#[derive(Debug, Clone, Copy)]
enum StopSignal {
    Interrupt,
    Terminate,
}

impl StopSignal {
    fn name(self) -> &'static str {
        match self {
            Self::Interrupt => "SIGINT",
            Self::Terminate => "SIGTERM",
        }
    }

    /// The exit status of a process ended by this signal (128 + its number), used when a
    /// second signal ends the process at once.
    fn exit_status(self) -> i32 {
        match self {
            Self::Interrupt => 130,
            Self::Terminate => 143,
        }
    }
}

/// SIGINT and SIGTERM, received as often as they come.
struct StopSignals {
    #[cfg(unix)]
    interrupt: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    terminate: Option<tokio::signal::unix::Signal>,
}

impl StopSignals {
    fn new() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Self {
                interrupt: signal(SignalKind::interrupt()).ok(),
                terminate: signal(SignalKind::terminate()).ok(),
            }
        }
        #[cfg(not(unix))]
        Self {}
    }

    async fn next(&mut self) -> StopSignal {
        #[cfg(unix)]
        {
            async fn recv(s: &mut Option<tokio::signal::unix::Signal>) {
                let received = match s {
                    Some(s) => s.recv().await.is_some(),
                    None => false,
                };
                if !received {
                    std::future::pending::<()>().await;
                }
            }
            tokio::select! {
                () = recv(&mut self.interrupt) => StopSignal::Interrupt,
                () = recv(&mut self.terminate) => StopSignal::Terminate,
            }
        }
        #[cfg(not(unix))]
        {
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
            StopSignal::Interrupt
        }
    }
}

/// Resolves on the first SIGINT or SIGTERM. From then on, a second one ends the process
/// at once, without draining or flushing, with status 130 (SIGINT) or 143 (SIGTERM).
pub async fn shutdown_signal() {
    let mut signals = StopSignals::new();
    let first = signals.next().await;
    tracing::info!(
        signal = first.name(),
        "shutting down: draining (a second signal exits at once)"
    );
    tokio::spawn(async move {
        let second = signals.next().await;
        tracing::warn!(
            signal = second.name(),
            status = second.exit_status(),
            "second signal: exiting now, without draining or flushing"
        );
        std::process::exit(second.exit_status());
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn master_keys_default_to_version_one_and_take_a_previous_key() {
        let none = Secrets::default();
        assert!(none.master_keys().unwrap().is_none());

        let one = Secrets {
            master_key: Some([1; 32]),
            ..Secrets::default()
        };
        let keys = one.master_keys().unwrap().unwrap();
        assert_eq!(keys.current().version(), 1);
        assert!(keys.previous().is_none());

        let rotating = Secrets {
            master_key: Some([2; 32]),
            master_key_version: Some(2),
            previous_master_key: Some([1; 32]),
            ..Secrets::default()
        };
        let keys = rotating.master_keys().unwrap().unwrap();
        assert_eq!(keys.current().version(), 2);
        assert_eq!(keys.previous().map(MasterKey::version), Some(1));

        // The new key beside the old, for the first round of a multi-process roll-out.
        let staged = Secrets {
            master_key: Some([1; 32]),
            previous_master_key: Some([2; 32]),
            previous_master_key_version: Some(2),
            ..Secrets::default()
        };
        assert!(staged.master_keys().unwrap().unwrap().get(2).is_some());

        for bad in [
            Secrets {
                previous_master_key: Some([1; 32]),
                ..Secrets::default()
            },
            Secrets {
                master_key: Some([2; 32]),
                previous_master_key: Some([1; 32]),
                ..Secrets::default()
            },
            Secrets {
                master_key: Some([2; 32]),
                master_key_version: Some(3),
                previous_master_key: Some([1; 32]),
                previous_master_key_version: Some(3),
                ..Secrets::default()
            },
        ] {
            assert!(bad.master_keys().is_err(), "{bad:?}");
        }
        assert!(!format!("{rotating:?}").contains("[2, 2"));
    }
}
