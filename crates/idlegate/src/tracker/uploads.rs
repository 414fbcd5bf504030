//! Uploads: a tab is busy while a file streams to the app, and what the app stored for a tab
//! is released when the tab ends.

use std::sync::Arc;

use tokio::time::Instant;

use super::tab::{ActivityRule, Upload};
use super::{lock, Release, Tab, Tracker, RELEASE_CAP};
use crate::lifecycle::Event;
use crate::store::EndedId;
use crate::store::LoginSession;

/// An upload in flight for a tab: the tab is busy until this is dropped (when the app has
/// answered, or the request failed).
pub struct UploadGuard {
    tracker: Tracker,
    tab: Arc<Tab>,
    id: u64,
}

impl Tracker {
    /// An upload to the app session `app_session` starts. Under the messages rule an upload
    /// is a person's activity; under the input rule it is when the page script saw a person
    /// start it. Either way the tab is busy (not idle) until the guard is dropped. `None`
    /// when no open tab holds that app session.
    pub fn upload_started(
        &self,
        app_session: &str,
        login: Option<&Arc<LoginSession>>,
    ) -> Option<UploadGuard> {
        let tab = self.owned_tab_of(app_session, login)?;
        let now = Instant::now();
        let (id, touch) = {
            let mut inner = lock(&tab.inner);
            if inner.ended.is_some() {
                return None;
            }
            let id = inner.next_upload;
            inner.next_upload += 1;
            let by_person = match inner.rule() {
                ActivityRule::Messages => true,
                ActivityRule::Input => inner.attribution.started_by_person(now),
            };
            inner.uploads.push(Upload {
                id,
                started: now,
                by_person,
            });
            (id, by_person && inner.rule() == ActivityRule::Messages)
        };
        if touch {
            self.touch_at(&tab, now, ActivityRule::Messages);
        }
        Some(UploadGuard {
            tracker: self.clone(),
            tab,
            id,
        })
    }

    /// A request only a person makes (removing an uploaded file) reached the app for the tab
    /// holding `app_session`: activity under the messages rule (under the input rule the
    /// person's input was).
    pub fn person_request(&self, app_session: &str, login: Option<&Arc<LoginSession>>) {
        if let Some(tab) = self.owned_tab_of(app_session, login) {
            if lock(&tab.inner).rule() == ActivityRule::Messages {
                self.touch(&tab, ActivityRule::Messages);
            }
        }
    }

    /// Remembers a release for the tab holding `app_session`, to replay when it ends. When
    /// that tab has already ended (the app answered the upload after the end), the release
    /// is replayed at once.
    pub fn record_release(
        &self,
        app_session: &str,
        release: Release,
        login: Option<&Arc<LoginSession>>,
    ) {
        match self.tab_of(app_session) {
            Some(tab) if !tab.belongs_to(login) => return,
            Some(tab) => {
                let mut inner = lock(&tab.inner);
                if inner.ended.is_none() {
                    inner.releases.retain(|r| r.path != release.path);
                    if inner.releases.len() >= RELEASE_CAP {
                        inner.releases.remove(0);
                    }
                    inner.releases.push(release);
                    return;
                }
            }
            None => {
                let stores = &self.shared.stores;
                let ended = EndedId::AppSession(app_session);
                if stores.ended.find(ended, stores.clock.now_ms()).is_none() {
                    return;
                }
            }
        }
        self.publish(|| Event::LateRelease(release));
    }

    /// Forgets the release for `path` (the page already released it itself).
    pub fn forget_release(&self, app_session: &str, path: &str, login: Option<&Arc<LoginSession>>) {
        if let Some(tab) = self.owned_tab_of(app_session, login) {
            lock(&tab.inner).releases.retain(|r| r.path != path);
        }
    }
}

impl Tracker {
    /// The open tab holding `app_session`, if it belongs to `login`: a request of another
    /// login that names the app session (it shows in upload URLs) changes nothing.
    fn owned_tab_of(
        &self,
        app_session: &str,
        login: Option<&Arc<LoginSession>>,
    ) -> Option<Arc<Tab>> {
        self.tab_of(app_session).filter(|tab| tab.belongs_to(login))
    }
}

impl Drop for UploadGuard {
    fn drop(&mut self) {
        let now = Instant::now();
        let (person, rule) = {
            let mut inner = lock(&self.tab.inner);
            let Some(index) = inner.uploads.iter().position(|u| u.id == self.id) else {
                return;
            };
            let upload = inner.uploads.swap_remove(index);
            // A late report may have shown by now that a person started it.
            let person = upload.by_person || inner.attribution.started_by_person(upload.started);
            (person, inner.rule())
        };
        if person {
            // The person waited for the upload; idle time starts when it is done.
            self.tracker.touch_at(&self.tab, now, rule);
        }
        self.tracker.reschedule(self.tab.id);
    }
}
