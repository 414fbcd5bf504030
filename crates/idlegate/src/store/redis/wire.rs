//! What the Redis store writes: its key names, and the messages replicas publish to each
//! other on one channel. Every key starts with `store.key_prefix`, and every key has a time
//! to live (docs/deploy.md lists them).

use serde::{Deserialize, Serialize};

use crate::lifecycle::{EndNotice, EndReason, TabId};
use crate::store::{Command, HandedOff, Identity, LoginSession, Replica, TabRecord, UnixMillis};

/// The names of the keys and the channel, under one prefix.
#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
    /// The database number: keys are per database, channels are not.
    db: i64,
}

impl Keys {
    pub fn new(prefix: &str, db: i64) -> Self {
        Self {
            prefix: prefix.to_owned(),
            db,
        }
    }

    /// The channel every replica publishes on and listens to. Pub/sub channels are shared
    /// by every database of a Redis, so the database is in its name: apps told apart by
    /// database alone do not hear each other.
    pub fn channel(&self) -> String {
        format!("{}events:{}", self.prefix, self.db)
    }

    /// HASH: one login (fields `user`, `name`, `email`, `groups`, `started`, `last`), by
    /// its key (the SHA-256 of its cookie's id).
    pub fn login(&self, key: &str) -> String {
        format!("{}login:{key}", self.prefix)
    }

    /// ZSET: every login's key, scored by its deadline (ms since the epoch).
    pub fn logins(&self) -> String {
        format!("{}logins", self.prefix)
    }

    /// ZSET: one user's login keys, scored by their deadlines.
    pub fn user(&self, user: &str) -> String {
        format!("{}user:{user}", self.prefix)
    }

    /// STRING: a revoked login's key, kept as long as the login could have lived, so a
    /// replica that missed the revocation cannot write the login back.
    pub fn revoked(&self, key: &str) -> String {
        format!("{}revoked:{key}", self.prefix)
    }

    /// STRING: how a tab known by an id (hashed) ended.
    pub fn ended(&self, hash: &str) -> String {
        format!("{}ended:{hash}", self.prefix)
    }

    /// ZSET: the hashed ids of ended tabs, scored by when they are forgotten.
    pub fn ended_index(&self) -> String {
        format!("{}ended", self.prefix)
    }

    /// HASH: one replica's open tabs (field: the tab's number), as [`TabWire`] JSON.
    pub fn tabs(&self, replica: Replica) -> String {
        format!("{}tabs:{replica:016x}", self.prefix)
    }

    /// STRING: a tab a stopping replica handed over, as [`HandOffWire`] JSON, by a hashed id.
    pub fn handoff(&self, hash: &str) -> String {
        format!("{}handoff:{hash}", self.prefix)
    }

    /// ZSET: the hashed ids of handed-over tabs, scored by when they stop waiting.
    pub fn handoffs(&self) -> String {
        format!("{}handoffs", self.prefix)
    }

    /// ZSET: the live replicas (hex), scored by when they count as gone unless heard of.
    pub fn replicas(&self) -> String {
        format!("{}replicas", self.prefix)
    }
}

/// A login as it is shared: everything but its secret id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginWire {
    pub key: String,
    pub user: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default)]
    pub groups: Vec<String>,
    pub started: UnixMillis,
    pub last: UnixMillis,
}

impl LoginWire {
    pub fn of(login: &LoginSession) -> Self {
        Self {
            key: login.key().to_owned(),
            user: login.identity.user.clone(),
            name: login.identity.name.clone(),
            email: login.identity.email.clone(),
            groups: login.identity.groups.clone(),
            started: login.started(),
            last: login.last_activity(),
        }
    }

    /// The login another replica made: its cookie works here, no cookie is made here.
    pub fn session(self) -> LoginSession {
        let identity = Identity {
            user: self.user,
            name: self.name,
            email: self.email,
            groups: self.groups,
        };
        LoginSession::shared(self.key, identity, self.started, self.last)
    }

    /// The HASH fields of [`Keys::login`].
    pub fn fields(&self) -> Vec<(&'static str, String)> {
        let mut fields = vec![
            ("user", self.user.clone()),
            ("started", self.started.to_string()),
            ("last", self.last.to_string()),
            (
                "groups",
                serde_json::to_string(&self.groups).unwrap_or_default(),
            ),
        ];
        fields.extend(self.name.clone().map(|name| ("name", name)));
        fields.extend(self.email.clone().map(|email| ("email", email)));
        fields
    }

    /// Back from the HASH fields of [`Keys::login`]; `None` when any is missing or bad.
    pub fn from_fields(
        key: &str,
        fields: &std::collections::HashMap<String, String>,
    ) -> Option<Self> {
        Some(Self {
            key: key.to_owned(),
            user: fields.get("user")?.clone(),
            name: fields.get("name").cloned(),
            email: fields.get("email").cloned(),
            groups: serde_json::from_str(fields.get("groups")?).ok()?,
            started: fields.get("started")?.parse().ok()?,
            last: fields.get("last")?.parse().ok()?,
        })
    }
}

/// How a tab ended, as shared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoticeWire {
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page: Option<String>,
    #[serde(default)]
    pub embedded: bool,
    #[serde(default)]
    pub sent_away: u8,
}

impl NoticeWire {
    /// The notice to share: its page without the query, which may carry secrets (a token
    /// in a link) that the store must not hold.
    pub fn of(notice: &EndNotice) -> Self {
        Self {
            reason: notice.reason.as_str().to_owned(),
            page: notice
                .page
                .as_deref()
                .map(|page| page.split(['?', '#']).next().unwrap_or_default().to_owned()),
            embedded: notice.embedded,
            sent_away: notice.sent_away,
        }
    }

    pub fn notice(self) -> Option<EndNotice> {
        Some(EndNotice {
            reason: EndReason::from_name(&self.reason)?,
            page: self.page,
            embedded: self.embedded,
            sent_away: self.sent_away,
        })
    }
}

/// An open tab, as shared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TabWire {
    pub replica: Replica,
    pub tab: TabId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    pub opened: UnixMillis,
    #[serde(default)]
    pub last: UnixMillis,
}

impl TabWire {
    pub fn of(record: &TabRecord) -> Self {
        Self {
            replica: record.replica,
            tab: record.tab,
            user: record.user.clone(),
            opened: record.opened,
            last: record.last_activity,
        }
    }

    pub fn record(self) -> TabRecord {
        TabRecord {
            replica: self.replica,
            tab: self.tab,
            user: self.user,
            opened: self.opened,
            last_activity: self.last.max(self.opened),
        }
    }
}

/// A handed-over tab, as shared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandOffWire {
    /// Every hashed id it was left under.
    #[serde(default)]
    pub hashes: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    pub opened: UnixMillis,
    pub last: UnixMillis,
}

impl HandOffWire {
    pub fn of(tab: &HandedOff, hashes: &[String]) -> Self {
        Self {
            hashes: hashes.to_vec(),
            login: tab.login.clone(),
            user: tab.user.clone(),
            opened: tab.opened,
            last: tab.last_activity,
        }
    }

    pub fn tab(self) -> HandedOff {
        HandedOff {
            login: self.login,
            user: self.user,
            opened: self.opened,
            last_activity: self.last,
        }
    }
}

/// What one replica tells the others, on [`Keys::channel`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub from: Replica,
    #[serde(flatten)]
    pub body: Body,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Body {
    /// A new login.
    Login {
        login: LoginWire,
    },
    /// Logins' last activity moved (login key, ms since the epoch), and the sender's tabs'
    /// (tab number, ms since the epoch).
    Touch {
        logins: Vec<(String, UnixMillis)>,
        #[serde(default)]
        tabs: Vec<(TabId, UnixMillis)>,
    },
    /// A login was revoked: signed out, expired, ended by an administrator (`reason`).
    Revoke {
        key: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// A tab known by a hashed id ended; forgotten at `until`.
    Ended {
        hash: String,
        notice: NoticeWire,
        until: UnixMillis,
    },
    TabOpened {
        tab: TabWire,
    },
    TabClosed {
        replica: Replica,
        tab: TabId,
    },
    EndUser {
        user: String,
        reason: String,
    },
    EndTab {
        replica: Replica,
        tab: TabId,
        reason: String,
    },
    /// A stopping replica handed a tab over, under these hashed ids, until `until`.
    HandOff {
        hashes: Vec<String>,
        tab: HandOffWire,
        until: UnixMillis,
    },
    /// A replica took a handed-over tab.
    Taken {
        hashes: Vec<String>,
    },
    /// The sender stops: its tabs are gone.
    Gone,
    /// The sender (re)connected and filled Redis with its state: read it again.
    Filled,
    /// The sender's heartbeat: it hears its own, so it knows its subscription still works.
    Alive,
}

impl Body {
    /// The message of a command for the other replicas (none for one that only this replica
    /// gives itself).
    pub fn of_command(command: &Command) -> Option<Self> {
        Some(match command {
            Command::EndUser { user, reason } => Self::EndUser {
                user: user.clone(),
                reason: reason.as_str().to_owned(),
            },
            Command::EndLogin { .. } => return None,
            Command::EndTab {
                replica,
                tab,
                reason,
            } => Self::EndTab {
                replica: *replica,
                tab: *tab,
                reason: reason.as_str().to_owned(),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_starts_with_its_sender_so_a_replica_can_skip_its_own_unread() {
        let message = Message {
            from: 7,
            body: Body::Revoke {
                key: "k".into(),
                reason: Some("logout".into()),
            },
        };
        let json = serde_json::to_string(&message).expect("JSON");
        assert!(json.starts_with("{\"from\":7,"), "{json}");
        assert_eq!(
            serde_json::from_str::<Message>(&json).expect("back"),
            message
        );
    }
}
