//! Reading Shiny's session socket (`shiny/session/_session.py`, `srcts/src/shiny/shinyapp.ts`
//! in rstudio/shiny, bundled as `shiny/www/shared/shiny.js`). Every message is JSON text.
//!
//! Browser→app:
//! - `{"method":"init","data":{…}}` once, first: every input's value and the page's own
//!   `.clientdata_*` keys. It asks for the page's first run.
//! - `{"method":"update","data":{"<input>[:<type>]": value, …}}`: input values changed.
//!   Whether a person changed them is [`super::page`]'s call.
//! - `{"method":"uploadInit"|"uploadEnd"|…,"args":[…],"tag":n}`: calls (uploads).
//!
//! App→browser: `{"config":{"sessionId":…}}` first; `{"busy":"busy"|"idle"}` around the
//! work of each reactive flush; `{"values":…,"inputMessages":…,"errors":…}` at the end of
//! every flush (every session gets one when any session flushes). An `ExtendedTask` runs
//! after its flush went idle: its output is marked by a persistent progress message
//! (`{"progress":{"type":"binding","message":{"id":…,"persistent":true}}}`) until its
//! value (or error) arrives, and the app works until then.
//!
//! Updates join the work in progress rather than replace it (a fragment's run, in the
//! tracker's words): Shiny queues them and never stops a flush for a newer one.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tokio::time::Instant;

use super::page::{Page, MAX_INPUTS, SETTLED};
use crate::apps::json::JsonText;
use crate::apps::{DecodeError, MessageDecoder, MessageKind};
use crate::lifecycle::Signal;

/// The state shared by a socket's two decoders.
#[derive(Debug, Clone, Default)]
pub struct Shared(Arc<Mutex<Page>>);

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Page> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
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
        // A message idlegate cannot read (too large, or JSON serde does not take, like a
        // lone surrogate a page's `JSON.stringify` writes) says nothing: the app judges it.
        let Ok(Some(message)) = self.text.take() else {
            return Ok(());
        };
        let now = Instant::now();
        let data = message["data"].as_object();
        match message["method"].as_str() {
            Some("init") => {
                self.page.lock().init(data, now);
                emit(Signal::RunRequested {
                    automatic: false,
                    fragment: false,
                });
            }
            Some("update") => {
                let person = data.is_some_and(|data| self.page.lock().update(data, now));
                emit(Signal::RunRequested {
                    automatic: !person,
                    fragment: true,
                });
            }
            // Uploads: a person chose the files, and waits while they are stored.
            Some("uploadInit" | "uploadEnd") => emit(Signal::RunRequested {
                automatic: false,
                fragment: true,
            }),
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
    /// Outputs an extended task computes (a persistent progress), until their value.
    tasks: HashSet<String>,
}

impl Outputs {
    pub fn new(page: Shared) -> Self {
        Self {
            text: JsonText::default(),
            page,
            busy: false,
            tasks: HashSet::new(),
        }
    }

    fn working(&self) -> bool {
        self.busy || !self.tasks.is_empty()
    }

    /// Follows the app's work: `busy`/`idle`, extended tasks' outputs.
    fn follow_work(&mut self, message: &Value) {
        match message["busy"].as_str() {
            Some("busy") => self.busy = true,
            Some("idle") => self.busy = false,
            _ => {}
        }
        let progress = &message["progress"];
        if progress["type"] == "binding" {
            if let Some(id) = progress["message"]["id"].as_str() {
                if progress["message"]["persistent"] == true {
                    if self.tasks.len() < MAX_INPUTS {
                        self.tasks.insert(id.to_owned());
                    }
                } else {
                    // The output is computed again (its task is done, even when the output
                    // is hidden and sends no value).
                    self.tasks.remove(id);
                }
            }
        }
        if !self.tasks.is_empty() {
            for key in ["values", "errors"] {
                if let Some(outputs) = message[key].as_object() {
                    self.tasks.retain(|id| !outputs.contains_key(id));
                }
            }
            let recalculating = &message["recalculating"];
            if recalculating["status"] == "recalculated" {
                if let Some(id) = recalculating["name"].as_str() {
                    self.tasks.remove(id);
                }
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
        // Python writes NaN and Infinity into data; the rest of the message still counts.
        let Some(message) = self.text.take_lenient()? else {
            return Ok(());
        };
        if let Some(id) = message["config"]["sessionId"].as_str() {
            emit(Signal::SessionId(id.to_owned()));
        }
        let now = Instant::now();
        let shared = self.page.clone();
        let mut page = shared.lock();
        page.app_message(&message, now);
        let was_working = self.working();
        self.follow_work(&message);
        // A request the app did no work for within a second is done: no later work is its
        // (flushes of other sessions reach every page, so a request is given a second to
        // start its work). It is replaced by the app's own, so that nothing is credited
        // to it, nor its person's wait taken to end later.
        let settled = page.requested_at.is_some_and(|at| now >= at + SETTLED);
        if settled && !was_working {
            page.requested_at = None;
            emit(Signal::RunRequested {
                automatic: true,
                fragment: false,
            });
        }
        match (was_working, self.working()) {
            (false, true) => {
                page.requested_at = None;
                emit(Signal::Running(true));
            }
            (true, false) => emit(Signal::Running(false)),
            _ => {}
        }
        Ok(())
    }
}
