//! Bearer authentication: `Authorization: Bearer <token>` → the calling [`Principal`].

use axum::extract::FromRequestParts;
use axum::http::{header, request::Parts};

use super::error::AppError;
use crate::app::AppState;
pub use crate::principals::store::Principal;
use crate::principals::{Role, store, token};

impl FromRequestParts<AppState> for Principal {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(header::AUTHORIZATION)
            .ok_or_else(|| AppError::Unauthorized("missing Authorization: Bearer token".into()))?;
        let value = header.to_str().map_err(|_| malformed())?;
        let (scheme, secret) = value.trim().split_once(' ').ok_or_else(malformed)?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(malformed());
        }
        let secret = secret.trim();
        if !token::is_well_formed(secret) {
            return Err(malformed());
        }
        let (principal, token_id) = store::authenticate(&state.store, secret)
            .await?
            .ok_or_else(|| AppError::Unauthorized("the token is unknown or revoked".into()))?;
        state.rate_limiter.check(token_id)?;
        parts.extensions.insert(TokenId(token_id));
        Ok(principal)
    }
}

/// The id of the token the request was authenticated with (a request extension, set by the
/// [`Principal`] extractor).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenId(pub i64);

fn malformed() -> AppError {
    AppError::Unauthorized(format!(
        "malformed Authorization header: expected 'Bearer {}…'",
        token::PREFIX
    ))
}

impl Principal {
    /// 403 unless the caller has one of `roles`.
    pub fn require(&self, roles: &[Role]) -> Result<(), AppError> {
        if roles.contains(&self.role) {
            return Ok(());
        }
        let allowed: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
        Err(AppError::Forbidden(format!(
            "this endpoint is for the {} role; the token has the {} role",
            allowed.join(" or "),
            self.role
        )))
    }
}
