//! Streamlit as a [`Kind`]: its launch command, the app for a running one, and the check of
//! its base path.

use std::sync::Arc;

use futures_util::future::BoxFuture;

use super::reclaim::{AfterReclaim, Reclaimer};
use super::{launch, options, probe, Streamlit};
use crate::apps::collect::python_launch;
use crate::apps::kind::{
    subcommand_position, BasePathCheck, Kind, LaunchPlan, LaunchRequest, Runtime,
};
use crate::apps::App;
use crate::config::{normalize_base_path, Config, Upstream};

/// The Streamlit kind.
pub struct StreamlitKind;

/// The one instance.
pub static KIND: StreamlitKind = StreamlitKind;

impl Kind for StreamlitKind {
    fn name(&self) -> &'static str {
        "streamlit"
    }

    fn recognizes(&self, command: &[String]) -> bool {
        subcommand_position(command, "streamlit", "run").is_some()
    }

    fn plan_launch(&self, request: &LaunchRequest<'_>) -> Result<LaunchPlan, String> {
        let config = request.config;
        let base_path = base_path(request)?;
        let mut command = launch::command(
            request.command,
            request.port,
            &base_path,
            config.app.disconnected_session_ttl,
        )?;
        if config.login.enabled() {
            command = launch::with_identity_headers(command, &config.login.headers)?;
        }
        let (env, hook) = python_launch(request)?;
        Ok(LaunchPlan {
            command,
            env,
            health_path: format!("{base_path}/_stcore/health"),
            base_path,
            hook,
        })
    }

    fn app(
        &self,
        config: &Config,
        upstream: &Upstream,
        runtime: Option<Arc<dyn Runtime>>,
    ) -> Arc<dyn App> {
        let base = &config.app.base_path;
        let after_reclaim: Option<AfterReclaim> = runtime.clone().map(|runtime| {
            Arc::new(move || {
                runtime.collect();
            }) as AfterReclaim
        });
        let reclaimer = Reclaimer::start(
            upstream.clone(),
            format!("{base}/_stcore/stream"),
            config.app.disconnected_session_ttl,
            after_reclaim,
        );
        Arc::new(
            Streamlit::new(base, Some(reclaimer))
                .with_resume_probe(upstream.clone())
                .with_runtime(runtime),
        )
    }

    fn check_base_path<'a>(
        &'a self,
        upstream: &'a Upstream,
        base: &'a str,
    ) -> BoxFuture<'a, BasePathCheck> {
        Box::pin(async move {
            match probe::check_base_path(upstream, base).await {
                probe::BasePathCheck::Serves => BasePathCheck::Serves,
                probe::BasePathCheck::Elsewhere { at_root: true } => {
                    BasePathCheck::Elsewhere(format!(
                        "app.base_path is {base:?} but the app at {upstream} serves at the \
                         root (its server.baseUrlPath is \"\"); set app.base_path to \"\" or \
                         start the app with --server.baseUrlPath {}",
                        base.trim_start_matches('/')
                    ))
                }
                probe::BasePathCheck::Elsewhere { at_root: false } => {
                    BasePathCheck::Elsewhere(format!(
                        "the app at {upstream} does not answer its health check under \
                         app.base_path {base:?} ({base}/_stcore/health): its \
                         server.baseUrlPath is another one; set app.base_path (or the path \
                         of --upstream, as in {upstream}/<its base path>) to the app's \
                         server.baseUrlPath"
                    ))
                }
                probe::BasePathCheck::Unreachable(why) => BasePathCheck::Unreachable(why),
            }
        })
    }
}

/// The base path the app will serve under: idlegate's `app.base_path`, or the app's own
/// when only the app sets one ([`options`]). Differing values that idlegate cannot override
/// (the app's own flag) are an error naming both.
fn base_path(request: &LaunchRequest<'_>) -> Result<String, String> {
    let launch = options::Launch {
        command: request.command,
        env: request.env,
        cwd: request.cwd.clone(),
        home: request.home.clone(),
    };
    let ours = &request.config.app.base_path;
    let Some((value, source)) = options::base_url_path(&launch) else {
        return Ok(ours.clone());
    };
    let theirs = normalize_base_path(&value)
        .map_err(|reason| format!("the app's server.baseUrlPath from {source}: {reason}"))?;
    match (ours.as_str(), source) {
        (ours, _) if ours == theirs => Ok(theirs),
        ("", source) => {
            tracing::info!(base_path = %theirs, from = %source, "serving under the app's own base path");
            Ok(theirs)
        }
        (ours, options::Source::Flag) => Err(format!(
            "app.base_path is {ours:?} but the app's command sets --server.baseUrlPath to \
             {theirs:?}; give the base path in one place only: app.base_path or the command"
        )),
        (ours, source) => {
            tracing::info!(base_path = %ours, app_value = %theirs, from = %source, "app.base_path overrides the app's own server.baseUrlPath");
            Ok(ours.to_owned())
        }
    }
}
