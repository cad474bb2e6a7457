//! Every operation of the REST API, as the method and path template the client sends. The
//! client builds each request from one of these (filling the `{…}` segments in order), so
//! [`OPERATIONS`] is exactly what it can call; a test compares it with the OpenAPI
//! document, so a route the client lacks fails the build's tests.

/// One operation: its HTTP method, its path template and the client method that calls it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Operation {
    /// `GET`, `POST`, `PUT` or `DELETE`.
    pub method: &'static str,
    /// The path template, as in the OpenAPI document (`/v1/admin/users/{id}`).
    pub path: &'static str,
    /// The [`Client`](crate::Client) method that calls it.
    pub client_method: &'static str,
}

macro_rules! operations {
    ($($name:ident = $method:literal $path:literal $fn:literal;)*) => {
        $(
            #[doc = concat!("`", $method, " ", $path, "`: [`Client::", $fn, "`](crate::Client::", $fn, ").")]
            pub const $name: Operation = Operation { method: $method, path: $path, client_method: $fn };
        )*
        /// Every operation the client calls.
        pub const OPERATIONS: &[Operation] = &[$($name),*];
    };
}

operations! {
    HEALTHZ = "GET" "/healthz" "healthz";
    READYZ = "GET" "/readyz" "readyz";
    BOOTSTRAP = "POST" "/v1/bootstrap" "bootstrap";
    ME = "GET" "/v1/me" "me";
    LIST_TOKENS = "GET" "/v1/me/tokens" "list_tokens";
    CREATE_TOKEN = "POST" "/v1/me/tokens" "create_token";
    ROTATE_TOKEN = "POST" "/v1/me/tokens/{id}/rotate" "rotate_token";
    REVOKE_TOKEN = "DELETE" "/v1/me/tokens/{id}" "revoke_token";
    REVOKE_LEAKED = "POST" "/v1/tokens/revoke-leaked" "revoke_leaked";
    GITHUB_REPORT = "POST" "/v1/secret-scanning/github" "github_report";
    LIST_IDENTITIES = "GET" "/v1/me/identities" "list_identities";
    UNLINK_IDENTITY = "DELETE" "/v1/me/identities/{channel}/{external_id}" "unlink_identity";
    MY_AUDIT = "GET" "/v1/me/audit" "my_audit";
    MY_EVENTS = "GET" "/v1/me/events" "my_events";
    STREAM_TICKET = "POST" "/v1/me/events/ticket" "stream_ticket";
    LIST_USERS = "GET" "/v1/admin/users" "list_users";
    CREATE_USER = "POST" "/v1/admin/users" "create_user";
    GET_USER = "GET" "/v1/admin/users/{id}" "get_user";
    DELETE_USER = "DELETE" "/v1/admin/users/{id}" "delete_user";
    SET_ROLE = "PUT" "/v1/admin/users/{id}/role" "set_role";
    SET_STATUS = "PUT" "/v1/admin/users/{id}/status" "set_status";
    SERVICE_TOKEN = "POST" "/v1/admin/service-tokens" "service_token";
    ALL_AUDIT = "GET" "/v1/admin/audit" "all_audit";
    REQUEST_CODE = "POST" "/v1/channels/{channel}/pairing-requests" "request_code";
    RESOLVE = "GET" "/v1/channels/{channel}/identities/{external_id}" "resolve";
    REDEEM = "POST" "/v1/pairing/{channel}/redeem" "redeem";
    PENDING = "GET" "/v1/admin/pairing/{channel}" "pending";
    APPROVE = "POST" "/v1/admin/pairing/{channel}/approve" "approve";
    VERIFY = "POST" "/v1/tokens/verify" "verify";
    LIST_SECRETS = "GET" "/v1/me/secrets" "list_secrets";
    PUT_SECRET = "PUT" "/v1/me/secrets/{name}" "put_secret";
    DELETE_SECRET = "DELETE" "/v1/me/secrets/{name}" "delete_secret";
    LIST_RESOURCES = "GET" "/v1/me/resources" "list_resources";
    CREATE_RESOURCE = "POST" "/v1/me/resources" "create_resource";
    GET_RESOURCE = "GET" "/v1/me/resources/{id}" "get_resource";
    REVOKE_RESOURCE = "DELETE" "/v1/me/resources/{id}" "revoke_resource";
    CREDENTIALS = "GET" "/v1/resource/credentials" "credentials";
    GET_WEBHOOK = "GET" "/v1/me/webhook" "get_webhook";
    PUT_WEBHOOK = "PUT" "/v1/me/webhook" "put_webhook";
    DELETE_WEBHOOK = "DELETE" "/v1/me/webhook" "delete_webhook";
    ROTATE_WEBHOOK_SECRET = "POST" "/v1/me/webhook/rotate-secret" "rotate_webhook_secret";
    LIST_DELIVERIES = "GET" "/v1/me/webhook/deliveries" "list_deliveries";
}
