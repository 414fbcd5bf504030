//! A Gradio app's event listeners, from its `/config` (`blocks.py`, `get_config_file`): which
//! event of which component runs each dependency, so that a request to run one can be told
//! a person's or the page's own.
//!
//! Each entry of `dependencies` has an `id` (the `fn_index` a run request names), `targets`
//! (`[[component id or null, event name], …]`) and `trigger_after` (the dependency a
//! `.then()`, `.success()` or `.failure()` follows; its targets are `[[null, "then"]]`). A
//! chained run carries the `trigger_id` of the chain's first event
//! (`js/core/src/dependency.ts`), so it is judged by the chain's root.

use std::collections::HashMap;

use serde::Deserialize;

/// Who a run request comes from, as far as its event tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// The page's own: a page load, a `gr.Timer` tick (also `every=`), a media stream's chunk.
    Automatic,
    /// Only a person's input fires it.
    Person,
    /// A person or the app (`change` fires for the app's own updates too), or an event
    /// idlegate does not know: the page script decides.
    Unclear,
}

/// Events only a person fires (`gradio/events.py`).
const PERSON_EVENTS: &[&str] = &[
    "click",
    "double_click",
    "submit",
    "input",
    "upload",
    "select",
    "like",
    "key_up",
    "edit",
    "clear",
    "delete",
    "apply",
    "undo",
    "retry",
    "copy",
    "download",
    "option_select",
    "example_select",
    "start_recording",
    "pause_recording",
    "stop_recording",
    "release",
    "login",
];

/// Events the page or the server fires by itself: `load` (also a component's `value=`
/// callable), `tick` (`gr.Timer`, and `every=`, a hidden timer), `unload`, and `stream`
/// (a webcam's or microphone's chunks every `stream_every`: the app works, but nobody acts).
const AUTOMATIC_EVENTS: &[&str] = &["load", "tick", "unload", "stream"];

/// How many `trigger_after` links are followed to a chain's root.
const CHAIN_MAX: usize = 64;

/// The app's dependencies, by id.
#[derive(Debug, Default)]
pub struct Layout {
    dependencies: HashMap<u64, Dependency>,
}

#[derive(Debug, Deserialize)]
struct Dependency {
    id: u64,
    #[serde(default)]
    targets: Vec<(Option<u64>, String)>,
    #[serde(default)]
    trigger_after: Option<u64>,
}

#[derive(Deserialize)]
struct Config {
    dependencies: Vec<serde_json::Value>,
}

impl Layout {
    /// Reads the `dependencies` of a `/config` answer. Entries of another shape are skipped.
    ///
    /// # Errors
    /// The text is not a Gradio config.
    pub fn parse(config: &[u8]) -> Result<Self, serde_json::Error> {
        let config: Config = serde_json::from_slice(config)?;
        let dependencies = config
            .dependencies
            .into_iter()
            .filter_map(|entry| serde_json::from_value::<Dependency>(entry).ok())
            .map(|dependency| (dependency.id, dependency))
            .collect();
        Ok(Self { dependencies })
    }

    /// How many event listeners (dependencies) it knows.
    pub fn listeners(&self) -> usize {
        self.dependencies.len()
    }

    /// Who asked to run dependency `fn_index`, fired by component `trigger_id`.
    pub fn cause(&self, fn_index: u64, trigger_id: Option<u64>) -> Cause {
        let Some(root) = self.root(fn_index) else {
            return Cause::Unclear;
        };
        let fired: Vec<&str> = root
            .targets
            .iter()
            .filter(|(component, _)| trigger_id.is_none() || *component == trigger_id)
            .map(|(_, event)| event.as_str())
            .collect();
        // A trigger that names none of the targets (a `load`, fired by the page): all count.
        let fired = if fired.is_empty() {
            root.targets.iter().map(|(_, e)| e.as_str()).collect()
        } else {
            fired
        };
        let causes = fired.iter().map(|event| event_cause(event));
        causes
            .reduce(|a, b| if a == b { a } else { Cause::Unclear })
            .unwrap_or(Cause::Unclear)
    }

    /// The first dependency of the chain `fn_index` is in.
    fn root(&self, fn_index: u64) -> Option<&Dependency> {
        let mut dependency = self.dependencies.get(&fn_index)?;
        for _ in 0..CHAIN_MAX {
            match dependency.trigger_after {
                Some(parent) => dependency = self.dependencies.get(&parent)?,
                None => return Some(dependency),
            }
        }
        None
    }
}

/// Who fires an event of this name.
fn event_cause(event: &str) -> Cause {
    if PERSON_EVENTS.contains(&event) {
        Cause::Person
    } else if AUTOMATIC_EVENTS.contains(&event) {
        Cause::Automatic
    } else {
        Cause::Unclear
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The dependencies of a real app's `/config` (Gradio 6.31): a click and its `.then()`,
    /// a timer's tick and its `.then()`, `gr.on([click, tick])`, a textbox's change, input
    /// and submit, `demo.load`, a `queue=False` click, `value=callable` with `every=`.
    const CONFIG: &str = r#"{"version":"6.31.0","dependencies":[
        {"id":0,"targets":[[1,"click"]],"trigger_after":null,"queue":true},
        {"id":1,"targets":[[null,"then"]],"trigger_after":0},
        {"id":2,"targets":[[3,"tick"]],"trigger_after":null},
        {"id":3,"targets":[[null,"then"]],"trigger_after":2},
        {"id":4,"targets":[[1,"click"],[3,"tick"]],"trigger_after":null},
        {"id":5,"targets":[[6,"change"]],"trigger_after":null},
        {"id":6,"targets":[[6,"input"]],"trigger_after":null},
        {"id":7,"targets":[[6,"submit"]],"trigger_after":null},
        {"id":8,"targets":[[0,"load"]],"trigger_after":null},
        {"id":9,"targets":[[1,"click"]],"trigger_after":null,"queue":false},
        {"id":10,"targets":[[0,"load"],[8,"change"]],"trigger_after":null},
        {"id":11,"targets":[[5,"tick"],[0,"load"]],"trigger_after":null},
        {"id":12,"targets":[[null,"then"]],"trigger_after":12},
        {"id":"odd"}
    ]}"#;

    #[test]
    fn runs_are_judged_by_their_chains_first_event() -> Result<(), serde_json::Error> {
        let layout = Layout::parse(CONFIG.as_bytes())?;
        assert_eq!(layout.listeners(), 13);
        assert_eq!(layout.cause(0, Some(1)), Cause::Person);
        assert_eq!(layout.cause(1, Some(1)), Cause::Person, "a click's .then()");
        assert_eq!(layout.cause(2, Some(3)), Cause::Automatic);
        assert_eq!(
            layout.cause(3, Some(3)),
            Cause::Automatic,
            "a tick's .then()"
        );
        assert_eq!(layout.cause(4, Some(1)), Cause::Person);
        assert_eq!(layout.cause(4, Some(3)), Cause::Automatic);
        assert_eq!(layout.cause(4, None), Cause::Unclear, "either");
        assert_eq!(layout.cause(5, Some(6)), Cause::Unclear, "change");
        assert_eq!(layout.cause(6, Some(6)), Cause::Person);
        assert_eq!(layout.cause(7, Some(6)), Cause::Person);
        assert_eq!(layout.cause(8, None), Cause::Automatic);
        assert_eq!(layout.cause(8, Some(0)), Cause::Automatic);
        assert_eq!(layout.cause(9, Some(1)), Cause::Person);
        assert_eq!(layout.cause(11, Some(5)), Cause::Automatic);
        assert_eq!(layout.cause(11, None), Cause::Automatic);
        assert_eq!(layout.cause(10, Some(8)), Cause::Unclear);
        Ok(())
    }

    #[test]
    fn unknown_and_circular_chains_are_unclear() -> Result<(), serde_json::Error> {
        let layout = Layout::parse(CONFIG.as_bytes())?;
        assert_eq!(layout.cause(99, Some(1)), Cause::Unclear);
        assert_eq!(layout.cause(12, None), Cause::Unclear);
        assert!(Layout::parse(b"[]").is_err());
        assert_eq!(Layout::parse(br#"{"dependencies":[]}"#)?.listeners(), 0);
        Ok(())
    }
}
