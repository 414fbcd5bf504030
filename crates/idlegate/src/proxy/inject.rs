//! HTML injection: the page script's `<script>` tag at the top of `<head>` of every HTML
//! page the app sends for a navigation.
//!
//! Only `GET`/`HEAD` navigations (`Sec-Fetch-Dest: document` or `iframe`, or an `Accept` that
//! asks for HTML) answered `200 text/html` are touched. For those the app is asked for an
//! uncompressed answer; if it compresses anyway (gzip, deflate, br), the page is decoded. The
//! page is read whole (app pages are small shells; past [`MAX_PAGE_BYTES`] it is passed on
//! untouched), rewritten, and sent with its new `Content-Length`. The app's `ETag` gets a
//! suffix naming the script version, and the suffix is taken off again in `If-None-Match`, so
//! the browser's cache keeps working and a new script version is never mistaken for an old
//! one. Everything else about the answer is the app's.
//!
//! At most `limits.page_rewrites` pages are read whole at once (each up to
//! [`MAX_PAGE_BYTES`], plus its decoded and rewritten copies); a page that waits longer than
//! [`crate::limits::REWRITE_WAIT`] for a turn is passed on as the app sent it, marked
//! `Cache-Control: no-store` so no cache keeps the page without its script. Whether a page is
//! rewritten depends on the request's method, `Sec-Fetch-Dest` and `Accept`
//! ([`is_navigation`]), so every HTML answer (and 304) to a `GET` or `HEAD` names those in
//! `Vary` ([`vary`], RFC 9110 §12.5.5): a shared cache never gives one variant for the other.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use bytes::{Bytes, BytesMut};
use futures_util::stream::{self, StreamExt};
use http::header::{
    HeaderValue, ACCEPT, ACCEPT_ENCODING, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_LENGTH,
    CONTENT_TYPE, ETAG, IF_NONE_MATCH, VARY,
};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use lol_html::element;
use lol_html::html_content::ContentType;
use lol_html::send::{HtmlRewriter, Settings};
use tokio::io::AsyncReadExt;

use super::Body;
use crate::error::ProxyError;
use crate::limits::{Limit, Limits};

/// Largest page (after decoding) that gets the script; larger ones pass untouched.
pub const MAX_PAGE_BYTES: usize = 4 * 1024 * 1024;
/// An app serves the same few page shells over and over: the last rewrites are kept.
const CACHE_ENTRIES: usize = 8;
/// Only pages up to this size are kept (64 KiB × 8 at most, per idlegate).
const CACHE_MAX_PAGE: usize = 64 * 1024;

/// The page script's tag and the version it names.
struct Script {
    tag: String,
    version: String,
}

/// Adds one script tag to pages, remembering its last few results.
pub struct Injector {
    /// The tag and its version; [`Injector::set_script`] replaces them.
    script: ArcSwap<Script>,
    /// (page as the app sent it, script version, page with the tag), newest last.
    recent: Mutex<VecDeque<(Bytes, String, Bytes)>>,
    /// Bounds the rewrites at once (`limits.page_rewrites`).
    limits: Arc<Limits>,
}

impl Injector {
    /// An injector for `tag`; `version` names the script for ETags; `limits` bounds the
    /// rewrites at once.
    pub fn new(tag: &str, version: &str, limits: Arc<Limits>) -> Self {
        Self {
            script: ArcSwap::from_pointee(Script {
                tag: tag.to_owned(),
                version: version.to_owned(),
            }),
            recent: Mutex::new(VecDeque::with_capacity(CACHE_ENTRIES)),
            limits,
        }
    }

    /// The script version, for [`prepare_request`].
    pub fn version(&self) -> String {
        self.script.load().version.clone()
    }

    /// Adds `tag` (script version `version`) from now on, after the page script's settings
    /// changed (a configuration reload); pages rewritten with the old tag are forgotten.
    pub fn set_script(&self, tag: &str, version: &str) {
        self.script.store(Arc::new(Script {
            tag: tag.to_owned(),
            version: version.to_owned(),
        }));
        self.recent
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clear();
    }

    /// [`add_tag`], answered from the recent results when the app sent the same page again.
    fn add_tag_cached(&self, page: &Bytes) -> Option<Bytes> {
        let recent = self
            .recent
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let script = self.script.load_full();
        if let Some((_, _, done)) = recent
            .iter()
            .find(|(original, version, _)| original == page && *version == script.version)
        {
            return Some(done.clone());
        }
        drop(recent);
        let done = Bytes::from(add_tag(page, &script.tag)?);
        if page.len() <= CACHE_MAX_PAGE {
            let mut recent = self
                .recent
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if recent.len() == CACHE_ENTRIES {
                recent.pop_front();
            }
            recent.push_back((page.clone(), script.version.clone(), done.clone()));
        }
        Some(done)
    }
}

/// Whether this request is a navigation whose HTML answer should carry the script.
pub fn is_navigation<B>(req: &Request<B>) -> bool {
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        return false;
    }
    let headers = req.headers();
    if let Some(dest) = headers.get("sec-fetch-dest") {
        return matches!(dest.as_bytes(), b"document" | b"iframe");
    }
    headers
        .get(ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"))
}

/// Prepares a navigation's request head: no compression, and `If-None-Match` in the app's
/// own ETags.
pub fn prepare_request(headers: &mut HeaderMap, version: &str) {
    headers.insert(ACCEPT_ENCODING, HeaderValue::from_static("identity"));
    let Some(tags) = headers.get(IF_NONE_MATCH).and_then(|v| v.to_str().ok()) else {
        return;
    };
    if tags.trim() == "*" {
        return;
    }
    let suffix = format!("-ig{version}\"");
    let apps: Vec<String> = tags
        .split(',')
        .map(str::trim)
        .filter_map(|tag| tag.strip_suffix(&suffix).map(|t| format!("{t}\"")))
        .collect();
    match HeaderValue::from_str(&apps.join(", ")) {
        Ok(value) if !apps.is_empty() => {
            headers.insert(IF_NONE_MATCH, value);
        }
        // Tags from before this script version (or not ours) must not match.
        _ => {
            headers.remove(IF_NONE_MATCH);
        }
    }
}

/// Adds the script tag to a navigation's answer, where it is an HTML page.
pub async fn rewrite(
    response: Response<Incoming>,
    head: bool,
    injector: &Injector,
) -> Result<Response<Body>, ProxyError> {
    let version = &injector.version();
    let (mut parts, body) = response.into_parts();
    let status = parts.status;
    if status == StatusCode::NOT_MODIFIED {
        mark_etag(&mut parts.headers, version);
    }
    let html = parts
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("text/html"));
    let encoding = match Encoding::of(&parts.headers) {
        Some(encoding) if status == StatusCode::OK && html => encoding,
        _ => return Ok(Response::from_parts(parts, Body::new(body))),
    };
    mark_etag(&mut parts.headers, version);
    if head {
        // The page it describes would be longer.
        parts.headers.remove(CONTENT_LENGTH);
        return Ok(Response::from_parts(parts, Body::new(body)));
    }
    let Ok(_turn) = injector.limits.rewrites.turn().await else {
        // Too many pages in memory at once: this one passes as the app sent it, uncached.
        injector.limits.hit(Limit::RewriteSkipped);
        parts.headers.remove(ETAG);
        parts
            .headers
            .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        return Ok(Response::from_parts(parts, Body::new(body)));
    };
    let (page, rest) = read_page(body).await?;
    if let Some(rest) = rest {
        // Too large to be an app shell: pass it on as it came.
        parts.headers.remove(ETAG);
        let first = stream::once(async move { Ok::<_, hyper::Error>(page) });
        let rest = rest.into_data_stream();
        return Ok(Response::from_parts(
            parts,
            Body::from_stream(first.chain(rest)),
        ));
    }
    let decoded = match encoding {
        Encoding::Identity => Ok(page.clone()),
        other => other.decode(&page).await.map(Bytes::from),
    };
    let rewritten = decoded.ok().and_then(|html| injector.add_tag_cached(&html));
    let Some(rewritten) = rewritten else {
        // Not decodable or not HTML after all: the app's answer, untouched.
        parts.headers.remove(ETAG);
        return Ok(Response::from_parts(parts, Body::from(page)));
    };
    parts.headers.remove(CONTENT_ENCODING);
    parts
        .headers
        .insert(CONTENT_LENGTH, HeaderValue::from(rewritten.len()));
    Ok(Response::from_parts(parts, Body::from(rewritten)))
}

/// The request headers that decide whether a page is rewritten ([`is_navigation`]).
const DECIDED_BY: [&str; 2] = ["Sec-Fetch-Dest", "Accept"];

/// Adds [`DECIDED_BY`] to `Vary` of an answer to a `GET` or `HEAD` that is HTML, or a 304
/// (which must carry the `Vary` of the page it stands for, RFC 9110 §15.4.5), so caches keep
/// the rewritten and the unrewritten page apart. Call it for every answer when the page script
/// is on, rewritten or not.
pub fn vary(method: &Method, status: StatusCode, headers: &mut HeaderMap) {
    if !matches!(*method, Method::GET | Method::HEAD) {
        return;
    }
    let html = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("text/html"));
    if !html && status != StatusCode::NOT_MODIFIED {
        return;
    }
    let listed: Vec<String> = headers
        .get_all(VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .collect();
    if listed.iter().any(|name| name == "*") {
        return;
    }
    let missing = DECIDED_BY
        .iter()
        .filter(|name| !listed.iter().any(|l| l.eq_ignore_ascii_case(name)))
        .map(|name| (*name).to_owned());
    let all: Vec<String> = listed.iter().cloned().chain(missing).collect();
    if let Ok(value) = HeaderValue::from_str(&all.join(", ")) {
        headers.insert(VARY, value);
    }
}

/// Puts `tag` first in `<head>` (or first in `<body>` of a page without a head). `None` if the
/// page has neither or cannot be parsed.
pub fn add_tag(html: &[u8], tag: &str) -> Option<Vec<u8>> {
    let done = Arc::new(AtomicBool::new(false));
    let (in_head, in_body) = (done.clone(), done.clone());
    let mut out = Vec::with_capacity(html.len() + tag.len());
    let settings = Settings::new_send()
        .append_element_content_handler(element!("head", move |el| {
            if !in_head.swap(true, Ordering::Relaxed) {
                el.prepend(tag, ContentType::Html);
            }
            Ok(())
        }))
        .append_element_content_handler(element!("body", move |el| {
            if !in_body.swap(true, Ordering::Relaxed) {
                el.prepend(tag, ContentType::Html);
            }
            Ok(())
        }));
    let mut rewriter = HtmlRewriter::new(settings, |chunk: &[u8]| out.extend_from_slice(chunk));
    rewriter.write(html).ok()?;
    rewriter.end().ok()?;
    done.load(Ordering::Relaxed).then_some(out)
}

/// Reads the page; if it is longer than [`MAX_PAGE_BYTES`], returns what was read and the
/// rest of the body.
async fn read_page(mut body: Incoming) -> Result<(Bytes, Option<Incoming>), ProxyError> {
    let mut page = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| ProxyError::Upstream(Box::new(e)))?;
        if let Ok(data) = frame.into_data() {
            page.extend_from_slice(&data);
            if page.len() > MAX_PAGE_BYTES {
                return Ok((page.freeze(), Some(body)));
            }
        }
    }
    Ok((page.freeze(), None))
}

/// Appends the script version to the app's ETag.
fn mark_etag(headers: &mut HeaderMap, version: &str) {
    let Some(etag) = headers.get(ETAG).and_then(|v| v.to_str().ok()) else {
        return;
    };
    let marked = etag
        .strip_suffix('"')
        .map(|open| format!("{open}-ig{version}\""))
        .and_then(|tag| HeaderValue::from_str(&tag).ok());
    match marked {
        Some(value) => {
            headers.insert(ETAG, value);
        }
        None => {
            headers.remove(ETAG);
        }
    }
}

/// Content codings idlegate can read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Identity,
    Gzip,
    Deflate,
    Brotli,
}

impl Encoding {
    /// The answer's coding; `None` if idlegate cannot read it.
    fn of(headers: &HeaderMap) -> Option<Self> {
        let Some(value) = headers.get(CONTENT_ENCODING) else {
            return Some(Self::Identity);
        };
        match value.to_str().ok()?.trim().to_ascii_lowercase().as_str() {
            "" | "identity" => Some(Self::Identity),
            "gzip" | "x-gzip" => Some(Self::Gzip),
            "deflate" => Some(Self::Deflate),
            "br" => Some(Self::Brotli),
            _ => None,
        }
    }

    async fn decode(self, data: &[u8]) -> Result<Vec<u8>, std::io::Error> {
        use async_compression::tokio::bufread::{BrotliDecoder, DeflateDecoder, GzipDecoder};
        let limit = MAX_PAGE_BYTES as u64 + 1;
        let mut out = Vec::new();
        match self {
            Self::Identity => out.extend_from_slice(data),
            Self::Gzip => {
                GzipDecoder::new(data)
                    .take(limit)
                    .read_to_end(&mut out)
                    .await?;
            }
            Self::Deflate => {
                DeflateDecoder::new(data)
                    .take(limit)
                    .read_to_end(&mut out)
                    .await?;
            }
            Self::Brotli => {
                BrotliDecoder::new(data)
                    .take(limit)
                    .read_to_end(&mut out)
                    .await?;
            }
        }
        if out.len() > MAX_PAGE_BYTES {
            return Err(std::io::Error::other("page too large once decoded"));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
