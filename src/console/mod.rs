//! The operator console: a small page and script embedded in the binary and served at `/`,
//! and the read endpoints it needs beyond the rest of the API (per-lot figures, searches
//! across principals, occupancy over time). The page uses only the public JSON API.

pub mod api;
pub mod history;
pub mod store;

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use utoipa_axum::router::OpenApiRouter;

use crate::app::AppState;

const INDEX: &str = include_str!("../../assets/console/index.html");
const SCRIPT: &str = include_str!("../../assets/console/app.js");
const STYLE: &str = include_str!("../../assets/console/app.css");

/// The page may load only its own script and style, talk only to this origin (HTTP and
/// WebSocket), and never be framed.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self' ws: wss:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        body,
    )
}

pub fn routes() -> OpenApiRouter<AppState> {
    // The page is about 65 KB, 19 KB gzipped: compressed for browsers that ask.
    let page = OpenApiRouter::new()
        .route(
            "/",
            get(|| async { asset("text/html; charset=utf-8", INDEX) }),
        )
        .route(
            "/console/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", SCRIPT) }),
        )
        .route(
            "/console/app.css",
            get(|| async { asset("text/css; charset=utf-8", STYLE) }),
        )
        .layer(tower_http::compression::CompressionLayer::new());
    page.merge(api::routes())
}
