use super::*;

fn err(toml: &str) -> ConfigError {
    Config::from_toml(toml).expect_err("config should be rejected")
}

#[test]
fn defaults_are_valid_and_documented_values() {
    let config = Config::from_toml("").unwrap();
    assert_eq!(config.listen, "127.0.0.1:8080".parse().unwrap());
    assert_eq!(config.tabs.idle_timeout, Some(Duration::from_secs(1800)));
    assert_eq!(
        config.tabs.max_lifetime,
        Some(Duration::from_secs(12 * 3600))
    );
    assert!(!config.tabs.end_while_running);
    assert_eq!(config.tabs.reconnect_grace, Duration::from_secs(15));
    assert_eq!(config.app.disconnected_session_ttl, Duration::from_secs(20));
    assert_eq!(config.app.base_path, "");
    assert_eq!(config.log.format, LogFormat::Text);
    assert!(config.upstream.is_none());
}

#[test]
fn off_disables_limits() {
    let config = Config::from_toml("[tabs]\nidle_timeout = \"off\"\nmax_lifetime = \"0\"").unwrap();
    assert_eq!(config.tabs.idle_timeout, None);
    assert_eq!(config.tabs.max_lifetime, None);
}

#[test]
fn bad_duration_names_the_key() {
    let e = err("[tabs]\nidle_timeout = \"15 min utes\"");
    assert_eq!(e.key(), Some("tabs.idle_timeout"));
    assert!(e.to_string().starts_with("tabs.idle_timeout: "), "{e}");
}

#[test]
fn unknown_key_is_an_error_naming_it() {
    let e = err("[tabs]\nidle_timout = \"15m\"").to_string();
    assert!(e.contains("tabs.idle_timout: unknown key"), "{e}");
    let e = err("lisen = \"1.2.3.4:5\"").to_string();
    assert!(e.contains("lisen: unknown key"), "{e}");
}

#[test]
fn wrong_type_names_the_key() {
    let e = err("[tabs]\nend_while_running = \"maybe\"").to_string();
    assert!(e.contains("tabs.end_while_running"), "{e}");
}

#[test]
fn bad_listen_and_upstream_are_rejected() {
    assert_eq!(err("listen = \"localhost\"").key(), Some("listen"));
    assert_eq!(err("upstream = \"https://x:1\"").key(), Some("upstream"));
    assert_eq!(err("upstream = \"127.0.0.1:8501\"").key(), Some("upstream"));
    assert_eq!(err("upstream = \"http://u:p@h:1\"").key(), Some("upstream"));
    let config = Config::from_toml("upstream = \"http://127.0.0.1:8501/\"").unwrap();
    let upstream = config.upstream.unwrap();
    assert_eq!(upstream.authority(), "127.0.0.1:8501");
    let v6 = Upstream::parse("http://[::1]:9000").unwrap();
    assert_eq!(v6.authority(), "[::1]:9000");
}

#[test]
fn base_path_is_normalized_and_checked() {
    let config = Config::from_toml("[app]\nbase_path = \"analytics/\"").unwrap();
    assert_eq!(config.app.base_path, "/analytics");
    let config = Config::from_toml("[app]\nbase_path = \"/\"").unwrap();
    assert_eq!(config.app.base_path, "");
    assert_eq!(
        err("[app]\nbase_path = \"/a/../b\"").key(),
        Some("app.base_path")
    );
    assert_eq!(
        err("[app]\nbase_path = \"/a b\"").key(),
        Some("app.base_path")
    );
}

#[test]
fn reconnect_grace_must_fit_inside_the_app_ttl() {
    let e = err("[tabs]\nreconnect_grace = \"19s\"");
    assert_eq!(e.key(), Some("tabs.reconnect_grace"));
    Config::from_toml("[tabs]\nreconnect_grace = \"18s\"").unwrap();
    assert_eq!(
        err("[app]\ndisconnected_session_ttl = \"20500ms\"").key(),
        Some("app.disconnected_session_ttl")
    );
}

#[test]
fn other_values_are_checked() {
    assert_eq!(err("[app]\nkind = \"dash\"").key(), Some("app.kind"));
    assert_eq!(err("[log]\nformat = \"xml\"").key(), Some("log.format"));
    assert_eq!(
        err("[proxy]\nmax_header_bytes = 100").key(),
        Some("proxy.max_header_bytes")
    );
    assert_eq!(
        err("[proxy]\nmax_message_bytes = 10").key(),
        Some("proxy.max_message_bytes")
    );
    assert_eq!(
        err("[proxy]\ntrusted_proxies = [\"10.0.0.0/33\"]").key(),
        Some("proxy.trusted_proxies")
    );
    assert_eq!(
        err("[launcher]\nstartup_timeout = \"0s\"").key(),
        Some("launcher.startup_timeout")
    );
    assert_eq!(
        err("[proxy]\nconnect_timeout = \"5\"").key(),
        Some("proxy.connect_timeout")
    );
}

#[test]
fn trusted_proxies_match_addresses_and_ranges() {
    let config =
        Config::from_toml("[proxy]\ntrusted_proxies = [\"10.0.0.0/8\", \"192.168.1.7\"]").unwrap();
    assert!(config.proxy.is_trusted("10.1.2.3".parse().unwrap()));
    assert!(config.proxy.is_trusted("192.168.1.7".parse().unwrap()));
    assert!(config.proxy.is_trusted("::ffff:10.9.9.9".parse().unwrap()));
    assert!(!config.proxy.is_trusted("192.168.1.8".parse().unwrap()));
}

#[test]
fn precedence_is_file_then_env_then_flags() {
    let dir = std::env::temp_dir().join(format!("idlegate-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("c.toml");
    std::fs::write(
        &file,
        "[tabs]\nidle_timeout = \"10m\"\nmax_lifetime = \"1h\"\n",
    )
    .unwrap();
    let sources = Sources {
        file: Some(file.clone()),
        toml: None,
        env: vec![
            ("IDLEGATE_TABS__MAX_LIFETIME".into(), "2h".into()),
            ("IDLEGATE_TABS__IDLE_TIMEOUT".into(), "20m".into()),
            ("IDLEGATE_TABS__END_WHILE_RUNNING".into(), "true".into()),
            ("IDLEGATE_PROXY__MAX_HEADER_BYTES".into(), "9000".into()),
            ("UNRELATED".into(), "x".into()),
        ],
        flags: vec![("tabs.idle_timeout", "30s".into())],
    };
    let config = Config::load(&sources).unwrap();
    assert_eq!(config.tabs.idle_timeout, Some(Duration::from_secs(30)));
    assert_eq!(config.tabs.max_lifetime, Some(Duration::from_secs(7200)));
    assert!(config.tabs.end_while_running);
    assert_eq!(config.proxy.max_header_bytes, 9000);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn unknown_env_key_and_missing_file_are_errors() {
    let e = Config::load(&Sources {
        env: vec![("IDLEGATE_TABS__IDLE".into(), "1m".into())],
        ..Sources::default()
    })
    .unwrap_err()
    .to_string();
    assert!(e.contains("tabs.idle: unknown key"), "{e}");
    let e = Config::load(&Sources {
        file: Some("/nonexistent/idlegate.toml".into()),
        ..Sources::default()
    })
    .unwrap_err()
    .to_string();
    assert!(e.contains("does not exist"), "{e}");
}

/// Every key path of the config, from the raw structs themselves.
fn key_paths() -> Vec<String> {
    fn walk(prefix: &str, value: &toml::Value, out: &mut Vec<String>) {
        if let toml::Value::Table(table) = value {
            for (key, inner) in table {
                let path = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                if inner.is_table() {
                    walk(&path, inner, out);
                } else {
                    out.push(path);
                }
            }
        }
    }
    let mut raw = RawConfig {
        upstream: Some("http://127.0.0.1:8501".into()),
        ..RawConfig::default()
    };
    raw.tabs.warn_before = Some("2m".into());
    raw.tabs.hidden_timeout = Some("30m".into());
    raw.login.users_file = Some("users.txt".into());
    raw.login.cookie_keys_file = Some("keys.txt".into());
    raw.login.oidc.issuer = Some("https://id.example".into());
    raw.login.oidc.client_id = Some("idlegate".into());
    raw.login.oidc.client_secret_file = Some("secret.txt".into());
    raw.login.oidc.client_secret = Some("s".into());
    raw.login.oidc.redirect_url = Some("https://x/_idlegate/oidc/callback".into());
    let value = toml::Value::try_from(raw).unwrap();
    let mut out = Vec::new();
    walk("", &value, &mut out);
    out
}

fn repo_file(rel: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn shipped_example_config_parses_to_the_defaults() {
    let text = repo_file("examples/idlegate.toml");
    let raw = Config::merge(&Sources {
        toml: Some(text.clone()),
        ..Sources::default()
    })
    .unwrap();
    assert_eq!(
        raw,
        RawConfig::default(),
        "the example must show the defaults"
    );
    Config::from_raw(raw).unwrap();
    for key in key_paths() {
        let leaf = key.rsplit('.').next().unwrap();
        assert!(
            text.lines()
                .any(|l| l.trim_start_matches("# ").starts_with(&format!("{leaf} ="))),
            "examples/idlegate.toml does not show {key}"
        );
    }
}

#[test]
fn every_key_is_in_the_configuration_reference() {
    let docs = repo_file("docs/configuration.md");
    for key in key_paths() {
        assert!(
            docs.contains(&format!("`{key}`")),
            "docs/configuration.md does not document {key}"
        );
        let env = format!("IDLEGATE_{}", key.to_uppercase().replace('.', "__"));
        assert!(
            docs.contains(&env),
            "docs/configuration.md does not name {env}"
        );
    }
}

#[test]
fn warning_lead_defaults_to_two_minutes_or_half_the_idle_limit() {
    let lead = |toml: &str| Config::from_toml(toml).unwrap().tabs.warn_before;
    assert_eq!(lead(""), Some(Duration::from_secs(120)));
    assert_eq!(
        lead("[tabs]\nidle_timeout = \"1m\""),
        Some(Duration::from_secs(30))
    );
    // Half of 30s is under the 20 seconds people need: no warning rather than a rushed one.
    assert_eq!(lead("[tabs]\nidle_timeout = \"30s\""), None);
    assert_eq!(
        lead("[tabs]\nidle_timeout = \"30s\"\nwarn_before = \"20s\""),
        Some(Duration::from_secs(20))
    );
    assert_eq!(lead("[tabs]\nwarn_before = \"off\""), None);
}

#[test]
fn warning_lead_is_checked() {
    let e = err("[tabs]\nwarn_before = \"19s\"");
    assert_eq!(e.key(), Some("tabs.warn_before"));
    assert!(e.to_string().contains("at least 20s"), "{e}");
    let e = err("[tabs]\nidle_timeout = \"1m\"\nwarn_before = \"1m\"");
    assert_eq!(e.key(), Some("tabs.warn_before"));
    assert!(
        e.to_string().contains("shorter than tabs.idle_timeout"),
        "{e}"
    );
    assert_eq!(
        err("[tabs]\nwarn_before = \"soon\"").key(),
        Some("tabs.warn_before")
    );
}

#[test]
fn hidden_limit_defaults_to_the_idle_limit() {
    let config = Config::from_toml("[tabs]\nidle_timeout = \"10m\"").unwrap();
    assert_eq!(config.tabs.hidden_timeout, Some(Duration::from_secs(600)));
    let config = Config::from_toml("[tabs]\nhidden_timeout = \"2m\"").unwrap();
    assert_eq!(config.tabs.hidden_timeout, Some(Duration::from_secs(120)));
    let config = Config::from_toml("[tabs]\nhidden_timeout = \"off\"").unwrap();
    assert_eq!(config.tabs.hidden_timeout, None);
    assert_eq!(
        err("[tabs]\nhidden_timeout = \"x\"").key(),
        Some("tabs.hidden_timeout")
    );
}

#[test]
fn busy_limit_defaults_to_an_hour_and_is_never_shorter_than_the_idle_limit() {
    let hour = Some(Duration::from_secs(3600));
    assert_eq!(Config::from_toml("").unwrap().tabs.busy_timeout, hour);
    let config = Config::from_toml("[tabs]\nidle_timeout = \"2h\"").unwrap();
    assert_eq!(config.tabs.busy_timeout, Some(Duration::from_secs(7200)));
    let config = Config::from_toml("[tabs]\nidle_timeout = \"off\"").unwrap();
    assert_eq!(config.tabs.busy_timeout, hour);
    let config = Config::from_toml("[tabs]\nbusy_timeout = \"45m\"").unwrap();
    assert_eq!(config.tabs.busy_timeout, Some(Duration::from_secs(2700)));
    let config = Config::from_toml("[tabs]\nbusy_timeout = \"off\"").unwrap();
    assert_eq!(config.tabs.busy_timeout, None);
    let shorter = err("[tabs]\nidle_timeout = \"10m\"\nbusy_timeout = \"5m\"");
    assert_eq!(shorter.key(), Some("tabs.busy_timeout"));
    assert!(
        shorter.to_string().contains("tabs.idle_timeout"),
        "{shorter}"
    );
    assert_eq!(
        err("[tabs]\nbusy_timeout = \"soon\"").key(),
        Some("tabs.busy_timeout")
    );
}

#[test]
fn report_interval_fits_short_limits() {
    let config = Config::from_toml("").unwrap();
    assert!(config.browser.inject);
    assert_eq!(config.browser.report_interval, Duration::from_secs(15));
    let config = Config::from_toml("[tabs]\nidle_timeout = \"8s\"").unwrap();
    assert_eq!(config.browser.report_interval, Duration::from_secs(2));
    let config = Config::from_toml("[tabs]\nhidden_timeout = \"4s\"").unwrap();
    assert_eq!(config.browser.report_interval, Duration::from_secs(1));
    assert_eq!(
        err("[browser]\nreport_interval = \"500ms\"").key(),
        Some("browser.report_interval")
    );
    assert_eq!(
        err("[browser]\nreport_interval = \"1h\"").key(),
        Some("browser.report_interval")
    );
}

#[test]
fn texts_are_checked_for_placeholders_they_cannot_use() {
    let e = err("[browser.texts]\nwarning_body = \"Ends in {minutes}\"");
    assert_eq!(e.key(), Some("browser.texts.warning_body"));
    assert!(e.to_string().contains("{countdown}"), "{e}");
    let e = err("[browser.texts]\nkeep_working = \"Stay {countdown}\"");
    assert_eq!(e.key(), Some("browser.texts.keep_working"));
    let e = err("[browser.texts.reasons]\nidle = \"after {countdown}\"");
    assert_eq!(e.key(), Some("browser.texts.reasons.idle"));
    let e = err("[browser.texts]\nstart_new = \"  \"");
    assert_eq!(e.key(), Some("browser.texts.start_new"));
    let e = err("[browser.texts]\nlang = \"en US\"");
    assert_eq!(e.key(), Some("browser.texts.lang"));
    let e = err("[browser.texts]\nwarning_titel = \"x\"");
    assert!(e.to_string().contains("browser.texts.warning_titel"), "{e}");
    let config =
        Config::from_toml("[browser.texts]\nwarning_body = \"Noch {countdown}.\"\nlang = \"de\"")
            .unwrap();
    assert_eq!(config.browser.texts.warning_body, "Noch {countdown}.");
    assert_eq!(config.browser.texts.lang, "de");
}

#[test]
fn login_is_checked_and_reads_its_files() {
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users");
    std::fs::write(
        &users,
        "# team\nalice:$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo\n",
    )
    .unwrap();
    let keys = dir.path().join("keys");
    std::fs::write(&keys, format!("{}\n{}\n", "A".repeat(44), "B".repeat(44))).unwrap();
    let config = Config::from_toml(&format!(
        "[login]\nmode = \"password\"\nusers_file = {users:?}\ncookie_keys_file = {keys:?}\n\
         idle_timeout = \"10m\"\n[tabs]\nmax_per_user = 3\non_limit = \"refuse\"\n"
    ))
    .unwrap();
    assert!(config.login.enabled());
    assert_eq!(config.login.cookie_keys.len(), 2);
    assert_eq!(
        config.tabs.login_idle_timeout,
        Some(Duration::from_secs(600))
    );
    assert_eq!(config.tabs.max_per_user, Some(3));
    assert_eq!(config.tabs.on_limit, OnLimit::Refuse);
    assert!(
        !format!("{config:?}").contains("argon2id"),
        "secrets must not be printed"
    );

    assert_eq!(
        err("[login]\nmode = \"password\"").key(),
        Some("login.users_file")
    );
    assert_eq!(err("[login]\nmode = \"oauth\"").key(), Some("login.mode"));
    assert_eq!(
        err("[login]\nmode = \"password\"\nusers_file = \"/nonexistent\"").key(),
        Some("login.users_file")
    );
    std::fs::write(&keys, "c2hvcnQ=\n").unwrap();
    assert_eq!(
        err(&format!("[login]\ncookie_keys_file = {keys:?}")).key(),
        Some("login.cookie_keys_file")
    );
    assert_eq!(
        err("listen = \"0.0.0.0:8080\"\n[login]\ncookie_secure = false").key(),
        Some("login.cookie_secure")
    );
    assert!(Config::from_toml("[login]\ncookie_secure = false").is_ok());
    assert_eq!(
        err("[tabs]\nmax_per_user = 2").key(),
        Some("tabs.max_per_user")
    );
    assert_eq!(
        err("[login]\nuser_header = \"bad header\"").key(),
        Some("login.user_header")
    );
    let none = Config::from_toml("").unwrap();
    assert_eq!(none.tabs.login_idle_timeout, None);
    // A hash asking for 4 TiB per check (it would abort the process at the first sign-in),
    // too many passes, or without its output, is refused naming the file.
    for hash in [
        "$argon2id$v=19$m=4294967295,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo",
        "$argon2id$v=19$m=19456,t=1000,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo",
        "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ",
        "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$bad!",
    ] {
        std::fs::write(&users, format!("alice:{hash}\n")).unwrap();
        let e = err(&format!(
            "[login]\nmode = \"password\"\nusers_file = {users:?}\n"
        ));
        assert_eq!(e.key(), Some("login.users_file"), "{hash}");
    }
}

#[test]
fn oidc_needs_its_provider_and_client() {
    let config = Config::from_toml(
        "[login]\nmode = \"oidc\"\n[login.oidc]\nissuer = \"https://id.example\"\n\
         client_id = \"app\"\nclient_secret = \"s3cret\"\n",
    )
    .unwrap();
    let LoginMode::Oidc(oidc) = &config.login.mode else {
        panic!("not oidc: {:?}", config.login.mode);
    };
    assert_eq!(oidc.scopes, ["openid", "email", "profile"]);
    assert!(
        !format!("{config:?}").contains("s3cret"),
        "secrets must not be printed"
    );
    assert_eq!(
        err("[login]\nmode = \"oidc\"").key(),
        Some("login.oidc.issuer")
    );
    assert_eq!(
        err("[login]\nmode = \"oidc\"\n[login.oidc]\nissuer = \"https://id\"").key(),
        Some("login.oidc.client_id")
    );
    assert_eq!(
        err("[login]\nmode = \"oidc\"\n[login.oidc]\nissuer = \"id.example\"\nclient_id = \"a\"")
            .key(),
        Some("login.oidc.issuer")
    );
    assert_eq!(
        err(
            "[login]\nmode = \"oidc\"\n[login.oidc]\nissuer = \"https://id\"\nclient_id = \"a\"\n\
             scopes = [\"email\"]"
        )
        .key(),
        Some("login.oidc.scopes")
    );
    assert_eq!(
        err(
            "[login]\nmode = \"oidc\"\n[login.oidc]\nissuer = \"https://id\"\nclient_id = \"a\"\n\
             client_secret = \"x\"\nclient_secret_file = \"/x\""
        )
        .key(),
        Some("login.oidc.client_secret")
    );
}

#[test]
fn the_warning_fits_the_login_idle_limit_too() {
    let users = "[login]\nmode = \"header\"\n";
    // Unset, the warning is at most half of the shorter idle limit (here the login's).
    let config = Config::from_toml(&format!(
        "[tabs]\nidle_timeout = \"30m\"\n{users}idle_timeout = \"1m\"\n"
    ))
    .unwrap();
    assert_eq!(config.tabs.warn_before, Some(Duration::from_secs(30)));
    // Half of a short login limit is under the 20 s floor: no warning rather than one from
    // the start.
    let config = Config::from_toml(&format!("{users}idle_timeout = \"30s\"\n")).unwrap();
    assert_eq!(config.tabs.warn_before, None);
    // Set, it must be shorter than the login's limit.
    let e = err(&format!(
        "[tabs]\nwarn_before = \"1m\"\n{users}idle_timeout = \"1m\"\n"
    ));
    assert_eq!(e.key(), Some("tabs.warn_before"));
    assert!(e.to_string().contains("login.idle_timeout"), "{e}");
    // Nobody signs in: the login limit does not apply.
    let config =
        Config::from_toml("[tabs]\nidle_timeout = \"10m\"\n[login]\nidle_timeout = \"1m\"\n")
            .unwrap();
    assert_eq!(config.tabs.warn_before, Some(Duration::from_secs(120)));
}

#[test]
fn ended_tabs_are_remembered_an_hour_unless_set() {
    let config = Config::from_toml("").unwrap();
    assert_eq!(config.tabs.ended_notice_ttl, Duration::from_secs(3600));
    let config = Config::from_toml("[tabs]\nended_notice_ttl = \"5m\"").unwrap();
    assert_eq!(config.tabs.ended_notice_ttl, Duration::from_secs(300));
    assert_eq!(
        err("[tabs]\nended_notice_ttl = \"0\"").key(),
        Some("tabs.ended_notice_ttl")
    );
}
