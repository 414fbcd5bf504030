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
    fragment: false,
};
const AUTOMATIC: Signal = Signal::RunRequested {
    automatic: true,
    fragment: false,
};

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| (*s).to_owned()).collect()
}

/// Lets the echo window after the page's first run (or the app's last change) pass.
async fn after_echo_window() {
    tokio::time::advance(decode::ECHO_WINDOW + Duration::from_millis(50)).await;
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
    assert_eq!(app.app_target("/analytics/websocket/"), "/websocket/");
    assert_eq!(app.app_target("/analytics"), "/");
    assert_eq!(app.app_target("/analytics?x=1"), "/?x=1");
    assert_eq!(app.app_target("/analyticsx/y"), "/analyticsx/y");
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
    // The first run is asked by the page load.
    assert_eq!(
        signals(
            up.as_mut(),
            r#"{"method":"init","data":{"n":1,"btn:shiny.action":0,".clientdata_url_search":""}}"#
        ),
        [PERSON]
    );
    // Inputs answering the first run are the page's.
    assert_eq!(
        signals(up.as_mut(), r#"{"method":"update","data":{"nav":"a"}}"#),
        [AUTOMATIC]
    );
    after_echo_window().await;
    assert_eq!(
        signals(up.as_mut(), r#"{"method":"update","data":{"n":3}}"#),
        [PERSON]
    );
    assert_eq!(
        signals(
            up.as_mut(),
            r#"{"method":"update","data":{"btn:shiny.action":1}}"#
        ),
        [PERSON]
    );
    // The page's sizes and URL, and an input re-sending the value it had, are not a person.
    assert_eq!(
        signals(
            up.as_mut(),
            r#"{"method":"update","data":{".clientdata_output_plot_width":640}}"#
        ),
        [AUTOMATIC]
    );
    assert_eq!(
        signals(up.as_mut(), r#"{"method":"update","data":{"n":3}}"#),
        [AUTOMATIC]
    );
    // An input the app just updated (`ui.update_*`) answers it.
    signals(
        down.as_mut(),
        r#"{"values":{},"inputMessages":[{"id":"n","message":{"value":9}}],"errors":{}}"#,
    );
    assert_eq!(
        signals(up.as_mut(), r#"{"method":"update","data":{"n":9}}"#),
        [AUTOMATIC]
    );
    after_echo_window().await;
    assert_eq!(
        signals(up.as_mut(), r#"{"method":"update","data":{"n":10}}"#),
        [PERSON]
    );
    assert_eq!(
        signals(
            up.as_mut(),
            r#"{"method":"uploadInit","args":[[]],"tag":1}"#
        ),
        [Signal::PersonMessage]
    );
}

#[test]
fn busy_spans_the_work_and_an_empty_flush_ends_a_request() {
    let app = Shiny::new("");
    let (_, mut down) = app.decoders();
    assert_eq!(
        signals(down.as_mut(), r#"{"busy":"busy"}"#),
        [Signal::Running(true)]
    );
    // A flush inside the work (an extended task still running) does not end it.
    assert!(signals(
        down.as_mut(),
        r#"{"values":{"x":1},"inputMessages":[],"errors":{}}"#
    )
    .is_empty());
    assert_eq!(
        signals(down.as_mut(), r#"{"busy":"idle"}"#),
        [Signal::Running(false)]
    );
    assert_eq!(
        signals(
            down.as_mut(),
            r#"{"values":{},"inputMessages":[],"errors":{}}"#
        ),
        [Signal::Running(true), Signal::Running(false)]
    );
    assert!(signals(
        down.as_mut(),
        r#"{"progress":{"type":"binding","message":{"id":"x"}}}"#
    )
    .is_empty());
}

#[test]
fn an_oversized_input_is_relayed_unread_and_malformed_text_is_an_error() {
    let app = Shiny::new("");
    let (mut up, _) = app.decoders();
    let big = format!(
        r#"{{"method":"update","data":{{"text":"{}"}}}}"#,
        "x".repeat(crate::apps::json::MAX_JSON_MESSAGE)
    );
    assert!(signals(up.as_mut(), &big).is_empty());
    up.begin(MessageKind::Text);
    up.feed(b"{nope").unwrap();
    assert!(up.finish(&mut |_| {}).is_err());
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
}

#[test]
fn the_launch_command_gets_the_address_and_the_kind_is_recognized() {
    assert_eq!(
        kind::command(&strings(&["shiny", "run", "app.py", "--reload"]), 4242).unwrap(),
        strings(&[
            "shiny",
            "run",
            "--host",
            "127.0.0.1",
            "--port",
            "4242",
            "app.py",
            "--reload"
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
    let err = kind::command(&strings(&["shiny", "run", "--port", "80", "app.py"]), 1).unwrap_err();
    assert!(err.contains("--port"), "{err}");
    assert!(kind::command(&strings(&["python", "app.py"]), 1).is_err());
    assert!(KIND.recognizes(&strings(&["/opt/venv/bin/shiny", "run", "app.py"])));
    assert!(!KIND.recognizes(&strings(&["shiny", "create"])));
    assert!(!KIND.recognizes(&strings(&["streamlit", "run", "app.py"])));
}
