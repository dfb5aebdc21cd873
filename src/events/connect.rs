//! Opening a TransactionMonitor socket from a browser. Browsers cannot set headers on a
//! WebSocket, and a long-lived token must never sit in a URL (URLs end up in logs and
//! histories), so a signed-in page asks `POST /api/v1/ws-tickets` for a ticket that is valid
//! for 30 s and one connection only, and passes it as `?ticket=`.

use std::time::Duration;

use axum::extract::{FromRequestParts, State};
use axum::http::{StatusCode, header, request::Parts};
use jiff::Timestamp;
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::http::{AppError, Json, Principal, QueryMap};
use crate::principals::{Role, store, token};

/// How long a connect ticket may wait for its connection.
pub const TICKET_TTL: Duration = Duration::from_secs(30);

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(issue))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectTicket {
    /// Pass as `?ticket=` to `/api/TransactionMonitor`; good for one connection.
    #[schema(example = "wst_5mN0…")]
    pub ticket: String,
    /// RFC 3339, UTC: 30 s from now.
    #[schema(value_type = String)]
    pub expires_at: Timestamp,
}

/// A single-use ticket to open the TransactionMonitor socket without an Authorization header
/// (for browsers). Providers and operators.
#[utoipa::path(post, path = "/api/v1/ws-tickets", tag = "events",
    responses(
        (status = 201, description = "the ticket, valid for 30 s and one connection", body = ConnectTicket),
    ),
    security(("bearer" = ["provider", "operator"])))]
async fn issue(
    State(state): State<AppState>,
    who: Principal,
) -> Result<(StatusCode, Json<ConnectTicket>), AppError> {
    who.require(&[Role::Provider, Role::Operator])?;
    let (ticket, expires_at) =
        store::issue_connect_ticket(&state.store, who.id, TICKET_TTL).await?;
    Ok((
        StatusCode::CREATED,
        Json(ConnectTicket { ticket, expires_at }),
    ))
}

/// Who opens a socket: the bearer token when there is an Authorization header, else the
/// connect ticket in `?ticket=` (used up by this).
pub struct SocketCaller(pub Principal);

impl FromRequestParts<AppState> for SocketCaller {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let ticket = QueryMap::from_request_parts(parts, state)
            .await?
            .get("ticket")
            .map(str::to_owned);
        let ticket = match ticket {
            Some(ticket) if !parts.headers.contains_key(header::AUTHORIZATION) => ticket,
            _ => return Principal::from_request_parts(parts, state).await.map(Self),
        };
        if !token::is_ticket(&ticket) {
            return Err(AppError::Unauthorized(format!(
                "malformed connect ticket: expected '{}…' from POST /api/v1/ws-tickets",
                token::TICKET_PREFIX
            )));
        }
        store::redeem_connect_ticket(&state.store, &ticket)
            .await?
            .map(Self)
            .ok_or_else(|| {
                AppError::Unauthorized(
                    "the connect ticket is unknown, already used or expired; get a new one".into(),
                )
            })
    }
}
