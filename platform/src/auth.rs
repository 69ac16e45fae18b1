//! Bearer tokens for mutating endpoints, and the one HTTP error type.

use axum::Json;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

/// Named tokens from configuration (`name:token`, or a bare token named `token1`, `token2`, …).
#[derive(Clone, Default)]
pub struct Tokens(Vec<(String, Vec<u8>)>);

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Names only: secrets are never printed.
        f.debug_list().entries(self.0.iter().map(|(n, _)| n)).finish()
    }
}

impl Tokens {
    pub fn parse(specs: &[String]) -> Tokens {
        Tokens(
            specs
                .iter()
                .filter(|s| !s.trim().is_empty())
                .enumerate()
                .map(|(i, s)| match s.split_once(':') {
                    Some((name, tok)) => (name.trim().to_string(), tok.trim().as_bytes().to_vec()),
                    None => (format!("token{}", i + 1), s.trim().as_bytes().to_vec()),
                })
                .collect(),
        )
    }

    /// The caller's token name, or why not. Compares against every token in constant time.
    pub fn authorize(&self, headers: &HeaderMap) -> Result<String, ApiError> {
        if self.0.is_empty() {
            return Err(ApiError::Forbidden("no admin tokens are configured; set ADMIN_TOKENS=name:token".into()));
        }
        let presented = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or(ApiError::Unauthorized)?;
        let mut found = None;
        for (name, tok) in &self.0 {
            if bool::from(tok.as_slice().ct_eq(presented.trim().as_bytes())) {
                found = Some(name.clone());
            }
        }
        found.ok_or(ApiError::Unauthorized)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("missing or invalid bearer token")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("too many requests; retry later")]
    TooManyRequests,
    #[error("dependency unavailable: {0}")]
    Unavailable(String),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match &self {
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        (status, Json(serde_json::json!({"error": self.to_string()}))).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_configured_bearer_token_is_accepted_and_named() {
        let t = Tokens::parse(&["alice:s3cret".into(), "bare".into()]);
        let mut h = HeaderMap::new();
        assert!(matches!(t.authorize(&h), Err(ApiError::Unauthorized)));
        h.insert("authorization", "Bearer s3cret".parse().unwrap());
        assert_eq!(t.authorize(&h).unwrap(), "alice");
        h.insert("authorization", "Bearer bare".parse().unwrap());
        assert_eq!(t.authorize(&h).unwrap(), "token2");
        h.insert("authorization", "Bearer s3cre".parse().unwrap());
        assert!(t.authorize(&h).is_err());
        assert_eq!(format!("{t:?}"), "[\"alice\", \"token2\"]");
        assert!(matches!(Tokens::default().authorize(&h), Err(ApiError::Forbidden(_))));
    }
}
