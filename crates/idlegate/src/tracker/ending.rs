//! Ending tabs: one tab (its deadline passed, it was evicted, the app lost it), every tab of
//! a user (they signed out), or all (shutdown). An end tells the tab's connection, buries
//! its ids in the store so a stale page is told why instead of resuming, and publishes
//! [`Event::TabEnded`] with what the app must let go of (logging, the app's memory and its
//! uploads are subscribers).

use tokio::time::Instant;

use super::{lock, EndNotice, EndReason, Ending, TabId, Tracker};
use crate::lifecycle::{Event, TabEnd};
use crate::store::{Command, EndedId, Replica};

impl Tracker {
    /// Ends a tab session now. Returns `false` if it had already ended.
    pub fn end(&self, id: TabId, reason: EndReason) -> bool {
        let now = Instant::now();
        let stores = &self.shared.stores;
        let now_ms = stores.clock.ms(now);
        let tab = {
            let mut registry = self.registry();
            let Some(tab) = registry.tabs.remove(&id) else {
                return false;
            };
            let inner = lock(&tab.inner);
            let mut notice = inner.notice(reason);
            // A page still connected is sent away now, by the connection.
            notice.sent_away = u8::from(inner.connection.is_some() && !notice.embedded);
            if let Some(app_session) = &inner.app_session {
                registry.by_app_session.remove(app_session);
                let id = EndedId::AppSession(app_session);
                stores
                    .ended
                    .bury(id, &notice, now_ms, self.policy().ended_notice_ttl);
            }
            if let Some(client) = &inner.client {
                registry.by_client.remove(client);
                let id = EndedId::PageToken(client);
                stores
                    .ended
                    .bury(id, &notice, now_ms, self.policy().ended_notice_ttl);
            }
            drop(inner);
            stores.tabs.close(stores.replica, id);
            tab
        };
        if let (Some(login), EndReason::LoginExpired) = (&tab.login, reason) {
            // Revoked in the store, and on the record itself should the store not hold it.
            if stores.logins.revoke(login.key(), reason).is_some() || login.revoke() {
                self.publish(|| Event::LoginEnded {
                    user: login.identity.user.clone(),
                    reason,
                });
            }
        }
        self.shared.reports.retain_recent();
        let mut inner = lock(&tab.inner);
        if inner.ended.is_some() {
            return false;
        }
        inner.ended = Some(reason);
        if let Some((_, conn)) = inner.connection.take() {
            let _ = conn.send(Some(Ending {
                notice: inner.notice(reason),
                notify_browser: true,
            }));
        }
        let releases = std::mem::take(&mut inner.releases);
        let rule = inner.rule();
        let app_session = inner.app_session.clone();
        drop(inner);
        let last = self.instant(
            tab.last_activity_ms
                .load(std::sync::atomic::Ordering::Relaxed),
        );
        self.publish(move || {
            Event::TabEnded(Box::new(TabEnd {
                tab: id,
                reason,
                rule,
                app_session,
                lifetime: now - tab.opened_at,
                human_idle: now.saturating_duration_since(last),
                releases,
            }))
        });
        true
    }

    /// A page asking for an ended tab (by its app session id or page token) was sent away
    /// once more: the next time it comes back, it is told in place.
    pub fn sent_away(&self, app_session: Option<&str>, client: Option<&str>, notice: &EndNotice) {
        let stores = &self.shared.stores;
        let now = stores.clock.now_ms();
        let told = EndNotice {
            sent_away: notice.sent_away.saturating_add(1),
            ..notice.clone()
        };
        let ids = app_session
            .map(EndedId::AppSession)
            .into_iter()
            .chain(client.map(EndedId::PageToken));
        for id in ids {
            if stores.ended.find(id, now).is_some() {
                stores
                    .ended
                    .bury(id, &told, now, self.policy().ended_notice_ttl);
            }
        }
    }

    /// Ends tab `tab` of `replica`: here, or by asking the other replicas.
    pub fn end_anywhere(&self, replica: Replica, tab: TabId, reason: EndReason) {
        let stores = &self.shared.stores;
        if replica == stores.replica {
            self.end(tab, reason);
        } else {
            stores.cluster.send(Command::EndTab {
                replica,
                tab,
                reason,
            });
        }
    }

    /// Ends every tab of a signed-in user (they signed out), on every replica. Returns how
    /// many ended here.
    pub fn end_user(&self, user: &str, reason: EndReason) -> usize {
        self.shared.stores.cluster.send(Command::EndUser {
            user: user.to_owned(),
            reason,
        });
        self.end_user_here(user, reason)
    }

    /// Ends the tabs of `user` this replica holds. Returns how many ended.
    pub fn end_user_here(&self, user: &str, reason: EndReason) -> usize {
        let stores = &self.shared.stores;
        let ids: Vec<TabId> = stores
            .tabs
            .of_user(user)
            .into_iter()
            .filter(|record| record.replica == stores.replica)
            .map(|record| record.tab)
            .collect();
        ids.into_iter().filter(|id| self.end(*id, reason)).count()
    }

    /// Does what another replica asks.
    pub fn obey(&self, command: Command) {
        match command {
            Command::EndUser { user, reason } => {
                self.end_user_here(&user, reason);
            }
            Command::EndLogin { key, reason } => {
                let ids: Vec<TabId> = self
                    .registry()
                    .tabs
                    .values()
                    .filter(|tab| tab.login.as_ref().is_some_and(|login| login.key() == key))
                    .map(|tab| tab.id)
                    .collect();
                for id in ids {
                    self.end(id, reason);
                }
            }
            Command::EndTab {
                replica,
                tab,
                reason,
            } => {
                if replica == self.shared.stores.replica {
                    self.end(tab, reason);
                }
            }
        }
    }

    /// Ends every tab session (on shutdown).
    pub fn end_all(&self, reason: EndReason) -> usize {
        let ids: Vec<TabId> = self.registry().tabs.keys().copied().collect();
        ids.into_iter().filter(|id| self.end(*id, reason)).count()
    }
}
