//! A sketch of the request session shape, from Gradio's sources (`gradio/routes.py`,
//! `gradio/data_classes.py`, `js/core/src/dependency.ts`): just enough of Gradio (requests
//! and event streams tied by `session_hash`) to show that [`App`] expresses it. It is no
//! support for Gradio, only the check that the seam fits it.

use serde_json::Value;

use super::{
    Answer, App, DecodeError, EndText, Farewell, MessageDecoder, MessageKind, PageHints, Placement,
    RequestHead, SessionKey, SessionRequest, SessionShape,
};
use crate::lifecycle::Signal;
use http::{Method, StatusCode};

/// Collects an event stream's line whole.
#[derive(Default)]
struct JsonText {
    buffer: Vec<u8>,
}

impl JsonText {
    fn begin(&mut self) {
        self.buffer.clear();
    }

    fn feed(&mut self, bytes: &[u8]) -> Result<(), DecodeError> {
        if self.buffer.len() + bytes.len() > 1 << 20 {
            return Err(DecodeError::new("message over 1 MiB"));
        }
        self.buffer.extend_from_slice(bytes);
        Ok(())
    }
}

/// Gradio: every event is a request naming the tab's `session_hash`; results stream on
/// `/gradio_api/queue/data`; the heartbeat stream's end makes Gradio free the session.
pub struct Gradio {
    /// Each dependency's trigger event, by `fn_index` (from the page's `/config`).
    pub triggers: Vec<&'static str>,
}

/// Events a person causes; `tick` (a `gr.Timer`) and `load` are the page's own.
const GRADIO_HUMAN_EVENTS: [&str; 6] = ["click", "submit", "input", "upload", "select", "clear"];

impl App for Gradio {
    fn shape(&self) -> SessionShape {
        SessionShape::Requests
    }

    fn is_session_socket(&self, _path: &str) -> bool {
        false
    }

    fn decoders(&self) -> (Box<dyn MessageDecoder>, Box<dyn MessageDecoder>) {
        (
            Box::<GradioEvents>::default(),
            Box::<GradioEvents>::default(),
        )
    }

    fn farewell(&self, _url: &str, _place: Placement, _text: &EndText<'_>) -> Farewell {
        Farewell::default()
    }

    fn session_request(&self, head: &RequestHead<'_>) -> Option<SessionRequest> {
        let query_hash = || {
            let query = head.query?;
            serde_urlencoded::from_str::<Vec<(String, String)>>(query)
                .ok()?
                .into_iter()
                .find(|(name, _)| name == "session_hash")
                .map(|(_, value)| value)
        };
        if let Some(hash) = head.path.strip_prefix("/gradio_api/heartbeat/") {
            return Some(SessionRequest {
                key: SessionKey::Known(hash.to_owned()),
                holds_session: true,
            });
        }
        match (head.method, head.path) {
            (&Method::POST, "/gradio_api/queue/join") => Some(SessionRequest {
                key: SessionKey::InBody { limit: 64 * 1024 },
                holds_session: false,
            }),
            (&Method::GET, "/gradio_api/queue/data") => Some(SessionRequest {
                key: SessionKey::Known(query_hash()?),
                holds_session: false,
            }),
            _ => None,
        }
    }

    fn session_in_body(&self, _head: &RequestHead<'_>, body: &[u8]) -> Option<String> {
        let body: Value = serde_json::from_slice(body).ok()?;
        body["session_hash"].as_str().map(str::to_owned)
    }

    fn classify_request(&self, head: &RequestHead<'_>, body: &[u8], emit: &mut dyn FnMut(Signal)) {
        if head.path != "/gradio_api/queue/join" {
            return;
        }
        let Ok(body) = serde_json::from_slice::<Value>(body) else {
            return;
        };
        let trigger = body["fn_index"]
            .as_u64()
            .and_then(|i| self.triggers.get(usize::try_from(i).ok()?));
        if let Some(trigger) = trigger {
            emit(Signal::RunRequested {
                automatic: !GRADIO_HUMAN_EVENTS.contains(trigger),
                fragment: false,
            });
        }
    }

    fn ended_answer(&self, head: &RequestHead<'_>, _url: &str) -> Option<Answer> {
        // The page shows "Connection Lost", polls `app_id`, then reloads onto idlegate's
        // ended page (`Blocks.svelte`).
        (head.path == "/gradio_api/queue/join").then(|| Answer {
            status: StatusCode::OK,
            content_type: "application/json",
            body: serde_json::json!({
                "msg": "unexpected_error",
                "message": "This session ended.",
                "session_not_found": true,
                "success": false,
            })
            .to_string()
            .into_bytes(),
        })
    }

    fn page_hints(&self) -> PageHints {
        PageHints {
            socket_path: String::new(),
            theme_root: Some("gradio-app".to_owned()),
        }
    }

    fn health_path(&self) -> String {
        "/gradio_api/app_id".to_owned()
    }
}

/// The event stream `/gradio_api/queue/data`: `data: {"msg": …}` lines, fed as one text
/// message per event.
#[derive(Default)]
struct GradioEvents(JsonText);

impl MessageDecoder for GradioEvents {
    fn reads(&self, kind: MessageKind) -> bool {
        kind == MessageKind::Text
    }

    fn begin(&mut self, _kind: MessageKind) {
        self.0.begin();
    }

    fn feed(&mut self, bytes: &[u8]) -> Result<(), DecodeError> {
        self.0.feed(bytes)
    }

    fn finish(&mut self, emit: &mut dyn FnMut(Signal)) -> Result<(), DecodeError> {
        let text = String::from_utf8_lossy(&self.0.buffer);
        let Some(data) = text.trim().strip_prefix("data:") else {
            return Ok(());
        };
        let event: Value = serde_json::from_str(data.trim()).map_err(DecodeError::new)?;
        match event["msg"].as_str() {
            Some("process_starts") => emit(Signal::Running(true)),
            Some("process_completed") => emit(Signal::Running(false)),
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderMap;

    fn signals(decoder: &mut dyn MessageDecoder, kind: MessageKind, message: &str) -> Vec<Signal> {
        let mut out = Vec::new();
        if decoder.reads(kind) {
            decoder.begin(kind);
            let (a, b) = message.as_bytes().split_at(message.len() / 2);
            decoder.feed(a).unwrap();
            decoder.feed(b).unwrap();
            decoder.finish(&mut |s| out.push(s)).unwrap();
        }
        out
    }

    #[test]
    fn gradio_requests_tied_by_their_session_hash() {
        let app = Gradio {
            triggers: vec!["click", "tick"],
        };
        assert_eq!(app.shape(), SessionShape::Requests);
        let headers = HeaderMap::new();
        let head = |method: &'static Method, path: &'static str, query: Option<&'static str>| {
            RequestHead {
                method,
                path,
                query,
                headers: &headers,
            }
        };
        let heartbeat = head(&Method::GET, "/gradio_api/heartbeat/h1", None);
        assert_eq!(
            app.session_request(&heartbeat),
            Some(SessionRequest {
                key: SessionKey::Known("h1".into()),
                holds_session: true
            })
        );
        let data = head(
            &Method::GET,
            "/gradio_api/queue/data",
            Some("session_hash=h1"),
        );
        assert_eq!(
            app.session_request(&data).map(|r| r.key),
            Some(SessionKey::Known("h1".into()))
        );
        let join = head(&Method::POST, "/gradio_api/queue/join", None);
        assert!(matches!(
            app.session_request(&join).map(|r| r.key),
            Some(SessionKey::InBody { .. })
        ));
        let click = br#"{"fn_index":0,"session_hash":"h1","data":[],"trigger_id":4}"#;
        let tick = br#"{"fn_index":1,"session_hash":"h1","data":[],"trigger_id":9}"#;
        assert_eq!(app.session_in_body(&join, click).as_deref(), Some("h1"));
        let classify = |body: &[u8]| {
            let mut out = Vec::new();
            app.classify_request(&join, body, &mut |s| out.push(s));
            out
        };
        assert_eq!(
            classify(click),
            [Signal::RunRequested {
                automatic: false,
                fragment: false
            }]
        );
        assert_eq!(
            classify(tick),
            [Signal::RunRequested {
                automatic: true,
                fragment: false
            }]
        );
        assert!(app
            .session_request(&head(&Method::GET, "/assets/x.js", None))
            .is_none());
        let (_, mut events) = app.decoders();
        let text = MessageKind::Text;
        assert_eq!(
            signals(
                events.as_mut(),
                text,
                r#"data: {"msg":"process_starts","event_id":"e"}"#
            ),
            [Signal::Running(true)]
        );
        assert_eq!(
            signals(
                events.as_mut(),
                text,
                r#"data: {"msg":"process_completed","success":true}"#
            ),
            [Signal::Running(false)]
        );
        let answer = app.ended_answer(&join, "/_idlegate/ended").unwrap();
        let body: Value = serde_json::from_slice(&answer.body).unwrap();
        assert_eq!(body["session_not_found"], true);
        assert!(app.ended_answer(&heartbeat, "/_idlegate/ended").is_none());
    }
}
