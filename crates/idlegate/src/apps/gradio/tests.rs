use http::{HeaderMap, Method};

use super::*;

fn app(base_path: &str) -> Gradio {
    let upstream = Upstream {
        host: "127.0.0.1".to_owned(),
        port: 1,
    };
    let app = Gradio::new(base_path, &upstream);
    let config = br#"{"dependencies":[
        {"id":0,"targets":[[4,"click"]],"trigger_after":null},
        {"id":1,"targets":[[7,"tick"]],"trigger_after":null},
        {"id":2,"targets":[[null,"then"]],"trigger_after":0},
        {"id":3,"targets":[[9,"change"]],"trigger_after":null}
    ]}"#;
    app.layout
        .layout
        .store(Some(Arc::new(Layout::parse(config).unwrap())));
    app
}

fn head<'a>(
    method: &'a Method,
    path: &'a str,
    query: Option<&'a str>,
    headers: &'a HeaderMap,
) -> RequestHead<'a> {
    RequestHead {
        method,
        path,
        query,
        headers,
    }
}

fn classify(app: &Gradio, path: &str, body: &str) -> Vec<Signal> {
    let headers = HeaderMap::new();
    let mut out = Vec::new();
    app.classify_request(
        &head(&Method::POST, path, None, &headers),
        body.as_bytes(),
        &mut |s| out.push(s),
    );
    out
}

#[test]
fn the_session_is_found_in_each_request_of_a_tab() {
    let app = app("/tools");
    let headers = HeaderMap::new();
    let heartbeat = app
        .session_request(&head(
            &Method::GET,
            "/tools/gradio_api/heartbeat/h1",
            None,
            &headers,
        ))
        .unwrap();
    assert_eq!(heartbeat.key, SessionKey::Known("h1".to_owned()));
    assert!(heartbeat.holds_session);
    let data = head(
        &Method::GET,
        "/tools/gradio_api/queue/data",
        Some("session_hash=h1"),
        &headers,
    );
    assert_eq!(
        app.session_request(&data).map(|r| r.key),
        Some(SessionKey::Known("h1".to_owned()))
    );
    for path in [
        "/tools/gradio_api/queue/join",
        "/tools/gradio_api/run/predict",
        "/tools/gradio_api/cancel",
    ] {
        let join = head(&Method::POST, path, None, &headers);
        let found = app.session_request(&join).unwrap();
        assert!(matches!(found.key, SessionKey::InBody { .. }), "{path}");
        assert!(!found.holds_session);
        let body = br#"{"data":[1],"fn_index":0,"trigger_id":4,"session_hash":"h1"}"#;
        assert_eq!(
            app.session_in_body(&join, body),
            BodySession::Named("h1".to_owned())
        );
    }
    for (method, path) in [
        (&Method::GET, "/tools/gradio_api/app_id"),
        (&Method::GET, "/gradio_api/heartbeat/h1"),
        (&Method::POST, "/tools/gradio_api/upload"),
        (&Method::GET, "/tools/"),
        (&Method::POST, "/tools/gradio_api/heartbeat/h1"),
    ] {
        assert!(
            app.session_request(&head(method, path, None, &headers))
                .is_none(),
            "{path}"
        );
    }
}

#[test]
fn a_body_or_query_read_differently_by_the_app_names_no_session_idlegate_misses() {
    let app = app("");
    let headers = HeaderMap::new();
    let join = head(&Method::POST, "/gradio_api/queue/join", None, &headers);
    let named = |hash: &str| BodySession::Named(hash.to_owned());
    for (body, expected) in [
        (&br#"{"data":[NaN],"session_hash":"h1"}"#[..], named("h1")),
        (
            br#"{"session_hash":"old","session_hash":"new"}"#,
            named("new"),
        ),
        (br#"{"session_hash":"\u0068\u0031"}"#, named("h1")),
        (br#"{"data":[]}"#, BodySession::Absent),
        (br#"{"data":[],"session_hash":null}"#, BodySession::Absent),
        (br#"{"session_hash":7}"#, BodySession::Unreadable),
        (
            br#"{"session_hash":"h1","x":"\ud800"}"#,
            BodySession::Unreadable,
        ),
        (br#"{"session_hash":"h1""#, BodySession::Unreadable),
        (b"", BodySession::Unreadable),
    ] {
        assert_eq!(
            app.session_in_body(&join, body),
            expected,
            "{}",
            String::from_utf8_lossy(body)
        );
    }
    let data = |query| {
        app.session_request(&head(
            &Method::GET,
            "/gradio_api/queue/data",
            Some(query),
            &headers,
        ))
        .map(|r| r.key)
    };
    assert_eq!(
        data("session_hash=a&session_hash=b"),
        Some(SessionKey::Known(String::new()))
    );
    assert_eq!(data("x=1"), None);
    let api = head(&Method::POST, "/gradio_api/api/predict", None, &headers);
    assert!(app.session_request(&api).is_some());
}

#[test]
fn runs_are_a_persons_only_when_their_chain_starts_with_a_persons_event() {
    let app = app("");
    let join = "/gradio_api/queue/join";
    let person = Signal::RunRequested {
        automatic: false,
        fragment: true,
    };
    let timer = Signal::RunRequested {
        automatic: true,
        fragment: true,
    };
    let unclear = Signal::RunRequestedUnclear { fragment: true };
    assert_eq!(
        classify(
            &app,
            join,
            r#"{"fn_index":0,"trigger_id":4,"session_hash":"h"}"#
        ),
        std::slice::from_ref(&person)
    );
    assert_eq!(
        classify(
            &app,
            join,
            r#"{"fn_index":2,"trigger_id":4,"session_hash":"h"}"#
        ),
        [person]
    );
    assert_eq!(
        classify(
            &app,
            join,
            r#"{"fn_index":1,"trigger_id":7,"session_hash":"h"}"#
        ),
        [timer]
    );
    assert_eq!(
        classify(&app, join, r#"{"fn_index":3,"trigger_id":9}"#),
        std::slice::from_ref(&unclear)
    );
    assert_eq!(
        classify(&app, join, r#"{"fn_index":42,"trigger_id":9}"#),
        std::slice::from_ref(&unclear)
    );
    assert_eq!(
        classify(&app, "/gradio_api/run/predict", r#"{"data":[]}"#),
        [unclear]
    );
    assert!(classify(&app, join, "not json").is_empty());
    assert!(classify(&app, "/gradio_api/cancel", r#"{"fn_index":0}"#).is_empty());
}

#[test]
fn an_ended_sessions_requests_are_told_the_session_is_gone() {
    let app = app("");
    let headers = HeaderMap::new();
    let join = head(&Method::POST, "/gradio_api/queue/join", None, &headers);
    let answer = app.ended_answer(&join, "/_idlegate/ended").unwrap();
    assert_eq!(answer.status, StatusCode::GONE);
    let body: Value = serde_json::from_slice(&answer.body).unwrap();
    assert_eq!(body["error"], "Connection errored out. ");
    let data = head(&Method::GET, "/gradio_api/queue/data", None, &headers);
    let answer = app.ended_answer(&data, "/_idlegate/ended").unwrap();
    assert_eq!(answer.content_type, "text/event-stream");
    let text = String::from_utf8(answer.body).unwrap();
    let event: Value = serde_json::from_str(
        text.strip_prefix("data: ")
            .and_then(|rest| rest.strip_suffix("\n\n"))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(event["session_not_found"], true);
    let heartbeat = head(&Method::GET, "/gradio_api/heartbeat/h", None, &headers);
    assert!(app.ended_answer(&heartbeat, "/_idlegate/ended").is_none());
}

#[test]
fn the_base_path_is_taken_off() {
    let app = app("/tools");
    assert_eq!(app.app_target("/tools/x?y").as_deref(), Some("/x?y"));
    assert_eq!(app.app_target("/tools").as_deref(), Some("/"));
    assert_eq!(app.app_target("/other"), None);
    assert!(app.is_health_poll("/tools/gradio_api/app_id"));
    assert!(!app.is_health_poll("/gradio_api/app_id"));
}
