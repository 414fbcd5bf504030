//! Plain HTTP/1.1 exchanges with the app, for the kinds' checks before serving (no pooling,
//! no redirects: one request, one answer).

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

use super::kind::BasePathCheck;
use crate::config::Upstream;

/// Longest one check may take.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// Sends `request` (which must say `Connection: close`) and reads the whole answer, up to
/// 64 KiB.
///
/// # Errors
/// The app could not be reached, or the connection failed.
pub async fn exchange_all(upstream: &Upstream, request: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect((upstream.host.as_str(), upstream.port)).await?;
    stream.write_all(request.as_bytes()).await?;
    let mut answer = Vec::with_capacity(1024);
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 || answer.len() > 64 * 1024 {
            break;
        }
        answer.extend_from_slice(&buf[..n]);
    }
    Ok(String::from_utf8_lossy(&answer).into_owned())
}

/// The status code the app answers `GET path` with, within [`CHECK_TIMEOUT`].
///
/// # Errors
/// A message saying why there is no answer.
pub async fn get_status(upstream: &Upstream, path: &str) -> Result<u16, String> {
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        upstream.authority()
    );
    let answer = match timeout(CHECK_TIMEOUT, exchange_all(upstream, &request)).await {
        Ok(Ok(answer)) => answer,
        Ok(Err(e)) => return Err(e.to_string()),
        Err(_) => return Err("no answer within 5 s".to_owned()),
    };
    answer
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| "the answer is not HTTP/1.1".to_owned())
}

/// The body of the app's `200` answer to `GET path` (identity-encoded, at most `limit`
/// bytes), within [`CHECK_TIMEOUT`].
///
/// # Errors
/// A message saying why there is no such body.
pub async fn get_body(
    upstream: &Upstream,
    path: &str,
    limit: usize,
) -> Result<bytes::Bytes, String> {
    use http_body_util::{BodyExt, Empty, Limited};
    let exchange = async {
        let stream = TcpStream::connect((upstream.host.as_str(), upstream.port))
            .await
            .map_err(|e| e.to_string())?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .map_err(|e| e.to_string())?;
        tokio::spawn(connection);
        let request = http::Request::get(path)
            .header(http::header::HOST, upstream.authority())
            .header(http::header::ACCEPT_ENCODING, "identity")
            .body(Empty::<bytes::Bytes>::new())
            .map_err(|e| e.to_string())?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())?;
        if response.status() != http::StatusCode::OK {
            return Err(format!("the app answers {path} with {}", response.status()));
        }
        Limited::new(response.into_body(), limit)
            .collect()
            .await
            .map(|body| body.to_bytes())
            .map_err(|e| e.to_string())
    };
    timeout(CHECK_TIMEOUT, exchange)
        .await
        .unwrap_or_else(|_| Err("no answer within 5 s".to_owned()))
}

/// Whether an app that serves at the root of its address whatever `app.base_path` is
/// (idlegate takes the base path off) answers `GET path` with 200; `framework` names it in
/// the message for another answer.
pub async fn serves_at_root(upstream: &Upstream, path: &str, framework: &str) -> BasePathCheck {
    match get_status(upstream, path).await {
        Ok(200) => BasePathCheck::Serves,
        Ok(status) => BasePathCheck::Elsewhere(format!(
            "the app at {upstream} answers {path} with {status}, not as a {framework} app \
             does; check --upstream (a {framework} app must serve at the root of its address)"
        )),
        Err(why) => BasePathCheck::Unreachable(why),
    }
}
