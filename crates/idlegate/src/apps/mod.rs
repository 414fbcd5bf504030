//! App kinds: everything idlegate knows about one framework, behind [`App`] (its protocol)
//! and [`Kind`] (launching it, building its [`App`]).
//!
//! The proxy and the tracker never look at an app's paths or messages themselves; they ask
//! the [`App`]. Adding Gradio, Panel/Bokeh or Shiny means adding a module here (and its name
//! to [`kind`]), not touching the tracker or the relay. Nothing outside `apps/<kind>/` knows
//! a framework's paths, messages, cookies or flags.

mod app;
pub mod bokeh;
pub mod collect;
pub mod gradio;
pub mod json;
pub mod kind;
pub mod later;
pub mod probe;
pub mod shiny;
pub mod streamlit;

pub use app::{
    served_at_root, Answer, App, BodySession, DecodeError, EndText, Farewell, Message,
    MessageDecoder, MessageKind, PageHints, Person, Placement, RequestHead, SessionKey,
    SessionRequest, SessionShape, UploadEvent,
};
pub use kind::{BasePathCheck, Kind, LaunchPlan, LaunchRequest, ProcessHook, Runtime};

use std::sync::Arc;

use crate::limits::{work::Queue, Limits};

use crate::config::AppKind;
use crate::lifecycle::{Event, Subscriber};

/// The kind of `app.kind`. The one place that names every kind: the kinds depend on the
/// traits in [`kind`](mod@kind), and this parent on both, so no circle runs between them.
pub fn kind(kind: AppKind) -> &'static dyn Kind {
    match kind {
        AppKind::Streamlit => &streamlit::KIND,
        AppKind::Shiny => &shiny::KIND,
        AppKind::Bokeh => &bokeh::BOKEH,
        AppKind::Panel => &bokeh::PANEL,
        AppKind::Gradio => &gradio::KIND,
    }
}

/// The kind whose program the launcher's `command` runs (`app.kind = "auto"`).
///
/// # Errors
/// A message for the person when no kind recognizes the command (another program, or one
/// that could run any framework, like `python app.py` or `uvicorn app:app`).
pub fn detect(command: &[String]) -> Result<AppKind, String> {
    AppKind::ALL
        .iter()
        .map(|(_, kind)| *kind)
        .find(|k| kind(*k).recognizes(command))
        .ok_or_else(|| {
            let names: Vec<&str> = AppKind::ALL.iter().map(|(name, _)| *name).collect();
            format!(
                "cannot tell the app's framework from the command; run it as `streamlit run \
                 app.py`, `shiny run app.py`, `panel serve app.py`, `bokeh serve app.py` or `gradio app.py`, or set app.kind (--app-kind) to one of {} (a `python app.py` that calls Gradio's launch(): --app-kind gradio)",
                names.join(", ")
            )
        })
}

/// The kind other than Streamlit that the app at `upstream` answers as, when one can tell
/// ([`Kind::identifies`]).
pub async fn identify(upstream: &crate::config::Upstream) -> Option<AppKind> {
    for (_, candidate) in AppKind::ALL {
        if candidate != AppKind::Streamlit && kind(candidate).identifies(upstream).await {
            return Some(candidate);
        }
    }
    None
}

/// Tells the app each ended tab's session id ([`App::session_ended`]), on a task of its own:
/// ending a session for good may write files and signal the app's process. The ids wait in
/// a bounded [`Queue`].
pub struct SessionEnds(Queue<String>);

impl SessionEnds {
    /// A subscriber that tells `app`, counting dropped ids in `limits`.
    pub fn start(app: Arc<dyn App>, limits: Arc<Limits>) -> Self {
        let (queue, mut rx) = Queue::<String>::new(limits);
        tokio::spawn(async move {
            while let Some(id) = rx.recv().await {
                app.session_ended(&id);
            }
        });
        Self(queue)
    }
}

impl Subscriber for SessionEnds {
    fn on_event(&self, event: &Event) {
        if let Event::TabEnded(end) = event {
            if let Some(id) = &end.app_session {
                self.0.push(id.clone());
            }
        }
    }
}
