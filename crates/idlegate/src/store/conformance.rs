//! The conformance suite: what every store implementation must do, as one set of checks.
//! An implementation's tests call [`run`] with a function that makes fresh, empty
//! [`Stores`] (for a shared store: a new key prefix or database each time).
//!
//! Each check panics with a message naming what failed, like an assertion in a test.

use std::time::Duration;

use super::{EndedId, HandedOff, Identity, LoginSession, Stores, TabRecord, UnixMillis};
use crate::lifecycle::{EndNotice, EndReason};
use std::sync::Arc;

/// A moment in 2026, in Unix milliseconds: the checks use wall-clock times like these.
const T0: UnixMillis = 1_790_000_000_000;

/// Runs every check, each on fresh stores from `fresh`.
pub fn run(fresh: &dyn Fn() -> Stores) {
    logins_are_found_by_id_until_revoked(&fresh());
    logins_are_listed_by_user(&fresh());
    a_touch_is_seen_by_the_next_lookup(&fresh());
    tombstones_are_kept_per_kind_until_they_expire(&fresh());
    a_tombstone_buried_again_lasts_from_then(&fresh());
    open_tabs_are_counted_and_listed_per_user(&fresh());
    a_tab_handed_off_is_taken_once_by_any_of_its_ids(&fresh());
}

fn identity(user: &str) -> Identity {
    Identity {
        user: user.to_owned(),
        name: None,
        email: Some(format!("{user}@example.org")),
        groups: vec!["analysts".to_owned()],
    }
}

fn login(stores: &Stores, user: &str) -> Arc<LoginSession> {
    let login = Arc::new(LoginSession::new(identity(user), T0));
    stores.logins.insert(login.clone());
    login
}

fn logins_are_found_by_id_until_revoked(stores: &Stores) {
    let alice = login(stores, "alice");
    let found = stores
        .logins
        .get(alice.id())
        .expect("a stored login is found");
    assert_eq!(found.id(), alice.id(), "found by its id");
    assert_eq!(found.identity, identity("alice"), "with its identity");
    assert_eq!(found.started(), T0, "with its start time");
    assert!(
        stores
            .logins
            .by_key(alice.key())
            .is_some_and(|login| login.key() == alice.key()),
        "found by its key"
    );
    assert!(
        stores.logins.get(alice.key()).is_none(),
        "the key is not a cookie id"
    );
    assert!(
        stores.logins.get("no-such-login").is_none(),
        "unknown ids find nothing"
    );
    let revoked = stores
        .logins
        .revoke(alice.key(), EndReason::Logout)
        .expect("revoking a live login");
    assert!(revoked.is_revoked(), "the revoked login says so");
    assert!(
        alice.is_revoked(),
        "holders of the login see the revocation"
    );
    assert!(
        stores.logins.get(alice.id()).is_none(),
        "a revoked login is gone"
    );
    assert!(
        stores
            .logins
            .revoke(alice.key(), EndReason::Logout)
            .is_none(),
        "revoked once only"
    );
    let bob = login(stores, "bob");
    bob.revoke();
    assert!(
        stores.logins.get(bob.id()).is_none(),
        "a login revoked by a holder is gone from the store too"
    );
}

fn logins_are_listed_by_user(stores: &Stores) {
    let a1 = login(stores, "alice");
    let a2 = login(stores, "alice");
    let b = login(stores, "bob");
    let mut of_alice: Vec<String> = stores
        .logins
        .of_user("alice")
        .iter()
        .map(|l| l.id().to_owned())
        .collect();
    of_alice.sort();
    let mut expected = vec![a1.id().to_owned(), a2.id().to_owned()];
    expected.sort();
    assert_eq!(of_alice, expected, "a user's logins, and only theirs");
    stores.logins.revoke(a1.key(), EndReason::Logout);
    assert_eq!(
        stores.logins.of_user("alice").len(),
        1,
        "revoked logins are not listed"
    );
    assert_eq!(stores.logins.all().len(), 2, "every live login is listed");
    assert!(stores.logins.of_user("carol").is_empty());
    assert!(stores.logins.all().iter().any(|l| l.id() == b.id()));
}

fn a_touch_is_seen_by_the_next_lookup(stores: &Stores) {
    let alice = login(stores, "alice");
    alice.touch(T0 + 5_000);
    let found = stores.logins.get(alice.id()).expect("stored");
    assert_eq!(
        found.last_activity(),
        T0 + 5_000,
        "the last activity is kept"
    );
    found.touch(T0 + 1_000);
    assert_eq!(found.last_activity(), T0 + 5_000, "and never moves back");
}

fn notice(reason: EndReason) -> EndNotice {
    EndNotice {
        reason,
        page: Some("/report?id=42".to_owned()),
        embedded: true,
        sent_away: 1,
    }
}

fn tombstones_are_kept_per_kind_until_they_expire(stores: &Stores) {
    let ended = &stores.ended;
    let ttl = Duration::from_secs(3600);
    ended.bury(
        EndedId::AppSession("s-1"),
        &notice(EndReason::Idle),
        T0,
        ttl,
    );
    ended.bury(
        EndedId::PageToken("t-1"),
        &notice(EndReason::Logout),
        T0,
        ttl,
    );
    assert_eq!(
        ended.find(EndedId::AppSession("s-1"), T0 + 1),
        Some(notice(EndReason::Idle)),
        "an ended app session is told with its whole notice"
    );
    assert_eq!(
        ended.find(EndedId::PageToken("t-1"), T0 + 1),
        Some(notice(EndReason::Logout))
    );
    assert_eq!(
        ended.find(EndedId::PageToken("s-1"), T0 + 1),
        None,
        "an app session id is not a page token"
    );
    assert_eq!(ended.find(EndedId::AppSession("s-2"), T0 + 1), None);
    assert!(
        ended
            .find(EndedId::AppSession("s-1"), T0 + 3_599_999)
            .is_some(),
        "kept until its time is up"
    );
    assert_eq!(
        ended.find(EndedId::AppSession("s-1"), T0 + 3_600_000),
        None,
        "forgotten once its time is up"
    );
}

fn a_tombstone_buried_again_lasts_from_then(stores: &Stores) {
    let ended = &stores.ended;
    let ttl = Duration::from_secs(60);
    ended.bury(EndedId::AppSession("s"), &notice(EndReason::Idle), T0, ttl);
    ended.bury(
        EndedId::AppSession("s"),
        &notice(EndReason::Closed),
        T0 + 50_000,
        ttl,
    );
    // Burying something else later expires the first entry of the queue.
    ended.bury(
        EndedId::AppSession("other"),
        &notice(EndReason::Idle),
        T0 + 70_000,
        ttl,
    );
    assert_eq!(
        ended.find(EndedId::AppSession("s"), T0 + 100_000),
        Some(notice(EndReason::Closed)),
        "the later burial decides what is told and for how long"
    );
    assert_eq!(ended.find(EndedId::AppSession("s"), T0 + 110_000), None);
}

fn open_tabs_are_counted_and_listed_per_user(stores: &Stores) {
    let tabs = &stores.tabs;
    let record = |tab, user: Option<&str>| TabRecord {
        replica: stores.replica,
        tab,
        user: user.map(str::to_owned),
        opened: T0 + tab * 1000,
        last_activity: T0 + tab * 1000,
    };
    tabs.open(record(3, Some("alice")));
    tabs.open(record(1, Some("alice")));
    tabs.open(record(2, Some("bob")));
    tabs.open(record(4, None));
    assert_eq!(tabs.count_of("alice"), 2);
    assert_eq!(tabs.count_of("bob"), 1);
    assert_eq!(tabs.count_of("carol"), 0);
    assert_eq!(
        tabs.of_user("alice"),
        vec![record(1, Some("alice")), record(3, Some("alice"))],
        "a user's tabs, oldest first"
    );
    let all: Vec<u64> = tabs.all().iter().map(|r| r.tab).collect();
    assert_eq!(all, vec![1, 2, 3, 4], "every open tab, oldest first");
    assert_eq!(tabs.total(), 4);
    tabs.touch(stores.replica, 2, T0 + 60_000);
    tabs.touch(stores.replica, 2, T0 + 30_000);
    assert_eq!(
        tabs.of_user("bob")[0].last_activity,
        T0 + 60_000,
        "activity is kept, never moved back"
    );
    let elsewhere = TabRecord {
        replica: stores.replica.wrapping_add(1),
        ..record(1, Some("alice"))
    };
    tabs.open(elsewhere.clone());
    assert_eq!(tabs.count_of("alice"), 3, "tab numbers are per replica");
    assert_eq!(tabs.close(elsewhere.replica, 1), Some(elsewhere));
    assert_eq!(
        tabs.close(stores.replica, 1),
        Some(record(1, Some("alice")))
    );
    assert_eq!(tabs.close(stores.replica, 1), None, "closed once only");
    tabs.touch(stores.replica, 1, T0 + 60_000);
    assert_eq!(tabs.total(), 3, "touching a closed tab opens nothing");
    assert_eq!(tabs.count_of("alice"), 1);
    assert_eq!(
        tabs.close(stores.replica, 3),
        Some(record(3, Some("alice")))
    );
    assert_eq!(tabs.count_of("alice"), 0);
    assert!(tabs.of_user("alice").is_empty());
    assert_eq!(tabs.total(), 2);
    assert_eq!(
        tabs.close(stores.replica, 4),
        Some(record(4, None)),
        "tabs of nobody close too"
    );
}

fn a_tab_handed_off_is_taken_once_by_any_of_its_ids(stores: &Stores) {
    let tabs = &stores.tabs;
    let left = HandedOff {
        login: Some("login-key".to_owned()),
        user: Some("alice".to_owned()),
        opened: T0,
        last_activity: T0 + 5_000,
    };
    let ids = [EndedId::AppSession("s-1"), EndedId::PageToken("p-1")];
    let ttl = Duration::from_secs(15);
    tabs.hand_off(&ids, left.clone(), T0, ttl);
    assert_eq!(
        tabs.handed_off(&[EndedId::AppSession("s-1")], T0 + 1),
        Some(left.clone()),
        "found by its app session"
    );
    assert_eq!(
        tabs.handed_off(&[EndedId::PageToken("p-1")], T0 + 1),
        Some(left.clone()),
        "found by its page token"
    );
    assert_eq!(
        tabs.handed_off(&[EndedId::AppSession("p-1")], T0 + 1),
        None,
        "kinds of ids are apart"
    );
    assert_eq!(
        tabs.take_handed_off(&[EndedId::PageToken("p-1")], T0 + 2),
        Some(left.clone())
    );
    assert_eq!(
        tabs.handed_off(&[EndedId::AppSession("s-1")], T0 + 3),
        None,
        "taken under one id, gone under every id"
    );
    tabs.hand_off(&ids, left, T0, ttl);
    assert_eq!(
        tabs.take_handed_off(&ids, T0 + 15_000),
        None,
        "gone after its time"
    );
}
