//! `ownership serve`: open the store, migrate, make sure there is an Owner, and serve the
//! REST service until asked to stop. Takes its listener and its shutdown signal from the
//! caller (the binary, or a test), so tests run the very same server.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use base64::Engine as _;
use ownership_core::OwnerId;
use ownership_core::authz::SystemScope;
use ownership_core::pairing::PairingKey;
use ownership_core::ports::{Clock, FreshToken, NewToken};
use ownership_core::service;
use ownership_core::token::{TokenSecret, digest_of};
use ownership_http::{AppState, ServiceConfig};
use ownership_store::cache::CacheConfig;
use ownership_store::{OsRandom, SystemClock};
use tokio::net::TcpListener;

use crate::backend::{Location, Opened};

/// Secrets the server needs. Read from the environment or files, never from arguments
/// (which anyone on the machine can read in `ps`).
#[derive(Default, Clone)]
pub struct Secrets {
    /// 32 bytes: wraps per-owner data keys and derives the pairing-code key.
    pub master_key: Option<[u8; 32]>,
    /// 32 bytes: the pairing-code key, if given explicitly.
    pub pairing_key: Option<[u8; 32]>,
    /// Enables `POST /v1/bootstrap` with this secret (instead of printing a first token).
    pub bootstrap_token: Option<String>,
    /// Grandfathered as the first Owner's token (SPEC §3).
    pub legacy_token: Option<String>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secrets")
            .field("master_key", &self.master_key.map(|_| "****"))
            .field("pairing_key", &self.pairing_key.map(|_| "****"))
            .field(
                "bootstrap_token",
                &self.bootstrap_token.as_ref().map(|_| "****"),
            )
            .field("legacy_token", &self.legacy_token.as_ref().map(|_| "****"))
            .finish()
    }
}

/// Reads `NAME` or, failing that, the file named by `NAME_FILE` (trailing newline dropped).
pub fn secret_from_env(name: &str) -> Result<Option<String>, String> {
    if let Ok(v) = std::env::var(name) {
        return Ok(Some(v.trim().to_owned()).filter(|v| !v.is_empty()));
    }
    let file_var = format!("{name}_FILE");
    match std::env::var(&file_var) {
        Ok(path) => std::fs::read_to_string(&path)
            .map(|v| Some(v.trim().to_owned()).filter(|v| !v.is_empty()))
            .map_err(|e| format!("cannot read {file_var} `{path}`: {e}")),
        Err(_) => Ok(None),
    }
}

fn key32(name: &str, raw: Option<String>) -> Result<Option<[u8; 32]>, String> {
    let Some(raw) = raw else { return Ok(None) };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(raw.as_bytes())
        .map_err(|_| format!("{name} must be the base64 of 32 random bytes"))?;
    <[u8; 32]>::try_from(bytes.as_slice())
        .map(Some)
        .map_err(|_| format!("{name} must be the base64 of exactly 32 bytes"))
}

impl Secrets {
    /// From `OWNERSHIP_MASTER_KEY`, `OWNERSHIP_PAIRING_KEY`, `OWNERSHIP_BOOTSTRAP_TOKEN`,
    /// `OWNERSHIP_LEGACY_TOKEN` (or each with `_FILE`).
    pub fn from_env() -> Result<Self, String> {
        Ok(Self {
            master_key: key32(
                "OWNERSHIP_MASTER_KEY",
                secret_from_env("OWNERSHIP_MASTER_KEY")?,
            )?,
            pairing_key: key32(
                "OWNERSHIP_PAIRING_KEY",
                secret_from_env("OWNERSHIP_PAIRING_KEY")?,
            )?,
            bootstrap_token: secret_from_env("OWNERSHIP_BOOTSTRAP_TOKEN")?,
            legacy_token: secret_from_env("OWNERSHIP_LEGACY_TOKEN")?,
        })
    }
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
    /// REST service settings.
    pub service: ServiceConfig,
    /// Secrets.
    pub secrets: Secrets,
}

impl ServerConfig {
    /// The defaults for a location.
    pub fn new(location: Location) -> Result<Self, String> {
        Ok(Self {
            location,
            migrate: true,
            first_owner: OwnerId::parse("owner").map_err(|e| e.to_string())?,
            cache: CacheConfig::default(),
            service: ServiceConfig::default(),
            secrets: Secrets::default(),
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
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prepared")
            .field("opened", &self.opened)
            .finish_non_exhaustive()
    }
}

fn os_random() -> ownership_http::state::RandomFn {
    Arc::new(|buf: &mut [u8]| ownership_core::RandomSource::fill(&mut OsRandom, buf))
}

/// Opens and migrates the store, installs the legacy token, creates the first Owner on an
/// empty store (unless a bootstrap secret is configured), and builds the service state.
pub async fn prepare(config: &ServerConfig) -> Result<Prepared, String> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let opened = Opened::open(&config.location, Arc::clone(&clock), config.cache).await?;
    let migrations_applied = opened
        .ensure_migrated(config.migrate)
        .await
        .map_err(|e| e.to_string())?;
    let store = opened.store();
    let mut rng = OsRandom;

    if let Some(legacy) = &config.secrets.legacy_token {
        let secret_digest = digest_of(legacy);
        let token = NewToken {
            fresh: FreshToken {
                id: ownership_core::ids::TokenId::generate(&mut rng),
                digest: secret_digest,
                display_prefix: ownership_core::token::classify(legacy)
                    .map(|p| p.secret().display_prefix())
                    .unwrap_or_else(|_| "…".into()),
            },
            label: Some("legacy".into()),
            expires_at: None,
        };
        let outcome = store
            .install_legacy_token(&config.first_owner, token)
            .await
            .map_err(|e| format!("installing the legacy token failed: {e}"))?;
        tracing::info!(?outcome, owner = %config.first_owner, "legacy token");
    }

    let mut first_owner_token = None;
    if !store.has_owner().await.map_err(|e| e.to_string())?
        && config.secrets.bootstrap_token.is_none()
    {
        let (user, secret) = service::bootstrap_owner(&*store, &config.first_owner, &mut rng)
            .await
            .map_err(|e| format!("creating the first Owner failed: {e}"))?;
        first_owner_token = Some((user.id, secret));
    }

    let pairing_key = match (config.secrets.pairing_key, config.secrets.master_key) {
        (Some(k), _) => PairingKey::from_bytes(k),
        (None, Some(master)) => PairingKey::derive_from_master(&master),
        (None, None) => store
            .stored_pairing_key(&SystemScope::background(), &PairingKey::generate(&mut rng))
            .await
            .map_err(|e| format!("reading the pairing-code key failed: {e}"))?,
    };

    let mut state = AppState::new(
        Arc::clone(&store),
        clock,
        os_random(),
        pairing_key,
        config.service.clone(),
    );
    if let Some(b) = &config.secrets.bootstrap_token {
        state = state.with_bootstrap_secret(b);
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
    })
}

/// Serves until `shutdown` resolves; in-flight requests finish, then written-behind state
/// is flushed.
pub async fn serve(
    prepared: Prepared,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    let app = ownership_http::router(prepared.state.clone());
    let result = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
    .map_err(|e| format!("server failed: {e}"));
    if let Err(e) = prepared.opened.flush().await {
        tracing::warn!(error = %e, "flushing last-used times at shutdown failed");
    }
    result
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}
