//! A minimal HTTP/1.1 client for tests.
//!
//! Tests need plain requests (health checks, fetching a page through the
//! gateway, checking a status code) without pulling a full-featured HTTP
//! client into the workspace. This wraps hyper's client with a timeout and
//! buffers the whole body, which is what a test wants to assert on.

use std::time::Duration;

use anyhow::{Context, Result};
use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;

/// How long any single request may take before it is reported as an error.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A fully buffered HTTP response.
#[derive(Debug, Clone)]
pub struct Response {
    /// Response status.
    pub status: StatusCode,
    /// Response headers.
    pub headers: HeaderMap,
    /// The complete body.
    pub body: Bytes,
}

impl Response {
    /// The body as text, with invalid UTF-8 replaced.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The value of header `name` as a string, if present and valid UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// `GET url` and buffer the response. Redirects are not followed, so tests
/// can assert on them.
pub async fn get(url: &str) -> Result<Response> {
    let request = Request::builder()
        .method(Method::GET)
        .uri(url)
        .body(Full::new(Bytes::new()))
        .with_context(|| format!("building GET {url}"))?;
    send(request).await
}

/// Sends an arbitrary request and buffers the response.
pub async fn send(request: Request<Full<Bytes>>) -> Result<Response> {
    let what = format!("{} {}", request.method(), request.uri());
    // A fresh client per request: tests are not performance-sensitive, and a
    // pooled connection to a server that a test just restarted would fail.
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    let exchange = async {
        let response = client.request(request).await?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await?.to_bytes();
        anyhow::Ok(Response {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    };
    tokio::time::timeout(REQUEST_TIMEOUT, exchange)
        .await
        .with_context(|| format!("{what}: no response within {REQUEST_TIMEOUT:?}"))?
        .with_context(|| format!("{what} failed"))
}
