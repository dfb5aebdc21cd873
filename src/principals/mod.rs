//! Principals (who calls the API, each with exactly one role) and their bearer tokens.

pub mod admin;
pub mod rotation;
pub mod store;
pub mod token;

use serde::{Deserialize, Serialize};

/// What a principal may do; every API call is made by exactly one role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Operator,
    Provider,
    Tenant,
    Equipment,
    Enforcement,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Operator,
        Role::Provider,
        Role::Tenant,
        Role::Equipment,
        Role::Enforcement,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Operator => "operator",
            Role::Provider => "provider",
            Role::Tenant => "tenant",
            Role::Equipment => "equipment",
            Role::Enforcement => "enforcement",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == text)
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::parse(s).ok_or_else(|| {
            format!("unknown role '{s}': use operator, provider, tenant, equipment or enforcement")
        })
    }
}
