//! Reading a Bokeh server session socket (`bokeh/protocol/receiver.py`, `message.py`,
//! `bokeh/document/events.py`, `bokeh/events.py`), as Bokeh and Panel apps use it.
//!
//! Each protocol message is several WebSocket messages: a text header
//! `{"msgid", "msgtype", "reqid"?, "num_buffers"?}`, a text metadata, a text content, then
//! `num_buffers` pairs of a text buffer header and a binary payload. Types: `ACK`, `OK`,
//! `ERROR`, `PATCH-DOC`, `PULL-DOC-REQ`, `PULL-DOC-REPLY`, `PUSH-DOC`, `SERVER-INFO-*`.
//!
//! - Browser→app `PULL-DOC-REQ` asks for the document when the page connects: the page
//!   load's run, answered by `PULL-DOC-REPLY`.
//! - Browser→app `PATCH-DOC` carries the page's changes in `content.events`, and the server
//!   answers each with `OK` (or `ERROR`) whose `reqid` is its `msgid`, after the Python
//!   callbacks ran (`server/session.py`): the app works between the two.
//! - A change counts as a person's when it is an event only a person causes (a button
//!   click, a gesture on a plot, a key, an upload: [`PERSON_EVENTS`]) or a change of a
//!   widget's input value ([`PERSON_ATTRS`]); everything else is the page's own
//!   (`document_ready`, sizes, ranges following data, Panel's `Location` and `BrowserInfo`).
//!   Periodic callbacks (`add_periodic_callback`) run in the server and only send
//!   app→browser patches, which never count. Panel's players and video stream change their
//!   own `value` in the page on a timer (`player.ts`, `videostream.ts`): their models, named
//!   in the documents and patches the app sends ([`SELF_DRIVEN`]), are not a person's.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use serde_json::Value;

use crate::apps::json::JsonText;
use crate::apps::{DecodeError, MessageDecoder, MessageKind};
use crate::lifecycle::Signal;

/// `bokeh_event` names only a person causes: Bokeh's UI and plot events (`bokeh/events.py`)
/// and Panel's own (`panel/models/*.py`). Panel's generic channels (`dom_event`,
/// `data_event`, `esm_event`), which a component's own code can use on a timer, are not in
/// it: the page script judges them.
pub const PERSON_EVENTS: [&str; 40] = [
    "button_click",
    "menu_item_click",
    "value_submit",
    "tap",
    "doubletap",
    "press",
    "pressup",
    "pan",
    "panstart",
    "panend",
    "pinch",
    "pinchstart",
    "pinchend",
    "rotate",
    "rotatestart",
    "rotateend",
    "wheel",
    "mousewheel",
    "selectiongeometry",
    "reset",
    "axis_click",
    "legend_item_click",
    "mousemove",
    "mouseenter",
    "mouseleave",
    "table-edit",
    "cell-click",
    "selection-change",
    "chat_message_event",
    "upload_event",
    "delete_event",
    "enter-pressed",
    "dblclick_event",
    "plotly_event",
    "vega_event",
    "echarts_event",
    "keystroke",
    "json_edit",
    "scroll_button_click",
    "perspective-click",
];

/// Model properties only a person changes from the page: widgets' values and selections,
/// and a file input's files.
pub const PERSON_ATTRS: [&str; 9] = [
    "value",
    "value_input",
    "value_throttled",
    "active",
    "clicks",
    "indices",
    "filename",
    "mime_type",
    "text",
];

/// Models whose `value` the page changes by itself, on a timer (Panel's `Player` plays,
/// `VideoStream` takes snapshots): `__qualified_model__` names.
pub const SELF_DRIVEN: [&str; 3] = [
    "panel.models.widgets.Player",
    "panel.models.widgets.DiscretePlayer",
    "panel.models.widgets.VideoStream",
];

/// The most self-driven models remembered per page.
const MAX_SELF_DRIVEN: usize = 1024;

/// What a socket's two decoders share: the requests that wait for their `OK`, at most
/// [`MAX_PENDING`], and the ids of the page's self-driven models.
#[derive(Debug, Clone, Default)]
pub struct Pending(Arc<Mutex<Shared>>);

/// A pending request's id, hashed: a page's ids may be long.
fn id_hash(id: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    id.hash(&mut hasher);
    hasher.finish()
}

#[derive(Debug, Default)]
pub struct Shared {
    waiting: HashSet<u64>,
    self_driven: HashSet<String>,
}

/// The most requests remembered as waiting; a page that sends more without answers is not a
/// Bokeh page, and its further requests are not tracked.
const MAX_PENDING: usize = 256;

impl Pending {
    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Remembers request `msgid`; returns whether the app was idle before.
    fn start(&self, msgid: &str) -> bool {
        let pending = &mut self.lock().waiting;
        let was_idle = pending.is_empty();
        if pending.len() < MAX_PENDING {
            pending.insert(id_hash(msgid));
        }
        was_idle
    }

    /// Request `reqid` was answered; returns whether nothing is left waiting.
    fn finish(&self, reqid: &str) -> bool {
        let pending = &mut self.lock().waiting;
        pending.remove(&id_hash(reqid)) && pending.is_empty()
    }

    /// Whether a patch too large to read holds a change only a person makes, from its first
    /// bytes: an upload event, or a widget's value (of a model that does not change its own)
    /// named before the data (`{"events":[{"attr":…,"kind":"ModelChanged","model":{"id":…}`).
    fn head_by_person(&self, head: &[u8]) -> bool {
        let text = String::from_utf8_lossy(head);
        let after = |key: &str| {
            let at = text.find(key)? + key.len();
            let rest = &text[at..];
            Some(rest[..rest.find('"')?].to_owned())
        };
        if after("\"name\":\"").is_some_and(|name| name == "upload_event") {
            return true;
        }
        let attr = after("\"attr\":\"");
        let model = after("\"model\":{\"id\":\"");
        let known = &self.lock().self_driven;
        attr.is_some_and(|attr| PERSON_ATTRS.contains(&attr.as_str()))
            && model.is_some_and(|id| !known.contains(&id))
    }

    /// Remembers the self-driven models in a document or patch the app sent.
    fn note_models(&self, content: &Value) {
        let mut ids = Vec::new();
        self_driven_ids(content, &mut ids);
        let known = &mut self.lock().self_driven;
        for id in ids {
            if known.len() < MAX_SELF_DRIVEN {
                known.insert(id);
            }
        }
    }

    /// Whether a patch the page sent holds a change only a person makes.
    fn by_person(&self, content: &Value) -> bool {
        let known = &self.lock().self_driven;
        by_person(content, |id| known.contains(id))
    }
}

/// Where a decoder is in the current protocol message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
enum Part {
    #[default]
    Header,
    Metadata,
    Content,
    /// Buffer headers and payloads still to come.
    Buffers(u64),
}

/// The header of the protocol message being read.
#[derive(Debug, Clone, Default)]
struct Header {
    msgtype: String,
    msgid: String,
    reqid: Option<String>,
    buffers: u64,
}

/// Reads one direction: `browser` says which.
#[derive(Debug)]
pub struct Protocol {
    browser: bool,
    part: Part,
    header: Header,
    text: JsonText,
    /// The current WebSocket message is one this decoder parses.
    parsing: bool,
    pending: Pending,
}

impl Protocol {
    /// The decoder of the browser→app direction (`browser`) or the other.
    pub fn new(browser: bool, pending: Pending) -> Self {
        Self {
            browser,
            part: Part::Header,
            header: Header::default(),
            text: JsonText::default(),
            parsing: false,
            pending,
        }
    }

    fn read_header(&mut self, value: &Value) -> Result<(), DecodeError> {
        let msgtype = value["msgtype"]
            .as_str()
            .ok_or_else(|| DecodeError::new("no msgtype"))?
            .to_owned();
        // Ids as their JSON text: the server answers with the request's id as it was, a
        // number or a string.
        let id = |key: &str| value.get(key).map(Value::to_string);
        self.header = Header {
            msgtype,
            msgid: id("msgid").unwrap_or_default(),
            reqid: id("reqid"),
            buffers: value["num_buffers"].as_u64().unwrap_or(0),
        };
        Ok(())
    }

    /// The protocol message is complete: what it means (`person`: its content holds a change
    /// only a person makes).
    fn complete(&mut self, person: bool, emit: &mut dyn FnMut(Signal)) {
        let header = &self.header;
        match (self.browser, header.msgtype.as_str()) {
            (true, "PULL-DOC-REQ") => {
                emit(Signal::RunRequested {
                    automatic: false,
                    fragment: false,
                });
                if self.pending.start(&header.msgid) {
                    emit(Signal::Running(true));
                }
            }
            (true, "PATCH-DOC") => {
                // Patches queue behind the work in progress; none stops it. A change of a
                // kind not known to be a person's is left to the page script to judge.
                if person {
                    emit(Signal::RunRequested {
                        automatic: false,
                        fragment: true,
                    });
                } else {
                    emit(Signal::RunRequestedUnclear { fragment: true });
                }
                if self.pending.start(&header.msgid) {
                    emit(Signal::Running(true));
                }
            }
            (false, "PULL-DOC-REPLY" | "OK" | "ERROR") => {
                if let Some(reqid) = &header.reqid {
                    if self.pending.finish(reqid) {
                        emit(Signal::Running(false));
                    }
                }
            }
            _ => {}
        }
    }
}

/// The ids of [`SELF_DRIVEN`] models in a document or patch (`{"type": "object", "name":
/// …, "id": …}` anywhere in it).
fn self_driven_ids(value: &Value, ids: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            let name = map.get("name").and_then(Value::as_str);
            if name.is_some_and(|name| SELF_DRIVEN.contains(&name)) {
                if let Some(id) = map.get("id").and_then(Value::as_str) {
                    ids.push(id.to_owned());
                }
            }
            map.values().for_each(|v| self_driven_ids(v, ids));
        }
        Value::Array(items) => items.iter().for_each(|v| self_driven_ids(v, ids)),
        _ => {}
    }
}

/// Whether a `PATCH-DOC` content holds a change only a person makes; `self_driven` says
/// which model ids change their own value.
pub fn by_person(content: &Value, self_driven: impl Fn(&str) -> bool) -> bool {
    content["events"].as_array().is_some_and(|events| {
        events.iter().any(|event| match event["kind"].as_str() {
            Some("MessageSent") => {
                event["msg_type"] == "bokeh_event"
                    && event["msg_data"]["name"]
                        .as_str()
                        .is_some_and(|name| PERSON_EVENTS.contains(&name))
            }
            Some("ModelChanged") => {
                event["attr"]
                    .as_str()
                    .is_some_and(|attr| PERSON_ATTRS.contains(&attr))
                    && !event["model"]["id"].as_str().is_some_and(&self_driven)
            }
            _ => false,
        })
    })
}

impl MessageDecoder for Protocol {
    fn reads(&self, _kind: MessageKind) -> bool {
        true
    }

    fn begin(&mut self, kind: MessageKind) {
        // Text parts are parsed where they say something; buffers are only counted.
        self.parsing = kind == MessageKind::Text
            && matches!(self.part, Part::Header | Part::Content)
            && (self.part == Part::Header || self.wants_content());
        if self.parsing {
            self.text.begin();
        }
    }

    fn feed(&mut self, bytes: &[u8]) -> Result<(), DecodeError> {
        if self.parsing {
            self.text.feed(bytes);
        }
        Ok(())
    }

    fn finish(&mut self, emit: &mut dyn FnMut(Signal)) -> Result<(), DecodeError> {
        match self.part.clone() {
            Part::Header => {
                let value = self
                    .text
                    .take()?
                    .ok_or_else(|| DecodeError::new("header over 1 MiB"))?;
                self.read_header(&value)?;
                self.part = Part::Metadata;
            }
            Part::Metadata => self.part = Part::Content,
            Part::Content => {
                // A page's patch too large to read is judged by its first bytes.
                let head_person = match (self.browser, self.text.head()) {
                    (true, Some(head)) => self.pending.head_by_person(head),
                    _ => false,
                };
                let content = match (self.parsing, self.browser) {
                    (false, _) => None,
                    (true, true) => self.text.take()?,
                    // The app's documents and patches are read only for the models that
                    // change their own value (most name none of them).
                    (true, false) if self.text.contains(b"panel.models.widgets.") => {
                        let content = self.text.take_lenient().ok().flatten();
                        if let Some(content) = &content {
                            self.pending.note_models(content);
                        }
                        content
                    }
                    (true, false) => None,
                };
                let buffers = self.header.buffers.saturating_mul(2);
                let person = head_person
                    || (self.browser
                        && content
                            .as_ref()
                            .is_some_and(|content| self.pending.by_person(content)));
                self.complete(person, emit);
                self.part = if buffers == 0 {
                    Part::Header
                } else {
                    Part::Buffers(buffers)
                };
            }
            Part::Buffers(left) => {
                self.part = if left <= 1 {
                    Part::Header
                } else {
                    Part::Buffers(left - 1)
                };
            }
        }
        Ok(())
    }
}

impl Protocol {
    /// Whether the current message's content is read: a page's patches, and the app's
    /// documents and patches.
    fn wants_content(&self) -> bool {
        match self.header.msgtype.as_str() {
            "PATCH-DOC" => true,
            "PULL-DOC-REPLY" | "PUSH-DOC" => !self.browser,
            _ => false,
        }
    }
}
