//! End-to-end checks of the `fakeapp` and `wsload` binaries: a fakeapp on an ephemeral
//! port serves its HTTP routes, `wsload rtt` gets every echo back from `fakeapp --echo`,
//! and `wsload hold` keeps connections open against a fakeapp that never redirects.

use std::process::Stdio;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt as _, StreamExt as _};
use http_body_util::{BodyExt as _, Empty};
use hyper::Request;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::handshake::server::{
    ErrorResponse, Request as WsRequest, Response as WsResponse,
};
use tokio_tungstenite::tungstenite::Message;

/// A running fakeapp; killed when dropped.
struct FakeApp {
    _child: Child,
    addr: String,
}

async fn start_fakeapp(extra: &[&str]) -> FakeApp {
    let mut child = Command::new(env!("CARGO_BIN_EXE_fakeapp"))
        .args(["--listen", "127.0.0.1:0"])
        .args(extra)
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn fakeapp");
    let stdout = child.stdout.take().expect("fakeapp stdout");
    let mut line = String::new();
    tokio::time::timeout(
        Duration::from_secs(10),
        BufReader::new(stdout).read_line(&mut line),
    )
    .await
    .expect("fakeapp did not print its address in time")
    .expect("read fakeapp stdout");
    let addr = line
        .trim()
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
        .to_owned();
    FakeApp {
        _child: child,
        addr,
    }
}

async fn run_wsload(args: &[&str]) -> Value {
    let output = tokio::time::timeout(
        Duration::from_secs(20),
        Command::new(env!("CARGO_BIN_EXE_wsload"))
            .args(args)
            .arg("--json")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("wsload timed out")
    .expect("run wsload");
    assert!(
        output.status.success(),
        "wsload failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|err| {
        panic!(
            "wsload output is not JSON ({err}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

#[tokio::test]
async fn http_routes_on_one_keep_alive_connection() {
    let app = start_fakeapp(&[]).await;
    let stream = tokio::net::TcpStream::connect(&app.addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    for (path, content_type, check) in [
        ("/", "text/html", "<head>"),
        ("/some-page", "text/html", "<head>"),
        ("/static/app.js", "application/javascript", "WebSocket"),
        ("/_stcore/health", "text/plain", "ok"),
        ("/_stcore/host-config", "application/json", "{}"),
    ] {
        let req = Request::get(path)
            .header("host", &app.addr)
            .body(Empty::<Bytes>::new())
            .unwrap();
        let resp = sender.send_request(req).await.unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        assert_eq!(resp.headers()["content-type"], content_type, "{path}");
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8(body.to_vec()).unwrap();
        assert!(text.contains(check), "{path}: {text:.80}");
        if path == "/" {
            assert!(
                (7_000..9_000).contains(&text.len()),
                "index is {} B",
                text.len()
            );
        }
    }
}

#[tokio::test]
async fn base_path_prefixes_every_route() {
    let app = start_fakeapp(&["--base-path", "/x/"]).await;
    let stream = tokio::net::TcpStream::connect(&app.addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    for (path, status) in [
        ("/x/_stcore/health", 200),
        ("/x/", 200),
        ("/_stcore/health", 404),
    ] {
        let req = Request::get(path)
            .header("host", &app.addr)
            .body(Empty::<Bytes>::new())
            .unwrap();
        let resp = sender.send_request(req).await.unwrap();
        assert_eq!(resp.status(), status, "{path}");
        resp.into_body().collect().await.unwrap();
    }
}

#[tokio::test]
async fn rtt_against_echo_gets_every_message_back() {
    let app = start_fakeapp(&["--echo"]).await;
    let url = format!("ws://{}/_stcore/stream", app.addr);
    let report = run_wsload(&[
        "rtt",
        "--url",
        &url,
        "--connections",
        "4",
        "--messages",
        "50",
        "--size",
        "256",
    ])
    .await;
    assert_eq!(report["count"], 200, "{report}");
    assert_eq!(report["errors"], 0, "{report}");
    assert_eq!(report["size"], 256, "{report}");
    assert_eq!(report["rtt_us"]["count"], 200, "{report}");
    assert!(report["rtt_us"]["p50"].as_f64().unwrap() > 0.0, "{report}");
    assert_eq!(report["person"], false, "{report}");
    assert_eq!(report["connect_us"]["count"], 4, "{report}");
    assert!(
        report["connect_us"]["p50"].as_f64().unwrap() > 0.0,
        "{report}"
    );
}

#[tokio::test]
async fn rtt_with_a_persons_reruns_sends_them_unmarked() {
    let app = start_fakeapp(&["--echo"]).await;
    let url = format!("ws://{}/_stcore/stream", app.addr);
    let report = run_wsload(&[
        "rtt",
        "--url",
        &url,
        "--connections",
        "2",
        "--messages",
        "10",
        "--size",
        "64",
        "--person",
    ])
    .await;
    assert_eq!(report["count"], 20, "{report}");
    assert_eq!(report["errors"], 0, "{report}");
    assert_eq!(report["person"], true, "{report}");
    assert_eq!(report["connect_us"]["count"], 2, "{report}");
}

#[tokio::test]
async fn hold_keeps_connections_open_without_redirects() {
    // Pings every second: the held connections answer them and stay open.
    let app = start_fakeapp(&["--ping-interval", "1"]).await;
    let url = format!("ws://{}/_stcore/stream", app.addr);
    let report = run_wsload(&[
        "hold",
        "--url",
        &url,
        "--connections",
        "50",
        "--duration",
        "2",
        "--expect-end-after",
        "1",
    ])
    .await;
    assert_eq!(report["opened"], 50, "{report}");
    assert_eq!(report["failed"], 0, "{report}");
    assert_eq!(report["ended"], 0, "{report}");
    assert_eq!(report["still_open"], 50, "{report}");
    assert_eq!(report["lateness"]["pct_within_1s"], 0.0, "{report}");
    assert_eq!(report["connect_us"]["count"], 50, "{report}");
    assert!(
        report["connect_us"]["max"].as_f64().unwrap() > 0.0,
        "{report}"
    );
}

#[tokio::test]
async fn hold_with_activity_sends_a_persons_reruns() {
    let app = start_fakeapp(&["--echo"]).await;
    let url = format!("ws://{}/_stcore/stream", app.addr);
    let report = run_wsload(&[
        "hold",
        "--url",
        &url,
        "--connections",
        "3",
        "--duration",
        "1.1",
        "--activity-every",
        "0.25",
        "--connect-concurrency",
        "1",
    ])
    .await;
    assert_eq!(report["opened"], 3, "{report}");
    assert_eq!(report["still_open"], 3, "{report}");
    assert_eq!(report["connect_us"]["count"], 3, "{report}");
    // About four each (at 0.25, 0.5, 0.75 and 1.0 s).
    let sent = report["activity_messages"].as_u64().unwrap();
    assert!((9..=15).contains(&sent), "{report}");
}

#[tokio::test]
async fn rerun_script_gets_a_script_run_and_the_subprotocol_is_echoed() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
    let app = start_fakeapp(&[]).await;
    let mut request = format!("ws://{}/_stcore/stream", app.addr)
        .into_client_request()
        .unwrap();
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "streamlit, PLACEHOLDER_AUTH_TOKEN".parse().unwrap(),
    );
    let (mut ws, resp) = tokio_tungstenite::connect_async(request).await.unwrap();
    assert_eq!(resp.headers()["sec-websocket-protocol"], "streamlit");
    ws.send(Message::Binary(Bytes::from_static(&[0x5a, 0x00])))
        .await
        .unwrap();
    let mut replies = Vec::new();
    while replies.len() < 4 {
        match ws.next().await.unwrap().unwrap() {
            Message::Binary(data) => replies.push(data),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(&replies[0][..6], &[0x22, 40, 0x0a, 38, 0x32, 0x24]);
    assert_eq!(replies[0].len(), 42);
    assert_eq!(&replies[1][..], &[0x4a, 0x02, 0x10, 0x01]);
    assert_eq!(&replies[2][..], &[0x4a, 0x00]);
    assert_eq!(&replies[3][..], &[0x30, 0x00]);
    // The session id stays the same for the connection.
    ws.send(Message::Binary(Bytes::from_static(&[0x5a, 0x00])))
        .await
        .unwrap();
    match ws.next().await.unwrap().unwrap() {
        Message::Binary(data) => assert_eq!(data, replies[0]),
        other => panic!("unexpected {other:?}"),
    }
    ws.close(None).await.unwrap();
}

/// Handshake callback: accept the `streamlit` subprotocol when one is offered.
// The error type is fixed by tungstenite's `Callback` trait.
#[allow(clippy::result_large_err)]
fn choose_streamlit(req: &WsRequest, mut resp: WsResponse) -> Result<WsResponse, ErrorResponse> {
    if req.headers().contains_key("sec-websocket-protocol") {
        resp.headers_mut()
            .insert("sec-websocket-protocol", "streamlit".parse().unwrap());
    }
    Ok(resp)
}

/// A WebSocket server that ends every session `after` its first message with
/// `ForwardMsg{auth_redirect{url: "/"}}` and a close, like a gateway enforcing a TTL.
async fn redirecting_server(after: Duration) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(mut ws) =
                    tokio_tungstenite::accept_hdr_async(stream, choose_streamlit).await
                else {
                    return;
                };
                if ws.next().await.is_none() {
                    return;
                }
                tokio::time::sleep(after).await;
                let redirect = [0xc2, 0x01, 0x03, 0x0a, 0x01, b'/'];
                let _ = ws
                    .send(Message::Binary(Bytes::copy_from_slice(&redirect)))
                    .await;
                let _ = ws.close(None).await;
                while let Some(Ok(_)) = ws.next().await {}
            });
        }
    });
    addr
}

#[tokio::test]
async fn hold_measures_redirect_lateness() {
    let addr = redirecting_server(Duration::from_millis(500)).await;
    let url = format!("ws://{addr}/_stcore/stream");
    let report = run_wsload(&[
        "hold",
        "--url",
        &url,
        "--connections",
        "10",
        "--duration",
        "2",
        "--expect-end-after",
        "0.5",
    ])
    .await;
    assert_eq!(report["opened"], 10, "{report}");
    assert_eq!(report["redirected"], 10, "{report}");
    assert_eq!(report["ended"], 10, "{report}");
    assert_eq!(report["still_open"], 0, "{report}");
    let lateness = &report["lateness"];
    assert_eq!(lateness["pct_within_1s"], 100.0, "{report}");
    assert!(
        lateness["lateness_ms"]["max"].as_f64().unwrap() < 1_000.0,
        "{report}"
    );
}

#[tokio::test]
async fn churn_keeps_at_most_the_cap_open_and_counts_every_end() {
    // A server that ends each tab 300 ms after its page load; a third of the tabs close first.
    let addr = redirecting_server(Duration::from_millis(300)).await;
    let url = format!("ws://{addr}/_stcore/stream");
    let report = run_wsload(&[
        "churn",
        "--url",
        &url,
        "--connections",
        "20",
        "--total",
        "100",
        "--duration",
        "4",
        "--idle-timeout",
        "0.3",
        "--close-share",
        "0.3",
    ])
    .await;
    assert_eq!(report["opened"], 100, "{report}");
    assert_eq!(report["failed"], 0, "{report}");
    assert!(report["peak_open"].as_u64().unwrap() <= 20, "{report}");
    let ended = report["ended"].as_object().unwrap();
    let sum: u64 = ended.values().map(|n| n.as_u64().unwrap()).sum();
    assert_eq!(sum, 100, "{report}");
    assert!(ended["idle_redirect"].as_u64().unwrap() > 0, "{report}");
    assert!(ended["closed_by_tab"].as_u64().unwrap() > 0, "{report}");
}
