//! Self-tests of the fake upstream: what it answers, what it records, and its WebSocket echo.

use std::time::Duration;

use anyhow::Result;
use futures_util::{SinkExt, StreamExt};
use testkit::upstream::{FakeUpstream, Reply};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn fake_upstream_echoes_unknown_paths_and_records_requests() -> Result<()> {
    let app = FakeUpstream::start().await?;
    let response = testkit::http::send(
        http::Request::post(format!("{}/echo/here?a=1", app.url()))
            .header("x-test", "one")
            .body(http_body_util::Full::new(bytes::Bytes::from_static(
                b"payload",
            )))?,
    )
    .await?;
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-type"), Some("application/json"));
    let echo: serde_json::Value = serde_json::from_slice(&response.body)?;
    assert_eq!(echo["method"], "POST");
    assert_eq!(echo["path"], "/echo/here");
    assert_eq!(echo["query"], "a=1");
    assert_eq!(echo["body"], "payload");
    assert!(echo["headers"]
        .as_array()
        .is_some_and(|h| h.iter().any(|p| p[0] == "x-test" && p[1] == "one")));
    let received = app
        .wait_for_request(Duration::from_secs(1), |r| r.path == "/echo/here")
        .await?;
    assert_eq!(received.header("x-test"), Some("one"));
    assert_eq!(&received.body[..], b"payload");
    assert_eq!(received.query.as_deref(), Some("a=1"));
    Ok(())
}

#[tokio::test]
async fn fake_upstream_answers_configured_replies_whole_and_chunked() -> Result<()> {
    let app = FakeUpstream::start().await?;
    app.reply(
        "/gone",
        Reply::status(410).header("x-why", "moved on").body("gone"),
    );
    app.reply(
        "/slow",
        Reply::status(200).chunks(["a", "b", "c"], Duration::from_millis(100)),
    );
    let gone = testkit::http::get(&format!("{}/gone", app.url())).await?;
    assert_eq!(gone.status, 410);
    assert_eq!(gone.header("x-why"), Some("moved on"));
    assert_eq!(gone.text(), "gone");
    let started = tokio::time::Instant::now();
    let slow = testkit::http::get(&format!("{}/slow", app.url())).await?;
    assert_eq!(slow.text(), "abc");
    assert_eq!(slow.header("transfer-encoding"), Some("chunked"));
    assert!(slow.header("content-length").is_none());
    // Three pauses of 100 ms before the body was whole.
    assert!(started.elapsed() >= Duration::from_millis(300));
    Ok(())
}

#[tokio::test]
async fn fake_upstream_accepts_a_websocket_and_echoes_frames() -> Result<()> {
    let app = FakeUpstream::start().await?;
    let mut request = format!("ws://{}/socket", app.addr()).into_client_request()?;
    request
        .headers_mut()
        .insert("sec-websocket-protocol", "first, second".parse()?);
    let (mut ws, response) = tokio_tungstenite::connect_async(request).await?;
    assert_eq!(
        response
            .headers()
            .get("sec-websocket-protocol")
            .and_then(|v| v.to_str().ok()),
        Some("first")
    );
    ws.send(Message::Binary(vec![1, 2, 3].into())).await?;
    ws.send(Message::Text("hello".into())).await?;
    let first = ws.next().await.transpose()?;
    let second = ws.next().await.transpose()?;
    assert_eq!(first, Some(Message::Binary(vec![1, 2, 3].into())));
    assert_eq!(second, Some(Message::Text("hello".into())));
    let received = app.received_at("/socket");
    assert_eq!(received.len(), 1);
    assert!(received[0].is_upgrade());

    // A reply for the path refuses the upgrade with it.
    app.reply("/refused", Reply::status(403).body("no"));
    let refused = tokio_tungstenite::connect_async(format!("ws://{}/refused", app.addr())).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 403)
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    Ok(())
}
