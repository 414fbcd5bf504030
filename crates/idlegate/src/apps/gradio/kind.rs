//! Gradio as a [`Kind`]: its launch (`python app.py` with `app.kind = "gradio"`, or `gradio
//! app.py`), told where to listen by environment variables `demo.launch()` reads
//! (`GRADIO_SERVER_NAME`, `GRADIO_SERVER_PORT`, `GRADIO_ROOT_PATH`, `blocks.py`), the app for
//! a running one, and the check that one answers.

use std::sync::Arc;

use futures_util::future::BoxFuture;

use super::Gradio;
use crate::apps::collect::python_launch;
use crate::apps::kind::{
    program_positions, BasePathCheck, Kind, LaunchPlan, LaunchRequest, Runtime,
};
use crate::apps::probe::{get_body, serves_at_root};
use crate::apps::App;
use crate::config::{Config, Upstream};

/// The Gradio kind.
pub struct GradioKind;

/// The one instance.
pub static KIND: GradioKind = GradioKind;

/// The environment variables that say where the app listens; idlegate sets them, over any
/// value in its own environment.
const OWNED_ENV: [&str; 3] = [
    "GRADIO_SERVER_NAME",
    "GRADIO_SERVER_PORT",
    "GRADIO_ROOT_PATH",
];

/// Whether the command is `gradio <script>.py …` (also `python -m gradio …`).
fn runs_gradio_script(command: &[String]) -> bool {
    program_positions(command, "gradio").any(|at| {
        command
            .get(at + 1)
            .is_some_and(|script| script.ends_with(".py"))
    })
}

impl Kind for GradioKind {
    fn name(&self) -> &'static str {
        "gradio"
    }

    fn recognizes(&self, command: &[String]) -> bool {
        runs_gradio_script(command)
    }

    fn plan_launch(&self, request: &LaunchRequest<'_>) -> Result<LaunchPlan, String> {
        if request.command.is_empty() {
            return Err(
                "the command must run the app: `python app.py` (or `gradio app.py`)".to_owned(),
            );
        }
        for name in OWNED_ENV
            .iter()
            .filter(|name| (request.env)(name).is_some())
        {
            // Container images often set GRADIO_SERVER_NAME=0.0.0.0: the app must listen
            // where idlegate reaches it, and only there.
            tracing::info!(
                variable = name,
                "idlegate sets this for the app, over the value in its environment"
            );
        }
        let (mut env, hook) = python_launch(request)?;
        let base_path = request.config.app.base_path.clone();
        env.push(("GRADIO_SERVER_NAME".to_owned(), "127.0.0.1".into()));
        env.push((
            "GRADIO_SERVER_PORT".to_owned(),
            request.port.to_string().into(),
        ));
        if !base_path.is_empty() {
            env.push(("GRADIO_ROOT_PATH".to_owned(), base_path.clone().into()));
        }
        Ok(LaunchPlan {
            command: request.command.to_vec(),
            env,
            base_path,
            health_path: "/gradio_api/app_id".to_owned(),
            hook,
        })
    }

    fn app(
        &self,
        config: &Config,
        upstream: &Upstream,
        runtime: Option<Arc<dyn Runtime>>,
    ) -> Arc<dyn App> {
        Arc::new(Gradio::new(&config.app.base_path, upstream).with_runtime(runtime))
    }

    fn identifies<'a>(&'a self, upstream: &'a Upstream) -> BoxFuture<'a, bool> {
        // `{"app_id": …}`: Gradio's alone. It serves at the root whatever its root path.
        Box::pin(async move {
            get_body(upstream, "/gradio_api/app_id", 4096)
                .await
                .ok()
                .and_then(|body| serde_json::from_slice::<serde_json::Value>(&body).ok())
                .is_some_and(|body| body.get("app_id").is_some())
        })
    }

    fn check_base_path<'a>(
        &'a self,
        upstream: &'a Upstream,
        _base_path: &'a str,
    ) -> BoxFuture<'a, BasePathCheck> {
        // The app serves at the root whatever app.base_path is: idlegate takes the base
        // path off. Only whether it answers is checked.
        Box::pin(serves_at_root(upstream, "/gradio_api/app_id", "Gradio"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<String> {
        text.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn gradio_scripts_are_recognized() {
        assert!(runs_gradio_script(&words("gradio app.py")));
        assert!(runs_gradio_script(&words(
            "uv run --with gradio gradio app.py"
        )));
        assert!(runs_gradio_script(&words("python -m gradio demo/app.py")));
        assert!(!runs_gradio_script(&words("python app.py")));
        assert!(!runs_gradio_script(&words("gradio deploy")));
        assert!(!runs_gradio_script(&words("streamlit run app.py")));
    }
}
