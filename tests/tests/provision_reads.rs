//! Store reads around static user-token tables: a store with no provisioned or legacy
//! token refuses unprefixed tokens without a store read; once a table is provisioned they
//! are looked up by digest; and the cache evicts what applying a table invalidates.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests"
)]

use std::sync::Arc;

use ownership_core::Error;
use ownership_core::UserRole;
use ownership_core::authz::AdminScope;
use ownership_core::ports::{Clock, TokenStore};
use ownership_core::service;
use ownership_store::cache::{CacheConfig, Cached};
use ownership_tests::backends;
use ownership_tests::conformance::support::*;
use ownership_tests::counting::Counting;
use serde_json::json;

const RAW: &str = "static-user-token-0001";

#[tokio::test]
async fn unprefixed_tokens_are_refused_offline_until_a_table_is_provisioned() {
    let s = Counting::new(backends::libsql_memory(backends::manual_clock()).await);
    boot(&s).await;

    // What the server does at start: ask once whether foreign tokens exist.
    let allowed = s.has_foreign_tokens().await.unwrap();
    assert!(!allowed);
    let before = s.calls();
    for raw in [RAW, "anything-else", "x"] {
        assert!(matches!(
            service::authenticate(&s, raw, allowed).await,
            Err(Error::Unauthenticated)
        ));
    }
    // A malformed token of ours is refused offline whatever the setting.
    assert!(matches!(
        service::authenticate(&s, "own_u_tooShort", true).await,
        Err(Error::Unauthenticated)
    ));
    assert_eq!(s.calls(), before, "an unprefixed token reached the store");

    let table = json!([{"token": RAW, "user_id": "alice", "role": "admin"}]).to_string();
    service::provision(&s, &AdminScope::operator("tester"), &table, false)
        .await
        .unwrap();
    let allowed = s.has_foreign_tokens().await.unwrap();
    assert!(allowed);

    let before = s.calls();
    let p = service::authenticate(&s, RAW, allowed).await.unwrap();
    assert_eq!(*p.identity().owner_id(), oid("alice"));
    assert_eq!(p.identity().role(), UserRole::Admin);
    assert_eq!(s.calls(), before + 1, "one lookup by digest");
    assert!(matches!(
        service::authenticate(&s, "unknown-static-token", allowed).await,
        Err(Error::Unauthenticated)
    ));
    assert_eq!(s.calls(), before + 2);
}

type CachedStore = Cached<Counting<ownership_store::libsql::LibsqlStore>>;

async fn cached() -> CachedStore {
    let clock = backends::manual_clock();
    let counting = Counting::new(backends::libsql_memory(Arc::clone(&clock)).await);
    Cached::new(counting, clock as Arc<dyn Clock>, CacheConfig::default())
}

#[tokio::test]
async fn the_cache_evicts_what_a_table_changes() {
    let s = cached().await;
    let op = AdminScope::operator("tester");
    let table = |alice_role: &str, kinds: &[&str], with_bob: bool| {
        let mut entries = vec![
            json!({"token": RAW, "user_id": "alice", "role": alice_role, "kinds": kinds}),
            json!({"token": "root-static-token-0001", "user_id": "root", "role": "owner"}),
        ];
        if with_bob {
            entries.push(json!({"token": "bob-static-token-00001", "user_id": "bob"}));
        }
        serde_json::Value::Array(entries).to_string()
    };
    service::provision(&s, &op, &table("member", &["manage", "api"], true), false)
        .await
        .unwrap();

    // Warm: repeated lookups are served from memory.
    for raw in [RAW, "bob-static-token-00001"] {
        service::authenticate(&s, raw, true).await.unwrap();
    }
    let before = s.inner().calls();
    for _ in 0..10 {
        service::authenticate(&s, RAW, true).await.unwrap();
        service::authenticate(&s, "bob-static-token-00001", true)
            .await
            .unwrap();
    }
    assert_eq!(s.inner().calls(), before, "warm lookups reached the store");

    // An unchanged table evicts nothing.
    let plan = service::provision(&s, &op, &table("member", &["manage", "api"], true), false)
        .await
        .unwrap();
    assert!(plan.is_empty());
    let before = s.inner().calls();
    service::authenticate(&s, RAW, true).await.unwrap();
    assert_eq!(s.inner().calls(), before);

    // A dry run evicts nothing and changes nothing.
    service::provision(&s, &op, &table("admin", &["api"], false), true)
        .await
        .unwrap();
    let p = service::authenticate(&s, RAW, true).await.unwrap();
    assert_eq!(p.identity().role(), UserRole::Member);
    assert!(
        service::authenticate(&s, "bob-static-token-00001", true)
            .await
            .is_ok()
    );

    // Role change, kinds change and a removed entry are all visible at once.
    service::provision(&s, &op, &table("admin", &["api"], false), false)
        .await
        .unwrap();
    let p = service::authenticate(&s, RAW, true).await.unwrap();
    assert_eq!(
        p.identity().role(),
        UserRole::Admin,
        "stale role served from cache"
    );
    assert_eq!(p.kinds().to_csv(), "api", "stale kinds served from cache");
    assert!(
        matches!(
            service::authenticate(&s, "bob-static-token-00001", true).await,
            Err(Error::Unauthenticated)
        ),
        "revoked provisioned token served from cache"
    );
}
