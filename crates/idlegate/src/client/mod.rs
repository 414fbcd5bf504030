//! The browser client: the script idlegate adds to the app's pages, and the small API it
//! talks to.
//!
//! The script ([`client.js`](./client.js)) names a random token for its page when the page
//! opens the app's session socket ([`crate::ws::subprotocol`]), reports input and
//! visibility for that tab ([`tab_api`]), warns before the tab ends and shows the ended page
//! after. It only improves the experience: the server
//! enforces every limit without it. This module serves the script with its settings filled
//! in; it must not decide anything about deadlines (that is [`crate::tracker`]'s job).

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::apps::PageHints;
use crate::config::Config;
use crate::web::{PREFIX, TAB_API};
use crate::ws::subprotocol::TAB_PROTOCOL_PREFIX;

/// The script's source. [`CONFIG_SLOT`] is replaced by its settings.
const SOURCE: &str = include_str!("client.js");
const CONFIG_SLOT: &str = "/*IDLEGATE_CONFIG*/null";

/// The script with its settings, ready to serve.
#[derive(Debug, Clone)]
pub struct ClientScript {
    body: Bytes,
    etag: HeaderValue,
    tag: String,
}

impl ClientScript {
    /// Builds the script for this configuration and the app's pages.
    pub fn new(config: &Config, hints: &PageHints) -> Self {
        let base = &config.app.base_path;
        let texts = &config.browser.texts;
        let settings = json!({
            "tabProtocolPrefix": TAB_PROTOCOL_PREFIX,
            "socketSuffix": hints.socket_path,
            "sessionRequests": hints.session_requests,
            "tabHeader": crate::ws::subprotocol::TAB_HEADER.as_str(),
            "themeRoot": hints.theme_root,
            "tabUrl": format!("{base}{PREFIX}{TAB_API}"),
            "endedUrl": format!("{base}{PREFIX}ended"),
            "reportIntervalMs": config.browser.report_interval.as_millis() as u64,
            "warnBeforeMs": config.tabs.warn_before.map(|d| d.as_millis() as u64),
            "texts": {
                "lang": texts.lang,
                "warningTitle": texts.warning_title,
                "warningBody": texts.warning_body,
                "warningLifetimeBody": texts.warning_lifetime_body,
                "warningLoginBody": texts.warning_login_body,
                "keepWorking": texts.keep_working,
                "dismiss": texts.dismiss,
            },
        });
        let body = SOURCE.replacen(CONFIG_SLOT, &settings.to_string(), 1);
        let digest = Sha256::digest(body.as_bytes());
        let version: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        let etag = HeaderValue::from_str(&format!("\"{version}\""))
            .unwrap_or_else(|_| HeaderValue::from_static("\"0\""));
        let tag = format!("<script src=\"{base}{PREFIX}client.js?v={version}\" defer></script>");
        Self {
            body: Bytes::from(body),
            etag,
            tag,
        }
    }

    /// The `<script>` element that loads the script, for the top of `<head>`.
    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// A short version of the script and its settings, for ETags of pages that carry it.
    pub fn version(&self) -> &str {
        self.etag
            .to_str()
            .map(|v| v.trim_matches('"'))
            .unwrap_or_default()
    }

    /// Answers `GET <base>/_idlegate/client.js`.
    pub fn respond(&self, request_headers: &HeaderMap) -> Response {
        let fresh = request_headers
            .get(header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.split(',').any(|tag| tag.trim() == self.etag));
        let mut response = if fresh {
            StatusCode::NOT_MODIFIED.into_response()
        } else {
            self.body.clone().into_response()
        };
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/javascript; charset=utf-8"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        headers.insert(header::ETAG, self.etag.clone());
        headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hints(socket_path: &str) -> PageHints {
        PageHints {
            socket_path: socket_path.to_owned(),
            session_requests: Vec::new(),
            theme_root: None,
        }
    }

    #[test]
    fn script_carries_its_settings_and_a_versioned_tag() {
        let config = Config::from_toml(
            "[app]\nbase_path = \"/x\"\n[tabs]\nidle_timeout = \"10m\"\nwarn_before = \"1m\"\n",
        )
        .unwrap();
        let script = ClientScript::new(&config, &hints("/x/_stcore/stream"));
        let body = std::str::from_utf8(&script.body).unwrap();
        assert!(!body.contains(CONFIG_SLOT));
        assert!(body.contains("\"warnBeforeMs\":60000"), "{body}");
        assert!(body.contains("\"tabUrl\":\"/x/_idlegate/tab\""));
        assert!(script
            .tag()
            .starts_with("<script src=\"/x/_idlegate/client.js?v="));
        assert_eq!(script.version().len(), 16);
        let other = Config::from_toml("[tabs]\nwarn_before = \"off\"\n").unwrap();
        let other = ClientScript::new(&other, &hints("/_stcore/stream"));
        assert_ne!(other.version(), script.version());
        assert!(std::str::from_utf8(&other.body)
            .unwrap()
            .contains("\"warnBeforeMs\":null"));
    }

    #[test]
    fn script_answers_304_to_its_own_etag() {
        let config = Config::from_toml("").unwrap();
        let script = ClientScript::new(&config, &hints("/_stcore/stream"));
        let mut headers = HeaderMap::new();
        assert_eq!(script.respond(&headers).status(), StatusCode::OK);
        headers.insert(header::IF_NONE_MATCH, script.etag.clone());
        assert_eq!(script.respond(&headers).status(), StatusCode::NOT_MODIFIED);
    }
}
