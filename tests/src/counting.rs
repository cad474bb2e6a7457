//! A store wrapper that counts every call reaching the real store underneath, so tests can
//! prove the cache serves warm lookups with zero store reads.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use ownership_core::audit::{AuditEvent, ChainVerdict};
use ownership_core::authz::{
    AdminScope, ChannelScope, MintPermit, OwnerScope, Principal, SystemScope,
};
use ownership_core::ids::{
    ChannelKey, ChannelName, DeliveryId, ExternalId, ResourceId, SecretName, TokenId,
};
use ownership_core::pairing::{CodeHash, PairingKey};
use ownership_core::ports::*;
use ownership_core::provision::{ProvisionPlan, ProvisionTable};
use ownership_core::token::TokenDigest;
use ownership_core::{Identity, OwnerId, Result, TokenKind, UserRole, UserStatus};
use time::OffsetDateTime;

/// Wraps a store and counts the calls that reach it.
#[derive(Debug)]
pub struct Counting<S> {
    inner: S,
    calls: AtomicU64,
}

impl<S> Counting<S> {
    /// Wraps `inner`.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            calls: AtomicU64::new(0),
        }
    }

    /// Calls so far.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }

    fn hit(&self) -> &S {
        self.calls.fetch_add(1, Ordering::SeqCst);
        &self.inner
    }
}

#[async_trait]
impl<S: Store> UserStore for Counting<S> {
    async fn bootstrap_owner(&self, o: &OwnerId, t: NewToken) -> Result<User> {
        self.hit().bootstrap_owner(o, t).await
    }
    async fn install_legacy_token(&self, o: &OwnerId, t: NewToken) -> Result<LegacyOutcome> {
        self.hit().install_legacy_token(o, t).await
    }
    async fn has_owner(&self) -> Result<bool> {
        self.hit().has_owner().await
    }
    async fn create_user(
        &self,
        a: &AdminScope,
        id: &OwnerId,
        r: UserRole,
        t: NewToken,
    ) -> Result<User> {
        self.hit().create_user(a, id, r, t).await
    }
    async fn get_user(&self, a: &AdminScope, id: &OwnerId) -> Result<User> {
        self.hit().get_user(a, id).await
    }
    async fn list_users(&self, a: &AdminScope, p: &PageRequest) -> Result<Page<User>> {
        self.hit().list_users(a, p).await
    }
    async fn set_role(&self, a: &AdminScope, id: &OwnerId, r: UserRole) -> Result<User> {
        self.hit().set_role(a, id, r).await
    }
    async fn set_status(&self, a: &AdminScope, id: &OwnerId, s: UserStatus) -> Result<User> {
        self.hit().set_status(a, id, s).await
    }
    async fn delete_user(&self, a: &AdminScope, id: &OwnerId) -> Result<()> {
        self.hit().delete_user(a, id).await
    }
}

#[async_trait]
impl<S: Store> ProvisionStore for Counting<S> {
    async fn provision(
        &self,
        a: &AdminScope,
        t: &ProvisionTable,
        dry_run: bool,
    ) -> Result<ProvisionPlan> {
        self.hit().provision(a, t, dry_run).await
    }
}

#[async_trait]
impl<S: Store> TokenStore for Counting<S> {
    async fn authenticate(&self, d: &TokenDigest) -> Result<Option<Principal>> {
        self.hit().authenticate(d).await
    }
    async fn issue_token(&self, p: &MintPermit, t: NewToken) -> Result<TokenRecord> {
        self.hit().issue_token(p, t).await
    }
    async fn list_tokens(&self, s: &OwnerScope) -> Result<Vec<TokenRecord>> {
        self.hit().list_tokens(s).await
    }
    async fn get_token(&self, s: &OwnerScope, id: &TokenId) -> Result<TokenRecord> {
        self.hit().get_token(s, id).await
    }
    async fn rotate_token(
        &self,
        s: &ownership_core::authz::Rotator,
        id: &TokenId,
        n: FreshToken,
        g: Option<Duration>,
    ) -> Result<TokenRecord> {
        self.hit().rotate_token(s, id, n, g).await
    }
    async fn revoke_token(
        &self,
        s: &OwnerScope,
        id: &TokenId,
        k: Option<&TokenKind>,
    ) -> Result<TokenRecord> {
        self.hit().revoke_token(s, id, k).await
    }
    async fn record_last_used(
        &self,
        s: &SystemScope,
        u: &[(TokenId, OffsetDateTime)],
    ) -> Result<()> {
        self.hit().record_last_used(s, u).await
    }
    async fn has_foreign_tokens(&self) -> Result<bool> {
        self.hit().has_foreign_tokens().await
    }
}

#[async_trait]
impl<S: Store> PairingStore for Counting<S> {
    async fn request_pairing(
        &self,
        s: &ChannelScope,
        e: &ExternalId,
        m: Option<&str>,
        c: &[PairingCandidate],
        p: &PairingPolicy,
    ) -> Result<PairingIssue> {
        self.hit().request_pairing(s, e, m, c, p).await
    }
    async fn list_pending(&self, s: &AdminScope, c: &ChannelName) -> Result<Vec<PendingPairing>> {
        self.hit().list_pending(s, c).await
    }
    async fn list_all_pending(&self, s: &AdminScope) -> Result<Vec<PendingPairing>> {
        self.hit().list_all_pending(s).await
    }
    async fn redeem_pairing(
        &self,
        s: &OwnerScope,
        c: &ChannelName,
        h: &CodeHash,
    ) -> Result<ChannelBinding> {
        self.hit().redeem_pairing(s, c, h).await
    }
    async fn approve_pairing(
        &self,
        s: &AdminScope,
        c: &ChannelName,
        h: &CodeHash,
        o: &OwnerId,
    ) -> Result<ChannelBinding> {
        self.hit().approve_pairing(s, c, h, o).await
    }
    async fn burn_pending(&self, s: &SystemScope, c: &ChannelName) -> Result<u64> {
        self.hit().burn_pending(s, c).await
    }
    async fn resolve_identity(&self, s: &ChannelScope, e: &ExternalId) -> Result<Option<Identity>> {
        self.hit().resolve_identity(s, e).await
    }
    async fn stored_pairing_key(&self, s: &SystemScope, k: &PairingKey) -> Result<PairingKey> {
        self.hit().stored_pairing_key(s, k).await
    }
    async fn list_identities(&self, s: &OwnerScope) -> Result<Vec<ChannelBinding>> {
        self.hit().list_identities(s).await
    }
    async fn unlink_identity(&self, s: &OwnerScope, k: &ChannelKey) -> Result<()> {
        self.hit().unlink_identity(s, k).await
    }
}

#[async_trait]
impl<S: Store> AuditLog for Counting<S> {
    async fn list_events(&self, f: AuditFilter<'_>, p: &PageRequest) -> Result<Page<AuditEvent>> {
        self.hit().list_events(f, p).await
    }
    async fn events_after(&self, s: &OwnerScope, a: i64, l: u32) -> Result<Vec<AuditEvent>> {
        self.hit().events_after(s, a, l).await
    }
    async fn verify_chain(&self) -> Result<ChainVerdict> {
        self.hit().verify_chain().await
    }
}

#[async_trait]
impl<S: Store> SecretStore for Counting<S> {
    async fn data_key(&self, s: &OwnerScope) -> Result<Option<Sealed>> {
        self.hit().data_key(s).await
    }
    async fn put_secret(
        &self,
        s: &OwnerScope,
        n: &SecretName,
        v: Sealed,
        k: Option<Sealed>,
    ) -> Result<SecretMeta> {
        self.hit().put_secret(s, n, v, k).await
    }
    async fn get_secret(&self, s: &OwnerScope, n: &SecretName) -> Result<Option<Sealed>> {
        self.hit().get_secret(s, n).await
    }
    async fn list_secrets(&self, s: &OwnerScope) -> Result<Vec<SecretMeta>> {
        self.hit().list_secrets(s).await
    }
    async fn delete_secret(&self, s: &OwnerScope, n: &SecretName) -> Result<()> {
        self.hit().delete_secret(s, n).await
    }
    async fn all_data_keys(&self, s: &SystemScope) -> Result<Vec<(OwnerId, Sealed)>> {
        self.hit().all_data_keys(s).await
    }
    async fn replace_data_keys(
        &self,
        s: &SystemScope,
        k: &[(OwnerId, Sealed, Sealed)],
    ) -> Result<u64> {
        self.hit().replace_data_keys(s, k).await
    }
}

#[async_trait]
impl<S: Store> ResourceStore for Counting<S> {
    async fn create_resource(&self, s: &OwnerScope, n: NewResource) -> Result<ResourceRecord> {
        self.hit().create_resource(s, n).await
    }
    async fn get_resource(&self, s: &OwnerScope, id: &ResourceId) -> Result<ResourceRecord> {
        self.hit().get_resource(s, id).await
    }
    async fn list_resources(&self, s: &OwnerScope) -> Result<Vec<ResourceRecord>> {
        self.hit().list_resources(s).await
    }
    async fn revoke_resource(&self, s: &OwnerScope, id: &ResourceId) -> Result<()> {
        self.hit().revoke_resource(s, id).await
    }
    async fn resolve_resource(&self, d: &TokenDigest) -> Result<Option<ResourceRecord>> {
        self.hit().resolve_resource(d).await
    }
}

#[async_trait]
impl<S: Store> WebhookStore for Counting<S> {
    async fn put_endpoint(&self, s: &OwnerScope, u: &str, k: Sealed) -> Result<WebhookEndpoint> {
        self.hit().put_endpoint(s, u, k).await
    }
    async fn get_endpoint(&self, s: &OwnerScope) -> Result<Option<WebhookEndpoint>> {
        self.hit().get_endpoint(s).await
    }
    async fn delete_endpoint(&self, s: &OwnerScope) -> Result<()> {
        self.hit().delete_endpoint(s).await
    }
    async fn rotate_endpoint_secret(
        &self,
        s: &OwnerScope,
        k: Sealed,
        g: OffsetDateTime,
    ) -> Result<WebhookEndpoint> {
        self.hit().rotate_endpoint_secret(s, k, g).await
    }
    async fn enqueue_delivery(
        &self,
        s: &SystemScope,
        o: &OwnerId,
        id: DeliveryId,
        e: &str,
        p: &str,
    ) -> Result<Option<Delivery>> {
        self.hit().enqueue_delivery(s, o, id, e, p).await
    }
    async fn due_deliveries(
        &self,
        s: &SystemScope,
        l: u32,
    ) -> Result<Vec<(Delivery, WebhookEndpoint)>> {
        self.hit().due_deliveries(s, l).await
    }
    async fn record_attempt(
        &self,
        s: &SystemScope,
        id: &DeliveryId,
        st: DeliveryState,
        n: OffsetDateTime,
        r: &str,
    ) -> Result<()> {
        self.hit().record_attempt(s, id, st, n, r).await
    }
    async fn list_deliveries(&self, s: &OwnerScope, p: &PageRequest) -> Result<Page<Delivery>> {
        self.hit().list_deliveries(s, p).await
    }
}

#[async_trait]
impl<S: Store> Health for Counting<S> {
    async fn ping(&self) -> Result<()> {
        self.hit().ping().await
    }
}
