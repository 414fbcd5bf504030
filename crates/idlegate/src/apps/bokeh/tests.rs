use std::time::Duration;

use base64::Engine as _;
use http::HeaderValue;
use serde_json::json;

use super::*;
use crate::apps::kind::Kind;
use crate::apps::MessageKind;
use crate::lifecycle::Signal;

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| (*s).to_owned()).collect()
}

/// Feeds one WebSocket message; returns what it meant.
fn message(decoder: &mut dyn MessageDecoder, kind: MessageKind, bytes: &[u8]) -> Vec<Signal> {
    let mut out = Vec::new();
    assert!(decoder.reads(kind));
    decoder.begin(kind);
    let (a, b) = bytes.split_at(bytes.len() / 2);
    decoder.feed(a).unwrap();
    decoder.feed(b).unwrap();
    decoder.finish(&mut |s| out.push(s)).unwrap();
    out
}

/// Feeds a whole protocol message: header, metadata, content, buffers.
fn protocol(
    decoder: &mut dyn MessageDecoder,
    header: serde_json::Value,
    content: serde_json::Value,
    buffers: usize,
) -> Vec<Signal> {
    let text = MessageKind::Text;
    let mut out = message(decoder, text, header.to_string().as_bytes());
    out.extend(message(decoder, text, b"{}"));
    out.extend(message(decoder, text, content.to_string().as_bytes()));
    for i in 0..buffers {
        out.extend(message(
            decoder,
            text,
            format!(r#"{{"id":"{i}"}}"#).as_bytes(),
        ));
        out.extend(message(decoder, MessageKind::Binary, &[0, 1, 2, 3]));
    }
    out
}

fn patch(msgid: &str, events: serde_json::Value) -> (serde_json::Value, serde_json::Value) {
    (
        json!({"msgid": msgid, "msgtype": "PATCH-DOC"}),
        json!({"events": events}),
    )
}

fn ok(reqid: &str) -> serde_json::Value {
    json!({"msgid": "s1", "msgtype": "OK", "reqid": reqid})
}

const PAGE_LOAD: Signal = Signal::RunRequested {
    automatic: false,
    fragment: false,
};
const PERSON: Signal = Signal::RunRequested {
    automatic: false,
    fragment: true,
};
const UNCLEAR: Signal = Signal::RunRequestedUnclear { fragment: true };

fn app() -> Bokeh {
    Bokeh::new("", Duration::from_secs(23))
}

#[test]
fn the_page_load_and_each_patch_is_work_until_its_answer() {
    let (mut up, mut down) = app().decoders();
    let pull = json!({"msgid": "1", "msgtype": "PULL-DOC-REQ"});
    assert_eq!(
        protocol(up.as_mut(), pull, json!({}), 0),
        [PAGE_LOAD, Signal::Running(true)]
    );
    let reply = json!({"msgid": "s0", "msgtype": "PULL-DOC-REPLY", "reqid": "1", "num_buffers": 2});
    assert_eq!(
        protocol(down.as_mut(), reply, json!({"doc": {}}), 2),
        [Signal::Running(false)]
    );
    // A button click; its answer comes after the callbacks ran.
    let click = json!([{"kind": "MessageSent", "msg_type": "bokeh_event",
        "msg_data": {"type": "event", "name": "button_click", "values": {"type": "button_click"}}}]);
    let (header, content) = patch("2", click);
    assert_eq!(
        protocol(up.as_mut(), header, content, 0),
        [PERSON, Signal::Running(true)]
    );
    // The server's own patches (a periodic callback) are not the answer.
    let (header, content) = patch("s2", json!([{"kind": "ModelChanged", "attr": "text"}]));
    assert!(protocol(down.as_mut(), header, content, 0).is_empty());
    assert_eq!(
        protocol(down.as_mut(), ok("2"), json!({}), 0),
        [Signal::Running(false)]
    );
    // An answer to nothing pending is nothing.
    assert!(protocol(down.as_mut(), ok("9"), json!({}), 0).is_empty());
    // A request whose id is a number is answered with that number.
    let (_, content) = patch("", json!([]));
    let header = json!({"msgid": 7, "msgtype": "PATCH-DOC"});
    assert_eq!(
        protocol(up.as_mut(), header, content, 0),
        [UNCLEAR, Signal::Running(true)]
    );
    let answer = json!({"msgid": "s3", "msgtype": "OK", "reqid": 7});
    assert_eq!(
        protocol(down.as_mut(), answer, json!({}), 0),
        [Signal::Running(false)]
    );
}

#[test]
fn only_what_a_person_does_in_the_page_counts() {
    let (mut up, mut down) = app().decoders();
    let mut kind = |n: usize, events: serde_json::Value| {
        let (header, content) = patch(&n.to_string(), events);
        protocol(up.as_mut(), header, content, 0)[0].clone()
    };
    let changed = |attr: &str| json!([{"kind": "ModelChanged", "model": {"id": "p1"}, "attr": attr, "new": 1}]);
    let sent = |name: &str| {
        json!([{"kind": "MessageSent", "msg_type": "bokeh_event",
        "msg_data": {"type": "event", "name": name, "values": {}}}])
    };
    assert_eq!(kind(1, changed("value")), PERSON);
    // A player's own value, once the app's document named it, is not.
    let doc = json!({"doc": {"roots": [{"type": "object", "name": "panel.models.widgets.Player", "id": "p9", "attributes": {}}]}});
    let reply = json!({"msgid": "s0", "msgtype": "PULL-DOC-REPLY", "reqid": "0"});
    protocol(down.as_mut(), reply, doc, 0);
    let player = |attr: &str| json!([{"kind": "ModelChanged", "model": {"id": "p9"}, "attr": attr, "new": 1}]);
    assert_eq!(kind(5, player("value")), UNCLEAR);
    assert_eq!(kind(6, player("value_throttled")), UNCLEAR);
    assert_eq!(kind(2, changed("active")), PERSON);
    assert_eq!(kind(3, sent("tap")), PERSON);
    assert_eq!(kind(4, sent("upload_event")), PERSON);
    // Generic channels a component's own code may use: the page script judges them.
    assert_eq!(kind(7, sent("dom_event")), UNCLEAR);
    assert_eq!(kind(8, sent("esm_event")), UNCLEAR);
    // A patch too large to read is judged by its first bytes: a file input's value is a
    // person's, a player's is not.
    let big = |id: &str| {
        let data = "x".repeat(crate::apps::json::MAX_JSON_MESSAGE);
        json!([{"attr": "value", "kind": "ModelChanged", "model": {"id": id}, "new": data}])
    };
    assert_eq!(kind(20, big("p1")), PERSON);
    assert_eq!(kind(21, big("p9")), UNCLEAR);
    for (n, events) in [
        changed("inner_width"),
        changed("start"),
        changed("dark_mode"),
        changed("href"),
        sent("document_ready"),
        sent("lodstart"),
        sent("rangesupdate"),
        json!([]),
    ]
    .into_iter()
    .enumerate()
    {
        assert_eq!(kind(10 + n, events.clone()), UNCLEAR, "{events}");
    }
}

#[test]
fn the_session_is_named_by_the_token_in_the_subprotocols() {
    let payload = json!({"session_id": "SeSsIoN", "session_expiry": 1, "__bk__zlib_": "x"});
    let encoded =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(payload.to_string().as_bytes());
    let token = format!("{encoded}.c2lnbmF0dXJl");
    assert_eq!(token_session_id(&token).as_deref(), Some("SeSsIoN"));
    let mut headers = HeaderMap::new();
    headers.insert(
        SEC_WEBSOCKET_PROTOCOL,
        HeaderValue::from_str(&format!("bokeh, {token}")).unwrap(),
    );
    let app = app();
    assert_eq!(app.resume_id(&headers).as_deref(), Some("SeSsIoN"));
    assert!(app.names_session_on_open());
    for bad in [
        "bokeh",
        "other, x",
        "bokeh, !!!",
        "bokeh, e30.sig",
        "bokeh, a, b",
    ] {
        headers.insert(SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(bad));
        assert_eq!(app.resume_id(&headers), None, "{bad}");
    }
    // Bokeh reads more leniently than idlegate: what idlegate cannot read is refused, not
    // read differently. Characters outside base64url, NaN in the JSON, a split header.
    let lenient = format!("{}!!!!{}", &encoded[..8], &encoded[8..]);
    let nan = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(r#"{"session_id":"SeSsIoN","x":NaN}"#);
    for token in [lenient, nan] {
        headers.insert(
            SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_str(&format!("bokeh, {token}.sig")).unwrap(),
        );
        assert_eq!(app.resume_id(&headers), None, "{token}");
    }
    headers.insert(SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static("bokeh"));
    headers.append(
        SEC_WEBSOCKET_PROTOCOL,
        HeaderValue::from_str(&token).unwrap(),
    );
    assert_eq!(
        app.resume_id(&headers).as_deref(),
        Some("SeSsIoN"),
        "lines join"
    );
    assert!(app.needs_readable_session());
    assert!(
        !app.forget_resume(&mut headers),
        "the token opens its session"
    );
}

#[test]
fn sockets_and_health_are_under_the_base_path() {
    let app = Bokeh::new("/dash", Duration::from_secs(1));
    assert!(app.is_session_socket("/dash/app/ws"));
    assert!(app.is_session_socket("/dash/a/b/ws"));
    assert!(
        app.is_session_socket("/dash/ws"),
        "an app served at the root"
    );
    assert!(!app.is_session_socket("/dash/wsx"));
    assert!(!app.is_session_socket("/app/ws"));
    assert_eq!(app.health_path(), "/dash/favicon.ico");
    assert!(!app.checks_socket_origin());
    assert!(app.with_any_origin(true).checks_socket_origin());
}

#[test]
fn the_launch_command_gets_idlegates_settings_and_refuses_its_own() {
    let ttl = Duration::from_secs(20);
    let command = PANEL
        .command(
            &strings(&["panel", "serve", "app.py", "--args", "--port", "1"]),
            9,
            "/d",
            ttl,
        )
        .unwrap();
    assert_eq!(
        command,
        strings(&[
            "panel",
            "serve",
            "--port",
            "9",
            "--address",
            "127.0.0.1",
            "--allow-websocket-origin=*",
            "--unused-session-lifetime",
            "20000",
            "--check-unused-sessions",
            "2000",
            "--session-ids",
            "signed",
            "--prefix",
            "/d",
            "app.py",
            "--args",
            "--port",
            "1",
        ])
    );
    for owned in [
        "--port",
        "--port=1",
        "--por",
        "--addr=0.0.0.0",
        "--allow-websocket-origin=x",
        "--prefix",
        "--session-ids=unsigned",
        "--num-procs",
    ] {
        let err = BOKEH
            .command(&strings(&["bokeh", "serve", "app.py", owned]), 9, "", ttl)
            .unwrap_err();
        assert!(
            err.starts_with(&format!("remove {owned} ")),
            "{owned}: {err}"
        );
    }
    assert!(PANEL.recognizes(&strings(&["python", "-m", "panel", "serve", "app.py"])));
    assert!(!PANEL.recognizes(&strings(&["bokeh", "serve", "app.py"])));
    assert!(BOKEH.recognizes(&strings(&["bokeh", "serve", "app.py"])));
    assert!(!BOKEH.recognizes(&strings(&["panel", "convert", "app.py"])));
}

#[test]
fn tokens_the_server_did_not_sign_are_not_read() {
    // Made by bokeh 3.9.2: `generate_jwt_token("SeSsIoN", secret_key=SECRET, signed=True)`.
    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
    const TOKEN: &str = "eyJzZXNzaW9uX2lkIjogIlNlU3NJb04iLCAic2Vzc2lvbl9leHBpcnkiOiAyNzk2MDM5NDQ1fQ.bTfM77O7uIvffwOgrzm8hKqvx8ETKQUAP6e1llXZjzM";
    assert!(token_signed(TOKEN, SECRET));
    assert!(!token_signed(TOKEN, b"another secret"));
    assert!(!token_signed(&TOKEN.replace(".bT", ".bU"), SECRET));
    assert!(!token_signed("no-signature", SECRET));
    let app = app().with_secret(Some(SECRET.to_vec()));
    let mut headers = HeaderMap::new();
    let offer = |token: &str| HeaderValue::from_str(&format!("bokeh, {token}")).unwrap();
    headers.insert(SEC_WEBSOCKET_PROTOCOL, offer(TOKEN));
    assert_eq!(app.resume_id(&headers).as_deref(), Some("SeSsIoN"));
    let forged = format!("{}.c2ln", TOKEN.split('.').next().unwrap());
    headers.insert(SEC_WEBSOCKET_PROTOCOL, offer(&forged));
    assert_eq!(app.resume_id(&headers), None);
}
