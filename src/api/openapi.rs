//! The API's OpenAPI 3.1 document, generated from the code (utoipa): each handler's
//! `#[utoipa::path(...)]` says its method, path, parameters, body and answers, and the types
//! it takes and answers derive `utoipa::ToSchema` (the same types the CLI's `--json`
//! prints). `GET /api/v1/openapi.json` answers it, with a token like every `/api/` route.
//!
//! The routes and the document come from one list, [`super::v1`]: `routes!(file::handler)`
//! registers the handler's route in the axum router *and* its operation in the document, so
//! nothing is served undocumented and nothing documented is not served (`tests/it/openapi.rs`
//! asks a real daemon for every operation). What every `/api/v1` route answers alike is added
//! here, not per handler ([`shared_answers`]): the `bearerAuth` security, the 401 of the token
//! check and the 503 of a store that does not answer (or of an answer over the time limit).
//! A `request_body = Option<T>` is a body that may be left out ([`optional_bodies`]: not
//! required, a `T` when sent — never `null`).
//! `/healthz` stays outside the document (no token, not part of `/api/v1`).
//!
//! To add a route under `/api/v1`:
//!
//! 1. annotate its handler (the path relative to `/api/v1`, in axum's `{param}` form):
//!    ```text
//!    #[utoipa::path(
//!        get,
//!        path = "/things/{id}",
//!        operation_id = "thing",           // unique in the document (default: the fn's name)
//!        tag = "things",                   // the handler file's
//!        params(("id" = String, Path, description = "…")),  // or an `IntoParams` struct
//!        request_body = ThingBody,         // `Option<ThingBody>`: a body that may be left out
//!        responses(
//!            (status = 200, description = "…", body = Thing),
//!            (status = 404, description = "…", body = ErrorBody),
//!        ),
//!    )]
//!    ```
//!    listing every status the handler itself answers (not the shared 401 and 503);
//! 2. derive `utoipa::ToSchema` on its body and answer types and `utoipa::IntoParams` (with
//!    `#[into_params(parameter_in = Query)]`) on its query, with `#[schema(value_type = …)]`
//!    where serde writes something else than the Rust type says (a `serde_json::Value`
//!    object: `Object`; a type serialized as a string: `String`);
//! 3. register it in [`super::v1`] with `.routes(routes!(file::handler))`, never `.route(…)`;
//! 4. add it to `SERVED` in `tests/it/openapi.rs`.

use std::sync::Arc;

use axum::Extension;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use utoipa::openapi::path::Operation;
use utoipa::openapi::schema::{Schema, SchemaType, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    ComponentsBuilder, Content, InfoBuilder, OpenApi, OpenApiBuilder, Ref, RefOr, Required,
    ResponseBuilder,
};
use utoipa_axum::router::OpenApiRouter;

use super::Api;
use super::error::ErrorBody;

/// Where the documented routes are served.
pub const PREFIX: &str = "/api/v1";

/// The name of the token's security scheme.
pub const BEARER: &str = "bearerAuth";

/// The shared answers' names under `components.responses`.
const UNAUTHORIZED: &str = "Unauthorized";
const UNAVAILABLE: &str = "Unavailable";

/// `v1` (the `/api/v1` routes) nested under [`PREFIX`], split into the axum router and its
/// finished document.
pub fn split(v1: OpenApiRouter<Api>) -> (axum::Router<Api>, OpenApi) {
    let (router, mut document) = OpenApiRouter::with_openapi(base())
        .nest(PREFIX, v1)
        .split_for_parts();
    shared_answers(&mut document);
    optional_bodies(&mut document);
    (router, document)
}

/// The document before any route: coco's name and version, the bearer token required by
/// every operation, the shared answers.
fn base() -> OpenApi {
    let error = || Content::new(Some(Ref::from_schema_name("Error")));
    let components = ComponentsBuilder::new()
        .schema_from::<ErrorBody>()
        .security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("coco_ and 64 hex digits")
                    .description(Some("A token made by `coco token create`."))
                    .build(),
            ),
        )
        .response(
            UNAUTHORIZED,
            ResponseBuilder::new()
                .description(
                    "No valid token: missing, malformed, unknown, revoked or expired (with \
                     `WWW-Authenticate: Bearer realm=\"coco\"`)",
                )
                .header("WWW-Authenticate", Default::default())
                .content("application/json", error()),
        )
        .response(
            UNAVAILABLE,
            ResponseBuilder::new()
                .description(format!(
                    "The store did not answer, or the answer took over {} s",
                    super::TIME_LIMIT.as_secs()
                ))
                .content("application/json", error()),
        )
        .build();
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("coco")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(format!(
                    "The HTTP API of `coco daemon`: the shapes of the CLI's `--json`. Errors \
                     are `{{\"error\": \"…\"}}`; request bodies are JSON of at most {} KiB.",
                    super::MAX_BODY >> 10
                ))),
        )
        .components(Some(components))
        .security(Some([SecurityRequirement::new(
            BEARER,
            Vec::<String>::new(),
        )]))
        .build()
}

/// Every operation of `document`, with its method and path.
pub fn operations(document: &mut OpenApi) -> impl Iterator<Item = &mut Operation> {
    document.paths.paths.values_mut().flat_map(|item| {
        [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.options,
            &mut item.head,
            &mut item.patch,
            &mut item.trace,
            &mut item.query,
        ]
        .into_iter()
        .filter_map(Option::as_mut)
    })
}

/// What the layers in front of every handler answer, on every operation: 401 from
/// [`super::auth::require_token`], 503 from a store or [`super::TIME_LIMIT`].
fn shared_answers(document: &mut OpenApi) {
    for operation in operations(document) {
        for (status, name) in [("401", UNAUTHORIZED), ("503", UNAVAILABLE)] {
            operation
                .responses
                .responses
                .entry(status.to_string())
                .or_insert_with(|| RefOr::Ref(Ref::from_response_name(name)));
        }
    }
}

/// A request body documented as `Option<T>` is one that may be left out: utoipa writes it as
/// `oneOf: [T, null]`, not required; the handler takes no body or a `T`, never `null`, so the
/// schema becomes `T`.
fn optional_bodies(document: &mut OpenApi) {
    for operation in operations(document) {
        let Some(RefOr::T(body)) = &mut operation.request_body else {
            continue;
        };
        if body.required == Some(Required::True) {
            continue;
        }
        for content in body.content.values_mut() {
            let RefOr::T(content) = content else { continue };
            let Some(RefOr::T(Schema::OneOf(one_of))) = &content.schema else {
                continue;
            };
            let not_null: Vec<_> = one_of.items.iter().filter(|s| !is_null(s)).collect();
            if let [only] = not_null[..]
                && one_of.items.len() == 2
            {
                content.schema = Some(only.clone());
            }
        }
    }
}

fn is_null(schema: &RefOr<Schema>) -> bool {
    matches!(schema, RefOr::T(Schema::Object(object))
        if object.schema_type == SchemaType::Type(Type::Null))
}

/// The document as served, serialized once.
#[derive(Clone)]
pub struct Served(Arc<str>);

impl Served {
    pub fn new(document: &OpenApi) -> Self {
        let json = document
            .to_json()
            .expect("an OpenAPI document serializes to JSON");
        Self(json.into())
    }
}

/// `GET openapi.json`: this document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    operation_id = "openapi",
    tag = "api",
    responses(
        (status = 200, description = "This document (OpenAPI 3.1), generated from the routes served", body = Object),
    ),
)]
pub async fn json(Extension(served): Extension<Served>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        served.0.to_string(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn document() -> OpenApi {
        split(super::super::v1()).1
    }

    #[test]
    fn the_document_is_openapi_3_1_with_coco_s_name_and_version() {
        let json: serde_json::Value = serde_json::from_str(&document().to_json().unwrap()).unwrap();
        assert!(
            json["openapi"].as_str().unwrap().starts_with("3.1"),
            "{json}"
        );
        assert_eq!(json["info"]["title"], "coco");
        assert_eq!(json["info"]["version"], env!("CARGO_PKG_VERSION"));
        let scheme = &json["components"]["securitySchemes"][BEARER];
        assert_eq!(
            (&scheme["type"], &scheme["scheme"]),
            (&"http".into(), &"bearer".into())
        );
        assert_eq!(json["security"], serde_json::json!([{ BEARER: [] }]));
        // A body that may be left out is not required, and never `null`.
        let pause = &json["paths"]["/api/v1/pause"]["post"]["requestBody"];
        assert_eq!(pause.get("required"), None, "{pause}");
        assert_eq!(
            pause["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/SwitchBody"
        );
        let enqueue = &json["paths"]["/api/v1/jobs/{job}/enqueue"]["post"]["requestBody"];
        assert_eq!(enqueue["required"], true, "{enqueue}");
    }

    #[test]
    fn every_operation_needs_the_token_and_says_what_its_absence_answers() {
        let json: serde_json::Value = serde_json::from_str(&document().to_json().unwrap()).unwrap();
        assert_eq!(json["security"], serde_json::json!([{ BEARER: [] }]));
        let mut ids = BTreeSet::new();
        for (path, item) in json["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                let id = operation["operationId"].as_str().unwrap_or_default();
                assert!(ids.insert(id.to_string()), "operation id `{id}` twice");
                let here = format!("{method} {path} ({id})");
                // An operation's own `security` would replace the global one: none has any.
                assert!(operation.get("security").is_none(), "{here}");
                let responses = operation["responses"].as_object().unwrap();
                assert_eq!(
                    responses["401"]["$ref"], "#/components/responses/Unauthorized",
                    "{here}"
                );
                assert!(responses.contains_key("503"), "{here}");
                assert!(responses.keys().any(|s| s.starts_with('2')), "{here}");
            }
        }
        assert!(ids.len() >= 15, "{ids:?}");
        // Every reference resolves.
        let text = json.to_string();
        for reference in text.split("\"$ref\":\"").skip(1) {
            let target = reference.split('"').next().unwrap();
            let (kind, name) = target
                .strip_prefix("#/components/")
                .and_then(|rest| rest.split_once('/'))
                .unwrap_or_else(|| panic!("a reference outside the document: {target}"));
            assert!(
                json["components"][kind].get(name).is_some(),
                "a reference to nothing: {target}"
            );
        }
    }
}
