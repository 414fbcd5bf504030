use std::time::Duration;

use super::*;
use crate::apps::kind::Kind;
use crate::apps::{MessageKind, SessionShape};
use crate::lifecycle::Signal;

fn signals(decoder: &mut dyn MessageDecoder, message: &str) -> Vec<Signal> {
    let mut out = Vec::new();
    assert!(decoder.reads(MessageKind::Text));
    decoder.begin(MessageKind::Text);
    let (a, b) = message.as_bytes().split_at(message.len() / 2);
    decoder.feed(a).unwrap();
    decoder.feed(b).unwrap();
    decoder.finish(&mut |s| out.push(s)).unwrap();
    out
}

const PERSON: Signal = Signal::RunRequested {
    automatic: false,
    fragment: true,
};
const AUTOMATIC: Signal = Signal::RunRequested {
    automatic: true,
    fragment: true,
};
const PAGE_LOAD: Signal = Signal::RunRequested {
    automatic: false,
    fragment: false,
};

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn the_socket_is_the_pages_path_and_websocket_under_the_base_path() {
    let app = Shiny::new("");
    assert_eq!(app.shape(), SessionShape::Socket);
    assert!(app.is_session_socket("/websocket/"));
    assert!(!app.is_session_socket("/other/websocket/"));
    let app = Shiny::new("/analytics");
    assert!(app.is_session_socket("/analytics/websocket/"));
    assert_eq!(app.page_hints().socket_path, "/analytics/websocket/");
    let target = |t| app.app_target(t).map(|t| t.into_owned());
    assert_eq!(
        target("/analytics/websocket/").as_deref(),
        Some("/websocket/")
    );
    assert_eq!(target("/analytics").as_deref(), Some("/"));
    assert_eq!(target("/analytics?x=1").as_deref(), Some("/?x=1"));
    // Outside the base path, nothing of the app's is served.
    assert_eq!(target("/analyticsx/y"), None);
    assert_eq!(target("/session/x/upload"), None);
    assert!(app.checks_socket_origin());

    assert_eq!(app.health_path(), "/");
}

#[tokio::test(start_paused = true)]
async fn inputs_a_person_changed_count_and_the_pages_own_do_not() {
    let app = Shiny::new("");
    let (mut up, mut down) = app.decoders();
    assert!(
        !up.reads(MessageKind::Binary),
        "binary custom messages are not read"
    );
    assert_eq!(
        signals(
            down.as_mut(),
            r#"{"config":{"workerId":"","sessionId":"s1","user":null}}"#
        ),
        [Signal::SessionId("s1".into())]
    );
    let update = |data: &str| format!(r#"{{"method":"update","data":{data}}}"#);
    // The first run is asked by the page load; its values are nobody's.
    assert_eq!(
        signals(
            up.as_mut(),
            r#"{"method":"init","data":{"n":1,"btn:shiny.action":0,".clientdata_url_search":""}}"#
        ),
        [PAGE_LOAD]
    );
    assert_eq!(signals(up.as_mut(), &update(r#"{"n":3}"#)), [PERSON]);
    assert_eq!(
        signals(up.as_mut(), &update(r#"{"btn:shiny.action":1}"#)),
        [PERSON]
    );
    // The page's sizes and URL, an input re-sending the value it had, and a new input's
    // first value are not a person.
    assert_eq!(
        signals(
            up.as_mut(),
            &update(r#"{".clientdata_output_plot_width":640}"#)
        ),
        [AUTOMATIC]
    );
    assert_eq!(signals(up.as_mut(), &update(r#"{"n":3}"#)), [AUTOMATIC]);
    assert_eq!(signals(up.as_mut(), &update(r#"{"nav":"a"}"#)), [AUTOMATIC]);
    assert_eq!(signals(up.as_mut(), &update(r#"{"nav":"b"}"#)), [PERSON]);
    // An input the app just updated (`ui.update_*`) answers it, however late, once; another
    // input changed meanwhile is a person's.
    signals(
        down.as_mut(),
        r#"{"values":{},"inputMessages":[{"id":"n","message":{"value":9}}],"errors":{}}"#,
    );
    tokio::time::advance(Duration::from_secs(5)).await;
    assert_eq!(signals(up.as_mut(), &update(r#"{"nav":"c"}"#)), [PERSON]);
    assert_eq!(
        signals(up.as_mut(), &update(r#"{"n:shiny.number":9}"#)),
        [AUTOMATIC]
    );
    assert_eq!(
        signals(up.as_mut(), &update(r#"{"n:shiny.number":10}"#)),
        [PERSON]
    );
    // A clock's text output changing every second hides no person.
    signals(
        down.as_mut(),
        r#"{"values":{"clock":"10:00:01"},"inputMessages":[],"errors":{}}"#,
    );
    assert_eq!(signals(up.as_mut(), &update(r#"{"nav":"d"}"#)), [PERSON]);
    // Inputs drawn in HTML the app sent (a modal here, with a new default) answer it.
    signals(
        down.as_mut(),
        r#"{"modal":{"type":"show","message":{"html":"<input id=\"nav\" value=\"z\">","deps":[]}}}"#,
    );
    assert_eq!(signals(up.as_mut(), &update(r#"{"nav":"z"}"#)), [AUTOMATIC]);
    // So do the click and selection inputs of an output the app re-rendered, when they
    // are reset; once reset, a re-render leaves no mark, and a person's click counts.
    assert_eq!(
        signals(up.as_mut(), &update(r#"{"plot_click":null}"#)),
        [AUTOMATIC]
    );
    assert_eq!(
        signals(up.as_mut(), &update(r#"{"plot_click":{"x":1}}"#)),
        [PERSON]
    );
    let rendered = r#"{"values":{"plot":{"src":"data:"}},"inputMessages":[],"errors":{}}"#;
    signals(down.as_mut(), rendered);
    assert_eq!(
        signals(up.as_mut(), &update(r#"{"plot_click":null}"#)),
        [AUTOMATIC]
    );
    signals(down.as_mut(), rendered);
    assert_eq!(
        signals(up.as_mut(), &update(r#"{"plot_click":{"x":2}}"#)),
        [PERSON]
    );
    // A mark waiting for a value the input has already is not left (no answer will come).
    signals(
        down.as_mut(),
        r#"{"values":{},"inputMessages":[{"id":"nav","message":{"value":"z"}}],"errors":{}}"#,
    );
    assert_eq!(signals(up.as_mut(), &update(r#"{"nav":"y"}"#)), [PERSON]);
    // Tabs the app inserts or selects answer it.
    signals(
        down.as_mut(),
        r#"{"shiny-insert-tab":{"inputId":"nav","select":true}}"#,
    );
    assert_eq!(
        signals(up.as_mut(), &update(r#"{"nav":"new"}"#)),
        [AUTOMATIC]
    );
    // Marks are forgotten after a while: a later change is a person's.
    signals(
        down.as_mut(),
        r#"{"values":{},"inputMessages":[{"id":"m","message":{}}],"errors":{}}"#,
    );
    assert_eq!(signals(up.as_mut(), &update(r#"{"m":1}"#)), [AUTOMATIC]);
    tokio::time::advance(super::page::MARK_TTL + Duration::from_secs(1)).await;
    assert_eq!(signals(up.as_mut(), &update(r#"{"m":2}"#)), [PERSON]);
    assert_eq!(
        signals(
            up.as_mut(),
            r#"{"method":"uploadInit","args":[[]],"tag":1}"#
        ),
        [PERSON]
    );
}

#[tokio::test(start_paused = true)]
async fn busy_spans_the_work_and_a_request_without_work_settles() {
    let app = Shiny::new("");
    let (mut up, mut down) = app.decoders();
    let flush = r#"{"values":{},"inputMessages":[],"errors":{}}"#;
    signals(up.as_mut(), r#"{"method":"init","data":{}}"#);
    assert_eq!(
        signals(down.as_mut(), r#"{"busy":"busy"}"#),
        [Signal::Running(true)]
    );
    // A flush inside the work does not end it.
    assert!(signals(
        down.as_mut(),
        r#"{"values":{"x":1},"inputMessages":[],"errors":{}}"#
    )
    .is_empty());
    assert_eq!(
        signals(down.as_mut(), r#"{"busy":"idle"}"#),
        [Signal::Running(false)]
    );
    assert!(signals(down.as_mut(), flush).is_empty());
    // A request the app does no work for: another session's flush right after does not
    // settle it; any message a second later does, and the request is replaced by the
    // app's own, so that the app's next work is not credited to it.
    signals(up.as_mut(), r#"{"method":"update","data":{"x":1}}"#);
    assert!(signals(down.as_mut(), flush).is_empty());
    tokio::time::advance(super::page::SETTLED).await;
    let superseded = Signal::RunRequested {
        automatic: true,
        fragment: false,
    };
    assert_eq!(
        signals(down.as_mut(), r#"{"busy":"busy"}"#),
        [superseded, Signal::Running(true)]
    );
    assert_eq!(
        signals(down.as_mut(), r#"{"busy":"idle"}"#),
        [Signal::Running(false)]
    );
    assert!(signals(down.as_mut(), flush).is_empty());
    // An extended task works after its flush went idle, until its output's value.
    signals(up.as_mut(), r#"{"method":"update","data":{"go":1}}"#);
    assert_eq!(
        signals(down.as_mut(), r#"{"busy":"busy"}"#),
        [Signal::Running(true)]
    );
    assert!(signals(
        down.as_mut(),
        r#"{"progress":{"type":"binding","message":{"id":"res","persistent":true}}}"#
    )
    .is_empty());
    assert!(signals(down.as_mut(), r#"{"busy":"idle"}"#).is_empty());
    tokio::time::advance(Duration::from_secs(60)).await;
    assert!(signals(down.as_mut(), flush).is_empty());
    assert!(signals(down.as_mut(), r#"{"busy":"busy"}"#).is_empty());
    assert!(signals(down.as_mut(), r#"{"busy":"idle"}"#).is_empty());
    assert_eq!(
        signals(
            down.as_mut(),
            r#"{"values":{"res":"done"},"inputMessages":[],"errors":{}}"#
        ),
        [Signal::Running(false)]
    );
    // A task whose output was hidden ends with its output's plain progress, and no value.
    signals(up.as_mut(), r#"{"method":"update","data":{"go":2}}"#);
    let persistent = r#"{"progress":{"type":"binding","message":{"id":"res","persistent":true}}}"#;
    assert_eq!(signals(down.as_mut(), persistent), [Signal::Running(true)]);
    assert_eq!(
        signals(
            down.as_mut(),
            r#"{"progress":{"type":"binding","message":{"id":"res"}}}"#
        ),
        [Signal::Running(false)]
    );
}

#[test]
fn an_oversized_or_unreadable_input_is_relayed_unread() {
    let app = Shiny::new("");
    let (mut up, _) = app.decoders();
    let big = format!(
        r#"{{"method":"update","data":{{"text":"{}"}}}}"#,
        "x".repeat(crate::apps::json::MAX_JSON_MESSAGE)
    );
    assert!(signals(up.as_mut(), &big).is_empty());
    // Text serde cannot read (a lone surrogate, as `JSON.stringify` writes it) says nothing,
    // and does not close the page's connection.
    assert!(signals(up.as_mut(), r#"{"method":"update","data":{"t":"\ud800"}}"#).is_empty());
    assert!(signals(up.as_mut(), "{nope").is_empty());
}

#[test]
fn the_page_is_sent_away_or_shown_the_notice_in_place() {
    let app = Shiny::new("");
    let text = EndText {
        title: "Session ended",
        message: "<b>idle</b>",
        note: "n",
        start_label: "Start again",
        start_href: "/?a=1&b=2",
    };
    let url = "/_idlegate/ended?reason=idle";
    let top = app.farewell(url, Placement::TopLevel, &text);
    assert_eq!(
        top.messages,
        [Message::Text(
            r#"{"javascript":"window.location.replace(\"/_idlegate/ended?reason=idle\")"}"#.into()
        )]
    );
    assert!(!top.hold);
    let framed = app.farewell(url, Placement::Embedded, &text);
    assert!(framed.hold);
    let [Message::Text(modal)] = framed.messages.as_slice() else {
        panic!("one text message: {:?}", framed.messages);
    };
    let modal: Value = serde_json::from_str(modal).unwrap();
    let html = modal["modal"]["message"]["html"].as_str().unwrap();
    assert!(html.contains("&lt;b&gt;idle&lt;/b&gt;"), "{html}");
    assert!(html.contains("href=\"/?a=1&amp;b=2\""), "{html}");
    let unknown = app.farewell(url, Placement::Unknown, &text);
    assert_eq!(unknown.messages.len(), 2);
}

#[test]
fn credentials_come_only_from_idlegate() {
    let app = Shiny::new("");
    let mut headers = HeaderMap::new();
    headers.insert(
        CREDENTIALS,
        HeaderValue::from_static(r#"{"user":"mallory"}"#),
    );
    headers.insert(
        CONNECT_CREDENTIALS,
        HeaderValue::from_static(r#"{"user":"mallory"}"#),
    );
    app.identity_headers(&mut headers, None);
    assert!(headers.is_empty());
    let groups = vec!["staff".to_owned()];
    let alice = Person {
        user: "alice",
        groups: &groups,
    };
    headers.insert(
        CONNECT_CREDENTIALS,
        HeaderValue::from_static(r#"{"user":"mallory"}"#),
    );
    app.identity_headers(&mut headers, Some(&alice));
    assert_eq!(headers.len(), 1);
    let sent: Value = serde_json::from_slice(headers[CREDENTIALS].as_bytes()).unwrap();
    assert_eq!(sent, json!({"user": "alice", "groups": ["staff"]}));
    // Names beyond ASCII (and control characters) arrive intact, as JSON escapes.
    let groups = vec!["\u{7f}équipe".to_owned()];
    let jose = Person {
        user: "José 😀",
        groups: &groups,
    };
    app.identity_headers(&mut headers, Some(&jose));
    let raw = headers[CREDENTIALS].to_str().unwrap();
    assert!(raw.is_ascii(), "{raw}");
    let sent: Value = serde_json::from_str(raw).unwrap();
    assert_eq!(sent, json!({"user": "José 😀", "groups": ["\u{7f}équipe"]}));
}

#[test]
fn the_launch_command_gets_the_address_and_the_kind_is_recognized() {
    assert_eq!(
        kind::command(&strings(&["shiny", "run", "app.py", "-b"]), 4242).unwrap(),
        strings(&[
            "shiny",
            "run",
            "--host",
            "127.0.0.1",
            "--port",
            "4242",
            "app.py",
            "-b"
        ])
    );
    assert_eq!(
        kind::command(
            &strings(&[".venv/bin/python", "-m", "shiny", "run", "app.py"]),
            1
        )
        .unwrap()[..6],
        strings(&[
            ".venv/bin/python",
            "-m",
            "shiny",
            "run",
            "--host",
            "127.0.0.1"
        ])
    );
    for owned in [
        &["--port", "80"][..],
        &["--port=80"],
        &["--host", "0.0.0.0"],
        &["-p", "9001"],
        &["-p9001"],
        &["-h", "0.0.0.0"],
        &["-bp9000"],
        &["--uds", "/tmp/s"],
    ] {
        let mut command = strings(&["shiny", "run", "app.py"]);
        command.extend(strings(owned));
        let err = kind::command(&command, 1).unwrap_err();
        assert!(err.contains("idlegate sets"), "{owned:?}: {err}");
    }
    for other in ["-rh", "-bh", "-r", "--reload", "--workers=4"] {
        let command = strings(&["shiny", "run", "app.py", other, "0.0.0.0"]);
        assert!(kind::command(&command, 1).is_err(), "{other}");
    }
    assert!(kind::command(&strings(&["python", "app.py"]), 1).is_err());
    // uvicorn serves a Shiny app too (app.kind set: the command alone does not say).
    assert_eq!(
        kind::command(&strings(&["uvicorn", "app:app", "--root-path", "/a"]), 7).unwrap(),
        strings(&[
            "uvicorn",
            "--host",
            "127.0.0.1",
            "--port",
            "7",
            "app:app",
            "--root-path",
            "/a"
        ])
    );
    assert!(!KIND.recognizes(&strings(&["uvicorn", "app:app"])));
    assert!(KIND.recognizes(&strings(&[
        "uv", "run", "--with", "shiny", "shiny", "run", "a.py"
    ])));
    assert!(KIND.recognizes(&strings(&["/opt/venv/bin/shiny", "run", "app.py"])));

    assert!(!KIND.recognizes(&strings(&["shiny", "create"])));
    assert!(!KIND.recognizes(&strings(&["streamlit", "run", "app.py"])));
}
