"""Schemathesis hooks for `cargo xtask schemathesis` (loaded through SCHEMATHESIS_HOOKS).

1. `before_call`: the run tests every operation with one token, so a generated or linked
   request that would revoke or rotate that very token is sent to an unknown token id
   instead (the route is still exercised and answers 404). Without it the first such
   request ends the run's authentication and every later request is a 401. The runner
   gives the token's id in OWNERSHIP_ST_TOKEN_ID.

2. `filter_failure`: "schema-valid request rejected" (ST202) is dropped only for the
   refusals that depend on state or on the world, or on a length in bytes, which no schema
   can express. Each is matched by its exact status and message, so any other refusal
   still fails the run:
   - an `after` cursor the server did not hand out (cursors are opaque: only a previous
     page's `next` is one);
   - a resource granting a secret the caller does not have;
   - a webhook URL whose host does not resolve to public addresses (the run has no DNS),
     or that names a loopback, private or link-local address (the destination policy of
     docs/webhooks.md: no pattern can tell public addresses from the others);
   - a text field over its limit in UTF-8 bytes while within it in characters (JSON
     Schema's `maxLength` counts characters; the limits are in bytes);
   - a whole number of seconds written with a fraction part (`3600.0`): JSON Schema's
     `integer` admits it, our JSON reader takes integers only.
   And "deleted resource still available" (ST301) is dropped for resources only when the
   answer shows the resource revoked (`revoked_at` set): a revoked resource stays readable
   by its owner as a record, by design (docs/api.md). "Created resource not found" (ST302)
   is dropped only when the id put into the path holds a `%`: Schemathesis sends such an
   id into the path without encoding the `%`, so the server (rightly) decodes it into
   another id.
"""

import json
import os

import schemathesis

OWN_TOKEN_ID = os.environ.get("OWNERSHIP_ST_TOKEN_ID", "")
# Well-formed (`tok_` and 20 hex digits) and never issued: the store answers 404.
UNKNOWN_TOKEN_ID = "tok_" + "0" * 20

# (operation, message prefix) of the state- or world-dependent 400s above.
STATEFUL_REFUSALS = [
    (None, "invalid cursor: not a cursor from a previous page"),
    ("POST /v1/me/resources", "invalid grants: no secret named "),
    ("PUT /v1/me/webhook", "invalid url: the host does not resolve to public addresses"),
    ("PUT /v1/me/webhook", "invalid url: must not point at a loopback, private or link-local address"),
    ("POST /v1/me/webhook/rotate-secret", "invalid body: expected {\"grace_seconds\"?: integer}"),
]


@schemathesis.hook
def before_call(context, case, kwargs):
    path = case.operation.path
    if (
        OWN_TOKEN_ID
        and path.startswith("/v1/me/tokens/{id}")
        and case.path_parameters.get("id") == OWN_TOKEN_ID
    ):
        case.path_parameters["id"] = UNKNOWN_TOKEN_ID


def _message(response):
    try:
        return json.loads(response.content or b"")["error"]["message"]
    except (ValueError, KeyError, TypeError):
        return None


def _revoked_resource(case, response):
    if response is None or response.status_code != 200:
        return False
    if not case.operation.path.startswith("/v1/me/resources/"):
        return False
    try:
        return json.loads(response.content or b"").get("revoked_at") is not None
    except (ValueError, AttributeError):
        return False


def _over_in_bytes_only(case, message):
    """A `must be … bytes` refusal of a body whose text is non-ASCII somewhere."""
    if "bytes" not in message or not isinstance(case.body, dict):
        return False
    return any(isinstance(v, str) and not v.isascii() for v in case.body.values())


@schemathesis.hook
def filter_failure(context, failure, case, response):
    """True keeps the failure."""
    if failure.code == "ST301" and _revoked_resource(case, response):
        return False
    if failure.code == "ST302" and any(
        isinstance(v, str) and "%" in v for v in (case.path_parameters or {}).values()
    ):
        return False
    if failure.code != "ST202" or response is None or response.status_code != 400:
        return True
    message = _message(response)
    if message is None:
        return True
    if _over_in_bytes_only(case, message):
        return False
    # `3600.0` for a whole number (the message names the field, or `body`, first).
    if "invalid type: floating point `" in message and "expected u64" in message:
        return False
    label = case.operation.label
    for operation, prefix in STATEFUL_REFUSALS:
        if (operation is None or operation == label) and message.startswith(prefix):
            return False
    return True
