//! Principals and tokens in the database.

use jiff::Timestamp;
use serde::Serialize;

use super::Role;
use super::token::{self, NewToken};
use crate::domain::time::{from_micros, to_micros};
use crate::http::{AppError, FieldErrors};
use crate::store::{Param, Store, lookup};
use crate::{read, write_tx};

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq)]
pub struct Principal {
    pub id: i64,
    pub role: Role,
    pub name: String,
    /// May act at every lot (else only at `lots` of [`lot_ids`]).
    pub all_lots: bool,
}

crate::lookup_row! {
    struct PrincipalRow {
        id: i64,
        role: String,
        name: String,
        all_lots: bool,
    }
}

impl PrincipalRow {
    fn into_principal(self) -> Result<Principal, AppError> {
        let role = Role::parse(&self.role).ok_or_else(|| {
            AppError::internal(anyhow::anyhow!(
                "principal {} has role {:?}",
                self.id,
                self.role
            ))
        })?;
        Ok(Principal {
            id: self.id,
            role,
            name: self.name,
            all_lots: self.all_lots,
        })
    }
}

/// A token as listed: never its secret.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenInfo {
    pub id: i64,
    pub principal_id: i64,
    /// The first characters of the token.
    pub hint: String,
    /// RFC 3339, UTC.
    #[schema(value_type = String)]
    pub created_at: Timestamp,
    /// When the token stopped (or, after a rotation, will stop) working; RFC 3339, UTC.
    #[schema(value_type = Option<String>)]
    pub revoked_at: Option<Timestamp>,
}

#[derive(sqlx::FromRow)]
struct TokenRow {
    id: i64,
    principal_id: i64,
    hint: String,
    created_at: i64,
    revoked_at: Option<i64>,
}

impl From<TokenRow> for TokenInfo {
    fn from(row: TokenRow) -> Self {
        Self {
            id: row.id,
            principal_id: row.principal_id,
            hint: row.hint,
            created_at: from_micros(row.created_at),
            revoked_at: row.revoked_at.map(from_micros),
        }
    }
}

fn now() -> i64 {
    to_micros(Timestamp::now())
}

#[derive(sqlx::FromRow)]
struct AuthenticatedRow {
    token_id: i64,
    revoked_at: Option<i64>,
    #[sqlx(flatten)]
    principal: PrincipalRow,
}

/// A working token as found: kept for a moment in the store's cache.
#[derive(Debug, Clone)]
pub struct Authenticated {
    principal: Principal,
    token_id: i64,
    /// When a rotated token stops working.
    revoked_at: Option<i64>,
}

/// The principal holding this token and the token's id, if the token exists and still works
/// (it is not revoked, or its revocation after a rotation is still to come). Answered from
/// the cache when it was asked within the last moment (see [`crate::store::cache`]).
pub async fn authenticate(
    store: &Store,
    secret: &str,
) -> Result<Option<(Principal, i64)>, AppError> {
    let hash = token::hash(secret);
    let now = now();
    let works = |found: &Authenticated| found.revoked_at.is_none_or(|at| at > now);
    if let Some(found) = store.caches().tokens.get(&hash) {
        return Ok(works(&found).then_some((found.principal, found.token_id)));
    }
    let row: Option<AuthenticatedRow> = read!(store, |db| {
        sqlx::query_as(
            "SELECT t.id AS token_id, t.revoked_at, p.id, p.role, p.name, p.all_lots FROM tokens t \
             JOIN principals p ON p.id = t.principal_id \
             WHERE t.hash = $1 AND (t.revoked_at IS NULL OR t.revoked_at > $2)",
        )
        .bind(&hash)
        .bind(now)
        .fetch_optional(db)
        .await?
    });
    let Some(row) = row else {
        return Ok(None);
    };
    let found = Authenticated {
        principal: row.principal.into_principal()?,
        token_id: row.token_id,
        revoked_at: row.revoked_at,
    };
    store.caches().tokens.put(hash, found.clone());
    Ok(Some((found.principal, found.token_id)))
}

/// Creates a principal with its first token, in one transaction. `lots` of `None` means every
/// lot; unknown lot ids are a 422 on `parkingLotIds`.
pub async fn create(
    store: &Store,
    role: Role,
    name: &str,
    lots: Option<&[i64]>,
) -> Result<(Principal, Vec<i64>, NewToken), AppError> {
    let new_token = token::generate();
    let created = now();
    let (principal, lot_ids) = write_tx!(store, |tx| {
        let row: PrincipalRow = sqlx::query_as(
            "INSERT INTO principals (role, name, all_lots, created_at) VALUES ($1, $2, $3, $4) \
             RETURNING id, role, name, all_lots",
        )
        .bind(role.as_str())
        .bind(name)
        .bind(lots.is_none())
        .bind(created)
        .fetch_one(&mut *tx)
        .await?;
        let mut lot_ids: Vec<i64> = lots.unwrap_or_default().to_vec();
        lot_ids.sort_unstable();
        lot_ids.dedup();
        let mut unknown = Vec::new();
        for lot in &lot_ids {
            let exists: Option<i64> =
                sqlx::query_scalar("SELECT id FROM parking_lots WHERE id = $1")
                    .bind(lot)
                    .fetch_optional(&mut *tx)
                    .await?;
            if exists.is_none() {
                unknown.push(lot.to_string());
                continue;
            }
            sqlx::query(
                "INSERT INTO principal_lots (principal_id, parking_lot_id) VALUES ($1, $2)",
            )
            .bind(row.id)
            .bind(lot)
            .execute(&mut *tx)
            .await?;
        }
        if !unknown.is_empty() {
            return Err(FieldErrors::single(
                "parkingLotIds",
                format!("has unknown parking lot ids: {}", unknown.join(", ")),
            ));
        }
        sqlx::query_scalar::<_, i64>(INSERT_TOKEN)
            .bind(row.id)
            .bind(&new_token.hash)
            .bind(&new_token.hint)
            .bind(created)
            .fetch_one(&mut *tx)
            .await?;
        (row.into_principal()?, lot_ids)
    });
    Ok((principal, lot_ids, new_token))
}

const INSERT_TOKEN: &str = "INSERT INTO tokens (principal_id, hash, hint, created_at) \
     VALUES ($1, $2, $3, $4) RETURNING id";

/// The principal with this role and name, created (with every lot) if it does not exist yet.
pub async fn find_or_create(store: &Store, role: Role, name: &str) -> Result<Principal, AppError> {
    let created = now();
    let row: PrincipalRow = write_tx!(store, |tx| {
        sqlx::query(
            "INSERT INTO principals (role, name, all_lots, created_at) VALUES ($1, $2, TRUE, $3) \
             ON CONFLICT (role, name) DO NOTHING",
        )
        .bind(role.as_str())
        .bind(name)
        .bind(created)
        .execute(&mut *tx)
        .await?;
        sqlx::query_as(
            "SELECT id, role, name, all_lots FROM principals WHERE role = $1 AND name = $2",
        )
        .bind(role.as_str())
        .bind(name)
        .fetch_one(&mut *tx)
        .await?
    });
    row.into_principal()
}

/// A new token for an existing principal; the secret is returned once and never stored.
pub async fn issue_token(
    store: &Store,
    principal_id: i64,
) -> Result<(TokenInfo, String), AppError> {
    let new_token = token::generate();
    let created = now();
    let id = write_tx!(store, |tx| {
        sqlx::query_scalar::<_, i64>(INSERT_TOKEN)
            .bind(principal_id)
            .bind(&new_token.hash)
            .bind(&new_token.hint)
            .bind(created)
            .fetch_one(&mut *tx)
            .await?
    });
    let info = TokenInfo {
        id,
        principal_id,
        hint: new_token.hint.clone(),
        created_at: from_micros(created),
        revoked_at: None,
    };
    Ok((info, new_token.secret))
}

/// Revokes a token (of `principal_id`, when given). False when there is no such token.
/// Revoking a revoked token is a no-op that still answers true.
pub async fn revoke_token(
    store: &Store,
    principal_id: Option<i64>,
    token_id: i64,
) -> Result<bool, AppError> {
    let revoked = now();
    let found: Option<i64> = write_tx!(store, |tx| {
        let found: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM tokens WHERE id = $1 AND ($2 IS NULL OR principal_id = $2)",
        )
        .bind(token_id)
        .bind(principal_id)
        .fetch_optional(&mut *tx)
        .await?;
        if found.is_some() {
            sqlx::query(
                "UPDATE tokens SET revoked_at = $2 \
                 WHERE id = $1 AND (revoked_at IS NULL OR revoked_at > $2)",
            )
            .bind(token_id)
            .bind(revoked)
            .execute(&mut *tx)
            .await?;
        }
        found
    });
    store.caches().tokens.clear();
    Ok(found.is_some())
}

/// Tokens (never their secrets), of one principal or of all.
pub async fn list_tokens(
    store: &Store,
    principal_id: Option<i64>,
) -> Result<Vec<TokenInfo>, AppError> {
    let rows: Vec<TokenRow> = read!(store, |db| {
        sqlx::query_as(
            "SELECT id, principal_id, hint, created_at, revoked_at FROM tokens \
             WHERE ($1 IS NULL OR principal_id = $1) ORDER BY id",
        )
        .bind(principal_id)
        .fetch_all(db)
        .await?
    });
    Ok(rows.into_iter().map(TokenInfo::from).collect())
}

pub async fn get(store: &Store, role: Role, id: i64) -> Result<Option<Principal>, AppError> {
    let row: Option<PrincipalRow> = lookup::optional(
        store,
        "SELECT id, role, name, all_lots FROM principals WHERE id = $1 AND role = $2",
        &[Param::Int(id), Param::Text(role.as_str())],
    )
    .await?;
    row.map(PrincipalRow::into_principal).transpose()
}

pub async fn list(store: &Store, role: Role) -> Result<Vec<Principal>, AppError> {
    let rows: Vec<PrincipalRow> = read!(store, |db| {
        sqlx::query_as(
            "SELECT id, role, name, all_lots FROM principals WHERE role = $1 ORDER BY id",
        )
        .bind(role.as_str())
        .fetch_all(db)
        .await?
    });
    rows.into_iter().map(PrincipalRow::into_principal).collect()
}

/// The lots a principal is limited to (empty when it may use every lot).
pub async fn lot_ids(store: &Store, principal_id: i64) -> Result<Vec<i64>, AppError> {
    Ok(read!(store, |db| {
        sqlx::query_scalar(
            "SELECT parking_lot_id FROM principal_lots WHERE principal_id = $1 ORDER BY parking_lot_id",
        )
        .bind(principal_id)
        .fetch_all(db)
        .await?
    }))
}

/// May this principal act at this lot?
pub async fn may_use_lot(store: &Store, who: &Principal, lot_id: i64) -> Result<bool, AppError> {
    if who.all_lots {
        return Ok(true);
    }
    // Every report of equipment limited to some lots asks: on SQLite it runs where it is asked.
    let found: Option<(i64,)> = lookup::optional(
        store,
        "SELECT parking_lot_id FROM principal_lots WHERE principal_id = $1 AND parking_lot_id = $2",
        &[Param::Int(who.id), Param::Int(lot_id)],
    )
    .await?;
    Ok(found.is_some())
}

/// Is there an operator token that still works?
pub async fn has_active_operator_token(store: &Store) -> Result<bool, AppError> {
    let count: i64 = read!(store, |db| {
        sqlx::query_scalar(
            "SELECT COUNT(*) FROM tokens t JOIN principals p ON p.id = t.principal_id \
             WHERE p.role = 'operator' AND (t.revoked_at IS NULL OR t.revoked_at > $1)",
        )
        .bind(now())
        .fetch_one(db)
        .await?
    });
    Ok(count > 0)
}

/// A rotation: a new token for the holder of `old_token_id`, and the old token retired
/// `overlap` from now (or sooner, if it was to stop working sooner anyway). One transaction.
/// `None` when the old token no longer works.
pub async fn rotate_token(
    store: &Store,
    old_token_id: i64,
    overlap: std::time::Duration,
) -> Result<Option<(TokenInfo, String, Timestamp)>, AppError> {
    let new_token = token::generate();
    let created = now();
    let overlap = i64::try_from(overlap.as_micros()).unwrap_or(i64::MAX);
    let retire_at = created.saturating_add(overlap);
    let rotated: Option<(i64, i64, i64)> = write_tx!(store, |tx| {
        let old: Option<(i64, Option<i64>)> = sqlx::query_as(
            "SELECT principal_id, revoked_at FROM tokens \
             WHERE id = $1 AND (revoked_at IS NULL OR revoked_at > $2)",
        )
        .bind(old_token_id)
        .bind(created)
        .fetch_optional(&mut *tx)
        .await?;
        match old {
            None => None,
            Some((principal_id, revoked_at)) => {
                let retire_at = revoked_at.map_or(retire_at, |r| r.min(retire_at));
                sqlx::query("UPDATE tokens SET revoked_at = $2 WHERE id = $1")
                    .bind(old_token_id)
                    .bind(retire_at)
                    .execute(&mut *tx)
                    .await?;
                let id = sqlx::query_scalar::<_, i64>(INSERT_TOKEN)
                    .bind(principal_id)
                    .bind(&new_token.hash)
                    .bind(&new_token.hint)
                    .bind(created)
                    .fetch_one(&mut *tx)
                    .await?;
                Some((id, principal_id, retire_at))
            }
        }
    });
    store.caches().tokens.clear();
    Ok(rotated.map(|(id, principal_id, retire_at)| {
        let info = TokenInfo {
            id,
            principal_id,
            hint: new_token.hint.clone(),
            created_at: from_micros(created),
            revoked_at: None,
        };
        (info, new_token.secret, from_micros(retire_at))
    }))
}

/// A single-use connect ticket for `principal_id`, valid for `ttl`; the secret and its expiry.
/// Tickets long expired are cleared on the way.
pub async fn issue_connect_ticket(
    store: &Store,
    principal_id: i64,
    ttl: std::time::Duration,
) -> Result<(String, Timestamp), AppError> {
    let (hash, secret) = token::generate_ticket();
    let issued = now();
    let expires = issued.saturating_add(i64::try_from(ttl.as_micros()).unwrap_or(i64::MAX));
    write_tx!(store, |tx| {
        sqlx::query("DELETE FROM connect_tickets WHERE expires_at < $1")
            .bind(issued.saturating_sub(3_600_000_000))
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO connect_tickets (hash, principal_id, expires_at) VALUES ($1, $2, $3)",
        )
        .bind(&hash)
        .bind(principal_id)
        .bind(expires)
        .execute(&mut *tx)
        .await?;
    });
    Ok((secret, from_micros(expires)))
}

/// The principal a connect ticket was issued to, if it is unused and unexpired; it is used up
/// by this call (in one statement, so two sockets can never share one ticket).
pub async fn redeem_connect_ticket(
    store: &Store,
    secret: &str,
) -> Result<Option<Principal>, AppError> {
    let at = now();
    let row: Option<PrincipalRow> = write_tx!(store, |tx| {
        let principal: Option<i64> = sqlx::query_scalar(
            "UPDATE connect_tickets SET used_at = $2 \
             WHERE hash = $1 AND used_at IS NULL AND expires_at > $2 RETURNING principal_id",
        )
        .bind(token::hash(secret))
        .bind(at)
        .fetch_optional(&mut *tx)
        .await?;
        match principal {
            None => None,
            Some(id) => {
                sqlx::query_as("SELECT id, role, name, all_lots FROM principals WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?
            }
        }
    });
    row.map(PrincipalRow::into_principal).transpose()
}
