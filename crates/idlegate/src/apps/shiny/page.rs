//! What one Shiny page's two directions share: which input updates a person caused, and
//! whether a request still waits for the app's work.
//!
//! An update of an input is a person's unless:
//! - its key starts `.clientdata_` (the page's sizes, URL, visibility);
//! - its value is the one last known for that input (an input re-sending itself: a rebind,
//!   a re-rendered `render.ui`, an event-priority re-send);
//! - it is the first value known for that input (an input that was just drawn reports
//!   itself: inputs of `render.ui`, modals, notifications, inserted UI and tabs);
//! - the app set or drew that input and this is the first update since (a mark the app's
//!   message left: `inputMessages` from `ui.update_*`, an input named in HTML the app sent,
//!   an input of an output the app re-rendered, like a data frame's `<id>_data_view_rows`).
//!   A mark is used by one update, or forgotten after [`MARK_TTL`]: however slow the page
//!   is to answer, its answer is not a person.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::time::Duration;

use serde_json::{Map, Value};
use tokio::time::Instant;

/// How long a mark the app left on an input waits for the page's answer.
pub const MARK_TTL: Duration = Duration::from_secs(30);
/// How long after a request without any work from the app (no `busy`) it is taken as done,
/// at the next flush message.
pub const SETTLED: Duration = Duration::from_secs(1);
/// The most inputs (and marks) remembered per page; past it, new inputs' first values are
/// not remembered, so their later changes count as first values too (never a person).
pub const MAX_INPUTS: usize = 4096;
/// The most input ids taken from one message's HTML.
const MAX_IDS_PER_MESSAGE: usize = 256;

/// A 64-bit hash of `text`: keys and values are remembered as hashes, so a page cannot make
/// idlegate keep its strings.
fn hash(text: &str) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut hasher);
    hasher.finish()
}

/// One page's inputs and the app's marks on them.
#[derive(Debug, Default)]
pub struct Page {
    /// Each input's last known value, by key (hashes of both).
    values: HashMap<u64, u64>,
    /// Inputs the app set or drew, by id (hashed): when.
    marks: HashMap<u64, Instant>,
    /// Outputs the app re-rendered, whose inputs are `<id>_…`: the prefix, and when.
    prefixes: HashMap<String, Instant>,
    /// When the oldest request not yet followed by the app's work arrived.
    pub requested_at: Option<Instant>,
}

impl Page {
    /// Remembers the values the page's first run sends (none is a person's).
    pub fn init(&mut self, data: Option<&Map<String, Value>>, now: Instant) {
        for (key, value) in data.into_iter().flatten() {
            if !key.starts_with(".clientdata_") && self.values.len() < MAX_INPUTS {
                self.values.insert(hash(key), hash(&value.to_string()));
            }
        }
        self.requested_at.get_or_insert(now);
    }

    /// Whether an update's `data` holds an input a person changed; remembers the values
    /// and uses the marks the update answers.
    pub fn update(&mut self, data: &Map<String, Value>, now: Instant) -> bool {
        self.requested_at.get_or_insert(now);
        self.expire(now);
        let mut person = false;
        let mut used_prefixes = Vec::new();
        for (key, value) in data {
            if key.starts_with(".clientdata_") {
                continue;
            }
            let (key_hash, new) = (hash(key), hash(&value.to_string()));
            let known = self.values.get(&key_hash).copied();
            if known == Some(new) {
                continue;
            }
            if known.is_some() || self.values.len() < MAX_INPUTS {
                self.values.insert(key_hash, new);
            }
            let id = key.split(':').next().unwrap_or(key);
            let marked = self.marks.remove(&hash(id)).is_some();
            let prefix = self
                .prefixes
                .keys()
                .find(|prefix| id.starts_with(prefix.as_str()))
                .cloned();
            let answers_render = prefix.is_some();
            used_prefixes.extend(prefix);
            person |= known.is_some() && !marked && !answers_render;
        }
        for prefix in used_prefixes {
            self.prefixes.remove(&prefix);
        }
        person
    }

    /// Notes what an app's message sets or draws.
    pub fn app_message(&mut self, message: &Value, now: Instant) {
        self.expire(now);
        for entry in message["inputMessages"].as_array().into_iter().flatten() {
            if let Some(id) = entry["id"].as_str() {
                self.mark(id, now);
            }
        }
        if let Some(values) = message["values"].as_object() {
            for output in values.keys() {
                if self.prefixes.len() < MAX_INPUTS {
                    self.prefixes.insert(format!("{output}_"), now);
                }
            }
        }
        let mut ids = Vec::new();
        html_ids(message, &mut ids);
        for id in ids {
            self.mark(&id, now);
        }
    }

    fn mark(&mut self, id: &str, now: Instant) {
        if self.marks.len() < MAX_INPUTS {
            self.marks.insert(hash(id), now);
        }
    }

    fn expire(&mut self, now: Instant) {
        let fresh = |at: &mut Instant| now < *at + MARK_TTL;
        self.marks.retain(|_, at| fresh(at));
        self.prefixes.retain(|_, at| fresh(at));
    }
}

/// The `id="…"` (or `id='…'`) attributes in the HTML strings of an app's message (the
/// inputs it draws), at most [`MAX_IDS_PER_MESSAGE`].
fn html_ids(value: &Value, ids: &mut Vec<String>) {
    match value {
        Value::String(text) if text.contains('<') => {
            for quote in ['"', '\''] {
                let needle = format!("id={quote}");
                for (at, _) in text.match_indices(&needle) {
                    if ids.len() >= MAX_IDS_PER_MESSAGE {
                        return;
                    }
                    let rest = &text[at + needle.len()..];
                    if let Some(end) = rest.find(quote) {
                        ids.push(rest[..end].to_owned());
                    }
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| html_ids(item, ids)),
        Value::Object(map) => map.values().for_each(|item| html_ids(item, ids)),
        _ => {}
    }
}
