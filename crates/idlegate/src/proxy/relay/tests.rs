use std::time::Duration;

use tokio::io::{duplex, AsyncReadExt, AsyncWriteExt, DuplexStream};

use super::*;
use crate::apps::streamlit::Streamlit;
use crate::config::TabPolicy;
use crate::tracker::{EndReason, Entry, Tracker};
use crate::ws::traffic::Direction;

fn policy() -> TabPolicy {
    TabPolicy {
        max_lifetime: None,
        ..TabPolicy::for_tests(600, 0)
    }
}

fn frame(opcode: Opcode, payload: &[u8], masked: bool) -> Vec<u8> {
    let mut out = Vec::new();
    encode_frame(
        &mut out,
        opcode,
        true,
        payload,
        masked.then_some([1, 2, 3, 4]),
    );
    out
}

/// `ForwardMsg{new_session{initialize{session_id: id}}}`.
fn new_session(id: &str) -> Vec<u8> {
    let mut initialize = vec![0x32, id.len() as u8];
    initialize.extend_from_slice(id.as_bytes());
    let mut session = vec![0x0a, initialize.len() as u8];
    session.extend(initialize);
    let mut message = vec![0x22, session.len() as u8];
    message.extend(session);
    message
}

async fn read_exactly(stream: &mut DuplexStream, n: usize) -> Vec<u8> {
    let mut buf = vec![0; n];
    tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut buf))
        .await
        .expect("bytes arrive in time")
        .expect("read");
    buf
}

async fn read_to_end(stream: &mut DuplexStream) -> Vec<u8> {
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut buf))
        .await
        .expect("stream ends in time")
        .expect("read");
    buf
}

struct Harness {
    tracker: Tracker,
    traffic: std::sync::Arc<Traffic>,
    browser: DuplexStream,
    app: DuplexStream,
    relay: tokio::task::JoinHandle<Outcome>,
}

fn start() -> Harness {
    start_with(Streamlit::new("", None), |notice: &EndNotice| Farewell {
        messages: vec![crate::apps::Message::Binary(
            crate::apps::streamlit::message::encode_auth_redirect(&format!(
                "/_idlegate/ended?reason={}",
                notice.reason
            )),
        )],
        ..Farewell::default()
    })
}

/// A relay for `app`, whose pages are told `farewell` when their tab ends.
fn start_with<A: App>(kind: A, farewell: fn(&EndNotice) -> Farewell) -> Harness {
    let tracker = Tracker::start(policy());
    let (browser, browser_side) = duplex(64 * 1024);
    let (app, app_side) = duplex(64 * 1024);
    let conn = tracker.connect(&Entry::default(), None).unwrap();
    let traffic = std::sync::Arc::new(Traffic::default());
    let counted = traffic.clone();
    let relay = tokio::spawn(async move {
        let options = RelayOptions {
            max_message_bytes: 1 << 20,
            farewell: &farewell,
            traffic: &counted,
        };
        let outcome = run(browser_side, app_side, &conn, &kind, &options).await;
        conn.closed();
        outcome
    });
    Harness {
        tracker,
        traffic,
        browser,
        app,
        relay,
    }
}

#[tokio::test]
async fn bytes_pass_through_unchanged_and_the_session_id_is_learned() {
    let mut h = start();
    let id = "0f4c1c4e-6d0f-4f3a-9a57-2f0c8e1f4a10";
    let down = [
        frame(Opcode::Binary, &new_session(id), false),
        frame(Opcode::Ping, b"p", false),
    ]
    .concat();
    h.app.write_all(&down).await.unwrap();
    assert_eq!(read_exactly(&mut h.browser, down.len()).await, down);

    let up = [
        frame(Opcode::Pong, b"p", true),
        frame(Opcode::Binary, &[0x5a, 0x00], true),
    ]
    .concat();
    h.browser.write_all(&up).await.unwrap();
    assert_eq!(read_exactly(&mut h.app, up.len()).await, up);
    // Every frame and byte relayed is counted, per direction.
    assert_eq!(h.traffic.frames(Direction::ToBrowser), 2);
    assert_eq!(h.traffic.bytes(Direction::ToBrowser), down.len() as u64);
    assert_eq!(h.traffic.frames(Direction::ToApp), 2);
    assert_eq!(h.traffic.bytes(Direction::ToApp), up.len() as u64);

    // The tab now answers to its app session id.
    let tab = h
        .tracker
        .connect(
            &Entry {
                resume: Some(id.to_owned()),
                client: None,
            },
            None,
        )
        .unwrap();
    assert_eq!(tab.tab_id(), 1);
}

#[tokio::test]
async fn ending_completes_the_frame_in_flight_then_redirects() {
    let mut h = start();
    let big = vec![7u8; 40_000];
    let whole = frame(Opcode::Binary, &big, false);
    let (first, rest) = whole.split_at(1000);
    h.app.write_all(first).await.unwrap();
    assert_eq!(read_exactly(&mut h.browser, first.len()).await, first);

    assert_eq!(h.tracker.end_all(EndReason::Idle), 1);
    h.app.write_all(rest).await.unwrap();
    let expected_redirect = frame(
        Opcode::Binary,
        &crate::apps::streamlit::message::encode_auth_redirect("/_idlegate/ended?reason=idle"),
        false,
    );
    let got = read_exactly(&mut h.browser, rest.len() + expected_redirect.len()).await;
    assert_eq!(&got[..rest.len()], rest);
    assert_eq!(&got[rest.len()..], expected_redirect.as_slice());

    // The app's side is closed with a close frame.
    let closing = read_to_end(&mut h.app).await;
    assert_eq!(closing[0], 0x88, "a close frame");
    drop(h.browser);
    assert!(
        matches!(h.relay.await.unwrap(), Outcome::Ended(e) if e.notice.reason == EndReason::Idle)
    );
}

#[tokio::test]
async fn browser_leaving_closes_the_app_side_and_starts_the_grace_period() {
    let mut h = start();
    drop(h.browser);
    let closing = read_to_end(&mut h.app).await;
    assert_eq!(closing[0], 0x88);
    assert_eq!(h.relay.await.unwrap(), Outcome::BrowserClosed);
    assert_eq!(h.tracker.len(), 1, "the tab waits for a reconnect");
}

#[tokio::test]
async fn app_leaving_closes_the_browser_side() {
    let mut h = start();
    let close = frame(Opcode::Close, &close_payload(1001, ""), false);
    h.app.write_all(&close).await.unwrap();
    drop(h.app);
    assert_eq!(read_to_end(&mut h.browser).await, close);
    assert_eq!(h.relay.await.unwrap(), Outcome::AppClosed);
}

#[tokio::test]
async fn unmasked_browser_frames_close_the_connection() {
    let mut h = start();
    h.browser
        .write_all(&frame(Opcode::Binary, &[0x5a, 0x00], false))
        .await
        .unwrap();
    assert_eq!(h.relay.await.unwrap(), Outcome::ProtocolError);
    assert!(
        read_to_end(&mut h.app).await.is_empty(),
        "nothing was forwarded"
    );
    assert_eq!(h.tracker.admit(None, None, None), Ok(Entry::default()));
}

#[tokio::test]
async fn malformed_browser_messages_close_the_connection() {
    let mut h = start();
    h.browser
        .write_all(&frame(Opcode::Binary, &[0xff; 5], true))
        .await
        .unwrap();
    assert_eq!(h.relay.await.unwrap(), Outcome::ProtocolError);
}

#[tokio::test]
async fn text_frames_from_the_browser_are_relayed_not_decoded() {
    let mut h = start();
    let text = frame(Opcode::Text, b"\xff not protobuf", true);
    h.browser.write_all(&text).await.unwrap();
    assert_eq!(read_exactly(&mut h.app, text.len()).await, text);
}

#[test]
fn read_buffer_grows_on_full_reads_and_shrinks_when_idle() {
    let mut buf = ReadBuffer::new();
    assert_eq!(buf.space().len(), BUFFER_MIN);
    buf.space().fill(7);
    assert_eq!(buf.filled(BUFFER_MIN), BUFFER_MIN);
    assert_eq!(buf.space().len(), 2 * BUFFER_MIN);
    assert!(
        buf.data(BUFFER_MIN).iter().all(|b| *b == 7),
        "bytes read are kept"
    );
    for _ in 0..20 {
        let n = buf.space().len();
        buf.filled(n);
    }
    assert_eq!(buf.space().len(), BUFFER_MAX);
    buf.space()[..4].copy_from_slice(b"ping");
    assert_eq!(buf.filled(4), 4);
    assert_eq!(buf.data(4), b"ping");
    assert_eq!(buf.space().len(), BUFFER_MIN);
}

#[tokio::test]
async fn a_large_message_passes_through_intact() {
    let mut h = start();
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let down = frame(Opcode::Binary, &big, false);
    let writer = tokio::spawn(async move {
        h.app.write_all(&down).await.unwrap();
        (h.app, down)
    });
    let got = read_exactly(&mut h.browser, 300_000 + 10).await;
    let (_app, down) = writer.await.unwrap();
    assert_eq!(got, down);
}

#[tokio::test]
async fn text_frames_reach_a_kind_that_reads_them_and_its_farewell_is_text() {
    use crate::apps::shiny::Shiny;
    let mut h = start_with(Shiny::new(""), |notice: &EndNotice| {
        Shiny::new("").farewell(
            &format!("/_idlegate/ended?reason={}", notice.reason),
            crate::apps::Placement::TopLevel,
            &crate::apps::EndText {
                title: "",
                message: "",
                note: "",
                start_label: "",
                start_href: "/",
            },
        )
    });
    let down = frame(
        Opcode::Text,
        br#"{"config":{"workerId":"","sessionId":"shiny-1"}}"#,
        false,
    );
    h.app.write_all(&down).await.unwrap();
    read_exactly(&mut h.browser, down.len()).await;
    // The page's first run names its inputs' values.
    let init = frame(Opcode::Text, br#"{"method":"init","data":{"n":1}}"#, true);
    h.browser.write_all(&init).await.unwrap();
    read_exactly(&mut h.app, init.len()).await;
    // A person's input in a text frame, split in two frames, is activity; the page's own
    // `.clientdata_` update is not.
    let before = h.tracker.deadline_of(1).unwrap().at;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let own = frame(
        Opcode::Text,
        br#"{"method":"update","data":{".clientdata_pixelratio":2}}"#,
        true,
    );
    h.browser.write_all(&own).await.unwrap();
    read_exactly(&mut h.app, own.len()).await;
    assert_eq!(h.tracker.deadline_of(1).unwrap().at, before);
    let input = br#"{"method":"update","data":{"n":3}}"#;
    let (a, b) = input.split_at(10);
    let mut first = Vec::new();
    encode_frame(&mut first, Opcode::Text, false, a, Some([1, 2, 3, 4]));
    let mut second = Vec::new();
    encode_frame(
        &mut second,
        Opcode::Continuation,
        true,
        b,
        Some([5, 6, 7, 8]),
    );
    let up = [first, second].concat();
    h.browser.write_all(&up).await.unwrap();
    read_exactly(&mut h.app, up.len()).await;
    assert!(
        h.tracker.deadline_of(1).unwrap().at > before,
        "input counted"
    );
    // The session id came from a text frame: a page asking for it joins the tab.
    let again = h
        .tracker
        .admit(Some("shiny-1"), None, None)
        .expect("admitted");
    assert_eq!(again.resume.as_deref(), Some("shiny-1"));
    assert_eq!(h.tracker.end_all(EndReason::Idle), 1);
    let sent = read_to_end(&mut h.browser).await;
    let text = String::from_utf8_lossy(&sent);
    assert!(
        text.contains(
            r#"{"javascript":"window.location.replace(\"/_idlegate/ended?reason=idle\")"}"#
        ),
        "{text}"
    );
    assert_eq!(sent[0] & 0x0f, 0x1, "a text frame");
}
