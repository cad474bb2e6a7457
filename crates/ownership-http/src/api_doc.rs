//! The frame of the OpenAPI document ([`crate::openapi`]): info, servers, tags, the bearer
//! scheme, and the error responses every route shares.
//!
//! Errors are documented once, as reusable responses under `components/responses`, each
//! with the one error body ([`ErrorBody`]) and an example made by the very [`ApiError`]
//! constructor the server answers with. Routes name them in their `responses(...)`: one by
//! one (`(status = 404, response = NotFound)`), or in the two groups that shared code
//! produces — [`AuthErrors`] (what the token extractors answer) and [`JsonBodyErrors`]
//! (what the JSON body extractor answers). The timeout layer's 408 is added to every
//! operation by [`Frame`], since every route runs under it.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use utoipa::openapi::example::ExampleBuilder;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{Object, Schema, SchemaType, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr};
use utoipa::{IntoResponses, OpenApi, ToResponse};

use crate::error::{ApiError, ErrorBody, payload_too_large};

/// The document's frame; the paths come from the routes themselves.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "ownership",
        description = "Typed identities, hashed bearer tokens, channel pairing, encrypted \
secrets, signed webhooks and a hash-chained audit log for multi-tenant services.\n\n\
Every request but the health checks carries `Authorization: Bearer <token>` (the event \
stream also takes `?access_token=`). Errors are \
JSON: `{\"error\": {\"code\": \"…\", \"message\": \"…\"}}`, where `code` is stable and \
machine-readable. Listings page with `limit` (1–500, default 100) and `after` (the \
previous page's `next`); the last page has no `next`."
    ),
    servers((url = "http://127.0.0.1:8080", description = "`ownership serve` on its default listen address; use your deployment's own URL")),
    tags(
        (name = "health", description = "Liveness and readiness, without a token."),
        (name = "users", description = "Bootstrap and user management (Admins and Owners)."),
        (name = "me", description = "Who is calling."),
        (name = "tokens", description = "Minting, rotating, revoking and verifying tokens."),
        (name = "pairing", description = "Binding chat accounts to users with one-time codes."),
        (name = "audit", description = "The hash-chained audit log, paged or streamed."),
        (name = "secrets", description = "Encrypted secrets and the resources that may fetch them."),
        (name = "webhooks", description = "The caller's signed-webhook endpoint and its deliveries."),
    ),
    components(
        schemas(ErrorBody),
        responses(
            BadRequest,
            Unauthenticated,
            Forbidden,
            NotFound,
            InvalidCode,
            Timeout,
            Conflict,
            PayloadTooLarge,
            UnsupportedMediaType,
            RateLimited,
            Internal,
            Unavailable
        )
    ),
    modifiers(&Frame)
)]
pub(crate) struct ApiDoc;

/// The bearer scheme, the default of every operation.
struct Frame;

impl utoipa::Modify for Frame {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A token in `Authorization: Bearer <token>`: a user or service token \
                         (`own_u_…`, `own_s_…`), on `/v1/bootstrap` the bootstrap secret, on \
                         `/v1/resource/credentials` a resource token (`own_r_…`).",
                    ))
                    .build(),
            ),
        );
        openapi.security = Some(vec![SecurityRequirement::new(
            "bearer",
            Vec::<String>::new(),
        )]);
    }
}

/// What applies to every operation, once the routes' paths are merged in: the timeout
/// layer's 408; `security: []` (rather than utoipa's `[{}]`) on the operations that take
/// no token; and an optional body (`request_body(content = Option<T>)`) documented as
/// `T`, not required, rather than as "`T` or `null`" (the body is left out, never `null`).
pub(crate) fn finish(openapi: &mut utoipa::openapi::OpenApi) {
    for item in openapi.paths.paths.values_mut() {
        for operation in [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ]
        .into_iter()
        .flatten()
        {
            operation
                .responses
                .responses
                .entry("408".to_owned())
                .or_insert_with(|| RefOr::Ref(Ref::from_response_name("Timeout")));
            if let Some(security) = &mut operation.security
                && security.iter().all(is_empty_requirement)
            {
                security.clear();
            }
            if let Some(RefOr::T(body)) = &mut operation.request_body
                && body.required.is_none()
            {
                for content in body.content.values_mut() {
                    if let RefOr::T(content) = content {
                        content.schema = content.schema.take().map(without_null);
                    }
                }
            }
        }
    }
}

/// `T` for the `oneOf: [T, {type: null}]` of an `Option<T>`; any other schema unchanged.
fn without_null(schema: RefOr<Schema>) -> RefOr<Schema> {
    match schema {
        RefOr::T(Schema::OneOf(one_of)) if one_of.items.len() == 2 => {
            let is_null = |s: &RefOr<Schema>| matches!(s, RefOr::T(Schema::Object(o)) if o.schema_type == SchemaType::Type(Type::Null));
            let mut items = one_of.items.clone();
            items.retain(|s| !is_null(s));
            match items.pop() {
                Some(only) if items.is_empty() => only,
                _ => RefOr::T(Schema::OneOf(one_of)),
            }
        }
        other => other,
    }
}

fn is_empty_requirement(requirement: &SecurityRequirement) -> bool {
    serde_json::to_value(requirement).is_ok_and(|v| v.as_object().is_some_and(|m| m.is_empty()))
}

/// An error response: the description, the error body with `errors` as named examples
/// (the first is also the example of a lone error), and extra headers.
fn error_response(
    description: &str,
    errors: &[(&str, ApiError)],
    headers: &[(&str, Type, &str)],
) -> RefOr<Response> {
    let mut content = ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody")));
    if let [(_, only)] = errors {
        content = content.example(Some(only.example()));
    } else {
        content = content.examples_from_iter(errors.iter().map(|(name, e)| {
            (
                (*name).to_owned(),
                ExampleBuilder::new()
                    .summary(format!("`{}`", e.code()))
                    .value(Some(e.example()))
                    .build(),
            )
        }));
    }
    let mut response = ResponseBuilder::new()
        .description(description)
        .content("application/json", content.build());
    for (name, ty, text) in headers {
        response = response.header(
            *name,
            HeaderBuilder::new()
                .schema(Some(Object::with_type(ty.clone())))
                .description(Some(*text))
                .build(),
        );
    }
    RefOr::T(response.build())
}

/// Declares a reusable error response: its component name is the type's.
macro_rules! error_responses {
    ($($(#[$doc:meta])* $name:ident => $body:expr;)+) => {$(
        $(#[$doc])*
        pub(crate) struct $name;

        impl<'r> ToResponse<'r> for $name {
            fn response() -> (&'r str, RefOr<Response>) {
                (stringify!($name), $body)
            }
        }
    )+};
}

const WWW_AUTHENTICATE: (&str, Type, &str) = ("WWW-Authenticate", Type::String, "Always `Bearer`.");
const RETRY_AFTER: (&str, Type, &str) = (
    "Retry-After",
    Type::Integer,
    "Seconds to wait before trying again.",
);

error_responses! {
    /// 400 `invalid_request`.
    BadRequest => error_response(
        "The request is malformed: a body that is not the expected JSON (a missing or unknown \
         field, a wrong type), an invalid value, or a bad query parameter (`limit` outside \
         1–500, an `after` that is no cursor of this listing). The message names the field.",
        &[("invalid_request", ownership_core::Error::invalid("limit", "must be between 1 and 500").into())],
        &[],
    );
    /// 401 `unauthenticated`.
    Unauthenticated => error_response(
        "No token, or one that is malformed, unknown, expired or revoked, or whose user is \
         suspended or deleted: always the same answer.",
        &[("unauthenticated", ApiError::unauthenticated())],
        &[WWW_AUTHENTICATE],
    );
    /// 403 `forbidden`.
    Forbidden => error_response(
        "The token is valid but its kinds or its user's role do not allow this operation.",
        &[("forbidden", ApiError::forbidden("token kind `manage` required"))],
        &[],
    );
    /// 404 `not_found`.
    NotFound => error_response(
        "Absent, or not the caller's: the two are never told apart.",
        &[("not_found", ApiError::not_found())],
        &[],
    );
    /// 404 `invalid_code`.
    InvalidCode => error_response(
        "The pairing code is not valid, has expired or was used (`invalid_code`). Each such \
         failure counts against the caller's and the channel's budgets (then 429).",
        &[("invalid_code", ApiError::invalid_code())],
        &[],
    );
    /// 408 `timeout`.
    Timeout => error_response(
        "The request took longer than the server's request timeout.",
        &[("timeout", ApiError::new(StatusCode::REQUEST_TIMEOUT, "timeout", "the request took too long"))],
        &[],
    );
    /// 409 `conflict`, `quota_exceeded`.
    Conflict => error_response(
        "The request conflicts with the current state (`conflict`: the message says how), or \
         it would take the owner past a quota (`quota_exceeded`: their secrets, the bytes of \
         their secret values, their live resource credentials or their live tokens; the \
         message names the quota and its limit). Nothing was written.",
        &[
            ("conflict", ownership_core::Error::Conflict("the user already exists".into()).into()),
            ("quota_exceeded", ownership_core::Error::QuotaExceeded { what: "tokens", limit: 1000 }.into()),
        ],
        &[],
    );
    /// 413 `payload_too_large`.
    PayloadTooLarge => error_response(
        "The request body is larger than the server's body limit (64 KiB by default).",
        &[("payload_too_large", payload_too_large())],
        &[],
    );
    /// 415 `unsupported_media_type`.
    UnsupportedMediaType => error_response(
        "The body was sent without `Content-Type: application/json`.",
        &[("unsupported_media_type", ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "expected `Content-Type: application/json`",
        ))],
        &[],
    );
    /// 429 `rate_limited`.
    RateLimited => error_response(
        "Too many requests: the caller is over their request rate, or the client address has \
         failed authentication (or this operation) too often. Retry after `Retry-After` seconds.",
        &[("rate_limited", ApiError::rate_limited(std::time::Duration::from_secs(30)))],
        &[RETRY_AFTER],
    );
    /// 500 `internal`.
    Internal => error_response(
        "Stored data failed an integrity check; the detail is in the server's log only.",
        &[("internal", ownership_core::Error::Integrity("detail".into()).into())],
        &[],
    );
    /// 503 `unavailable`, `secrets_disabled`, `webhooks_disabled`.
    Unavailable => error_response(
        "The store cannot be reached (`unavailable`: retry later), or, on the secret, resource \
         and webhook routes, the server runs without a master key (`secrets_disabled`, \
         `webhooks_disabled`).",
        &[
            ("unavailable", ApiError::unavailable()),
            ("secrets_disabled", ownership_core::Error::Disabled("secrets").into()),
            ("webhooks_disabled", ownership_core::Error::Disabled("webhooks").into()),
        ],
        &[],
    );
}

/// A group of reusable responses, by status.
fn group(entries: &[(&str, &str)]) -> BTreeMap<String, RefOr<Response>> {
    entries
        .iter()
        .map(|(status, name)| {
            (
                (*status).to_owned(),
                RefOr::Ref(Ref::from_response_name(*name)),
            )
        })
        .collect()
}

/// What the token extractors (and the store behind them) can answer on any authenticated
/// operation: 401, 429 (the per-identity rate, or an address over its failure budget),
/// 500 and 503.
pub(crate) struct AuthErrors;

impl IntoResponses for AuthErrors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        group(&[
            ("401", "Unauthenticated"),
            ("429", "RateLimited"),
            ("500", "Internal"),
            ("503", "Unavailable"),
        ])
    }
}

/// What the JSON body extractor answers: 400 (not the expected JSON), 413 (too large),
/// 415 (not `application/json`).
pub(crate) struct JsonBodyErrors;

impl IntoResponses for JsonBodyErrors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        group(&[
            ("400", "BadRequest"),
            ("413", "PayloadTooLarge"),
            ("415", "UnsupportedMediaType"),
        ])
    }
}
