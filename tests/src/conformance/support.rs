//! Helpers shared by the conformance cases.

use std::sync::Arc;

use ownership_core::audit::ChainVerdict;
use ownership_core::authz::{AdminScope, ChannelScope, MintPermit, OwnerScope, Principal, Rotator};
use ownership_core::ids::{ChannelName, ExternalId, PairingRequestId, TokenId};
use ownership_core::pairing::{PairingCode, PairingKey, PairingSeed};
use ownership_core::ports::{
    FreshToken, NewToken, PairingCandidate, PairingIssue, PairingPolicy, Store,
};
use ownership_core::token::{TokenFamily, TokenSecret};
use ownership_core::{Error, OwnerId, TokenKinds, UserRole};
use ownership_store::OsRandom;

/// The pairing key the suite uses.
pub fn pairing_key() -> PairingKey {
    PairingKey::from_bytes([7; 32])
}

/// An owner id.
pub fn oid(s: &str) -> OwnerId {
    OwnerId::parse(s).expect("valid owner id")
}

/// A channel name.
pub fn channel(s: &str) -> ChannelName {
    ChannelName::parse(s).expect("valid channel")
}

/// An external id.
pub fn ext(s: &str) -> ExternalId {
    ExternalId::parse(s).expect("valid external id")
}

/// A new token value and what the store keeps of it.
pub fn fresh(family: TokenFamily) -> (TokenSecret, FreshToken) {
    let secret = TokenSecret::generate(family, &mut OsRandom);
    let fresh = FreshToken {
        id: TokenId::generate(&mut OsRandom),
        digest: secret.digest(),
        display_prefix: secret.display_prefix(),
    };
    (secret, fresh)
}

/// A new user token to store.
pub fn new_token(label: Option<&str>) -> (TokenSecret, NewToken) {
    let (secret, fresh) = fresh(TokenFamily::User);
    (
        secret,
        NewToken {
            fresh,
            label: label.map(|l| ownership_core::ids::Label::parse(l).unwrap()),
            expires_at: None,
        },
    )
}

/// A signed-in user: their principal and token.
#[derive(Debug, Clone)]
pub struct Signed {
    /// Their principal (from `authenticate`).
    pub principal: Principal,
    /// Their token.
    pub secret: TokenSecret,
}

impl Signed {
    /// Their own scope.
    pub fn scope(&self) -> OwnerScope {
        OwnerScope::own(self.principal.identity())
    }

    /// Them, rotating their own tokens.
    pub fn rotator(&self) -> Rotator {
        Rotator::Holder(self.principal.clone())
    }

    /// Their admin scope (panics for members).
    pub fn admin(&self) -> AdminScope {
        AdminScope::new(self.principal.identity()).expect("an admin")
    }

    /// Their owner id.
    pub fn id(&self) -> &OwnerId {
        self.principal.identity().owner_id()
    }
}

/// Authenticates a token that must be valid.
pub async fn sign_in<S: Store>(s: &S, secret: TokenSecret) -> Signed {
    let principal = s
        .authenticate(&secret.digest())
        .await
        .expect("store answers")
        .expect("token authenticates");
    Signed { principal, secret }
}

/// Bootstraps the first Owner, `root`.
pub async fn boot<S: Store>(s: &S) -> Signed {
    let (secret, token) = new_token(Some("bootstrap"));
    s.bootstrap_owner(&oid("root"), token)
        .await
        .expect("bootstrap");
    sign_in(s, secret).await
}

/// Creates a user through `admin` and signs them in.
pub async fn add_user<S: Store>(s: &S, admin: &Signed, id: &str, role: UserRole) -> Signed {
    let (secret, token) = new_token(None);
    s.create_user(&admin.admin(), &oid(id), role, token)
        .await
        .expect("create user");
    sign_in(s, secret).await
}

/// Issues `kinds` for `who` (a subset of their own).
pub async fn issue<S: Store>(s: &S, who: &Signed, kinds: &str) -> (TokenSecret, TokenId) {
    let permit = MintPermit::for_self(&who.principal, TokenKinds::parse_csv(kinds).expect("kinds"))
        .expect("permit");
    let (secret, token) = new_token(Some("issued"));
    let rec = s.issue_token(&permit, token).await.expect("issue");
    (secret, rec.id)
}

/// A channel adapter's scope for `name`, from a service token minted by `admin`.
pub async fn channel_scope<S: Store>(s: &S, admin: &Signed, name: &str) -> ChannelScope {
    let kinds = TokenKinds::parse_csv(&format!("channel:{name}")).expect("kinds");
    let permit =
        MintPermit::service(&admin.principal, &admin.admin(), kinds).expect("service permit");
    let (secret, fresh) = fresh(TokenFamily::Service);
    s.issue_token(
        &permit,
        NewToken {
            fresh,
            label: Some(ownership_core::ids::Label::parse("adapter").unwrap()),
            expires_at: None,
        },
    )
    .await
    .expect("issue service token");
    let p = sign_in(s, secret).await;
    ChannelScope::authorize(&p.principal, &channel(name)).expect("channel scope")
}

/// `n` fresh candidates under the suite's key.
pub fn candidates(n: usize) -> Vec<PairingCandidate> {
    let key = pairing_key();
    (0..n)
        .map(|_| {
            let seed = PairingSeed::generate(&mut OsRandom);
            let code = PairingCode::derive(&key, &seed);
            PairingCandidate {
                id: PairingRequestId::generate(&mut OsRandom),
                seed,
                code_hash: key.hash(&code),
            }
        })
        .collect()
}

/// Asks for a code for `sender` and returns the issue and the code the sender would see.
pub async fn request<S: Store>(
    s: &S,
    scope: &ChannelScope,
    sender: &str,
) -> (PairingIssue, PairingCode) {
    let issue = s
        .request_pairing(
            scope,
            &ext(sender),
            Some("{\"name\":\"x\"}"),
            &candidates(3),
            &PairingPolicy::default(),
        )
        .await
        .expect("request pairing");
    let code = PairingCode::derive(&pairing_key(), &issue.seed);
    (issue, code)
}

/// Asserts the audit chain verifies.
pub async fn assert_chain<S: Store>(s: &S) {
    let verdict = s.verify_chain().await.expect("verify");
    assert!(
        matches!(verdict, ChainVerdict::Intact { .. }),
        "chain broken: {verdict:?}"
    );
}

/// Asserts an error is `NotFound`.
#[track_caller]
pub fn assert_not_found<T: std::fmt::Debug>(r: Result<T, Error>) {
    assert!(
        matches!(r, Err(Error::NotFound)),
        "expected NotFound, got {r:?}"
    );
}

/// Asserts an error is `Conflict`.
#[track_caller]
pub fn assert_conflict<T: std::fmt::Debug>(r: Result<T, Error>) {
    assert!(
        matches!(r, Err(Error::Conflict(_))),
        "expected Conflict, got {r:?}"
    );
}

/// Asserts an error is `Forbidden`.
#[track_caller]
pub fn assert_forbidden<T: std::fmt::Debug>(r: Result<T, Error>) {
    assert!(
        matches!(r, Err(Error::Forbidden(_))),
        "expected Forbidden, got {r:?}"
    );
}

/// Shorthand for an `Arc`'d store in cases that spawn tasks.
pub type Shared<S> = Arc<S>;
