//! The command line that starts Streamlit behind idlegate.
//!
//! idlegate owns the settings that make it work: the port and address (loopback only, so
//! browsers cannot bypass idlegate), headless mode, the base path and how long Streamlit
//! keeps closed sessions. They are inserted right after `run`, where Streamlit reads its
//! options; the user's own command must not set them.

use std::time::Duration;

use crate::config::IdentityHeaders;

/// Settings idlegate passes and the user's command must not repeat. (The base path may be
/// in the command: idlegate then serves under it; see [`super::options`].)
const OWNED: [&str; 3] = [
    "--server.port",
    "--server.address",
    "--server.disconnectedSessionTTL",
];
const BASE_URL_PATH: &str = "--server.baseUrlPath";

/// Inserts idlegate's settings into `streamlit run …` (also `python -m streamlit run …`).
pub fn command(
    command: &[String],
    port: u16,
    base_path: &str,
    disconnected_session_ttl: Duration,
) -> Result<Vec<String>, String> {
    let streamlit = command
        .iter()
        .position(|arg| {
            let name = arg.rsplit('/').next().unwrap_or(arg);
            name == "streamlit" || name == "streamlit.exe"
        })
        .ok_or_else(|| "the command must run Streamlit, like `streamlit run app.py`".to_owned())?;
    let run = streamlit + 1;
    if command.get(run).map(String::as_str) != Some("run") {
        return Err("the command must be `streamlit run <script> [args]`".to_owned());
    }
    for arg in &command[run..] {
        if arg == "--" {
            break;
        }
        if let Some(owned) = OWNED
            .iter()
            .find(|o| arg == *o || arg.starts_with(&format!("{o}=")))
        {
            return Err(format!(
                "remove {owned} from the command: idlegate sets it (see `listen`, \
                 `app.base_path` and `app.disconnected_session_ttl`)"
            ));
        }
    }
    let mut settings = vec![
        "--server.port".to_owned(),
        port.to_string(),
        "--server.address".to_owned(),
        "127.0.0.1".to_owned(),
        "--server.headless".to_owned(),
        "true".to_owned(),
        "--server.disconnectedSessionTTL".to_owned(),
        disconnected_session_ttl.as_secs().to_string(),
        "--browser.gatherUsageStats".to_owned(),
        "false".to_owned(),
    ];
    // The command's own base path, if it has one, is the one idlegate serves under.
    if !base_path.is_empty() && super::options::flag(command, BASE_URL_PATH).is_none() {
        settings.push(BASE_URL_PATH.to_owned());
        settings.push(base_path.trim_start_matches('/').to_owned());
    }
    let mut full = command[..=run].to_vec();
    full.extend(settings);
    full.extend_from_slice(&command[run + 1..]);
    Ok(full)
}

/// Streamlit's option that makes `st.user` read identity headers.
const TRUSTED_USER_HEADERS: &str = "--server.trustedUserHeaders";

/// Adds `--server.trustedUserHeaders` to a command made by [`command`], so `st.user` shows the
/// person idlegate signed in (user as `name`, then `email` and `groups`). The user's command
/// must not set it.
pub fn with_identity_headers(
    mut full: Vec<String>,
    headers: &IdentityHeaders,
) -> Result<Vec<String>, String> {
    if full.iter().any(|arg| {
        arg == TRUSTED_USER_HEADERS || arg.starts_with(&format!("{TRUSTED_USER_HEADERS}="))
    }) {
        return Err(format!(
            "remove {TRUSTED_USER_HEADERS} from the command: with login.mode set, idlegate \
             sets it (see login.user_header)"
        ));
    }
    let mapping = serde_json::json!({
        headers.user.as_str(): "sub",
        headers.name.as_str(): "name",
        headers.email.as_str(): "email",
        headers.groups.as_str(): "groups",
    });
    let run = full
        .iter()
        .position(|arg| arg == "run")
        .map_or(full.len(), |i| i + 1);
    full.splice(
        run..run,
        [TRUSTED_USER_HEADERS.to_owned(), mapping.to_string()],
    );
    Ok(full)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn settings_go_right_after_run() {
        let full = command(
            &args("streamlit run app.py -- --x 1"),
            9000,
            "",
            Duration::from_secs(20),
        )
        .unwrap();
        assert_eq!(&full[..2], &["streamlit", "run"]);
        assert_eq!(full[2..4], ["--server.port", "9000"]);
        assert!(full
            .windows(2)
            .any(|w| w == ["--server.disconnectedSessionTTL", "20"]));
        assert_eq!(&full[full.len() - 4..], &["app.py", "--", "--x", "1"]);
    }

    #[test]
    fn python_module_form_and_base_path_work() {
        let full = command(
            &args("/venv/bin/python -m streamlit run app.py"),
            1,
            "/a/b",
            Duration::from_secs(5),
        )
        .unwrap();
        assert!(full
            .windows(2)
            .any(|w| w == ["--server.baseUrlPath", "a/b"]));
        assert_eq!(full.last().unwrap(), "app.py");
    }

    #[test]
    fn owned_settings_and_other_commands_are_refused() {
        assert!(command(
            &args("streamlit run app.py --server.port 1"),
            1,
            "",
            Duration::from_secs(5)
        )
        .unwrap_err()
        .contains("--server.port"));
        // The app's own base path is the one idlegate serves under (it is not repeated).
        let own = command(
            &args("streamlit run app.py --server.baseUrlPath=x"),
            1,
            "/x",
            Duration::from_secs(5),
        )
        .unwrap();
        assert_eq!(
            own.iter().filter(|a| a.contains("baseUrlPath")).count(),
            1,
            "{own:?}"
        );
        assert!(command(
            &args("streamlit run app.py -- --server.port 1"),
            1,
            "",
            Duration::from_secs(5)
        )
        .is_ok());
        assert!(command(&args("python app.py"), 1, "", Duration::from_secs(5)).is_err());
        assert!(command(&args("streamlit hello"), 1, "", Duration::from_secs(5)).is_err());
    }

    #[test]
    fn identity_headers_are_handed_to_st_user() {
        let headers = IdentityHeaders {
            user: "x-forwarded-user".parse().unwrap(),
            name: "x-forwarded-preferred-username".parse().unwrap(),
            email: "x-forwarded-email".parse().unwrap(),
            groups: "x-forwarded-groups".parse().unwrap(),
        };
        let full = with_identity_headers(args("streamlit run app.py"), &headers).unwrap();
        assert_eq!(full[2], "--server.trustedUserHeaders");
        let mapping: serde_json::Value = serde_json::from_str(&full[3]).unwrap();
        // The key is `sub` (as with Streamlit's own OpenID sign-in), the display name `name`.
        assert_eq!(mapping["x-forwarded-user"], "sub");
        assert_eq!(mapping["x-forwarded-preferred-username"], "name");
        assert_eq!(mapping["x-forwarded-email"], "email");
        assert_eq!(full[4], "app.py");
        assert!(with_identity_headers(
            args("streamlit run --server.trustedUserHeaders={} app.py"),
            &headers
        )
        .is_err());
    }
}
