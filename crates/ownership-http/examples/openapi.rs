//! Prints the OpenAPI document of the `/v1` service (what `GET /v1/openapi.json` serves),
//! pretty-printed, to standard output. `cargo xtask openapi` runs it to regenerate the
//! checked-in `docs/openapi.json`.
//!
//! ```sh
//! cargo run -q -p ownership-http --example openapi > docs/openapi.json
//! ```

use std::io::Write as _;

fn main() -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(ownership_http::openapi_json().as_bytes())
}
