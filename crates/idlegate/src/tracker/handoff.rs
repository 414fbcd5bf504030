//! Handing tabs over. With a store other replicas share, a stopping idlegate (SIGTERM: a
//! rolling update) leaves each open tab in the store instead of ending it, and closes its
//! socket quietly. The page reconnects by itself (Streamlit's frontend retries), to the
//! next process on this address or to another replica, which takes the tab over as the same
//! tab session: its login, its age and its idle time go on, so it ends when it would have.
//!
//! Only the login that opened a tab may take it over, as for any reconnect. A tab nobody
//! takes within `tabs.reconnect_grace` is forgotten.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::time::Instant;

use super::{lock, EndReason, Ending, Tab, Tracker};
use crate::store::{EndedId, HandedOff, LoginSession};

impl Tracker {
    /// Hands every open tab over (see the module); returns how many. With a store only
    /// this process holds, there is nobody to hand over to: tabs are left to end.
    pub fn hand_off_all(&self) -> usize {
        let stores = &self.shared.stores;
        if !stores.cluster.shared() {
            return 0;
        }
        if !stores.cluster.available() {
            // Nothing left in the store would reach the next process: the tabs end, and
            // their pages are told the server is restarting.
            tracing::warn!(
                tabs = self.len(),
                "the shared store cannot be reached: open tabs end instead of being handed over"
            );
            return 0;
        }
        let now = stores.clock.now_ms();
        let ttl = self.policy().reconnect_grace;
        let tabs: Vec<Arc<Tab>> = {
            let mut registry = self.registry();
            registry.by_app_session.clear();
            registry.by_client.clear();
            registry.tabs.drain().map(|(_, tab)| tab).collect()
        };
        for tab in &tabs {
            let mut inner = lock(&tab.inner);
            let ids: Vec<EndedId<'_>> = inner
                .app_session
                .as_deref()
                .map(EndedId::AppSession)
                .into_iter()
                .chain(inner.client.as_deref().map(EndedId::PageToken))
                .collect();
            let last = self.instant(tab.last_activity_ms.load(Ordering::Relaxed));
            let left = HandedOff {
                login: tab.login.as_ref().map(|login| login.key().to_owned()),
                user: tab.login.as_ref().map(|login| login.identity.user.clone()),
                opened: stores.clock.ms(tab.opened_at),
                last_activity: stores.clock.ms(last),
            };
            if !ids.is_empty() {
                stores.tabs.hand_off(&ids, left, now, ttl);
            }
            stores.tabs.close(stores.replica, tab.id);
            // Not ended: nothing is buried, the app keeps the session.
            inner.ended = Some(EndReason::Shutdown);
            if let Some((_, conn)) = inner.connection.take() {
                let _ = conn.send(Some(Ending::quiet()));
            }
        }
        if !tabs.is_empty() {
            tracing::info!(
                tabs = tabs.len(),
                "handed the open tabs over: their pages reconnect to the next idlegate"
            );
        }
        tabs.len()
    }

    /// The tab another process handed over that a page asking to resume `app_session`
    /// with the token `client` names, when it is `login`'s to take.
    pub(super) fn handed_off(
        &self,
        app_session: Option<&str>,
        client: Option<&str>,
        login: Option<&Arc<LoginSession>>,
        take: bool,
    ) -> Option<HandedOff> {
        let stores = &self.shared.stores;
        if !stores.cluster.shared() {
            return None;
        }
        let ids: Vec<EndedId<'_>> = app_session
            .map(EndedId::AppSession)
            .into_iter()
            .chain(client.map(EndedId::PageToken))
            .collect();
        if ids.is_empty() {
            return None;
        }
        let now = stores.clock.now_ms();
        let found = stores.tabs.handed_off(&ids, now)?;
        if found.login.as_deref() != login.map(|login| login.key()) {
            return None;
        }
        if take {
            stores.tabs.take_handed_off(&ids, now)
        } else {
            Some(found)
        }
    }

    /// When a tab handed over opened and was last used, on this process's clock.
    pub(super) fn times_of(&self, left: &HandedOff) -> (Instant, Instant) {
        let clock = &self.shared.stores.clock;
        (
            clock.instant(left.opened),
            clock.instant(left.last_activity),
        )
    }
}
