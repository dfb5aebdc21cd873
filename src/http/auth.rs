//! Bearer authentication: `Authorization: Bearer <token>` → the calling [`Principal`].

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::{header, request::Parts};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::AppError;
use crate::app::AppState;
pub use crate::principals::store::Principal;
use crate::principals::{Role, store, token};

impl FromRequestParts<AppState> for Principal {
    type Rejection = AppError;

    /// The principal the authorization middleware found, or (on routes it does not guard)
    /// the one the bearer token names.
    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if let Some(principal) = parts.extensions.get::<Principal>() {
            return Ok(principal.clone());
        }
        authenticate(parts, state).await
    }
}

/// Authenticates the bearer token, counts the request against the token's rate, and leaves
/// the principal and the token id in the request's extensions.
async fn authenticate(parts: &mut Parts, state: &AppState) -> Result<Principal, AppError> {
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
    parts.extensions.insert(principal.clone());
    Ok(principal)
}

/// Who may call what: the OpenAPI document's security requirements, by method and route.
pub type AccessTable = HashMap<(String, String), Vec<Role>>;

/// The authorization middleware: on every route the document secures, the token is checked
/// (401) and its role too (403) before anything else of the request is looked at, so a caller
/// of the wrong role learns nothing from how its body or parameters would have been judged.
/// A browser's TransactionMonitor request carries a connect ticket instead of a header; the
/// socket's own extractor checks that.
pub async fn authorize(
    State((state, access)): State<(AppState, Arc<AccessTable>)>,
    request: Request,
    next: Next,
) -> Response {
    let key = (
        request.method().as_str().to_owned(),
        crate::http::middleware::route_of(&request),
    );
    let Some(roles) = access.get(&key) else {
        return next.run(request).await;
    };
    let has_header = request.headers().contains_key(header::AUTHORIZATION);
    let has_ticket = request
        .uri()
        .query()
        .is_some_and(|q| form_urlencoded::parse(q.as_bytes()).any(|(k, _)| k == "ticket"));
    if !has_header && has_ticket {
        return next.run(request).await;
    }
    let (mut parts, body) = request.into_parts();
    let checked = match authenticate(&mut parts, &state).await {
        Ok(_) if roles.is_empty() => Ok(()),
        Ok(principal) => principal.require(roles),
        Err(err) => Err(err),
    };
    match checked {
        Ok(()) => next.run(Request::from_parts(parts, body)).await,
        Err(err) => err.into_response(),
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
