//! The REST API's OpenAPI 3.0 document, served at `/api/v1/openapi.json`: the operations are
//! listed here beside the routes they describe ([`OPERATIONS`]), and every body's schema is
//! generated from the very types the handlers answer with ([`super::views`], through
//! schemars), so a field added to an answer is in the document at once. The API tests check
//! every answer they get against this document.

use schemars::{
    JsonSchema,
    generate::{Contract, SchemaSettings},
};
use serde_json::{Map, Value, json};

use super::{
    api::Code,
    views::{ActedView, LogView, PreviewPage, PreviewView, WhoamiView},
};

/// One operation: method, path template, what it does, its query parameters, its success
/// status and the schema (a component name) of that answer, and the errors it can give.
pub struct Operation {
    pub method: &'static str,
    pub path: &'static str,
    pub summary: &'static str,
    pub query: &'static [Param],
    pub success: (u16, &'static str),
    pub errors: &'static [u16],
}

/// A query parameter: name, JSON type, description.
pub struct Param(pub &'static str, pub &'static str, pub &'static str);

const LIST_QUERY: &[Param] = &[
    Param(
        "status",
        "string",
        "Only previews in this status (pending, awaiting_approval, building, deploying, running, failed, deleting, deleted).",
    ),
    Param(
        "repository",
        "string",
        "Only this repository (`owner/name`).",
    ),
    Param(
        "mine",
        "boolean",
        "Only previews of pull requests the token's person opened.",
    ),
    Param("page", "integer", "The page, from 1 (at most 10000)."),
    Param("per_page", "integer", "Previews a page, 1 to 100 (25)."),
];

const LOG_QUERY: &[Param] = &[
    Param("pod", "string", "The pod (the newest unless named)."),
    Param(
        "container",
        "string",
        "The container (the pod's first unless named).",
    ),
    Param("tail", "integer", "Lines from the end, 1 to 5000 (200)."),
    Param("timestamps", "boolean", "Prefix each line with its time."),
    Param(
        "previous",
        "boolean",
        "The previous (terminated) container's log.",
    ),
];

/// Every operation of `/api/v1` (the document's own route included).
pub const OPERATIONS: &[Operation] = &[
    Operation {
        method: "get",
        path: "/api/v1/whoami",
        summary: "Who the token acts as",
        query: &[],
        success: (200, "WhoamiView"),
        errors: &[401],
    },
    Operation {
        method: "get",
        path: "/api/v1/previews",
        summary: "The previews the token's person can see, newest first",
        query: LIST_QUERY,
        success: (200, "PreviewPage"),
        errors: &[400, 401],
    },
    Operation {
        method: "get",
        path: "/api/v1/previews/{preview}",
        summary: "One preview, with its latest attempts",
        query: &[],
        success: (200, "PreviewView"),
        errors: &[401, 404],
    },
    Operation {
        method: "delete",
        path: "/api/v1/previews/{preview}",
        summary: "Delete the preview now (202 while it is removed)",
        query: &[],
        success: (202, "ActedView"),
        errors: &[401, 403, 404, 409],
    },
    Operation {
        method: "get",
        path: "/api/v1/previews/{preview}/logs",
        summary: "The end of one container's log",
        query: LOG_QUERY,
        success: (200, "LogView"),
        errors: &[400, 401, 404, 409, 503],
    },
    Operation {
        method: "post",
        path: "/api/v1/previews/{preview}/retry",
        summary: "Deploy the head commit again after a failed attempt",
        query: &[],
        success: (202, "ActedView"),
        errors: &[401, 403, 404, 409],
    },
    Operation {
        method: "post",
        path: "/api/v1/previews/{preview}/redeploy",
        summary: "Deploy the head commit again, whatever the preview's state",
        query: &[],
        success: (202, "ActedView"),
        errors: &[401, 403, 404],
    },
    Operation {
        method: "post",
        path: "/api/v1/previews/{preview}/extend",
        summary: "Push the preview's expiry out by the configured time to live",
        query: &[],
        success: (200, "ActedView"),
        errors: &[401, 403, 404, 409],
    },
];

/// The document, for a server at `public_url`.
pub fn document(public_url: &str) -> Value {
    let mut settings = SchemaSettings::openapi3();
    // Answers are described as they are written: a field skipped when empty is not required.
    settings.contract = Contract::Serialize;
    let mut generator = settings.into_generator();
    fn add<T: JsonSchema>(generator: &mut schemars::SchemaGenerator) {
        generator.subschema_for::<T>();
    }
    add::<WhoamiView>(&mut generator);
    add::<PreviewPage>(&mut generator);
    add::<PreviewView>(&mut generator);
    add::<LogView>(&mut generator);
    add::<ActedView>(&mut generator);
    let mut schemas = generator.take_definitions(true);
    schemas.insert("Problem".into(), problem_schema());

    let mut paths = Map::new();
    for op in OPERATIONS {
        let item = paths
            .entry(op.path)
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .expect("a path item is an object");
        item.insert(op.method.to_owned(), operation(op));
    }
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "previewd",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Preview environments of pull requests: list, read, read logs, delete, retry, redeploy, extend. Every call acts as the person whose API token it carries (made at /tokens), with their access on GitHub now. Errors are application/problem+json with a stable code.",
        },
        "servers": [{"url": public_url.trim_end_matches('/')}],
        "security": [{"token": []}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "token": {"type": "http", "scheme": "bearer", "bearerFormat": "pvd_…"},
            },
        },
    })
}

fn operation(op: &Operation) -> Value {
    let mut parameters = Vec::new();
    if op.path.contains("{preview}") {
        parameters.push(json!({
            "name": "preview",
            "in": "path",
            "required": true,
            "description": "The preview's id, or its namespace.",
            "schema": {"type": "string"},
        }));
    }
    for Param(name, kind, description) in op.query {
        parameters.push(json!({
            "name": name,
            "in": "query",
            "required": false,
            "description": description,
            "schema": {"type": kind},
        }));
    }
    let problem = json!({
        "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
    });
    let mut responses = Map::new();
    let (status, schema) = op.success;
    responses.insert(
        status.to_string(),
        json!({
            "description": op.summary,
            "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}},
        }),
    );
    for status in op.errors {
        let mut answer = problem.clone();
        answer["description"] = json!(error_words(*status));
        responses.insert(status.to_string(), answer);
    }
    // A wrong method (405), an unknown route (404), a store that does not answer (503).
    let mut default = problem;
    default["description"] = json!("Any other error, as a problem");
    responses.insert("default".into(), default);
    json!({
        "summary": op.summary,
        "operationId": format!("{}_{}", op.method, op.path.trim_start_matches("/api/v1/").replace(['/', '{', '}'], "_").trim_matches('_')),
        "parameters": parameters,
        "responses": responses,
    })
}

fn error_words(status: u16) -> &'static str {
    match status {
        400 => "INVALID_INPUT: the request asks for what cannot be",
        401 => "UNAUTHORIZED: no token, or an unknown, revoked or expired one",
        403 => "FORBIDDEN: the person may see the preview but not do this",
        404 => "NOT_FOUND: no preview here that the person can see",
        409 => "CONFLICT: the preview's state does not allow it",
        _ => "SERVER_ERROR: the database, GitHub or the cluster did not answer",
    }
}

fn problem_schema() -> Value {
    let codes: Vec<&str> = [
        Code::Unauthorized,
        Code::Forbidden,
        Code::NotFound,
        Code::InvalidInput,
        Code::Conflict,
        Code::ServerError,
    ]
    .iter()
    .map(|c| c.as_str())
    .collect();
    json!({
        "type": "object",
        "description": "An error (RFC 9457), with a stable code shared with the MCP tools.",
        "required": ["type", "title", "status", "detail", "code"],
        "properties": {
            "type": {"type": "string"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "code": {"type": "string", "enum": codes},
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reference_resolves_and_every_operation_is_unique() {
        let doc = document("https://previewd.example.com/");
        let text = doc.to_string();
        let mut at = 0;
        while let Some(i) = text[at..].find("\"$ref\":\"#/") {
            let start = at + i + "\"$ref\":\"#".len();
            let end = start + text[start..].find('"').expect("closing quote");
            assert!(
                doc.pointer(&text[start..end]).is_some(),
                "{} resolves",
                &text[start..end]
            );
            at = end;
        }
        let mut seen = std::collections::HashSet::new();
        for op in OPERATIONS {
            assert!(
                seen.insert((op.method, op.path)),
                "{} {}",
                op.method,
                op.path
            );
        }
        let preview = &doc["components"]["schemas"]["PreviewView"];
        assert!(
            preview["required"]
                .as_array()
                .is_some_and(|r| r.contains(&json!("namespace")) && !r.contains(&json!("attempts"))),
            "{preview}"
        );
        assert_eq!(doc["servers"][0]["url"], "https://previewd.example.com");
    }
}
