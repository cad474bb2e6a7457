//! Roles, account status and the [`Identity`] that flows from the edge to every check.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::ids::OwnerId;

/// A user's role. Roles gate user management only; they never bypass
/// [`can_act_on`](crate::authz::can_act_on).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(try_from = "String", into = "&'static str")]
pub enum UserRole {
    /// Ordinary user (the default: least privilege).
    #[default]
    Member,
    /// Manages Members.
    Admin,
    /// Manages everyone, including Admins and other Owners.
    Owner,
}

impl UserRole {
    /// Every role, lowest first.
    pub const ALL: [UserRole; 3] = [UserRole::Member, UserRole::Admin, UserRole::Owner];

    /// Parses a role case-insensitively (`owner`, `Admin`, `MEMBER`).
    pub fn parse(raw: &str) -> Result<Self> {
        match raw.to_ascii_lowercase().as_str() {
            "member" => Ok(Self::Member),
            "admin" => Ok(Self::Admin),
            "owner" => Ok(Self::Owner),
            _ => Err(Error::invalid(
                "role",
                "expected `owner`, `admin` or `member`",
            )),
        }
    }

    /// The lower-case wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Member => "member",
            Self::Admin => "admin",
            Self::Owner => "owner",
        }
    }

    /// Admin or Owner: may hold an [`AdminScope`](crate::authz::AdminScope).
    pub fn is_admin(self) -> bool {
        matches!(self, Self::Admin | Self::Owner)
    }
}

impl fmt::Display for UserRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
impl FromStr for UserRole {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}
impl TryFrom<String> for UserRole {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        Self::parse(&s)
    }
}
impl From<UserRole> for &'static str {
    fn from(r: UserRole) -> Self {
        r.as_str()
    }
}

/// Whether an account may authenticate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(try_from = "String", into = "&'static str")]
pub enum UserStatus {
    /// May authenticate.
    #[default]
    Active,
    /// Every credential of the account is refused until it is resumed.
    Suspended,
}

impl UserStatus {
    /// Parses `active` or `suspended` (case-insensitive).
    pub fn parse(raw: &str) -> Result<Self> {
        match raw.to_ascii_lowercase().as_str() {
            "active" => Ok(Self::Active),
            "suspended" => Ok(Self::Suspended),
            _ => Err(Error::invalid("status", "expected `active` or `suspended`")),
        }
    }

    /// The lower-case wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Suspended => "suspended",
        }
    }
}

impl fmt::Display for UserStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
impl FromStr for UserStatus {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}
impl TryFrom<String> for UserStatus {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        Self::parse(&s)
    }
}
impl From<UserStatus> for &'static str {
    fn from(s: UserStatus) -> Self {
        s.as_str()
    }
}

/// Who is calling: an owner and their role. Built only by core, from a verified credential
/// (a token's row, a live console session, an approved binding): the fields are private and
/// there is no public constructor, so no caller can make one up, or change the owner or role
/// of one it holds. Tests of other crates build one with `Identity::for_tests` (the
/// `testing` feature, never enabled by the binary).
///
/// Neither a struct literal nor the crate's constructor compiles outside core:
///
/// ```compile_fail
/// use ownership_core::{Identity, OwnerId, UserRole};
/// let forged = Identity { owner_id: OwnerId::parse("victim").unwrap(), role: UserRole::Owner };
/// ```
///
/// ```compile_fail
/// use ownership_core::{Identity, OwnerId, UserRole};
/// let forged = Identity::new(OwnerId::parse("victim").unwrap(), UserRole::Owner);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Identity {
    owner_id: OwnerId,
    role: UserRole,
}

impl Identity {
    /// An identity, from a row core has just checked.
    pub(crate) fn new(owner_id: OwnerId, role: UserRole) -> Self {
        Self { owner_id, role }
    }

    /// An identity for a test of another crate. Skips every check; the `testing` feature
    /// that exposes it is for test builds only.
    #[cfg(feature = "testing")]
    pub fn for_tests(owner_id: OwnerId, role: UserRole) -> Self {
        Self::new(owner_id, role)
    }

    /// The caller's owner id.
    pub fn owner_id(&self) -> &OwnerId {
        &self.owner_id
    }

    /// The caller's role.
    pub fn role(&self) -> UserRole {
        self.role
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_parse_case_insensitively() {
        assert_eq!(UserRole::parse("OWNER").ok(), Some(UserRole::Owner));
        assert_eq!(UserRole::parse("Admin").ok(), Some(UserRole::Admin));
        assert_eq!(UserRole::parse("member").ok(), Some(UserRole::Member));
        assert!(UserRole::parse("root").is_err());
        assert_eq!(UserRole::default(), UserRole::Member);
        assert_eq!(
            serde_json::to_string(&UserRole::Admin).ok().as_deref(),
            Some("\"admin\"")
        );
        assert!(serde_json::from_str::<UserRole>("\"superuser\"").is_err());
    }
}
