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

/// A token bucket shared by one process's admin endpoints, so a flood of admin calls (a leaked
/// token, a runaway script) is refused with 429 before it reaches Redis or the broker.
#[derive(Clone)]
pub struct RateLimit(std::sync::Arc<std::sync::Mutex<Bucket>>);

struct Bucket {
    tokens: f64,
    capacity: f64,
    per_sec: f64,
    last: std::time::Instant,
}

impl RateLimit {
    /// `per_sec` requests per second on average, bursts of up to twice that (at least one).
    pub fn per_second(per_sec: f64) -> RateLimit {
        let capacity = (per_sec * 2.0).max(1.0);
        RateLimit(std::sync::Arc::new(std::sync::Mutex::new(Bucket {
            tokens: capacity,
            capacity,
            per_sec: per_sec.max(0.0),
            last: std::time::Instant::now(),
        })))
    }

    /// Takes one request's token, or says no.
    pub fn try_take(&self) -> bool {
        let mut b = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let now = std::time::Instant::now();
        b.tokens = (b.tokens + now.duration_since(b.last).as_secs_f64() * b.per_sec).min(b.capacity);
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Wraps every route of `router` in the limit.
    pub fn apply<S: Clone + Send + Sync + 'static>(self, router: axum::Router<S>) -> axum::Router<S> {
        router.layer(axum::middleware::from_fn(move |req: axum::extract::Request, next: axum::middleware::Next| {
            let limit = self.clone();
            async move {
                if limit.try_take() { next.run(req).await } else { ApiError::TooManyRequests.into_response() }
            }
        }))
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

    #[test]
    fn the_rate_limit_allows_a_burst_then_refuses_until_tokens_refill() {
        let limit = RateLimit::per_second(5.0);
        let allowed = (0..20).filter(|_| limit.try_take()).count();
        assert_eq!(allowed, 10, "a burst of twice the rate");
        std::thread::sleep(std::time::Duration::from_millis(450));
        assert!(limit.try_take(), "refilled at 5 per second");
    }
}
