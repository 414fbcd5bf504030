//! What one Shiny page's two directions share: which input updates a person caused, and
//! whether a request still waits for the app's work.
//!
//! An update of an input is a person's unless:
//! - its key starts `.clientdata_` (the page's sizes, URL, visibility);
//! - its value is the one last known for that input (an input re-sending itself: a rebind,
//!   a re-rendered `render.ui`);
//! - it is the first value known for that input (an input that was just drawn reports
//!   itself: inputs of `render.ui`, modals, notifications, inserted UI and tabs);
//! - it answers a mark the app left on that input, with the value the mark expects: the
//!   value `ui.update_*` set (`inputMessages`), any value for an input the app drew again
//!   (named in HTML it sent) or whose tabs it changed (`shiny-insert-tab`…) or whose data
//!   frame it updated (`shinyDataFrameMessage`), a reset (null, empty) for the click, brush
//!   and selection inputs of an output the app re-rendered. A mark is used by the first
//!   update of its input, and is forgotten after [`MARK_TTL`]; a mark is not left where no
//!   answer will come (the input has the value already, or is unknown), so a person's change
//!   is never taken for an answer that was not going to come.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::time::Duration;

use serde_json::{Map, Value};
use tokio::time::Instant;

/// How long a mark the app left on an input waits for the page's answer.
pub const MARK_TTL: Duration = Duration::from_secs(30);
/// How long after a request without any work from the app (no `busy`) it is taken as done.
pub const SETTLED: Duration = Duration::from_secs(1);
/// The most inputs remembered per page; past it, new inputs' first values are not
/// remembered, so their later changes count as first values too (never a person).
pub const MAX_INPUTS: usize = 4096;
/// The most input ids taken from one message's HTML.
const MAX_IDS_PER_MESSAGE: usize = 256;

/// Inputs Shiny derives from an output (`<output>_<suffix>`): plots' clicks and brushes,
/// data frames' selections, sorts, filters and views, which a re-render resets.
const OUTPUT_INPUTS: [&str; 12] = [
    "click",
    "dblclick",
    "hover",
    "brush",
    "cell_selection",
    "sort",
    "column_sort",
    "filter",
    "column_filter",
    "data_view_rows",
    "data_view_indices",
    "selected_rows",
];

/// A 64-bit hash of `text`: keys and values are remembered as hashes, so a page cannot make
/// idlegate keep its strings.
fn hash(text: &str) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut hasher);
    hasher.finish()
}

/// Whether a value is what a re-render resets an output's input to: nothing, nothing
/// selected, every row in its order.
fn is_reset(value: &Value) -> bool {
    match value {
        Value::Null | Value::Bool(false) => true,
        Value::String(text) => text.is_empty(),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .all(|(i, item)| item.as_u64() == Some(i as u64)),
        Value::Object(map) => map.values().all(|v| v.is_string() || is_reset(v)),
        Value::Number(_) | Value::Bool(true) => false,
    }
}

/// The answer a mark waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Any value.
    Any,
    /// This value (hashed).
    Value(u64),
    /// A reset value ([`is_reset`]).
    Reset,
}

/// What is known of one input.
#[derive(Debug, Clone, Copy)]
struct Input {
    /// Its last value, hashed.
    value: u64,
    /// Whether that value is a reset one.
    reset: bool,
    /// The app's mark on it, and when it was left.
    mark: Option<(Expect, Instant)>,
}

/// One page's inputs and the app's marks on them, by input id (hashed; an input's key may
/// carry its type, `id:shiny.number`).
#[derive(Debug, Default)]
pub struct Page {
    inputs: HashMap<u64, Input>,
    /// When the oldest request not yet followed by the app's work arrived.
    pub requested_at: Option<Instant>,
}

fn input_id(key: &str) -> &str {
    key.split(':').next().unwrap_or(key)
}

impl Page {
    /// Remembers the values the page's first run sends (none is a person's).
    pub fn init(&mut self, data: Option<&Map<String, Value>>, now: Instant) {
        for (key, value) in data.into_iter().flatten() {
            if !key.starts_with(".clientdata_") {
                self.remember(input_id(key), value);
            }
        }
        self.requested_at.get_or_insert(now);
    }

    fn remember(&mut self, id: &str, value: &Value) -> Option<Input> {
        let known = self.inputs.get(&hash(id)).copied();
        if known.is_some() || self.inputs.len() < MAX_INPUTS {
            let input = Input {
                value: hash(&value.to_string()),
                reset: is_reset(value),
                mark: None,
            };
            self.inputs.insert(hash(id), input);
        }
        known
    }

    /// Whether an update's `data` holds an input a person changed; remembers the values
    /// and uses the marks the update answers.
    pub fn update(&mut self, data: &Map<String, Value>, now: Instant) -> bool {
        self.requested_at.get_or_insert(now);
        let mut person = false;
        for (key, value) in data {
            if key.starts_with(".clientdata_") {
                continue;
            }
            let new = hash(&value.to_string());
            let Some(known) = self.remember(input_id(key), value) else {
                continue; // a new input reports itself
            };
            if known.value == new {
                continue; // re-sent
            }
            let answers = known.mark.is_some_and(|(expect, at)| {
                now < at + MARK_TTL
                    && match expect {
                        Expect::Any => true,
                        Expect::Value(expected) => expected == new,
                        Expect::Reset => is_reset(value),
                    }
            });
            person |= !answers;
        }
        person
    }

    /// Leaves a mark on input `id`, if an answer may come: the input is known and does not
    /// have the expected value already.
    fn mark(&mut self, id: &str, expect: Expect, now: Instant) {
        if let Some(input) = self.inputs.get_mut(&hash(id)) {
            let answered_already = match expect {
                Expect::Any => false,
                Expect::Value(value) => input.value == value,
                Expect::Reset => input.reset,
            };
            if !answered_already {
                input.mark = Some((expect, now));
            }
        }
    }

    /// Notes what an app's message sets or draws.
    pub fn app_message(&mut self, message: &Value, now: Instant) {
        for entry in message["inputMessages"].as_array().into_iter().flatten() {
            if let Some(id) = entry["id"].as_str() {
                let expect = match entry["message"].get("value") {
                    Some(value) => Expect::Value(hash(&value.to_string())),
                    None => Expect::Any,
                };
                self.mark(id, expect, now);
            }
        }
        if let Some(values) = message["values"].as_object() {
            for output in values.keys() {
                for suffix in OUTPUT_INPUTS {
                    self.mark(&format!("{output}_{suffix}"), Expect::Reset, now);
                }
            }
        }
        for key in [
            "shiny-insert-tab",
            "shiny-remove-tab",
            "shiny-change-tab-visibility",
        ] {
            if let Some(id) = message[key]["inputId"].as_str() {
                self.mark(id, Expect::Any, now);
            }
        }
        if let Some(output) = message["custom"]["shinyDataFrameMessage"]["id"].as_str() {
            for suffix in OUTPUT_INPUTS {
                self.mark(&format!("{output}_{suffix}"), Expect::Any, now);
            }
        }
        let mut ids = Vec::new();
        html_ids(message, &mut ids);
        for id in ids {
            self.mark(&id, Expect::Any, now);
        }
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
