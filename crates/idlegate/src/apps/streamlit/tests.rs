use http::{HeaderMap, HeaderValue, Method};

use super::decode::*;
use super::*;
use crate::apps::App;
use crate::lifecycle::Signal;

fn protocols(value: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        http::header::SEC_WEBSOCKET_PROTOCOL,
        HeaderValue::from_str(value).unwrap(),
    );
    headers
}

fn signals(decoder: &mut dyn MessageDecoder, message: &[u8]) -> Vec<Signal> {
    let mut out = Vec::new();
    decoder.begin(crate::apps::MessageKind::Binary);
    for piece in message.chunks(7) {
        decoder.feed(piece).unwrap();
    }
    decoder.finish(&mut |s| out.push(s)).unwrap();
    out
}

/// `BackMsg{rerun_script{query_string: "", is_auto_rerun}}`.
fn rerun(auto: bool) -> Vec<u8> {
    if auto {
        vec![0x5a, 0x02, 0x30, 0x01]
    } else {
        vec![0x5a, 0x00]
    }
}

#[test]
fn resume_id_is_the_third_subprotocol_entry() {
    let id = "a6d10ebe-1988-4e2e-ab73-16d4649c3f08";
    assert_eq!(
        resume_id(&protocols(&format!("streamlit, 2|ab|cd|9, {id}"))).as_deref(),
        Some(id)
    );
    assert_eq!(
        resume_id(&protocols("streamlit, PLACEHOLDER_AUTH_TOKEN")),
        None
    );
    assert_eq!(resume_id(&protocols("streamlit, x, ")), None);
    assert_eq!(resume_id(&protocols("streamlit, x, <script>")), None);
    assert_eq!(resume_id(&HeaderMap::new()), None);
}

#[test]
fn session_socket_and_uploads_follow_the_base_path() {
    let app = Streamlit::new("/analytics", None);
    assert!(app.is_session_socket("/analytics/_stcore/stream"));
    assert!(!app.is_session_socket("/_stcore/stream"));
    assert_eq!(
        app.upload_session(&Method::PUT, "/analytics/_stcore/upload_file/sid-1/file-2")
            .as_deref(),
        Some("sid-1")
    );
    assert_eq!(
        app.upload_session(&Method::GET, "/analytics/_stcore/upload_file/sid-1/f"),
        None
    );
    assert_eq!(
        app.upload_session(&Method::PUT, "/analytics/_stcore/upload_file//f"),
        None
    );
    assert_eq!(app.health_path(), "/analytics/_stcore/health");
}

#[test]
fn reruns_are_run_requests_and_only_a_persons_messages_are_activity() {
    let app = Streamlit::new("", None);
    let (mut browser, _) = app.decoders();
    let request = |automatic| Signal::RunRequested {
        automatic,
        fragment: false,
    };
    // Whether a rerun is a person's is the tracker's call, from the rule and its timing.
    assert_eq!(signals(browser.as_mut(), &rerun(false)), [request(false)]);
    assert_eq!(signals(browser.as_mut(), &rerun(true)), [request(true)]);
    // A fragment's rerun says so: `rerun_script{fragment_id: "f"}`.
    assert_eq!(
        signals(browser.as_mut(), &[0x5a, 0x03, 0x2a, 0x01, b'f']),
        [Signal::RunRequested {
            automatic: false,
            fragment: true
        }]
    );
    // stop_script and clear_cache are a person's.
    assert_eq!(
        signals(browser.as_mut(), &[0x38, 0x01]),
        [Signal::PersonMessage]
    );
    assert_eq!(
        signals(browser.as_mut(), &[0x28, 0x01]),
        [Signal::PersonMessage]
    );
    // The page sends these by itself: app_heartbeat, load_git_info, set_run_on_save,
    // file_urls_request, backend_operation_request.
    for message in [
        &[0x88, 0x01, 0x01][..],
        &[0x60, 0x01],
        &[0x30, 0x01],
        &[0x82, 0x01, 0x00],
        &[0x9a, 0x01, 0x00],
    ] {
        assert!(signals(browser.as_mut(), message).is_empty(), "{message:?}");
    }
}

#[test]
fn an_auto_rerun_timer_from_the_app_is_reported() {
    let app = Streamlit::new("", None);
    let (_, mut from_app) = app.decoders();
    // ForwardMsg{auto_rerun{}} (field 21).
    assert_eq!(
        signals(from_app.as_mut(), &[0xaa, 0x01, 0x00]),
        [Signal::TimerSet]
    );
}

#[test]
fn app_messages_give_session_id_and_run_state() {
    let app = Streamlit::new("", None);
    let (_, mut from_app) = app.decoders();
    let id = b"0123456789abcdef0123456789abcdef0123";
    // ForwardMsg{new_session{initialize{session_id}}}
    let mut initialize = vec![0x32, id.len() as u8];
    initialize.extend_from_slice(id);
    let mut new_session = vec![0x0a, initialize.len() as u8];
    new_session.extend(initialize);
    let mut message = vec![0x22, new_session.len() as u8];
    message.extend(new_session);
    assert_eq!(
        signals(from_app.as_mut(), &message),
        [Signal::SessionId(String::from_utf8(id.to_vec()).unwrap())]
    );
    // session_status_changed{script_is_running: true}, then {} (false).
    assert_eq!(
        signals(from_app.as_mut(), &[0x4a, 0x02, 0x10, 0x01]),
        [Signal::Running(true)]
    );
    assert_eq!(
        signals(from_app.as_mut(), &[0x4a, 0x00]),
        [Signal::Running(false)]
    );
    // script_finished alone says nothing about the run state.
    assert!(signals(from_app.as_mut(), &[0x30, 0x03]).is_empty());
}

#[test]
fn redirect_message_is_an_auth_redirect() {
    let app = Streamlit::new("", None);
    assert_eq!(
        app.redirect_message("/x").unwrap(),
        crate::apps::Message::Binary(vec![0xc2, 0x01, 0x04, 0x0a, 0x02, 0x2f, 0x78])
    );
}

#[test]
fn an_upload_keeps_only_the_xsrf_token_and_cookie_for_its_release() {
    let app = Streamlit::new("", None);
    let mut headers = HeaderMap::new();
    headers.insert("x-xsrftoken", HeaderValue::from_static("2|a|b|1"));
    headers.insert(
        http::header::COOKIE,
        HeaderValue::from_static("session=secret; _streamlit_xsrf=2|a|b|1; other=x"),
    );
    headers.insert(
        http::header::AUTHORIZATION,
        HeaderValue::from_static("Bearer t"),
    );
    let path = "/_stcore/upload_file/sid/f1";
    match app.upload_event(&Method::PUT, path, &headers) {
        Some(crate::apps::UploadEvent::Stored {
            app_session,
            release,
        }) => {
            assert_eq!(app_session, "sid");
            assert_eq!(release.method, Method::DELETE);
            assert_eq!(release.path, path);
            assert_eq!(release.headers.len(), 2);
            assert_eq!(release.headers["cookie"], "_streamlit_xsrf=2|a|b|1");
            assert_eq!(release.headers["x-xsrftoken"], "2|a|b|1");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(
        app.upload_event(&Method::DELETE, path, &headers),
        Some(crate::apps::UploadEvent::Removed {
            app_session: "sid".into(),
            path: path.into()
        })
    );
    assert_eq!(app.upload_event(&Method::GET, path, &headers), None);
}

#[test]
fn only_a_changed_table_sort_is_a_persons_row_request() {
    use message::ChunkRequest;
    let mut sorts = Sorts::default();
    let rows = |source, sort| ChunkRequest { source, sort };
    // Scrolling an unsorted table: rows, no person.
    assert!(!sorts.changed(rows(1, 0)));
    assert!(!sorts.changed(rows(1, 0)));
    // A person sorts it, then sorts it the other way, then back.
    assert!(sorts.changed(rows(1, 7)));
    assert!(sorts.changed(rows(1, 8)));
    assert!(sorts.changed(rows(1, 7)));
    // The table refreshes itself: a new source fetching in the order it had.
    assert!(!sorts.changed(rows(2, 7)));
    assert!(!sorts.changed(rows(3, 7)));
    // Two tables with their own orders refresh: neither is a person.
    assert!(!sorts.changed(rows(4, 0)));
    assert!(!sorts.changed(rows(5, 7)));
    assert!(!sorts.changed(rows(6, 0)));
    // The first request of a page, for a sorted table, is a person's sort.
    let mut fresh = Sorts::default();
    assert!(fresh.changed(rows(9, 3)));
    // Memory stays bounded.
    for source in 100..200 {
        sorts.changed(rows(source, 0));
    }
    assert_eq!(sorts.by_source.len(), SORT_MEMORY);
}

#[test]
fn a_rerun_names_the_page_it_came_from_once_per_change() {
    let app = Streamlit::new("", None);
    let (mut browser, _) = app.decoders();
    // rerun_script{query_string, context_info{url, is_embedded}}
    let rerun_from = |url: &str, query: &str, embedded: bool| {
        let mut context = vec![0x22, url.len() as u8];
        context.extend_from_slice(url.as_bytes());
        if embedded {
            context.extend_from_slice(&[0x28, 0x01]);
        }
        let mut client_state = vec![0x0a, query.len() as u8];
        client_state.extend_from_slice(query.as_bytes());
        client_state.extend([0x42, context.len() as u8]);
        client_state.extend(context);
        let mut message = vec![0x5a, client_state.len() as u8];
        message.extend(client_state);
        message
    };
    let request = Signal::RunRequested {
        automatic: false,
        fragment: false,
    };
    let page = |path: &str, embedded: bool| Signal::Page {
        path: path.into(),
        embedded,
    };
    // Streamlit names the query apart from a URL without one.
    let report = rerun_from("http://apps.example/report", "id=42&view=chart", false);
    assert_eq!(
        signals(browser.as_mut(), &report),
        [page("/report?id=42&view=chart", false), request.clone()]
    );
    assert_eq!(
        signals(browser.as_mut(), &report),
        std::slice::from_ref(&request)
    );
    // A URL's own query counts when no query string comes apart; fragments never do.
    assert_eq!(
        signals(
            browser.as_mut(),
            &rerun_from("http://apps.example/?embed=true#top", "", true)
        ),
        [page("/?embed=true", true), request.clone()]
    );
    assert_eq!(path_and_query("javascript:alert(1)"), None);
    assert_eq!(path_and_query("http://host"), None);
}

#[test]
fn a_farewell_sends_a_top_level_page_away_tells_a_framed_one_in_place_and_an_unknown_one_both() {
    let app = Streamlit::new("", None);
    let text = crate::apps::EndText {
        title: "Session ended",
        message: "The server restarted.",
        note: "",
        start_label: "Start a new session",
        start_href: "/",
    };
    let url = "/_idlegate/ended?reason=server_restarted";
    let redirect = Message::Binary(message::encode_auth_redirect(url));
    let top = app.farewell(url, Placement::TopLevel, &text);
    assert_eq!(top.messages, std::slice::from_ref(&redirect));
    assert!(!top.hold);
    let framed = app.farewell(url, Placement::Embedded, &text);
    assert!(framed.hold, "a framed page would reconnect");
    assert!(!framed.messages.contains(&redirect));
    assert!(!framed.again.is_empty());
    // Without the app's version a page on a new connection cannot be drawn: sent away
    // only, and held.
    let unknown = app.farewell(url, Placement::Unknown, &text);
    assert_eq!(unknown.messages, std::slice::from_ref(&redirect));
    assert!(unknown.hold);
    app.version.learn("1.67.0".to_owned());
    let framed = app.farewell(url, Placement::Embedded, &text);
    let unknown = app.farewell(url, Placement::Unknown, &text);
    assert!(unknown.hold);
    assert_eq!(unknown.again, framed.again);
    assert_eq!(unknown.messages.last(), Some(&redirect), "sent away last");
    assert_eq!(
        unknown.messages[..unknown.messages.len() - 1],
        framed.messages[..],
        "told in place first"
    );
}
