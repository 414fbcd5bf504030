//! The API's OpenAPI 3.1 document, generated from the handlers' annotations (`utoipa`).

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::api;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "idlegate admin API",
        description = "Open tab sessions and login sessions of one idlegate, and ending them."
    ),
    paths(
        api::list_tabs,
        api::get_tab,
        api::end_tab,
        api::list_logins,
        api::end_user,
        api::memory
    ),
    components(schemas(
        api::Tab,
        api::TabPage,
        api::Ended,
        api::Login,
        api::LoginList,
        api::ErrorBody,
        api::Sort,
        api::StateFilter,
        api::MemorySample,
        api::MemoryHistoryBody
    )),
    modifiers(&Bearer),
    tags(
        (name = "tabs", description = "Tab sessions: one per browser tab"),
        (name = "users", description = "Login sessions and everything of a user"),
        (name = "app", description = "The app behind idlegate")
    )
)]
struct Doc;

/// The `bearer` security scheme the paths name.
struct Bearer;

impl Modify for Bearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The document, with idlegate's version.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = Doc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    doc
}
