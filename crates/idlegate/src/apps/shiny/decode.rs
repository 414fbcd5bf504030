//! Reading Shiny's session socket (`shiny/session/_session.py`, `srcts/src/shiny/shinyapp.ts`
//! in rstudio/shiny, bundled as `shiny/www/shared/shiny.js`). Every message is JSON text.
//!
//! Browser→app:
//! - `{"method":"init","data":{…}}` once, first: every input's value and the page's own
//!   `.clientdata_*` keys. It asks for the page's first run.
//! - `{"method":"update","data":{"<input>[:<type>]": value, …}}`: input values changed.
//! - `{"method":"uploadInit"|"uploadEnd"|…,"args":[…],"tag":n}`: calls (uploads).
//!
//! App→browser: `{"config":{"sessionId":…}}` first; `{"busy":"busy"|"idle"}` around the
//! work of each reactive flush; `{"values":…,"inputMessages":…,"errors":…}` at the end of
//! every flush, whether or not anything ran.
//!
//! Which updates a person caused, without the page script: keys starting `.clientdata_` are
//! the page's (sizes, URL, visibility); a value equal to the last one known for its input
//! is an input re-sending itself (a re-rendered `render.ui`, a rebind); and an update within
//! [`ECHO_WINDOW`] of the app setting that input (`ui.update_*`, an `inputMessages` entry),
//! of the app drawing new UI (a `render.ui` output, inserted UI: new inputs send their
//! values) or of the page's first run is the page answering the app. Outputs of other kinds
//! (text, plots, tables: a clock on a timer) open no window, so they never hide a person.
//! Everything else is a bound input a person changed. A page's own JavaScript that calls
//! `Shiny.setInputValue` on a timer still looks like a person here; the page script's input
//! rule tells them apart.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use serde_json::{Map, Value};

use crate::apps::json::JsonText;
use crate::apps::{DecodeError, MessageDecoder, MessageKind};
use crate::lifecycle::Signal;

/// How long after the app changed the page (or the page's first run) an input update is
/// taken for the page's answer, not a person's.
pub const ECHO_WINDOW: Duration = Duration::from_secs(1);

/// The most inputs whose last value is remembered per tab; past it, new inputs' values are
/// not remembered (their updates still count, by the other rules).
const MAX_INPUTS: usize = 4096;

/// What the two directions of one socket share.
#[derive(Debug, Default)]
struct Page {
    /// A hash of each input's last known value, by its key.
    values: HashMap<String, u64>,
    /// When the app last drew new UI, or the page ran first.
    drawn: Option<Instant>,
    /// When the app last set each input, by its id (at most [`MAX_INPUTS`]).
    set: HashMap<String, Instant>,
}

impl Page {
    /// Whether an update of input `key` (`id` or `id:type`) at `now` answers the app.
    fn answering(&self, key: &str, now: Instant) -> bool {
        let recent = |at: &Instant| now < *at + ECHO_WINDOW;
        let id = key.split(':').next().unwrap_or(key);
        self.drawn.as_ref().is_some_and(recent) || self.set.get(id).is_some_and(recent)
    }
}

/// The state shared by a socket's two decoders.
#[derive(Debug, Clone, Default)]
pub struct Shared(Arc<Mutex<Page>>);

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Page> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn hash(value: &Value) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    value.to_string().hash(&mut hasher);
    hasher.finish()
}

/// Browser→app.
#[derive(Debug, Default)]
pub struct Inputs {
    text: JsonText,
    page: Shared,
}

impl Inputs {
    pub fn new(page: Shared) -> Self {
        Self {
            text: JsonText::default(),
            page,
        }
    }

    /// Whether an update's `data` holds an input a person changed; remembers the values.
    fn changed_by_person(&self, data: &Map<String, Value>, now: Instant) -> bool {
        let mut page = self.page.lock();
        let mut person = false;
        for (key, value) in data {
            if key.starts_with(".clientdata_") {
                continue;
            }
            let new = hash(value);
            let known = page.values.get(key).copied();
            if known != Some(new) {
                person |= !page.answering(key, now);
                if known.is_some() || page.values.len() < MAX_INPUTS {
                    page.values.insert(key.clone(), new);
                }
            }
        }
        person
    }
}

impl MessageDecoder for Inputs {
    fn reads(&self, kind: MessageKind) -> bool {
        kind == MessageKind::Text
    }

    fn begin(&mut self, _kind: MessageKind) {
        self.text.begin();
    }

    fn feed(&mut self, bytes: &[u8]) -> Result<(), DecodeError> {
        self.text.feed(bytes);
        Ok(())
    }

    fn finish(&mut self, emit: &mut dyn FnMut(Signal)) -> Result<(), DecodeError> {
        let Some(message) = self.text.take()? else {
            return Ok(());
        };
        let now = Instant::now();
        let data = message["data"].as_object();
        match message["method"].as_str() {
            Some("init") => {
                let mut page = self.page.lock();
                page.drawn = Some(now);
                for (key, value) in data.into_iter().flatten() {
                    if !key.starts_with(".clientdata_") && page.values.len() < MAX_INPUTS {
                        page.values.insert(key.clone(), hash(value));
                    }
                }
                drop(page);
                emit(Signal::RunRequested {
                    automatic: false,
                    fragment: false,
                });
            }
            Some("update") => {
                let person = data.is_some_and(|data| self.changed_by_person(data, now));
                emit(Signal::RunRequested {
                    automatic: !person,
                    fragment: false,
                });
            }
            // Uploads: a person chose the files.
            Some("uploadInit" | "uploadEnd") => emit(Signal::PersonMessage),
            _ => {}
        }
        Ok(())
    }
}

/// App→browser.
#[derive(Debug, Default)]
pub struct Outputs {
    text: JsonText,
    page: Shared,
    /// Between `{"busy":"busy"}` and `{"busy":"idle"}`.
    busy: bool,
}

impl Outputs {
    pub fn new(page: Shared) -> Self {
        Self {
            text: JsonText::default(),
            page,
            busy: false,
        }
    }
}

/// Whether a message draws new UI, whose inputs then send their values: inserted UI, or an
/// output of HTML (`render.ui`: `{"html": …, "deps": […]}`).
fn draws_ui(message: &Value) -> bool {
    message.get("shiny-insert-ui").is_some()
        || message["values"]
            .as_object()
            .is_some_and(|values| values.values().any(|v| v.get("html").is_some()))
}

/// Remembers the inputs a message sets (`inputMessages: [{"id": …, "message": …}]`).
fn note_set_inputs(page: &mut Page, message: &Value, now: Instant) {
    for entry in message["inputMessages"].as_array().into_iter().flatten() {
        if let Some(id) = entry["id"].as_str() {
            if page.set.len() < MAX_INPUTS || page.set.contains_key(id) {
                page.set.insert(id.to_owned(), now);
            }
        }
    }
}

impl MessageDecoder for Outputs {
    fn reads(&self, kind: MessageKind) -> bool {
        kind == MessageKind::Text
    }

    fn begin(&mut self, _kind: MessageKind) {
        self.text.begin();
    }

    fn feed(&mut self, bytes: &[u8]) -> Result<(), DecodeError> {
        self.text.feed(bytes);
        Ok(())
    }

    fn finish(&mut self, emit: &mut dyn FnMut(Signal)) -> Result<(), DecodeError> {
        let Some(message) = self.text.take()? else {
            return Ok(());
        };
        if let Some(id) = message["config"]["sessionId"].as_str() {
            emit(Signal::SessionId(id.to_owned()));
        }
        if draws_ui(&message) || message.get("inputMessages").is_some() {
            let now = Instant::now();
            let mut page = self.page.lock();
            if draws_ui(&message) {
                page.drawn = Some(now);
            }
            note_set_inputs(&mut page, &message, now);
        }
        match message["busy"].as_str() {
            Some("busy") if !self.busy => {
                self.busy = true;
                emit(Signal::Running(true));
            }
            Some("idle") if self.busy => {
                self.busy = false;
                emit(Signal::Running(false));
            }
            _ => {}
        }
        // The end of a flush with no work: the request it answered is done.
        if message.get("values").is_some() && !self.busy {
            emit(Signal::Running(true));
            emit(Signal::Running(false));
        }
        Ok(())
    }
}
