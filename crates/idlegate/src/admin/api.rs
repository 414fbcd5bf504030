//! The JSON API under `/api/v1/`: open tabs (listed, one, ended) and users (their logins,
//! ended with their tabs). Every answer that ends something says what ended, and every such
//! call is audited with the caller's token name.

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{AdminState, Caller, Handles};
use crate::lifecycle::{EndReason, Event};
use crate::store::{LoginLimits, TabRecord, UnixMillis};
use crate::tracker::{TabActivity, TabView};

/// Most tabs one page of a listing holds.
pub const MAX_LIMIT: usize = 500;
/// Tabs per page when `limit` is not given.
pub const DEFAULT_LIMIT: usize = 50;

/// An error answer.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong, for people.
    pub error: String,
}

pub(super) fn error(status: StatusCode, message: &str) -> Response {
    (
        status,
        Json(ErrorBody {
            error: message.to_owned(),
        }),
    )
        .into_response()
}

/// One open tab session.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Tab {
    /// A stable, opaque handle for this tab (not the app's session id, not a token).
    pub handle: String,
    /// The signed-in user's key; absent when nobody signs in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// `active`, `warned`, `hidden`, `busy` or `disconnected`; `remote` for a tab another
    /// replica holds (with a shared `store.url`): only its handle, user, age and human idle
    /// time are known here, so `script` is false and `rule` is `unknown`.
    pub state: String,
    /// Seconds since the tab opened.
    pub age_seconds: f64,
    /// Seconds since a person was last active in it (pings, timers and reconnects never
    /// count).
    pub human_idle_seconds: f64,
    /// Seconds until it ends unless a person does something; absent when nothing would end
    /// it now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ends_in_seconds: Option<f64>,
    /// The reason it would end then (`idle`, `busy_idle`, `hidden_idle`, `max_lifetime`,
    /// `closed`, `login_expired`); absent with `ends_in_seconds`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ends_for: Option<String>,
    /// Whether the page script reports from the page.
    pub script: bool,
    /// The rule that judges the tab's activity: `input` (the page script's evidence of a
    /// person) or `messages` (only messages a person sends); `unknown` for a tab another
    /// replica holds.
    pub rule: String,
}

/// A page of tabs.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TabPage {
    /// Tabs matching the filters, in all pages.
    pub total: usize,
    pub offset: usize,
    pub limit: usize,
    pub items: Vec<Tab>,
}

/// The order of a listing.
#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Sort {
    /// Longest human idle time first.
    #[default]
    Idle,
    /// Oldest first.
    Age,
    /// Soonest to end first (tabs that nothing would end last).
    Deadline,
}

/// A tab's state, as a filter.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StateFilter {
    Active,
    Warned,
    Hidden,
    Busy,
    Disconnected,
}

impl From<StateFilter> for TabActivity {
    fn from(state: StateFilter) -> Self {
        match state {
            StateFilter::Active => Self::Active,
            StateFilter::Warned => Self::Warned,
            StateFilter::Hidden => Self::Hidden,
            StateFilter::Busy => Self::Busy,
            StateFilter::Disconnected => Self::Disconnected,
        }
    }
}

/// Filters and paging of `GET /api/v1/tabs`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TabQuery {
    /// Skip this many tabs. Default 0.
    #[param(minimum = 0)]
    pub offset: Option<usize>,
    /// At most this many tabs (1 to 500). Default 50.
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<usize>,
    /// Only this user's tabs.
    pub user: Option<String>,
    /// Only tabs in this state: `active`, `warned`, `hidden`, `busy`, `disconnected`.
    pub state: Option<StateFilter>,
    /// `idle` (longest human idle time first; the default), `age` (oldest first) or
    /// `deadline` (soonest to end first).
    pub sort: Option<Sort>,
}

/// What an end call ended.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Ended {
    /// The handles of the tabs ended.
    pub tabs: Vec<String>,
    /// How many login sessions ended.
    pub logins: usize,
    /// The reason recorded: `admin`.
    pub reason: String,
}

/// One login session of a user.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Login {
    pub user: String,
    /// The person's display name, when the sign-in gives one apart from the key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Seconds since the person signed in.
    pub age_seconds: f64,
    /// Seconds since the person was last active in any tab of this login.
    pub idle_seconds: f64,
    /// Open tabs of this user (on every replica, with a shared `store.url`).
    pub tabs: usize,
    /// Seconds until the login ends unless its person does something in one of its tabs
    /// (`login.idle_timeout`), or ends anyway (`login.max_lifetime`); absent when neither
    /// applies.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ends_in_seconds: Option<f64>,
}

/// Login sessions.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LoginList {
    pub items: Vec<Login>,
}

/// Filter of `GET /api/v1/logins`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LoginQuery {
    /// Only this user's logins.
    pub user: Option<String>,
}

/// A tab another replica holds, as far as the store knows it.
fn remote_tab(record: &TabRecord, now: UnixMillis) -> Tab {
    let seconds = |since: UnixMillis| round(now.saturating_sub(since) as f64 / 1000.0);
    Tab {
        handle: Handles::handle_of(record.replica, record.tab),
        user: record.user.clone(),
        state: "remote".to_owned(),
        age_seconds: seconds(record.opened),
        human_idle_seconds: seconds(record.last_activity),
        ends_in_seconds: None,
        ends_for: None,
        script: false,
        rule: "unknown".to_owned(),
    }
}

/// The tabs other replicas hold (none with one process's memory).
fn remote_tabs(state: &AdminState) -> Vec<TabRecord> {
    let stores = state.tracker.stores();
    stores
        .tabs
        .all()
        .into_iter()
        .filter(|record| record.replica != stores.replica)
        .collect()
}

fn tab(state: &AdminState, view: &TabView) -> Tab {
    Tab {
        handle: state.handles.handle(view.tab),
        user: view.user.clone(),
        state: view.activity.as_str().to_owned(),
        age_seconds: round(view.age.as_secs_f64()),
        human_idle_seconds: round(view.human_idle.as_secs_f64()),
        ends_in_seconds: view.remaining.map(|r| round(r.as_secs_f64())),
        ends_for: view.deadline.map(|d| d.reason.as_str().to_owned()),
        script: view.script,
        rule: view.rule.as_str().to_owned(),
    }
}

/// Milliseconds are plenty for people.
fn round(seconds: f64) -> f64 {
    (seconds * 1000.0).round() / 1000.0
}

/// The tab another replica holds that `handle` names.
fn remote(state: &AdminState, handle: &str) -> Option<TabRecord> {
    let (replica, tab) = Handles::parse(handle)?;
    remote_tabs(state)
        .into_iter()
        .find(|record| record.replica == replica && record.tab == tab)
}

/// Lists open tabs, filtered, sorted and paged.
#[utoipa::path(get, path = "/api/v1/tabs", params(TabQuery), tag = "tabs",
    responses(
        (status = 200, description = "A page of tabs", body = TabPage),
        (status = 400, description = "A bad filter or page", body = ErrorBody),
        (status = 401, description = "No or a wrong token", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn list_tabs(
    State(state): State<Arc<AdminState>>,
    query: Result<Query<TabQuery>, QueryRejection>,
) -> Response {
    let query = match query {
        Ok(Query(query)) => query,
        Err(rejection) => return error(StatusCode::BAD_REQUEST, &rejection.body_text()),
    };
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return error(StatusCode::BAD_REQUEST, "limit must be 1 to 500");
    }
    let wanted = query.state.map(TabActivity::from);
    let now = state.tracker.stores().clock.now_ms();
    let mut tabs: Vec<Tab> = state
        .tracker
        .views()
        .iter()
        .filter(|v| query.user.is_none() || v.user == query.user)
        .filter(|v| wanted.is_none_or(|s| v.activity == s))
        .map(|v| tab(&state, v))
        .collect();
    if wanted.is_none() {
        tabs.extend(
            remote_tabs(&state)
                .iter()
                .filter(|r| query.user.is_none() || r.user == query.user)
                .map(|r| remote_tab(r, now)),
        );
    }
    let by = |x: f64, y: f64| y.total_cmp(&x);
    match query.sort.unwrap_or_default() {
        Sort::Idle => tabs.sort_by(|a, b| by(a.human_idle_seconds, b.human_idle_seconds)),
        Sort::Age => tabs.sort_by(|a, b| by(a.age_seconds, b.age_seconds)),
        // Soonest first; tabs nothing would end come last, oldest first.
        Sort::Deadline => tabs.sort_by(|a, b| match (a.ends_in_seconds, b.ends_in_seconds) {
            (Some(x), Some(y)) => x.total_cmp(&y),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => by(a.age_seconds, b.age_seconds),
        }),
    }
    let total = tabs.len();
    let offset = query.offset.unwrap_or(0);
    let items = tabs.into_iter().skip(offset).take(limit).collect();
    Json(TabPage {
        total,
        offset,
        limit,
        items,
    })
    .into_response()
}

/// One open tab.
#[utoipa::path(get, path = "/api/v1/tabs/{handle}", tag = "tabs",
    params(("handle" = String, Path, description = "The tab's handle")),
    responses(
        (status = 200, description = "The tab", body = Tab),
        (status = 401, description = "No or a wrong token", body = ErrorBody),
        (status = 404, description = "No open tab has this handle", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn get_tab(State(state): State<Arc<AdminState>>, Path(handle): Path<String>) -> Response {
    if let Some(view) = state
        .handles
        .tab(&handle)
        .and_then(|id| state.tracker.view(id))
    {
        return Json(tab(&state, &view)).into_response();
    }
    let now = state.tracker.stores().clock.now_ms();
    match remote(&state, &handle) {
        Some(record) => Json(remote_tab(&record, now)).into_response(),
        None => error(StatusCode::NOT_FOUND, "no open tab has this handle"),
    }
}

/// Ends one tab (reason `admin`): its page shows the ended screen.
#[utoipa::path(delete, path = "/api/v1/tabs/{handle}", tag = "tabs",
    params(("handle" = String, Path, description = "The tab's handle")),
    responses(
        (status = 200, description = "What ended", body = Ended),
        (status = 401, description = "No or a wrong token", body = ErrorBody),
        (status = 404, description = "No open tab has this handle", body = ErrorBody),
        (status = 503, description = "Another replica holds the tab and the shared store is out of reach", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn end_tab(
    State(state): State<Arc<AdminState>>,
    Extension(caller): Extension<Caller>,
    Path(handle): Path<String>,
) -> Response {
    let ended = match (state.handles.tab(&handle), remote(&state, &handle)) {
        (Some(id), _) => state.tracker.end(id, EndReason::Admin),
        (None, Some(_)) if !state.tracker.stores().cluster.available() => {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "another replica holds this tab, and the shared store that would ask it cannot be reached",
            );
        }
        // The replica holding it ends it, within a second.
        (None, Some(record)) => {
            let tracker = &state.tracker;
            tracker.end_anywhere(record.replica, record.tab, EndReason::Admin);
            true
        }
        (None, None) => false,
    };
    if !ended {
        return error(StatusCode::NOT_FOUND, "no open tab has this handle");
    }
    state.events.publish(|| Event::AdminAction {
        caller: caller.0.clone(),
        action: "end_tab",
        target: handle.clone(),
        tabs: 1,
        logins: 0,
    });
    Json(Ended {
        tabs: vec![handle],
        logins: 0,
        reason: EndReason::Admin.as_str().to_owned(),
    })
    .into_response()
}

/// Login sessions, of one user or all.
#[utoipa::path(get, path = "/api/v1/logins", params(LoginQuery), tag = "users",
    responses(
        (status = 200, description = "Login sessions", body = LoginList),
        (status = 401, description = "No or a wrong token", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn list_logins(
    State(state): State<Arc<AdminState>>,
    query: Result<Query<LoginQuery>, QueryRejection>,
) -> Response {
    let query = match query {
        Ok(Query(query)) => query,
        Err(rejection) => return error(StatusCode::BAD_REQUEST, &rejection.body_text()),
    };
    let stores = state.tracker.stores();
    let logins = match &query.user {
        Some(user) => stores.logins.of_user(user),
        None => stores.logins.all(),
    };
    let now = stores.clock.now_ms();
    let seconds = |ms: u64| round(now.saturating_sub(ms) as f64 / 1000.0);
    let policy = state.tracker.policy();
    let limits = LoginLimits {
        idle_timeout: policy.login_idle_timeout,
        max_lifetime: policy.login_max_lifetime,
    };
    let mut items: Vec<Login> = logins
        .iter()
        .map(|login| Login {
            user: login.identity.user.clone(),
            name: login.identity.name.clone(),
            age_seconds: seconds(login.started()),
            idle_seconds: seconds(login.last_activity()),
            tabs: stores.tabs.count_of(&login.identity.user),
            ends_in_seconds: login
                .deadline(&limits)
                .map(|at| round(at.saturating_sub(now) as f64 / 1000.0)),
        })
        .collect();
    items.sort_by(|a, b| {
        a.user
            .cmp(&b.user)
            .then(b.age_seconds.total_cmp(&a.age_seconds))
    });
    Json(LoginList { items }).into_response()
}

/// Ends every tab and every login of a user (reason `admin`): their pages show the ended
/// screen and they must sign in again.
#[utoipa::path(delete, path = "/api/v1/users/{user}", tag = "users",
    params(("user" = String, Path, description = "The user's key")),
    responses(
        (status = 200, description = "What ended", body = Ended),
        (status = 401, description = "No or a wrong token", body = ErrorBody),
        (status = 404, description = "The user has no tab and no login", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn end_user(
    State(state): State<Arc<AdminState>>,
    Extension(caller): Extension<Caller>,
    Path(user): Path<String>,
) -> Response {
    // The store's index by user, not a view of every tab; other replicas end theirs.
    let tabs: Vec<String> = state
        .tracker
        .stores()
        .tabs
        .of_user(&user)
        .into_iter()
        .map(|record| Handles::handle_of(record.replica, record.tab))
        .collect();
    state.tracker.end_user(&user, EndReason::Admin);
    let logins = state.auth.end_logins_of(&user, EndReason::Admin);
    if tabs.is_empty() && logins == 0 {
        return error(StatusCode::NOT_FOUND, "the user has no tab and no login");
    }
    state.events.publish(|| Event::AdminAction {
        caller: caller.0.clone(),
        action: "end_user",
        target: user.clone(),
        tabs: tabs.len(),
        logins,
    });
    Json(Ended {
        tabs,
        logins,
        reason: EndReason::Admin.as_str().to_owned(),
    })
    .into_response()
}

/// One sample of the app's memory.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MemorySample {
    /// Unix time, seconds.
    pub time: f64,
    /// Resident memory of the app's process tree, bytes.
    pub bytes: u64,
}

/// The app's memory over the last hour, oldest first; empty unless idlegate started the app.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MemoryHistoryBody {
    pub samples: Vec<MemorySample>,
}

/// The app's memory over the last hour (sampled every 30 seconds; launcher mode).
#[utoipa::path(get, path = "/api/v1/memory", tag = "app",
    responses(
        (status = 200, description = "The samples", body = MemoryHistoryBody),
        (status = 401, description = "No or a wrong token", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn memory(State(state): State<Arc<AdminState>>) -> Response {
    let samples = state
        .memory
        .samples()
        .into_iter()
        .map(|(time, bytes)| MemorySample { time, bytes })
        .collect();
    Json(MemoryHistoryBody { samples }).into_response()
}
