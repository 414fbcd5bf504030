//! Uploading a file to Streamlit the way its file uploader does: the page's XSRF cookie and
//! token, a multipart `PUT` to `/_stcore/upload_file/<session>/<file_id>`, at full speed or
//! at a set rate (a slow link).

use std::convert::Infallible;
use std::time::Duration;

use anyhow::{Context, Result};
use bytes::Bytes;
use futures_util::stream;
use http::Request;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;

type UploadBody = http_body_util::combinators::BoxBody<Bytes, Infallible>;

/// The page's XSRF cookie (`_streamlit_xsrf=…`) and the token to send with it, as
/// `/_stcore/health` hands them out.
pub async fn xsrf(base_http_url: &str) -> Result<(String, String)> {
    let health = crate::http::get(&format!("{base_http_url}/_stcore/health")).await?;
    let cookie = health
        .headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| {
            v.split(';')
                .next()
                .filter(|c| c.starts_with("_streamlit_xsrf="))
        })
        .context("the app sets its XSRF cookie")?
        .to_owned();
    let token = cookie.trim_start_matches("_streamlit_xsrf=").to_owned();
    Ok((cookie, token))
}

/// Uploads `bytes` bytes as one file for the app session `session` at `path_prefix`
/// (`<base>/_stcore/upload_file`, or an encoded form of it), sending at most
/// `bytes_per_second` (all at once when `None`). Returns the answer's status.
pub async fn upload(
    base_http_url: &str,
    path_prefix: &str,
    session: &str,
    file_id: &str,
    bytes: usize,
    bytes_per_second: Option<usize>,
) -> Result<u16> {
    let (cookie, token) = xsrf(base_http_url).await?;
    let boundary = "idlegateTestBoundary";
    let head = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"data.bin\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    );
    let tail = format!("\r\n--{boundary}--\r\n");
    let data: Vec<u8> = (0..bytes).map(|i| (i * 7919 % 251) as u8).collect();
    let piece = bytes_per_second.unwrap_or(bytes).max(1);
    let mut pieces = vec![Bytes::from(head)];
    pieces.extend(data.chunks(piece).map(Bytes::copy_from_slice));
    pieces.push(Bytes::from(tail));
    let paced = bytes_per_second.is_some();
    let frames = stream::unfold(
        (pieces.into_iter(), true),
        move |(mut rest, first)| async move {
            let next = rest.next()?;
            // One piece a second after the multipart head.
            if paced && !first && rest.len() > 0 {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Some((Ok::<_, Infallible>(Frame::data(next)), (rest, false)))
        },
    );
    let body: UploadBody = StreamBody::new(frames).boxed();
    let request = Request::put(format!("{base_http_url}{path_prefix}/{session}/{file_id}"))
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .header("cookie", &cookie)
        .header("x-xsrftoken", &token)
        .body(body)?;
    let client: Client<HttpConnector, UploadBody> =
        Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    let response = tokio::time::timeout(Duration::from_secs(600), client.request(request))
        .await
        .context("the upload got no answer")?
        .context("uploading")?;
    Ok(response.status().as_u16())
}
