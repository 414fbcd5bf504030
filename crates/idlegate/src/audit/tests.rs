use std::time::Duration;

use super::*;
use crate::lifecycle::{ActivityRule, EndReason, TabEnd};

/// The lines of `path` once there are `n` (the writer thread writes them), or after about
/// 5 seconds whatever is there.
fn read_lines(path: &Path, n: usize) -> Vec<Value> {
    for attempt in 0.. {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect();
        if lines.len() >= n || attempt == 250 {
            return lines;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    unreachable!("the loop returns")
}

#[test]
fn a_tab_s_life_is_written_with_its_user_and_hashed_ids_and_rotation_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let audit = Audit::start(&AuditTarget::File(path.clone())).unwrap();
    let session = "6f1c6a5e-1111-4c1e-9d2a-0123456789ab".to_owned();
    for event in [
        Event::LoginStarted {
            user: "alice".to_owned(),
        },
        Event::TabOpened {
            tab: 7,
            user: Some("alice".to_owned()),
            app_session: Some(session.clone()),
            resumed: false,
            script: true,
        },
        Event::Activity {
            tab: 7,
            source: ActivityRule::Input,
        },
        Event::Warned { tab: 7 },
        Event::KeptWorking { tab: 7 },
        Event::TabEnded(Box::new(TabEnd {
            tab: 7,
            reason: EndReason::Idle,
            rule: ActivityRule::Input,
            app_session: Some(session.clone()),
            lifetime: Duration::from_millis(90_500),
            human_idle: Duration::from_secs(60),
            releases: Vec::new(),
        })),
        Event::SignInFailed {
            user: Some(short_hash("mallory")),
            client: "192.0.2.7".parse().unwrap(),
            method: "password",
        },
        Event::AdminAction {
            caller: "ops".to_owned(),
            action: "end_user",
            target: "bob".to_owned(),
            tabs: 2,
            logins: 1,
        },
    ] {
        audit.on_event(&event);
    }
    let lines = read_lines(&path, 7);
    let events: Vec<&str> = lines.iter().filter_map(|l| l["event"].as_str()).collect();
    assert_eq!(
        events,
        [
            "signed_in",
            "tab_started",
            "warned",
            "kept_working",
            "tab_ended",
            "sign_in_failed",
            "admin_action"
        ],
        "activity is not audited"
    );
    let ended = &lines[4];
    assert_eq!(
        ended["user"], "alice",
        "the tab's user, remembered from its start"
    );
    assert_eq!(ended["reason"], "idle");
    assert_eq!(ended["human_idle_seconds"], 60.0);
    assert_eq!(ended["lifetime_seconds"], 90.5);
    assert_eq!(ended["app_session"], short_hash(&session));
    assert!(ended["time"].as_str().is_some_and(|t| t.ends_with('Z')));
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.contains(&session), "raw ids never written");
    assert!(!text.contains("mallory"));
    assert_eq!(lines[6]["caller"], "ops");

    // Rotation: the file is moved away, SIGHUP reopens a new one at the path.
    std::fs::rename(&path, dir.path().join("audit.log.1")).unwrap();
    audit.reopen();
    audit.on_event(&Event::LoginStarted {
        user: "bob".to_owned(),
    });
    let lines = read_lines(&path, 1);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["user"], "bob");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
}
