//! What relaying a request needs, made once at start and shared by every connection: the
//! app, its address and client, the tracker, the page script's injector, and the tasks
//! shutdown waits for. Handlers get this, never the whole gateway.

use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio_util::task::TaskTracker;

use super::inject::Injector;
use super::requests::Sessions;
use super::UpstreamClient;
use crate::apps::{App, EndText, Farewell, Placement};
use crate::config::{Config, Texts, Upstream};
use crate::pages;
use crate::tracker::{EndNotice, EndReason, Refused, Tracker};
use crate::web;
use crate::ws::traffic::Traffic;

/// The proxy's shared context.
pub struct Context {
    pub config: Arc<Config>,
    pub upstream: Upstream,
    pub tracker: Tracker,
    pub app: Arc<dyn App>,
    pub client: UpstreamClient,
    /// Long-lived tasks (relays) that shutdown waits for.
    pub tasks: TaskTracker,
    /// Adds the page script's tag to HTML pages.
    pub injector: Injector,
    /// `[browser.texts]` as last (re)loaded, shared with the routes.
    pub texts: Arc<ArcSwap<Texts>>,
    /// Frames and bytes the relays passed on, for the metrics.
    pub traffic: Arc<Traffic>,
    /// The open tabs of a request-shaped app (Gradio).
    pub sessions: Arc<Sessions>,
}

impl Context {
    /// What a page whose tab ended is told: sent to the "session ended" page (which starts a
    /// new session where the page was), or shown the notice in place when it is in an
    /// iframe.
    pub fn farewell(&self, notice: &EndNotice) -> Farewell {
        let base = &self.config.app.base_path;
        let page = notice.page.as_deref();
        let url = self.ended_url(notice);
        let texts = self.texts.load();
        let message = pages::end_message(Some(notice.reason), &self.tracker.policy(), &texts);
        let home = format!("{base}/");
        let start_href = page
            .filter(|page| web::is_app_path(base, page))
            .unwrap_or(&home);
        let place = if notice.stays() {
            Placement::Embedded
        } else if notice.reason == EndReason::ServerRestarted {
            // Never seen by this process: whether it is in an iframe is not known.
            Placement::Unknown
        } else {
            Placement::TopLevel
        };
        self.app.farewell(
            &url,
            place,
            &EndText {
                title: &texts.ended_title,
                message: &message,
                note: &texts.ended_note,
                start_label: &texts.start_new,
                start_href,
            },
        )
    }

    /// The "session ended" page for `notice` (which returns to the page the tab showed).
    pub fn ended_url(&self, notice: &EndNotice) -> String {
        let base = &self.config.app.base_path;
        web::ended_url_returning(base, notice.reason, notice.page.as_deref())
    }

    /// The "session ended" page, without a reason (for a page whose tab is not known).
    pub fn plain_ended_url(&self) -> String {
        format!("{}{}ended", self.config.app.base_path, web::PREFIX)
    }

    /// A farewell that only sends the page to `url` (the sign-in page, the refused page).
    pub fn redirect(&self, url: &str) -> Farewell {
        Farewell {
            messages: self.app.redirect_message(url).into_iter().collect(),
            ..Farewell::default()
        }
    }

    /// URL of the page a tab over the per-user limit gets.
    pub fn refused_url(&self) -> String {
        web::refused_url(&self.config.app.base_path)
    }

    /// The farewell of a page refused a tab: sent to the page that says why.
    pub fn refusal(&self, refused: &Refused) -> Farewell {
        match refused {
            Refused::Ended(notice) => self.farewell(notice),
            Refused::OverUserCap => self.redirect(&self.refused_url()),
            Refused::ServerBusy => self.redirect(&web::busy_url(&self.config.app.base_path)),
        }
    }
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("upstream", &self.upstream)
            .finish_non_exhaustive()
    }
}
