//! `ForwardMsg`s idlegate sends the page itself: a redirect, the page replaced by a notice.

use super::{back, forward};

/// Appends `value` as a protobuf varint.
fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        // Truncation keeps the low seven bits, which is the point.
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Appends a length-delimited field.
fn put_len_field(out: &mut Vec<u8>, field: u32, body: &[u8]) {
    put_varint(out, (u64::from(field) << 3) | 2);
    put_varint(out, body.len() as u64);
    out.extend_from_slice(body);
}

/// Serialized `ForwardMsg{auth_redirect{url}}`, which makes the browser
/// navigate to `url`.
pub fn encode_auth_redirect(url: &str) -> Vec<u8> {
    let mut inner = Vec::with_capacity(url.len() + 6);
    put_len_field(
        &mut inner,
        forward::fields::AUTH_REDIRECT_URL,
        url.as_bytes(),
    );
    let mut out = Vec::with_capacity(inner.len() + 8);
    put_len_field(&mut out, forward::fields::AUTH_REDIRECT, &inner);
    out
}

/// Serialized `BackMsg{set_run_on_save: enabled}`. The app answers it with a status
/// message and changes nothing else for a session that never ran its script.
pub fn encode_set_run_on_save(enabled: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(2);
    put_varint(&mut out, u64::from(back::fields::SET_RUN_ON_SAVE) << 3);
    put_varint(&mut out, u64::from(enabled));
    out
}

/// Field numbers of the messages that draw a page of idlegate's own in place of the app's
/// (streamlit 1.67 `ForwardMsg.proto`, `NewSession.proto`, `Delta.proto`, `Element.proto`,
/// `Markdown.proto`, `AppPage.proto`).
mod page {
    pub const FORWARD_METADATA: u32 = 2;
    pub const FORWARD_NEW_SESSION: u32 = 4;
    pub const FORWARD_DELTA: u32 = 5;
    pub const FORWARD_SCRIPT_FINISHED: u32 = 6;
    pub const FORWARD_SESSION_STATUS_CHANGED: u32 = 9;
    pub const FORWARD_NAVIGATION: u32 = 23;
    pub const METADATA_DELTA_PATH: u32 = 2;
    pub const METADATA_RUN: u32 = 6;
    pub const RUN_SCRIPT_RUN_ID: u32 = 1;
    pub const NEW_SESSION_INITIALIZE: u32 = 1;
    pub const INITIALIZE_USER_INFO: u32 = 1;
    pub const INITIALIZE_ENVIRONMENT_INFO: u32 = 3;
    pub const INITIALIZE_SESSION_STATUS: u32 = 4;
    pub const INITIALIZE_SESSION_ID: u32 = 6;
    pub const USER_INSTALLATION_ID: u32 = 1;
    pub const USER_INSTALLATION_ID_V3: u32 = 5;
    pub const USER_INSTALLATION_ID_V4: u32 = 6;
    pub const ENVIRONMENT_STREAMLIT_VERSION: u32 = 1;
    pub const NEW_SESSION_CONFIG: u32 = 6;
    pub const DELTA_NEW_ELEMENT: u32 = 3;
    pub const ELEMENT_MARKDOWN: u32 = 29;
    pub const MARKDOWN_BODY: u32 = 1;
    pub const NAVIGATION_APP_PAGES: u32 = 2;
    pub const NAVIGATION_PAGE_SCRIPT_HASH: u32 = 4;
    pub const APP_PAGE_SCRIPT_HASH: u32 = 1;
    pub const APP_PAGE_NAME: u32 = 2;
    pub const APP_PAGE_IS_DEFAULT: u32 = 4;
}

/// `ForwardMsg.metadata{run{script_run_id}}`.
fn run_metadata(run_id: &str) -> Vec<u8> {
    let mut run = Vec::new();
    put_len_field(&mut run, page::RUN_SCRIPT_RUN_ID, run_id.as_bytes());
    let mut metadata = Vec::new();
    put_len_field(&mut metadata, page::METADATA_RUN, &run);
    metadata
}

/// The messages that replace everything the page shows with `markdown`, in a run of the
/// page's own named `run_id`, with the browser tab titled `title`. Streamlit clears a
/// page's old elements only at the end of a run it started with `new_session`, so the
/// messages are a whole run: `new_session` (with the empty `initialize` and `config` the
/// page needs), `navigation` (one page, which also hides the app's page list), the
/// markdown at the top of the main area, `script_finished` and `session_status_changed`.
///
/// For a page that cannot be sent elsewhere: Streamlit posts `auth_redirect` to the parent
/// of a page in an iframe instead of navigating. Each message is one binary WebSocket
/// message.
///
/// With the app's Streamlit `version`, `initialize` also carries what a page on a new
/// connection reads from it (`SessionInfo.propsFromNewSessionMessage`: user and environment
/// info, the session status); the version must be the app's own, or the page reloads.
pub fn encode_page_replacement(
    run_id: &str,
    title: &str,
    markdown: &str,
    version: Option<&str>,
) -> Vec<Vec<u8>> {
    let metadata = run_metadata(run_id);
    let hash = "idlegate-ended";

    let mut new_session = Vec::new();
    let initialize = initialize(hash, version);
    put_len_field(&mut new_session, page::NEW_SESSION_INITIALIZE, &initialize);
    put_len_field(&mut new_session, page::NEW_SESSION_CONFIG, &[]);
    let mut started = Vec::new();
    put_len_field(&mut started, page::FORWARD_NEW_SESSION, &new_session);
    put_len_field(&mut started, page::FORWARD_METADATA, &metadata);

    let mut navigated = Vec::new();
    put_len_field(
        &mut navigated,
        page::FORWARD_NAVIGATION,
        &navigation(hash, title),
    );
    put_len_field(&mut navigated, page::FORWARD_METADATA, &metadata);

    let mut body = Vec::new();
    put_len_field(&mut body, page::MARKDOWN_BODY, markdown.as_bytes());
    let mut element = Vec::new();
    put_len_field(&mut element, page::ELEMENT_MARKDOWN, &body);
    let mut delta = Vec::new();
    put_len_field(&mut delta, page::DELTA_NEW_ELEMENT, &element);
    // The first element of the main container: delta_path [0, 0], packed.
    let mut element_metadata = Vec::new();
    put_len_field(&mut element_metadata, page::METADATA_DELTA_PATH, &[0, 0]);
    let mut drawn = Vec::new();
    put_len_field(&mut drawn, page::FORWARD_DELTA, &delta);
    put_len_field(&mut drawn, page::FORWARD_METADATA, &element_metadata);

    let mut finished = Vec::new();
    put_varint(&mut finished, u64::from(page::FORWARD_SCRIPT_FINISHED) << 3);
    put_varint(&mut finished, 0);
    put_len_field(&mut finished, page::FORWARD_METADATA, &metadata);

    let mut idle = Vec::new();
    put_len_field(&mut idle, page::FORWARD_SESSION_STATUS_CHANGED, &[]);

    vec![started, navigated, drawn, finished, idle]
}

/// `ForwardMsg{session_status_changed{script_is_running: true}}`: the answer to a rerun the
/// page asks for on a replaced page, before drawing it again (else the page stays greyed).
pub fn encode_running() -> Vec<u8> {
    let mut status = Vec::new();
    put_varint(&mut status, 2 << 3);
    put_varint(&mut status, 1);
    let mut out = Vec::new();
    put_len_field(&mut out, page::FORWARD_SESSION_STATUS_CHANGED, &status);
    out
}

/// `NewSession.initialize`: empty without the app's `version`; with it, what a page on a new
/// connection reads (user and environment info, the session status, a session id).
fn initialize(hash: &str, version: Option<&str>) -> Vec<u8> {
    let mut initialize = Vec::new();
    let Some(version) = version else {
        return initialize;
    };
    let mut user = Vec::new();
    for field in [
        page::USER_INSTALLATION_ID,
        page::USER_INSTALLATION_ID_V3,
        page::USER_INSTALLATION_ID_V4,
    ] {
        put_len_field(&mut user, field, b"idlegate");
    }
    let mut environment = Vec::new();
    put_len_field(
        &mut environment,
        page::ENVIRONMENT_STREAMLIT_VERSION,
        version.as_bytes(),
    );
    put_len_field(&mut initialize, page::INITIALIZE_USER_INFO, &user);
    put_len_field(
        &mut initialize,
        page::INITIALIZE_ENVIRONMENT_INFO,
        &environment,
    );
    put_len_field(&mut initialize, page::INITIALIZE_SESSION_STATUS, &[]);
    put_len_field(
        &mut initialize,
        page::INITIALIZE_SESSION_ID,
        hash.as_bytes(),
    );
    initialize
}

/// `Navigation` with one page, `title`, whose script hash is `hash` (which also hides the
/// app's page list).
fn navigation(hash: &str, title: &str) -> Vec<u8> {
    let mut app_page = Vec::new();
    put_len_field(&mut app_page, page::APP_PAGE_SCRIPT_HASH, hash.as_bytes());
    put_len_field(&mut app_page, page::APP_PAGE_NAME, title.as_bytes());
    put_varint(&mut app_page, u64::from(page::APP_PAGE_IS_DEFAULT) << 3);
    put_varint(&mut app_page, 1);
    let mut navigation = Vec::new();
    put_len_field(&mut navigation, page::NAVIGATION_APP_PAGES, &app_page);
    put_len_field(
        &mut navigation,
        page::NAVIGATION_PAGE_SCRIPT_HASH,
        hash.as_bytes(),
    );
    navigation
}
