//! Static user-token tables (docs/tokens.md): the `OWNERSHIP_USER_TOKENS` environment variable and
//! `ownership users import FILE`.
//!
//! Two pure steps, so that the store adapters only execute what is decided here:
//!
//! 1. [`parse_table`] reads the JSON text of an array of
//!    `{"token", "user_id", "role"?, "kinds"?, "label"?}` and validates the **whole** table
//!    before anything is written. Every refusal names the entry's index and the reason,
//!    never the token (serde's own messages, which can quote input, are never passed on:
//!    malformed JSON is reported by line and column only). What comes out, a
//!    [`ProvisionTable`], holds digests only; the raw token values are dropped with the
//!    parser's intermediate values.
//! 2. [`plan`] compares a table with what the store holds ([`ProvisionState`], read by the
//!    adapter inside the transaction that will apply the plan) and yields the
//!    [`ProvisionPlan`]: users to create, roles to change (under
//!    [`check_role_change`], so the last Owner is never demoted), tokens to add, to update
//!    in place (kinds or label changed) and to revoke (provisioned tokens whose digest
//!    left the table). Applying a table a second time plans nothing.
//!
//! Rules of a table:
//!
//! - a token is 1 to 512 bytes of visible ASCII (what [`classify`] accepts as a foreign
//!   token). A token that starts with `own_` must be a well-formed token of ours of the
//!   user or service family, since nothing else with that prefix could ever authenticate;
//! - a token is strong: a token of ours, or one that passes [`check_static_strength`]
//!   (at least 128 bits if random: 22 base64 characters after its prefix);
//! - no token appears twice;
//! - `user_id` is a valid, unreserved [`OwnerId`];
//! - `role` (`owner`, `admin`, `member`, any case) applies to the user, not the token: an
//!   entry without a role takes the role another entry gives the same user, and `member`
//!   when none does; two different roles for one user are refused;
//! - `kinds` defaults to `["manage", "api"]`; `label` follows
//!   [`Label::parse`](crate::ids::Label::parse).
//!
//! Only the command-line operator ([`AdminScope::operator`]) may apply a table: it
//! installs credentials for any user, Owners included, as only the operator may mint for
//! other users ([`crate::authz::MintPermit::by_operator`]).

pub mod events;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

use async_trait::async_trait;
use serde::Serialize;
use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use time::OffsetDateTime;

use crate::RandomSource;
use crate::authz::{AdminScope, TargetState, check_create, check_role_change};
use crate::db::{self, Transactions, Tx};
use crate::error::{Error, Result};
use crate::identity::{UserRole, UserStatus};
use crate::ids::{Label, OwnerId, TokenId};
use crate::kinds::{TokenKind, TokenKinds};
use crate::token::{
    DisplayPrefix, FOREIGN_TOKEN_MAX_BYTES, PRODUCT_PREFIX, PresentedToken, TokenDigest,
    TokenFamily, classify,
};
use crate::tokens::{FreshToken, TokenOrigin, TokenRecord, TokenRow, TokenRows};
use crate::users::User;
use crate::users::UserRows;

/// Most entries a table may hold.
pub const MAX_ENTRIES: usize = 10_000;

/// Longest table accepted, in bytes of JSON text.
pub const MAX_TABLE_BYTES: usize = 16 * 1024 * 1024;

/// Most problems a [`TableError`] lists in its message (all are kept in
/// [`TableError::problems`]).
pub const MAX_REPORTED_PROBLEMS: usize = 20;

/// The field names of an entry, in the order of [`LooseEntry::fields`].
const FIELDS: [&str; 5] = ["token", "user_id", "role", "kinds", "label"];

/// One validated entry of a table: the token's digest, never its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvisionEntry {
    /// SHA-256 of the token.
    pub digest: TokenDigest,
    /// What listings show of the token ([`crate::token::TokenSecret::display_prefix`]).
    pub display_prefix: DisplayPrefix,
    /// The user the token belongs to.
    pub user_id: OwnerId,
    /// The user's role (the same for every entry of one user).
    pub role: UserRole,
    /// What the token may do.
    pub kinds: TokenKinds,
    /// Free text shown in listings.
    pub label: Option<Label>,
}

/// A validated table: not empty, at most [`MAX_ENTRIES`] entries, no token twice, one role
/// per user. Only [`parse_table`] and [`ProvisionTable::new`] make one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvisionTable {
    entries: Vec<ProvisionEntry>,
}

impl ProvisionTable {
    /// Checks the rules that span entries (not empty, not too long, no digest twice, one
    /// role per user) and the labels, and wraps them. `display_prefix` is taken as given:
    /// build it with [`crate::token::TokenSecret::display_prefix`].
    pub fn new(entries: Vec<ProvisionEntry>) -> Result<Self, TableError> {
        let mut problems = Vec::new();
        if entries.is_empty() {
            problems.push(TableProblem::table("the table is empty"));
        }
        if entries.len() > MAX_ENTRIES {
            problems.push(TableProblem::table(format!(
                "the table has {} entries, more than the {MAX_ENTRIES} allowed",
                entries.len()
            )));
        }
        let mut seen: HashMap<TokenDigest, usize> = HashMap::new();
        let mut roles: HashMap<&OwnerId, (usize, UserRole)> = HashMap::new();
        for (i, e) in entries.iter().enumerate() {
            if let Some(first) = seen.get(&e.digest) {
                problems.push(TableProblem::entry(
                    i,
                    format!("duplicate token (the same value as entry {first})"),
                ));
            } else {
                seen.insert(e.digest, i);
            }
            match roles.get(&e.user_id) {
                Some((first, role)) if *role != e.role => problems.push(TableProblem::entry(
                    i,
                    role_conflict(&e.user_id, e.role, *first, *role),
                )),
                Some(_) => {}
                None => {
                    roles.insert(&e.user_id, (i, e.role));
                }
            }
        }
        TableError::check(problems)?;
        Ok(Self { entries })
    }

    /// The entries, in table order.
    pub fn entries(&self) -> &[ProvisionEntry] {
        &self.entries
    }

    /// How many entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Never true for a validated table (kept for the `len` convention).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Each user of the table once, in order of first appearance, with the index of that
    /// first entry and the user's role.
    pub fn users(&self) -> Vec<(usize, &OwnerId, UserRole)> {
        let mut seen = HashSet::new();
        self.entries
            .iter()
            .enumerate()
            .filter(|(_, e)| seen.insert(&e.user_id))
            .map(|(i, e)| (i, &e.user_id, e.role))
            .collect()
    }
}

fn role_conflict(user: &OwnerId, role: UserRole, first: usize, first_role: UserRole) -> String {
    format!("user `{user}` is given role `{role}` here but `{first_role}` in entry {first}")
}

/// One reason a table was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableProblem {
    /// The index (from 0) of the entry at fault; `None` for the table as a whole.
    pub entry: Option<usize>,
    /// Why, never quoting a token.
    pub reason: String,
}

impl TableProblem {
    fn table(reason: impl Into<String>) -> Self {
        Self {
            entry: None,
            reason: reason.into(),
        }
    }

    fn entry(index: usize, reason: impl Into<String>) -> Self {
        Self {
            entry: Some(index),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for TableProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.entry {
            Some(i) => write!(f, "entry {i}: {}", self.reason),
            None => f.write_str(&self.reason),
        }
    }
}

/// Why a table was refused: every problem found, in entry order. Its message never
/// contains a token value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableError {
    problems: Vec<TableProblem>,
}

impl TableError {
    /// Every problem, table-wide ones first, then by entry index.
    pub fn problems(&self) -> &[TableProblem] {
        &self.problems
    }

    fn check(mut problems: Vec<TableProblem>) -> Result<(), Self> {
        if problems.is_empty() {
            return Ok(());
        }
        problems.sort_by_key(|p| p.entry.map_or(0, |i| i.saturating_add(1)));
        Err(Self { problems })
    }
}

impl fmt::Display for TableError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, p) in self.problems.iter().take(MAX_REPORTED_PROBLEMS).enumerate() {
            if n > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{p}")?;
        }
        let more = self.problems.len().saturating_sub(MAX_REPORTED_PROBLEMS);
        if more > 0 {
            write!(f, "; and {more} more")?;
        }
        Ok(())
    }
}

impl std::error::Error for TableError {}

impl From<TableError> for Error {
    fn from(e: TableError) -> Self {
        Error::invalid("user_tokens", e.to_string())
    }
}

// ---- parsing ----------------------------------------------------------------------------

/// An entry as written: the raw JSON value of each known field, and the first problem with
/// its shape (not an object, an unknown or repeated field). Deserializing one never fails
/// on shape, so serde never gets to build (and quote input in) a message of its own.
#[derive(Debug, Default)]
struct LooseEntry {
    fields: [Option<Value>; 5],
    problem: Option<String>,
}

impl LooseEntry {
    fn shape(problem: &str) -> Self {
        Self {
            problem: Some(problem.to_owned()),
            ..Self::default()
        }
    }
}

const NOT_AN_OBJECT: &str = "must be a JSON object";

struct LooseEntryVisitor;

impl<'de> Visitor<'de> for LooseEntryVisitor {
    type Value = LooseEntry;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<LooseEntry, A::Error> {
        let mut entry = LooseEntry::default();
        while let Some(key) = map.next_key::<String>()? {
            let slot = FIELDS
                .iter()
                .position(|f| *f == key)
                .and_then(|i| entry.fields.get_mut(i).map(|slot| (i, slot)));
            match slot {
                Some((i, slot)) => {
                    let value: Value = map.next_value()?;
                    if slot.is_some() {
                        let name = FIELDS.get(i).copied().unwrap_or("field");
                        entry
                            .problem
                            .get_or_insert_with(|| format!("field `{name}` is given twice"));
                    } else {
                        *slot = Some(value);
                    }
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                    // The unknown key is not quoted: it could be a misplaced token.
                    entry.problem.get_or_insert_with(|| {
                        "unknown field (expected `token`, `user_id`, `role`, `kinds`, `label`)"
                            .to_owned()
                    });
                }
            }
        }
        Ok(entry)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<LooseEntry, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(LooseEntry::shape(NOT_AN_OBJECT))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<LooseEntry, E> {
        Ok(LooseEntry::shape(NOT_AN_OBJECT))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<LooseEntry, E> {
        Ok(LooseEntry::shape(NOT_AN_OBJECT))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<LooseEntry, E> {
        Ok(LooseEntry::shape(NOT_AN_OBJECT))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<LooseEntry, E> {
        Ok(LooseEntry::shape(NOT_AN_OBJECT))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<LooseEntry, E> {
        Ok(LooseEntry::shape(NOT_AN_OBJECT))
    }

    fn visit_unit<E: de::Error>(self) -> Result<LooseEntry, E> {
        Ok(LooseEntry::shape(NOT_AN_OBJECT))
    }
}

impl<'de> Deserialize<'de> for LooseEntry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(LooseEntryVisitor)
    }
}

/// The whole document: an array of loose entries, or something else (never an error of
/// shape, for the same reason as [`LooseEntry`]).
#[derive(Debug)]
enum LooseTable {
    Array(Vec<LooseEntry>),
    NotAnArray,
}

struct LooseTableVisitor;

impl<'de> Visitor<'de> for LooseTableVisitor {
    type Value = LooseTable;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<LooseTable, A::Error> {
        let mut entries = Vec::new();
        while let Some(entry) = seq.next_element::<LooseEntry>()? {
            if entries.len() <= MAX_ENTRIES {
                entries.push(entry);
            }
        }
        Ok(LooseTable::Array(entries))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<LooseTable, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(LooseTable::NotAnArray)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<LooseTable, E> {
        Ok(LooseTable::NotAnArray)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<LooseTable, E> {
        Ok(LooseTable::NotAnArray)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<LooseTable, E> {
        Ok(LooseTable::NotAnArray)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<LooseTable, E> {
        Ok(LooseTable::NotAnArray)
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<LooseTable, E> {
        Ok(LooseTable::NotAnArray)
    }

    fn visit_unit<E: de::Error>(self) -> Result<LooseTable, E> {
        Ok(LooseTable::NotAnArray)
    }
}

impl<'de> Deserialize<'de> for LooseTable {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(LooseTableVisitor)
    }
}

/// Parses and validates a whole table (see the [module documentation](self) for the
/// rules). Every problem found is reported, each with its entry's index; no message quotes
/// a token, and malformed JSON is reported by line and column only.
pub fn parse_table(json: &str) -> Result<ProvisionTable, TableError> {
    if json.len() > MAX_TABLE_BYTES {
        return Err(TableError {
            problems: vec![TableProblem::table(format!(
                "the table is larger than {} MiB",
                MAX_TABLE_BYTES / (1024 * 1024)
            ))],
        });
    }
    // A byte-order mark, as some editors write at the start of a file, is not JSON.
    let json = json.strip_prefix('\u{feff}').unwrap_or(json);
    let loose = match serde_json::from_str::<LooseTable>(json) {
        Ok(LooseTable::Array(entries)) => entries,
        Ok(LooseTable::NotAnArray) => {
            return Err(TableError {
                problems: vec![TableProblem::table(
                    "the table must be a JSON array of {\"token\", \"user_id\", ...} objects",
                )],
            });
        }
        Err(e) => {
            // serde_json's own text is not passed on: some of its messages quote input.
            let what = if e.is_eof() {
                "the JSON ends early"
            } else {
                "malformed JSON"
            };
            return Err(TableError {
                problems: vec![TableProblem::table(format!(
                    "{what} at line {}, column {}",
                    e.line(),
                    e.column()
                ))],
            });
        }
    };
    if loose.len() > MAX_ENTRIES {
        return Err(TableError {
            problems: vec![TableProblem::table(format!(
                "the table has more than the {MAX_ENTRIES} entries allowed"
            ))],
        });
    }
    if loose.is_empty() {
        return Err(TableError {
            problems: vec![TableProblem::table("the table is empty")],
        });
    }

    let mut problems = Vec::new();
    let mut checked = Vec::with_capacity(loose.len());
    for (i, entry) in loose.into_iter().enumerate() {
        match check_entry(entry) {
            Ok(e) => checked.push((i, e)),
            Err(reason) => problems.push(TableProblem::entry(i, reason)),
        }
    }

    // Roles: per user, the explicit ones must agree; the rest inherit it (member if none).
    let mut explicit: BTreeMap<&OwnerId, (usize, UserRole)> = BTreeMap::new();
    for (i, e) in &checked {
        let Some(role) = e.role else { continue };
        match explicit.get(&e.user_id) {
            Some((first, first_role)) if *first_role != role => problems.push(TableProblem::entry(
                *i,
                role_conflict(&e.user_id, role, *first, *first_role),
            )),
            Some(_) => {}
            None => {
                explicit.insert(&e.user_id, (*i, role));
            }
        }
    }
    let mut seen: HashMap<TokenDigest, usize> = HashMap::new();
    for (i, e) in &checked {
        if let Some(first) = seen.get(&e.digest) {
            problems.push(TableProblem::entry(
                *i,
                format!("duplicate token (the same value as entry {first})"),
            ));
        } else {
            seen.insert(e.digest, *i);
        }
    }
    TableError::check(problems)?;

    let entries = checked
        .iter()
        .map(|(_, e)| ProvisionEntry {
            digest: e.digest,
            display_prefix: e.display_prefix.clone(),
            user_id: e.user_id.clone(),
            role: explicit
                .get(&e.user_id)
                .map_or(UserRole::Member, |(_, r)| *r),
            kinds: e.kinds.clone(),
            label: e.label.clone(),
        })
        .collect();
    ProvisionTable::new(entries)
}

/// An entry whose own fields are valid; its role may still be inherited.
struct CheckedEntry {
    digest: TokenDigest,
    display_prefix: DisplayPrefix,
    user_id: OwnerId,
    role: Option<UserRole>,
    kinds: TokenKinds,
    label: Option<Label>,
}

/// A field's value, treating JSON `null` as absent.
fn present(v: Option<Value>) -> Option<Value> {
    v.filter(|v| !v.is_null())
}

fn check_entry(entry: LooseEntry) -> Result<CheckedEntry, String> {
    if let Some(problem) = entry.problem {
        return Err(problem);
    }
    let [token, user_id, role, kinds, label] = entry.fields;
    let (digest, display_prefix) = check_token(present(token))?;
    let user_id = match present(user_id) {
        None => return Err("missing `user_id`".into()),
        Some(Value::String(raw)) => OwnerId::parse(&raw).map_err(|e| match e {
            Error::Invalid { reason, .. } => format!("invalid `user_id`: {reason}"),
            _ => "invalid `user_id`".to_owned(),
        })?,
        Some(_) => return Err("`user_id` must be a string".into()),
    };
    let role = match present(role) {
        None => None,
        Some(Value::String(raw)) => Some(
            UserRole::parse(&raw)
                .map_err(|_| "unknown role (expected `owner`, `admin` or `member`)".to_owned())?,
        ),
        Some(_) => return Err("`role` must be a string".into()),
    };
    let kinds = match present(kinds) {
        None => TokenKinds::manage_api(),
        Some(Value::Array(items)) => {
            let mut parsed = Vec::with_capacity(items.len());
            for (k, item) in items.iter().enumerate() {
                let Value::String(raw) = item else {
                    return Err("`kinds` must be an array of strings".into());
                };
                parsed.push(TokenKind::parse(raw).map_err(|_| {
                    format!(
                        "unknown kind at position {k} of `kinds` (expected `manage`, `api`, \
                         `verify` or `channel:<name>`)"
                    )
                })?);
            }
            TokenKinds::new(parsed).map_err(|_| "`kinds` must not be empty".to_owned())?
        }
        Some(_) => return Err("`kinds` must be an array of strings".into()),
    };
    let label = match present(label) {
        None => None,
        Some(Value::String(raw)) => Some(Label::parse(&raw).map_err(|e| match e {
            Error::Invalid { reason, .. } => format!("invalid `label`: {reason}"),
            _ => "invalid `label`".to_owned(),
        })?),
        Some(_) => return Err("`label` must be a string".into()),
    };
    Ok(CheckedEntry {
        digest,
        display_prefix,
        user_id,
        role,
        kinds,
        label,
    })
}

/// Validates a token and keeps only its digest and display prefix. No message quotes it.
fn check_token(token: Option<Value>) -> Result<(TokenDigest, DisplayPrefix), String> {
    let raw = match token {
        None => return Err("missing `token`".into()),
        Some(Value::String(raw)) => raw,
        Some(_) => return Err("`token` must be a string".into()),
    };
    if raw.trim().is_empty() {
        return Err("empty token".into());
    }
    if raw.len() > FOREIGN_TOKEN_MAX_BYTES {
        return Err(format!(
            "the token is longer than {FOREIGN_TOKEN_MAX_BYTES} bytes"
        ));
    }
    if !raw.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
        return Err(
            "the token must be visible ASCII only (no spaces, control or non-ASCII characters)"
                .into(),
        );
    }
    match classify(&raw) {
        Ok(PresentedToken::Ours(_, TokenFamily::Resource)) => {
            Err("a resource token (`own_r_`) cannot be provisioned as a user token".into())
        }
        Ok(presented) => {
            check_static_strength(&raw)?;
            let secret = presented.into_secret();
            Ok((secret.digest(), secret.display_prefix()))
        }
        Err(_) => Err(format!(
            "the token starts with `{PRODUCT_PREFIX}` but is not a well-formed ownership token, \
             so it could never authenticate"
        )),
    }
}

/// Fewest characters of the base64 alphabet (`A–Z a–z 0–9 + / - _`) a static token must
/// hold after its prefix: 22 such characters carry 132 bits when drawn at random.
pub const STATIC_TOKEN_MIN_CHARS: usize = 22;
/// Fewest characters after the prefix when they are all hexadecimal digits (4 bits each).
pub const STATIC_TOKEN_MIN_HEX_CHARS: usize = 32;
/// Fewest different characters after the prefix (a random 22-character base64 string has
/// about 18; `aaaa…` or `abab…` has one or two).
pub const STATIC_TOKEN_MIN_DISTINCT: usize = 8;
/// Longest segment of a prefix such as `ghp_` or `sk_live_` (letters and digits, then `_`).
const STATIC_PREFIX_SEGMENT_MAX: usize = 16;

/// Whether a static token (a provisioned, legacy or bootstrap value) is strong enough: at
/// least 128 bits if it was drawn at random. A well-formed token of ours always is
/// (256 random bits). Any other value is measured after its prefix (up to two leading
/// segments of 1–16 letters or digits each ending in `_`, as in `ghp_…` or `sk_live_…`):
/// the rest must hold at least [`STATIC_TOKEN_MIN_CHARS`] characters of the base64 or
/// base64url alphabet (`A–Z a–z 0–9 + / - _`; `=` padding does not count), at least
/// [`STATIC_TOKEN_MIN_HEX_CHARS`] when those are all hexadecimal digits, and at least
/// [`STATIC_TOKEN_MIN_DISTINCT`] different characters. The error says what is missing
/// and never quotes the value.
pub fn check_static_strength(raw: &str) -> std::result::Result<(), String> {
    if matches!(
        classify(raw),
        Ok(PresentedToken::Ours(
            _,
            TokenFamily::User | TokenFamily::Service
        ))
    ) {
        return Ok(());
    }
    let mut rest = raw;
    for _ in 0..2 {
        match rest.split_once('_') {
            Some((segment, after))
                if (1..=STATIC_PREFIX_SEGMENT_MAX).contains(&segment.len())
                    && segment.bytes().all(|b| b.is_ascii_alphanumeric()) =>
            {
                rest = after;
            }
            _ => break,
        }
    }
    let counted: Vec<u8> = rest
        .bytes()
        .filter(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'-' | b'_'))
        .collect();
    let hex_only = counted.iter().all(u8::is_ascii_hexdigit);
    let needed = if hex_only {
        STATIC_TOKEN_MIN_HEX_CHARS
    } else {
        STATIC_TOKEN_MIN_CHARS
    };
    let distinct = counted.iter().collect::<HashSet<_>>().len();
    if counted.len() < needed || distinct < STATIC_TOKEN_MIN_DISTINCT {
        return Err(format!(
            "the token is too weak: a static token needs at least 128 random bits, that is at \
             least {STATIC_TOKEN_MIN_CHARS} characters of the base64 alphabet after its prefix \
             ({STATIC_TOKEN_MIN_HEX_CHARS} if they are all hexadecimal digits) with at least \
             {STATIC_TOKEN_MIN_DISTINCT} different ones; this one has {} ({} different). \
             Generate one with `openssl rand -base64 32`, or use a token of ours",
            counted.len(),
            distinct
        ));
    }
    Ok(())
}

// ---- planning ---------------------------------------------------------------------------

/// A stored token with its digest, as the planner needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredToken {
    /// The token's digest.
    pub digest: TokenDigest,
    /// The rest of its row.
    pub record: TokenRecord,
}

/// What the store holds that a table touches, read by the adapter inside the transaction
/// that applies the plan.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProvisionState {
    /// At least every user the table names that exists (others may be included).
    pub users: Vec<User>,
    /// How many Owners are active.
    pub active_owners: u64,
    /// At least every token whose digest is in the table, and every live provisioned
    /// token (others, and repeats, are ignored).
    pub tokens: Vec<StoredToken>,
}

/// A user the plan creates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedUser {
    /// The new user's id.
    pub user_id: OwnerId,
    /// Their role.
    pub role: UserRole,
    /// The first table entry naming them.
    pub entry: usize,
}

/// A role the plan changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedRoleChange {
    /// Whose.
    pub user_id: OwnerId,
    /// The current role.
    pub from: UserRole,
    /// The role in the table.
    pub to: UserRole,
    /// The first table entry naming them.
    pub entry: usize,
}

/// A token the plan adds (origin `provisioned`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedToken {
    /// Its new public id.
    pub token_id: TokenId,
    /// Whose.
    pub user_id: OwnerId,
    /// What it may do.
    pub kinds: TokenKinds,
    /// Its label.
    pub label: Option<Label>,
    /// What listings show of it.
    pub display_prefix: DisplayPrefix,
    /// The table entry it comes from.
    pub entry: usize,
    /// Its digest: what the store keeps. Never serialized (a digest of a weak token can
    /// be attacked offline).
    #[serde(skip)]
    pub digest: TokenDigest,
}

/// A provisioned token whose kinds or label the plan changes in place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedTokenUpdate {
    /// Its public id.
    pub token_id: TokenId,
    /// Whose.
    pub user_id: OwnerId,
    /// Its kinds now.
    pub previous_kinds: TokenKinds,
    /// Its kinds from the table.
    pub kinds: TokenKinds,
    /// Its label now.
    pub previous_label: Option<Label>,
    /// Its label from the table.
    pub label: Option<Label>,
    /// The table entry it comes from.
    pub entry: usize,
}

/// A provisioned token the plan revokes (its digest left the table).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedRevocation {
    /// Its public id.
    pub token_id: TokenId,
    /// Whose.
    pub user_id: OwnerId,
}

/// A table entry whose provisioned token was revoked (by its user, through the API or the
/// console, or by an earlier table that left it out): the revocation is kept, never undone
/// by a table, and the entry is reported so the operator can provision a new value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeptRevocation {
    /// The table entry (0-based).
    pub entry: usize,
    /// The revoked token's public id.
    pub token_id: TokenId,
    /// Whose.
    pub user_id: OwnerId,
}

/// What applying a table changes (or, for a dry run, would change). Ids and counts only,
/// never a token or its digest (`Serialize` skips digests), so it can be printed as is.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct ProvisionPlan {
    /// Users to create, in table order.
    pub users_created: Vec<PlannedUser>,
    /// Roles to change, in the order they are applied (promotions to Owner first).
    pub roles_changed: Vec<PlannedRoleChange>,
    /// Tokens to add, in table order.
    pub tokens_added: Vec<PlannedToken>,
    /// Provisioned tokens whose kinds or label change, in table order.
    pub tokens_updated: Vec<PlannedTokenUpdate>,
    /// Provisioned tokens to revoke, by token id.
    pub tokens_revoked: Vec<PlannedRevocation>,
    /// Table entries already provisioned exactly as the table says.
    pub tokens_unchanged: usize,
    /// Table entries whose token was revoked: they stay revoked (nothing is written for
    /// them), and the operator is told to provision a new value.
    pub tokens_kept_revoked: Vec<KeptRevocation>,
}

impl ProvisionPlan {
    /// Whether the plan changes nothing (applying it writes nothing, not even an audit
    /// event).
    pub fn is_empty(&self) -> bool {
        self.users_created.is_empty()
            && self.roles_changed.is_empty()
            && self.tokens_added.is_empty()
            && self.tokens_updated.is_empty()
            && self.tokens_revoked.is_empty()
    }
}

fn with_entry(entry: usize, user: &OwnerId, e: Error) -> Error {
    match e {
        Error::Conflict(m) => Error::Conflict(format!("entry {entry} (user `{user}`): {m}")),
        Error::Forbidden(m) => Error::Forbidden(format!("entry {entry} (user `{user}`): {m}")),
        other => other,
    }
}

/// Plans how to bring the store from `state` to `table` at `now`. New token ids come from
/// `rng`. Nothing is planned past a refusal: the caller writes nothing when this fails.
///
/// Refusals:
/// - [`Error::Forbidden`] unless `scope` is the operator's;
/// - [`Error::Conflict`] naming every entry whose token is already stored as a token that
///   was not provisioned, or as another user's (an entry whose provisioned token was
///   revoked is not refused: it stays revoked and is reported in
///   [`ProvisionPlan::tokens_kept_revoked`]);
/// - the refusals of [`check_create`] and [`check_role_change`] (the last active Owner is
///   never demoted), naming the entry.
pub fn plan(
    scope: &AdminScope,
    table: &ProvisionTable,
    state: &ProvisionState,
    now: OffsetDateTime,
    rng: &mut dyn RandomSource,
) -> Result<ProvisionPlan> {
    if scope.acting_user().is_some() {
        return Err(Error::Forbidden(
            "only the operator provisions user tokens".into(),
        ));
    }
    let by_digest: HashMap<TokenDigest, &StoredToken> =
        state.tokens.iter().map(|t| (t.digest, t)).collect();
    let mut out = ProvisionPlan::default();

    // Tokens named by the table.
    let mut conflicts = Vec::new();
    for (i, e) in table.entries().iter().enumerate() {
        let Some(stored) = by_digest.get(&e.digest) else {
            out.tokens_added.push(PlannedToken {
                token_id: TokenId::generate(rng),
                user_id: e.user_id.clone(),
                kinds: e.kinds.clone(),
                label: e.label.clone(),
                display_prefix: e.display_prefix.clone(),
                entry: i,
                digest: e.digest,
            });
            continue;
        };
        let r = &stored.record;
        let refusal = if r.origin != TokenOrigin::Provisioned {
            Some("the token is already stored and was not provisioned")
        } else if r.owner_id != e.user_id {
            Some("the token is already provisioned for another user")
        } else {
            None
        };
        if !r.is_live(now) && refusal.is_none() {
            // Revoked (a user may revoke their own provisioned token): a revoked
            // credential is never revived, and a user's action never stops a start. The
            // entry is reported instead of refused.
            out.tokens_kept_revoked.push(KeptRevocation {
                entry: i,
                token_id: r.id.clone(),
                user_id: e.user_id.clone(),
            });
        } else if let Some(reason) = refusal {
            conflicts.push(format!("entry {i}: {reason}"));
        } else if r.kinds != e.kinds || r.label != e.label {
            out.tokens_updated.push(PlannedTokenUpdate {
                token_id: r.id.clone(),
                user_id: e.user_id.clone(),
                previous_kinds: r.kinds.clone(),
                kinds: e.kinds.clone(),
                previous_label: r.label.clone(),
                label: e.label.clone(),
                entry: i,
            });
        } else {
            out.tokens_unchanged = out.tokens_unchanged.saturating_add(1);
        }
    }
    if !conflicts.is_empty() {
        return Err(Error::Conflict(conflicts.join("; ")));
    }

    // Users: create the missing ones, then change roles, promotions to Owner first so a
    // table that hands ownership over never leaves the store without an active Owner.
    let users: HashMap<&OwnerId, &User> = state.users.iter().map(|u| (&u.id, u)).collect();
    let mut active_owners = state.active_owners;
    let mut changes = Vec::new();
    for (i, id, role) in table.users() {
        match users.get(id) {
            None => {
                check_create(scope, role).map_err(|e| with_entry(i, id, e))?;
                if role == UserRole::Owner {
                    active_owners = active_owners.saturating_add(1);
                }
                out.users_created.push(PlannedUser {
                    user_id: id.clone(),
                    role,
                    entry: i,
                });
            }
            Some(user) if user.role != role => changes.push((i, *user, role)),
            Some(_) => {}
        }
    }
    changes.sort_by_key(|(_, _, to)| *to != UserRole::Owner);
    for (i, user, to) in changes {
        let target = TargetState {
            role: user.role,
            status: user.status,
            active_owners,
        };
        check_role_change(scope, &user.id, &target, to).map_err(|e| with_entry(i, &user.id, e))?;
        if user.status == UserStatus::Active {
            if user.role == UserRole::Owner {
                active_owners = active_owners.saturating_sub(1);
            }
            if to == UserRole::Owner {
                active_owners = active_owners.saturating_add(1);
            }
        }
        out.roles_changed.push(PlannedRoleChange {
            user_id: user.id.clone(),
            from: user.role,
            to,
            entry: i,
        });
    }

    // Live provisioned tokens whose digest left the table.
    let in_table: HashSet<TokenDigest> = table.entries().iter().map(|e| e.digest).collect();
    let mut revoked: BTreeMap<&TokenId, &TokenRecord> = BTreeMap::new();
    for t in &state.tokens {
        let r = &t.record;
        if r.origin == TokenOrigin::Provisioned && r.is_live(now) && !in_table.contains(&t.digest) {
            revoked.insert(&r.id, r);
        }
    }
    out.tokens_revoked = revoked
        .into_values()
        .map(|r| PlannedRevocation {
            token_id: r.id.clone(),
            user_id: r.owner_id.clone(),
        })
        .collect();
    Ok(out)
}

/// Provisions a static user-token table (docs/tokens.md; `OWNERSHIP_USER_TOKENS` at start, and
/// `ownership users import FILE`): the whole table is validated first
/// ([`crate::provision::parse_table`]: every refusal names the entry's index, never its
/// token), then applied by the store in one transaction, idempotently
/// ([`ProvisionStore::provision`]). With `dry_run` the plan is computed and
/// nothing is written. `scope` must be the operator's ([`AdminScope::operator`]).
pub async fn provision<S: ProvisionStore + ?Sized>(
    store: &S,
    scope: &AdminScope,
    json_text: &str,
    dry_run: bool,
) -> Result<crate::provision::ProvisionPlan> {
    let table = crate::provision::parse_table(json_text)?;
    store.provision(scope, &table, dry_run).await
}

/// The port that applies a user-token table: one transaction per call.
#[async_trait]
pub trait ProvisionStore: Send + Sync {
    /// Applies a static user-token table (docs/tokens.md) in one transaction: reads what the
    /// table touches, plans with [`plan`] (the operator's scope only;
    /// Conflict, nothing written, when a table token is stored as a token that was not
    /// provisioned, as another user's, or revoked; the last Owner is never demoted), then
    /// creates the missing users, changes roles, adds the missing tokens (origin
    /// `provisioned`, digest only), updates changed kinds and labels in place and revokes
    /// the provisioned tokens whose digest left the table, auditing each change under the
    /// scope's actor. Applying the same table again writes nothing, not even an audit
    /// event. With `dry_run` the plan is computed the same way and nothing is written.
    async fn provision(
        &self,
        scope: &AdminScope,
        table: &ProvisionTable,
        dry_run: bool,
    ) -> Result<ProvisionPlan>;
}

/// The provisioned token rows a transaction reads and writes (with [`UserRows`] and
/// [`TokenRows`]): SQL and row mapping, no decisions.
#[async_trait]
pub trait ProvisionRows: Tx {
    /// Every provisioned token live at `at`, with its digest.
    async fn live_provisioned_tokens(&mut self, at: OffsetDateTime) -> Result<Vec<StoredToken>>;
    /// Sets the kinds and label of a provisioned token.
    async fn update_provisioned_token(
        &mut self,
        owner: &OwnerId,
        id: &TokenId,
        kinds: &TokenKinds,
        label: Option<&str>,
    ) -> Result<()>;
}

/// Reads what `table` touches at `now`: its users, the active Owner count, the tokens
/// with its digests and every live provisioned token.
async fn read_state<T: ProvisionRows + UserRows + TokenRows + ?Sized>(
    tx: &mut T,
    table: &ProvisionTable,
    now: OffsetDateTime,
) -> Result<ProvisionState> {
    let mut users = Vec::new();
    for (_, id, _) in table.users() {
        users.extend(tx.find_user(id).await?);
    }
    let active_owners = tx.active_owner_count().await?;
    let mut tokens = tx.live_provisioned_tokens(now).await?;
    for e in table.entries() {
        if let Some(record) = tx.token_by_digest(&e.digest).await? {
            tokens.push(StoredToken {
                digest: e.digest,
                record,
            });
        }
    }
    Ok(ProvisionState {
        users,
        active_owners,
        tokens,
    })
}

/// Writes `plan` and its audit events at `now`.
async fn execute<T: ProvisionRows + UserRows + TokenRows + ?Sized>(
    tx: &mut T,
    scope: &AdminScope,
    plan: &ProvisionPlan,
    now: OffsetDateTime,
) -> Result<()> {
    for u in &plan.users_created {
        tx.insert_user(&u.user_id, u.role, now).await?;
    }
    for r in &plan.roles_changed {
        if !tx.update_role(&r.user_id, r.from, r.to, now).await? {
            return Err(Error::Conflict(
                "a user changed while the table was applied".into(),
            ));
        }
    }
    for t in &plan.tokens_added {
        tx.insert_token(TokenRow {
            owner: &t.user_id,
            fresh: &FreshToken {
                id: t.token_id.clone(),
                digest: t.digest,
                display_prefix: t.display_prefix.clone(),
            },
            kinds: &t.kinds,
            label: t.label.as_deref(),
            origin: TokenOrigin::Provisioned,
            created_at: now,
            expires_at: None,
        })
        .await?;
    }
    for u in &plan.tokens_updated {
        tx.update_provisioned_token(&u.user_id, &u.token_id, &u.kinds, u.label.as_deref())
            .await?;
    }
    for r in &plan.tokens_revoked {
        tx.set_revoked(&r.user_id, &r.token_id, now).await?;
    }
    for event in self::events::provisioned(now, scope.actor(), plan) {
        tx.append(event).await?;
    }
    Ok(())
}

/// Every database applies user-token tables: read, plan and write in one write
/// transaction (a dry run plans the same way and writes nothing).
#[async_trait]
impl<D> ProvisionStore for D
where
    D: Transactions,
    D::Tx: ProvisionRows + UserRows + TokenRows,
{
    async fn provision(
        &self,
        scope: &AdminScope,
        table: &ProvisionTable,
        dry_run: bool,
    ) -> Result<ProvisionPlan> {
        let (scope, table, mut rng) = (scope.clone(), table.clone(), self.rng());
        db::write(self, move |tx| {
            Box::pin(async move {
                let now = tx.now();
                let scope = db::current_scope(tx, &scope).await?;
                let state = read_state(tx, &table, now).await?;
                let plan = plan(&scope, &table, &state, now, &mut *rng)?;
                if !dry_run {
                    execute(tx, &scope, &plan, now).await?;
                }
                Ok(plan)
            })
        })
        .await
    }
}

#[cfg(test)]
mod tests;
