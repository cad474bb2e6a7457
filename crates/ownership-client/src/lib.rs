//! A typed async client for the `ownership` REST API (docs/api.md, docs/clients.md).
//!
//! One [`Client`] method per operation of the OpenAPI document ([`OPERATIONS`] lists them),
//! bodies typed with `ownership-core`'s validated ids, names, roles and kinds, every
//! refusal an [`Error::Api`] carrying the server's status and JSON error code, and the
//! listings that page (`?after=&limit=`) also as [`Stream`]s that follow `next` to the end.
//!
//! ```no_run
//! # async fn run() -> ownership_client::Result<()> {
//! use futures_util::TryStreamExt;
//! use ownership_client::Client;
//!
//! let owner = Client::new("http://127.0.0.1:8080")?.with_token("own_…");
//! let alice = owner.create_user(&"alice".parse()?, None).await?;
//! let users: Vec<_> = owner.users(50).try_collect().await?;
//! # let _ = (alice, users);
//! # Ok(())
//! # }
//! ```

mod error;
mod model;
pub mod ops;
mod sse;

use std::pin::Pin;
use std::time::Duration;

use futures_util::{Stream, StreamExt, TryStreamExt, stream};
use ownership_core::ids::{ResourceId, SecretName, TokenId};
use ownership_core::{ChannelName, ExternalId, OwnerId, TokenKind, UserRole, UserStatus};
use reqwest::Method;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use url::Url;

pub use error::{Error, Result};
pub use model::*;
pub use ops::{OPERATIONS, Operation};

impl From<ownership_core::Error> for Error {
    fn from(e: ownership_core::Error) -> Self {
        Error::Invalid(e.to_string())
    }
}

/// A stream of rows (or of events) that ends after the last one or at the first error.
pub type RowStream<T> = Pin<Box<dyn Stream<Item = Result<T>> + Send>>;

/// A client of one `ownership` server, acting with one bearer token (or none). Cheap to
/// clone: clones share the connection pool.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: Url,
    token: Option<Secret>,
    /// The whole-request limit of every call but the event stream (`None`: the
    /// `reqwest::Client`'s own settings).
    request_timeout: Option<Duration>,
}

/// The whole-request limit of [`Client::new`]'s calls (the event stream excepted).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base.as_str())
            .field("token", &self.token)
            .finish()
    }
}

/// One request before it is sent.
struct Call<'a> {
    op: &'a Operation,
    args: &'a [&'a str],
    query: Vec<(&'static str, String)>,
    body: Option<serde_json::Value>,
    token: Option<&'a Secret>,
    last_event_id: Option<i64>,
    /// A body sent exactly as given (a signed one), instead of `body`.
    raw: Option<String>,
    /// Extra headers.
    headers: Vec<(&'static str, String)>,
    /// An answer without end (the event stream): no whole-request timeout.
    stream: bool,
    /// Sent without any bearer token (a stream ticket authenticates it instead).
    anonymous: bool,
}

impl<'a> Call<'a> {
    fn new(op: &'a Operation, args: &'a [&'a str]) -> Self {
        Self {
            op,
            args,
            query: Vec::new(),
            body: None,
            token: None,
            last_event_id: None,
            raw: None,
            headers: Vec::new(),
            stream: false,
            anonymous: false,
        }
    }

    fn body(mut self, body: &impl Serialize) -> Result<Self> {
        let value =
            serde_json::to_value(body).map_err(|e| Error::Invalid(format!("request body: {e}")))?;
        self.body = Some(value);
        Ok(self)
    }

    fn page(mut self, after: Option<&str>, limit: Option<u32>) -> Self {
        if let Some(after) = after {
            self.query.push(("after", after.to_owned()));
        }
        if let Some(limit) = limit {
            self.query.push(("limit", limit.to_string()));
        }
        self
    }
}

impl Client {
    /// A client of the server at `base` (`https://ownership.example`, or with a path
    /// prefix when a proxy serves it under one), without a token. Uses rustls and the
    /// built-in Mozilla roots; a connection must be made within 10 s, every call answered
    /// within [`REQUEST_TIMEOUT`], and the event stream, which has no end, must send
    /// something (it keeps alive every 15 s) at least every 60 s.
    pub fn new(base: &str) -> Result<Self> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(Duration::from_secs(60))
            .build()?;
        let mut client = Self::with_http(http, base)?;
        client.request_timeout = Some(REQUEST_TIMEOUT);
        Ok(client)
    }

    /// A client on a `reqwest::Client` of your own (its roots, proxy and timeouts, which
    /// apply to the event stream too: a whole-request timeout ends it).
    pub fn with_http(http: reqwest::Client, base: &str) -> Result<Self> {
        let base = Url::parse(base).map_err(|e| Error::Invalid(format!("base URL: {e}")))?;
        if base.cannot_be_a_base() || !matches!(base.scheme(), "http" | "https") {
            return Err(Error::Invalid(
                "base URL: expected http:// or https://".into(),
            ));
        }
        Ok(Self {
            http,
            base,
            token: None,
            request_timeout: None,
        })
    }

    /// The same client acting with `token` (a user, service or resource token).
    pub fn with_token(&self, token: impl Into<String>) -> Self {
        Self {
            token: Some(Secret::new(token)),
            ..self.clone()
        }
    }

    /// The same client with another whole-request limit for its calls (the event stream
    /// excepted).
    pub fn with_timeout(&self, limit: Duration) -> Self {
        Self {
            request_timeout: Some(limit),
            ..self.clone()
        }
    }

    /// The base URL.
    pub fn base(&self) -> &Url {
        &self.base
    }

    fn url(&self, op: &Operation, args: &[&str]) -> Result<Url> {
        let mut url = self.base.clone();
        {
            let mut segments = url
                .path_segments_mut()
                .map_err(|()| Error::Invalid("base URL cannot be a base".into()))?;
            segments.pop_if_empty();
            let mut args = args.iter();
            for part in op.path.split('/').filter(|p| !p.is_empty()) {
                if part.starts_with('{') {
                    let arg = args.next().ok_or_else(|| {
                        Error::Invalid(format!("{}: missing path argument {part}", op.path))
                    })?;
                    segments.push(arg);
                } else {
                    segments.push(part);
                }
            }
            if args.next().is_some() {
                return Err(Error::Invalid(format!("{}: too many arguments", op.path)));
            }
        }
        Ok(url)
    }

    /// Sends `call`; a non-2xx answer is an [`Error`].
    async fn send(&self, call: Call<'_>) -> Result<reqwest::Response> {
        let method = Method::from_bytes(call.op.method.as_bytes())
            .map_err(|e| Error::Invalid(format!("method: {e}")))?;
        let mut req = self.http.request(method, self.url(call.op, call.args)?);
        if !call.query.is_empty() {
            req = req.query(&call.query);
        }
        if let Some(token) = call
            .token
            .or(self.token.as_ref())
            .filter(|_| !call.anonymous)
        {
            req = req.bearer_auth(token.expose());
        }
        if let Some(body) = &call.body {
            req = req.json(body);
        }
        if let Some(raw) = call.raw {
            req = req.header("content-type", "application/json").body(raw);
        }
        for (name, value) in call.headers {
            req = req.header(name, value);
        }
        if let Some(id) = call.last_event_id {
            req = req.header("last-event-id", id.to_string());
        }
        if let Some(limit) = self.request_timeout
            && !call.stream
        {
            req = req.timeout(limit);
        }
        let res = req.send().await?;
        let status = res.status();
        if status.is_success() {
            return Ok(res);
        }
        let retry_after = res
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let text = res.text().await?;
        Err(error::from_answer(status.as_u16(), retry_after, &text))
    }

    /// Sends `call` and reads its JSON answer.
    async fn json<T: DeserializeOwned>(&self, call: Call<'_>) -> Result<T> {
        let res = self.send(call).await?;
        read_json(res).await
    }

    /// Sends `call`, whose answer has no body (204).
    async fn empty(&self, call: Call<'_>) -> Result<()> {
        self.send(call).await?;
        Ok(())
    }

    /// Rows of a listing that pages, `limit` at a time, following `next` to the end.
    fn rows<P: Page>(&self, op: &'static Operation, limit: u32) -> RowStream<P::Item> {
        struct State {
            client: Client,
            op: &'static Operation,
            after: Option<String>,
            done: bool,
        }
        let start = State {
            client: self.clone(),
            op,
            after: None,
            done: false,
        };
        let pages = stream::try_unfold(start, move |s| async move {
            if s.done {
                return Ok::<_, Error>(None);
            }
            let call = Call::new(s.op, &[]).page(s.after.as_deref(), Some(limit));
            let (rows, next): (Vec<P::Item>, _) = s.client.json::<P>(call).await?.split();
            let done = next.is_none();
            Ok(Some((
                rows,
                State {
                    after: next,
                    done,
                    ..s
                },
            )))
        });
        pages
            .map_ok(|rows| stream::iter(rows.into_iter().map(Ok)))
            .try_flatten()
            .boxed()
    }

    // -----------------------------------------------------------------------------------
    // Health

    /// `GET /healthz`: the process is up.
    pub async fn healthz(&self) -> Result<Health> {
        self.json(Call::new(&ops::HEALTHZ, &[])).await
    }

    /// `GET /readyz`: whether the store answers. A 503 is `Ok` with status `unavailable`.
    pub async fn readyz(&self) -> Result<Health> {
        match self.json(Call::new(&ops::READYZ, &[])).await {
            Err(Error::Unexpected { status: 503, .. }) => Ok(Health {
                status: "unavailable".into(),
            }),
            other => other,
        }
    }

    // -----------------------------------------------------------------------------------
    // Users

    /// `POST /v1/bootstrap`: makes the first Owner with the configured bootstrap secret
    /// (this client's own token is not used).
    pub async fn bootstrap(&self, secret: &Secret, user_id: &OwnerId) -> Result<UserWithToken> {
        let mut call = Call::new(&ops::BOOTSTRAP, &[]).body(&json!({ "user_id": user_id }))?;
        call.token = Some(secret);
        self.json(call).await
    }

    /// `GET /v1/me`.
    pub async fn me(&self) -> Result<Me> {
        self.json(Call::new(&ops::ME, &[])).await
    }

    /// `POST /v1/admin/users`: a new user and their first token (role `member` when
    /// `None`).
    pub async fn create_user(
        &self,
        user_id: &OwnerId,
        role: Option<UserRole>,
    ) -> Result<UserWithToken> {
        let body = json!({ "user_id": user_id, "role": role });
        self.json(Call::new(&ops::CREATE_USER, &[]).body(&body)?)
            .await
    }

    /// `GET /v1/admin/users`: one page, by id.
    pub async fn list_users(&self, after: Option<&str>, limit: Option<u32>) -> Result<UserPage> {
        self.json(Call::new(&ops::LIST_USERS, &[]).page(after, limit))
            .await
    }

    /// Every user, `limit` per request.
    pub fn users(&self, limit: u32) -> RowStream<User> {
        self.rows::<UserPage>(&ops::LIST_USERS, limit)
    }

    /// `GET /v1/admin/users/{id}`.
    pub async fn get_user(&self, id: &OwnerId) -> Result<User> {
        self.json(Call::new(&ops::GET_USER, &[id.as_str()])).await
    }

    /// `DELETE /v1/admin/users/{id}`.
    pub async fn delete_user(&self, id: &OwnerId) -> Result<()> {
        self.empty(Call::new(&ops::DELETE_USER, &[id.as_str()]))
            .await
    }

    /// `PUT /v1/admin/users/{id}/role`.
    pub async fn set_role(&self, id: &OwnerId, role: UserRole) -> Result<User> {
        let args = [id.as_str()];
        let call = Call::new(&ops::SET_ROLE, &args).body(&json!({ "role": role }))?;
        self.json(call).await
    }

    /// `PUT /v1/admin/users/{id}/status`.
    pub async fn set_status(&self, id: &OwnerId, status: UserStatus) -> Result<User> {
        let args = [id.as_str()];
        let call = Call::new(&ops::SET_STATUS, &args).body(&json!({ "status": status }))?;
        self.json(call).await
    }

    /// `POST /v1/admin/service-tokens`: a token of kinds `channel:<name>` and/or `verify`.
    pub async fn service_token(
        &self,
        kinds: &[TokenKind],
        label: Option<&str>,
    ) -> Result<NewToken> {
        let body = json!({ "kinds": kinds, "label": label });
        self.json(Call::new(&ops::SERVICE_TOKEN, &[]).body(&body)?)
            .await
    }

    // -----------------------------------------------------------------------------------
    // Tokens

    /// `GET /v1/me/tokens`: the caller's tokens, newest first.
    pub async fn list_tokens(&self) -> Result<Vec<Token>> {
        let list: TokenList = self.json(Call::new(&ops::LIST_TOKENS, &[])).await?;
        Ok(list.tokens)
    }

    /// `POST /v1/me/tokens`.
    pub async fn create_token(&self, request: &CreateToken) -> Result<NewToken> {
        self.json(Call::new(&ops::CREATE_TOKEN, &[]).body(request)?)
            .await
    }

    /// `POST /v1/me/tokens/{id}/rotate`: a new value; the old one keeps working
    /// `grace_seconds` (none: revoked now).
    pub async fn rotate_token(&self, id: &TokenId, grace_seconds: Option<u64>) -> Result<NewToken> {
        let body = json!({ "grace_seconds": grace_seconds });
        self.json(Call::new(&ops::ROTATE_TOKEN, &[id.as_str()]).body(&body)?)
            .await
    }

    /// `DELETE /v1/me/tokens/{id}`; with `kind`, only if the token holds it (else 409).
    pub async fn revoke_token(&self, id: &TokenId, kind: Option<&TokenKind>) -> Result<()> {
        let args = [id.as_str()];
        let mut call = Call::new(&ops::REVOKE_TOKEN, &args);
        if let Some(kind) = kind {
            call.query.push(("kind", kind.to_string()));
        }
        self.empty(call).await
    }

    /// `POST /v1/tokens/revoke-leaked` (no token needed: holding the values is the proof):
    /// every live token among `tokens` is revoked. The receipt says how many arrived,
    /// never which matched.
    pub async fn revoke_leaked(&self, tokens: &[&str]) -> Result<LeakReceipt> {
        let body = json!({ "tokens": tokens });
        self.json(Call::new(&ops::REVOKE_LEAKED, &[]).body(&body)?)
            .await
    }

    /// `POST /v1/secret-scanning/github`: a GitHub secret-scanning report, sent as signed
    /// (`body` exactly as `signature` covers it). For relays and tests; GitHub calls the
    /// endpoint itself.
    pub async fn github_report(
        &self,
        key_id: &str,
        signature: &str,
        body: &str,
    ) -> Result<Vec<GitHubLabel>> {
        let mut call = Call::new(&ops::GITHUB_REPORT, &[]);
        call.raw = Some(body.to_owned());
        call.headers
            .push(("github-public-key-identifier", key_id.to_owned()));
        call.headers
            .push(("github-public-key-signature", signature.to_owned()));
        self.json(call).await
    }

    /// `POST /v1/tokens/verify` (a `verify` token): whether `token` authenticates now.
    pub async fn verify(&self, token: &Secret) -> Result<Verdict> {
        let body = json!({ "token": token.expose() });
        self.json(Call::new(&ops::VERIFY, &[]).body(&body)?).await
    }

    // -----------------------------------------------------------------------------------
    // Audit

    /// `GET /v1/me/audit`: one page of the caller's own events, newest first.
    pub async fn my_audit(&self, after: Option<&str>, limit: Option<u32>) -> Result<EventPage> {
        self.json(Call::new(&ops::MY_AUDIT, &[]).page(after, limit))
            .await
    }

    /// Every event of the caller's, `limit` per request.
    pub fn my_audit_events(&self, limit: u32) -> RowStream<Event> {
        self.rows::<EventPage>(&ops::MY_AUDIT, limit)
    }

    /// `GET /v1/admin/audit`: one page of every event, newest first.
    pub async fn all_audit(&self, after: Option<&str>, limit: Option<u32>) -> Result<EventPage> {
        self.json(Call::new(&ops::ALL_AUDIT, &[]).page(after, limit))
            .await
    }

    /// Every event, `limit` per request.
    pub fn all_audit_events(&self, limit: u32) -> RowStream<Event> {
        self.rows::<EventPage>(&ops::ALL_AUDIT, limit)
    }

    /// `GET /v1/me/events`: the caller's events as they happen (server-sent events), from
    /// now or after `last_event_id` (an event's `seq`). A refusal (401, 403) is the
    /// returned error; the stream ends when the server ends it (the token stopped working).
    pub async fn my_events(&self, last_event_id: Option<i64>) -> Result<RowStream<Event>> {
        let mut call = Call::new(&ops::MY_EVENTS, &[]);
        call.last_event_id = last_event_id;
        call.stream = true;
        let res = self.send(call).await?;
        Ok(sse::events(res))
    }

    /// `POST /v1/me/events/ticket`: a single-use ticket that opens the caller's event
    /// stream once within 60 seconds, for a client that cannot send headers.
    pub async fn stream_ticket(&self) -> Result<StreamTicket> {
        self.json(Call::new(&ops::STREAM_TICKET, &[])).await
    }

    /// `GET /v1/me/events?ticket=…`: the event stream opened by a ticket instead of the
    /// client's token (which is not sent), from now or after `last_event_id`.
    pub async fn my_events_with_ticket(
        &self,
        ticket: &Secret,
        last_event_id: Option<i64>,
    ) -> Result<RowStream<Event>> {
        let mut call = Call::new(&ops::MY_EVENTS, &[]);
        call.query.push(("ticket", ticket.expose().to_owned()));
        call.last_event_id = last_event_id;
        call.stream = true;
        call.anonymous = true;
        let res = self.send(call).await?;
        Ok(sse::events(res))
    }

    // -----------------------------------------------------------------------------------
    // Pairing

    /// `POST /v1/channels/{channel}/pairing-requests` (a `channel:<name>` token): a code
    /// for the sender, or their pending one.
    pub async fn request_code(
        &self,
        channel: &ChannelName,
        external_id: &ExternalId,
        meta: Option<serde_json::Value>,
    ) -> Result<PairingCode> {
        let body = json!({ "external_id": external_id, "meta": meta });
        self.json(Call::new(&ops::REQUEST_CODE, &[channel.as_str()]).body(&body)?)
            .await
    }

    /// `GET /v1/channels/{channel}/identities/{external_id}` (a `channel:<name>` token):
    /// who the chat account belongs to (404 `not_found` when unbound).
    pub async fn resolve(
        &self,
        channel: &ChannelName,
        external_id: &ExternalId,
    ) -> Result<ResolvedIdentity> {
        let args = [channel.as_str(), external_id.as_str()];
        self.json(Call::new(&ops::RESOLVE, &args)).await
    }

    /// `POST /v1/pairing/{channel}/redeem`: binds the chat account that asked for `code`
    /// to the caller.
    pub async fn redeem(&self, channel: &ChannelName, code: &str) -> Result<Identity> {
        let body = json!({ "code": code });
        self.json(Call::new(&ops::REDEEM, &[channel.as_str()]).body(&body)?)
            .await
    }

    /// `GET /v1/admin/pairing/{channel}`: pending requests, oldest first, never codes.
    pub async fn pending(&self, channel: &ChannelName) -> Result<Vec<PendingPairing>> {
        let list: PendingList = self
            .json(Call::new(&ops::PENDING, &[channel.as_str()]))
            .await?;
        Ok(list.requests)
    }

    /// `POST /v1/admin/pairing/{channel}/approve`: binds the account that asked for
    /// `code` to `owner_id`.
    pub async fn approve(
        &self,
        channel: &ChannelName,
        code: &str,
        owner_id: &OwnerId,
    ) -> Result<Identity> {
        let body = json!({ "code": code, "owner_id": owner_id });
        self.json(Call::new(&ops::APPROVE, &[channel.as_str()]).body(&body)?)
            .await
    }

    /// `GET /v1/me/identities`: the caller's chat accounts.
    pub async fn list_identities(&self) -> Result<Vec<Identity>> {
        let list: IdentityList = self.json(Call::new(&ops::LIST_IDENTITIES, &[])).await?;
        Ok(list.identities)
    }

    /// `DELETE /v1/me/identities/{channel}/{external_id}`.
    pub async fn unlink_identity(
        &self,
        channel: &ChannelName,
        external_id: &ExternalId,
    ) -> Result<()> {
        let args = [channel.as_str(), external_id.as_str()];
        self.empty(Call::new(&ops::UNLINK_IDENTITY, &args)).await
    }

    // -----------------------------------------------------------------------------------
    // Secrets and resources

    /// `GET /v1/me/secrets`: names and times, never values.
    pub async fn list_secrets(&self) -> Result<Vec<SecretMeta>> {
        let list: SecretList = self.json(Call::new(&ops::LIST_SECRETS, &[])).await?;
        Ok(list.secrets)
    }

    /// `PUT /v1/me/secrets/{name}`: stores (or replaces) a value, encrypted.
    pub async fn put_secret(&self, name: &SecretName, value: &Secret) -> Result<SecretMeta> {
        let body = json!({ "value": value.expose() });
        self.json(Call::new(&ops::PUT_SECRET, &[name.as_str()]).body(&body)?)
            .await
    }

    /// `DELETE /v1/me/secrets/{name}`.
    pub async fn delete_secret(&self, name: &SecretName) -> Result<()> {
        self.empty(Call::new(&ops::DELETE_SECRET, &[name.as_str()]))
            .await
    }

    /// `GET /v1/me/resources`: the caller's resources, newest first.
    pub async fn list_resources(&self) -> Result<Vec<Resource>> {
        let list: ResourceList = self.json(Call::new(&ops::LIST_RESOURCES, &[])).await?;
        Ok(list.resources)
    }

    /// `POST /v1/me/resources`: a resource and its token, shown once.
    pub async fn create_resource(&self, request: &CreateResource) -> Result<NewResource> {
        self.json(Call::new(&ops::CREATE_RESOURCE, &[]).body(request)?)
            .await
    }

    /// `GET /v1/me/resources/{id}`.
    pub async fn get_resource(&self, id: &ResourceId) -> Result<Resource> {
        self.json(Call::new(&ops::GET_RESOURCE, &[id.as_str()]))
            .await
    }

    /// `DELETE /v1/me/resources/{id}`: revokes it and its token.
    pub async fn revoke_resource(&self, id: &ResourceId) -> Result<()> {
        self.empty(Call::new(&ops::REVOKE_RESOURCE, &[id.as_str()]))
            .await
    }

    /// `GET /v1/resource/credentials` (a resource token): the granted secrets.
    pub async fn credentials(&self) -> Result<Credentials> {
        self.json(Call::new(&ops::CREDENTIALS, &[])).await
    }

    // -----------------------------------------------------------------------------------
    // Webhooks

    /// `GET /v1/me/webhook`.
    pub async fn get_webhook(&self) -> Result<Webhook> {
        self.json(Call::new(&ops::GET_WEBHOOK, &[])).await
    }

    /// `PUT /v1/me/webhook`: sets the endpoint; answers a new signing secret, shown once.
    pub async fn put_webhook(&self, url: &str) -> Result<NewWebhook> {
        let body = json!({ "url": url });
        self.json(Call::new(&ops::PUT_WEBHOOK, &[]).body(&body)?)
            .await
    }

    /// `DELETE /v1/me/webhook`.
    pub async fn delete_webhook(&self) -> Result<()> {
        self.empty(Call::new(&ops::DELETE_WEBHOOK, &[])).await
    }

    /// `POST /v1/me/webhook/rotate-secret`: the previous secret keeps signing
    /// `grace_seconds` beside the new one.
    pub async fn rotate_webhook_secret(
        &self,
        grace_seconds: Option<u64>,
    ) -> Result<RotatedWebhookSecret> {
        let body = json!({ "grace_seconds": grace_seconds });
        self.json(Call::new(&ops::ROTATE_WEBHOOK_SECRET, &[]).body(&body)?)
            .await
    }

    /// `GET /v1/me/webhook/deliveries`: one page, newest first.
    pub async fn list_deliveries(
        &self,
        after: Option<&str>,
        limit: Option<u32>,
    ) -> Result<DeliveryPage> {
        self.json(Call::new(&ops::LIST_DELIVERIES, &[]).page(after, limit))
            .await
    }

    /// Every delivery, `limit` per request.
    pub fn deliveries(&self, limit: u32) -> RowStream<Delivery> {
        self.rows::<DeliveryPage>(&ops::LIST_DELIVERIES, limit)
    }
}

/// The JSON body of a 2xx answer.
async fn read_json<T: DeserializeOwned>(res: reqwest::Response) -> Result<T> {
    let status = res.status().as_u16();
    let text = res.text().await?;
    serde_json::from_str(&text).map_err(|e| Error::Unexpected {
        status,
        detail: format!("body: {e}"),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    #[test]
    fn paths_keep_the_base_prefix_and_encode_each_argument() {
        let client = Client::new("https://example.com/ownership/").unwrap();
        let url = client.url(&ops::RESOLVE, &["telegram", "a b/c?d"]).unwrap();
        assert_eq!(
            url.as_str(),
            "https://example.com/ownership/v1/channels/telegram/identities/a%20b%2Fc%3Fd"
        );
        let plain = Client::new("http://127.0.0.1:8080").unwrap();
        assert_eq!(
            plain.url(&ops::ME, &[]).unwrap().as_str(),
            "http://127.0.0.1:8080/v1/me"
        );
        assert!(plain.url(&ops::RESOLVE, &["only one"]).is_err());
        assert!(plain.url(&ops::ME, &["extra"]).is_err());
    }

    #[test]
    fn a_base_that_is_no_http_url_is_refused() {
        for bad in ["not a url", "mailto:a@b.c", "ftp://example.com/"] {
            assert!(matches!(Client::new(bad), Err(Error::Invalid(_))), "{bad}");
        }
    }

    #[test]
    fn the_token_never_shows_in_debug() {
        let client = Client::new("http://127.0.0.1:1")
            .unwrap()
            .with_token("own_secret");
        assert!(!format!("{client:?}").contains("own_secret"));
    }

    #[test]
    fn refusals_carry_the_servers_code_and_other_bodies_are_unexpected() {
        let e = error::from_answer(
            409,
            None,
            r#"{"error":{"code":"conflict","message":"exists"}}"#,
        );
        assert_eq!((e.status(), e.code()), (Some(409), Some("conflict")));
        let e = error::from_answer(502, None, "<html>bad gateway</html>");
        assert!(matches!(e, Error::Unexpected { status: 502, .. }));
        assert_eq!(e.code(), None);
    }
}
