//! Extractors that reject in the service's own error shape instead of the framework's text.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{StatusCode, header, request::Parts};
use serde::de::DeserializeOwned;

use super::error::{AppError, FieldErrors};

/// A JSON body. Wrong content type: 415; over the size limit: 413; not JSON: 400; JSON of the
/// wrong shape: 422 naming the field.
pub struct Json<T>(pub T);

impl<S, T> FromRequest<S> for Json<T>
where
    S: Send + Sync,
    T: DeserializeOwned + 'static,
{
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json_content_type(req.headers()) {
            return Err(AppError::UnsupportedMediaType(
                "expected a JSON body with Content-Type: application/json".into(),
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                AppError::PayloadTooLarge(format!(
                    "the request body is larger than the limit of {} bytes",
                    crate::app::MAX_BODY_BYTES
                ))
            } else {
                AppError::BadRequest(format!("could not read the request body: {rejection}"))
            }
        })?;
        parse_json(&bytes).map(Json)
    }
}

/// Parses a JSON document, telling a syntax error (400) from a shape error (422).
///
/// A number with no fraction (`12.0`, `1e3`) is taken as the integer it is, as JSON Schema's
/// `integer` (what the OpenAPI document says these fields are) defines it.
pub fn parse_json<T: DeserializeOwned + 'static>(bytes: &[u8]) -> Result<T, AppError> {
    let mut value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|err| AppError::BadRequest(format!("the body is not valid JSON: {err}")))?;
    whole_numbers_as_integers(&mut value);
    // A handler that takes the document itself (and checks each field by name) gets it as
    // parsed: deserializing a `Value` into a `Value` copied it whole, every ticket.
    let mut parsed = Some(value);
    if let Some(document) = (&mut parsed as &mut dyn std::any::Any).downcast_mut::<Option<T>>() {
        if let Some(document) = document.take() {
            return Ok(document);
        }
    }
    let Some(value) = parsed else {
        return Err(AppError::internal(anyhow::anyhow!(
            "a parsed body went missing"
        )));
    };
    serde_path_to_error::deserialize::<_, T>(value).map_err(|err| {
        let path = err.path().to_string();
        let field = if path == "." { "body" } else { path.as_str() };
        FieldErrors::single(field, strip_position(&err.into_inner().to_string()))
    })
}

/// Replaces every floating-point number without a fraction that fits an `i64` or a `u64` by
/// that integer.
fn whole_numbers_as_integers(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::Number(n) => {
            if let Some(f) = n.as_f64().filter(|f| n.is_f64() && f.fract() == 0.0) {
                // 2^63 and 2^64 are exact as f64; the casts below are exact inside them.
                if (-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&f) {
                    *n = (f as i64).into();
                } else if (0.0..18_446_744_073_709_551_616.0).contains(&f) {
                    *n = (f as u64).into();
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(whole_numbers_as_integers),
        Value::Object(fields) => fields.values_mut().for_each(whole_numbers_as_integers),
        Value::Null | Value::Bool(_) | Value::String(_) => {}
    }
}

fn strip_position(message: &str) -> String {
    match message.find(" at line ") {
        Some(pos) => message[..pos].to_owned(),
        None => message.to_owned(),
    }
}

fn is_json_content_type(headers: &axum::http::HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let mime = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
}

/// The query string as name → value (the last one wins), for handlers that check each
/// parameter and answer 422 naming the one that is wrong.
pub struct QueryMap(pub HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for QueryMap {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or("");
        Ok(QueryMap(
            form_urlencoded::parse(query.as_bytes())
                .into_owned()
                .collect(),
        ))
    }
}

impl QueryMap {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// An optional integer parameter within `range`; anything else is a 422 naming it.
    pub fn int(
        &self,
        name: &str,
        range: std::ops::RangeInclusive<i64>,
        errors: &mut FieldErrors,
    ) -> Option<i64> {
        let raw = self.get(name)?;
        match raw.trim().parse::<i64>() {
            Ok(n) if range.contains(&n) => Some(n),
            Ok(_) => {
                errors.add(
                    name,
                    format!("must be between {} and {}", range.start(), range.end()),
                );
                None
            }
            Err(_) => {
                errors.add(name, "must be a whole number");
                None
            }
        }
    }
}

/// A path segment parsed as an integer id; anything else is a 404, as for an absent id.
pub fn path_id(raw: &str, what: &str) -> Result<i64, AppError> {
    raw.parse::<i64>()
        .map_err(|_| AppError::NotFound(format!("no {what} with id '{raw}'")))
}

impl<T: serde::Serialize> axum::response::IntoResponse for Json<T> {
    fn into_response(self) -> axum::response::Response {
        axum::Json(self.0).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    struct Counts {
        n: i64,
        big: Option<u64>,
        ratio: Option<f64>,
    }

    #[test]
    fn whole_floats_are_integers_and_fractions_stay_errors() {
        let counts: Counts = parse_json(br#"{"n": 12.0, "big": 1e19, "ratio": 2.5}"#).unwrap();
        assert_eq!(
            (counts.n, counts.big, counts.ratio),
            (12, Some(10_000_000_000_000_000_000), Some(2.5))
        );
        let counts: Counts = parse_json(br#"{"n": -0.0, "ratio": 3}"#).unwrap();
        assert_eq!((counts.n, counts.ratio), (0, Some(3.0)));
        for (body, field) in [
            (r#"{"n": 1.5}"#, "n"),
            (r#"{"n": 1e19}"#, "n"),
            (r#"{"n": 1e300}"#, "n"),
        ] {
            match parse_json::<Counts>(body.as_bytes()) {
                Err(AppError::Validation(errors)) => assert!(errors.contains(field), "{body}"),
                other => panic!("{body}: {other:?}"),
            }
        }
    }

    #[test]
    fn syntax_errors_are_400_and_shape_errors_422() {
        assert!(matches!(
            parse_json::<Counts>(b"{"),
            Err(AppError::BadRequest(_))
        ));
        assert!(matches!(
            parse_json::<Counts>(b"{} x"),
            Err(AppError::BadRequest(_))
        ));
        assert!(matches!(
            parse_json::<Counts>(b"[]"),
            Err(AppError::Validation(_))
        ));
    }
}
