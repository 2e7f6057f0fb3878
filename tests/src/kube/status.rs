//! Kubernetes `Status` bodies: every failure the simulated API server returns is one of these,
//! shaped exactly like the real server's (`kind: Status`, `reason`, `details`, `code`), so kube-rs
//! turns them into `kube::Error::Api` with the same fields product code matches on.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::resources::ResourceDef;

/// One field-level problem inside an `Invalid` (422) or `Conflict` (409) Status.
#[derive(Debug, Clone)]
pub(crate) struct Cause {
    pub reason: &'static str,
    pub field: String,
    pub message: String,
}

impl Cause {
    /// `field: Required value`.
    pub(crate) fn required(field: &str, detail: &str) -> Self {
        let message = if detail.is_empty() {
            "Required value".to_owned()
        } else {
            format!("Required value: {detail}")
        };
        Self {
            reason: "FieldValueRequired",
            field: field.to_owned(),
            message,
        }
    }

    /// `field: Invalid value: "v": detail`.
    pub(crate) fn invalid(field: &str, value: &Value, detail: &str) -> Self {
        let shown = match value {
            Value::String(s) => format!("{s:?}"),
            other => other.to_string(),
        };
        Self {
            reason: "FieldValueInvalid",
            field: field.to_owned(),
            message: format!("Invalid value: {shown}: {detail}"),
        }
    }

    /// `field: Unsupported value: "v": supported values: ...`.
    pub(crate) fn unsupported(field: &str, value: &str, supported: &[&str]) -> Self {
        let list: Vec<String> = supported.iter().map(|s| format!("{s:?}")).collect();
        Self {
            reason: "FieldValueNotSupported",
            field: field.to_owned(),
            message: format!(
                "Unsupported value: {value:?}: supported values: {}",
                list.join(", ")
            ),
        }
    }

    /// `field: Forbidden: detail`.
    pub(crate) fn forbidden(field: &str, detail: &str) -> Self {
        Self {
            reason: "FieldValueForbidden",
            field: field.to_owned(),
            message: format!("Forbidden: {detail}"),
        }
    }

    fn rendered(&self) -> String {
        format!("{}: {}", self.field, self.message)
    }
}

/// A failed request, rendered as a `Status` body with the matching HTTP code.
#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Option<Value>,
    /// Sent as `Retry-After` and `details.retryAfterSeconds`.
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub(crate) fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason,
            message: message.into(),
            details: None,
            retry_after: None,
        }
    }

    fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    fn name_details(rd: &ResourceDef, name: &str) -> Value {
        let mut d = json!({ "name": name, "kind": rd.plural });
        if !rd.group.is_empty() {
            d["group"] = json!(rd.group);
        }
        d
    }

    /// 404 `deployments.apps "x" not found`.
    pub(crate) fn not_found(rd: &ResourceDef, name: &str) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("{} {name:?} not found", rd.qualified()),
        )
        .with_details(Self::name_details(rd, name))
    }

    /// 404 for a namespace that does not exist (creating into it, or getting it).
    pub(crate) fn namespace_not_found(ns: &str) -> Self {
        Self::new(404, "NotFound", format!("namespaces {ns:?} not found"))
            .with_details(json!({ "name": ns, "kind": "namespaces" }))
    }

    /// 409 `deployments.apps "x" already exists`.
    pub(crate) fn already_exists(rd: &ResourceDef, name: &str) -> Self {
        Self::new(
            409,
            "AlreadyExists",
            format!("{} {name:?} already exists", rd.qualified()),
        )
        .with_details(Self::name_details(rd, name))
    }

    /// 409 optimistic-concurrency conflict on update.
    pub(crate) fn conflict_modified(rd: &ResourceDef, name: &str) -> Self {
        Self::conflict(
            rd,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// 409 `Operation cannot be fulfilled on ...: detail`.
    pub(crate) fn conflict(rd: &ResourceDef, name: &str, detail: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} {name:?}: {detail}",
                rd.qualified()
            ),
        )
        .with_details(Self::name_details(rd, name))
    }

    /// 409 server-side apply field-manager conflict (`causes` name each field).
    pub(crate) fn apply_conflict(
        rd: &ResourceDef,
        name: &str,
        conflicts: &[(String, String)],
    ) -> Self {
        // conflicts: (manager, field path like ".spec.replicas")
        let api_version = rd.api_version();
        let message = if conflicts.len() == 1 {
            let (m, f) = &conflicts[0];
            format!("Apply failed with 1 conflict: conflict with {m:?} using {api_version}: {f}")
        } else {
            let mut by_manager: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
            for (m, f) in conflicts {
                by_manager.entry(m).or_default().push(f);
            }
            let mut text = format!("Apply failed with {} conflicts:", conflicts.len());
            for (m, fields) in by_manager {
                text.push_str(&format!(" conflicts with {m:?} using {api_version}:"));
                for f in fields {
                    text.push_str(&format!("\n- {f}"));
                }
            }
            text
        };
        let causes: Vec<Value> = conflicts
            .iter()
            .map(|(m, f)| {
                json!({
                    "reason": "FieldManagerConflict",
                    "message": format!("conflict with {m:?} using {api_version}"),
                    "field": f,
                })
            })
            .collect();
        let mut details = Self::name_details(rd, name);
        details["causes"] = Value::Array(causes);
        Self::new(409, "Conflict", message).with_details(details)
    }

    /// 422 `Deployment.apps "x" is invalid: ...`.
    pub(crate) fn invalid(rd: &ResourceDef, name: &str, causes: &[Cause]) -> Self {
        Self::invalid_kind(&rd.kind_qualified(), rd.kind, rd.group, name, causes)
    }

    /// 422 for a kind outside the resource table (e.g. `PatchOptions.meta.k8s.io`).
    pub(crate) fn invalid_kind(
        qualified_kind: &str,
        kind: &str,
        group: &str,
        name: &str,
        causes: &[Cause],
    ) -> Self {
        let body = if causes.len() == 1 {
            causes[0].rendered()
        } else {
            let parts: Vec<String> = causes.iter().map(Cause::rendered).collect();
            format!("[{}]", parts.join(", "))
        };
        let mut details = json!({
            "name": name,
            "kind": kind,
            "causes": causes.iter().map(|c| json!({
                "reason": c.reason, "message": c.message, "field": c.field,
            })).collect::<Vec<_>>(),
        });
        if !group.is_empty() {
            details["group"] = json!(group);
        }
        Self::new(
            422,
            "Invalid",
            format!("{qualified_kind} {name:?} is invalid: {body}"),
        )
        .with_details(details)
    }

    /// 403 `configmaps "x" is forbidden: detail`.
    pub(crate) fn forbidden(rd: &ResourceDef, name: &str, detail: &str) -> Self {
        Self::new(
            403,
            "Forbidden",
            format!("{} {name:?} is forbidden: {detail}", rd.qualified()),
        )
        .with_details(Self::name_details(rd, name))
    }

    /// 400 with a plain message.
    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    /// 410 `Expired` (watch from a compacted resourceVersion).
    pub(crate) fn expired(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }

    /// 401 for a request without the kubeconfig's bearer token.
    pub(crate) fn unauthorized() -> Self {
        Self::new(401, "Unauthorized", "Unauthorized")
    }

    /// A Status for an arbitrary code (fault injection).
    pub(crate) fn for_code(code: u16) -> Self {
        let (reason, message) = match code {
            400 => (
                "BadRequest",
                "the server rejected our request (injected fault)",
            ),
            401 => ("Unauthorized", "Unauthorized"),
            403 => ("Forbidden", "forbidden (injected fault)"),
            404 => (
                "NotFound",
                "the server could not find the requested resource (injected fault)",
            ),
            409 => ("Conflict", "the object has been modified (injected fault)"),
            410 => ("Expired", "too old resource version (injected fault)"),
            422 => ("Invalid", "the object is invalid (injected fault)"),
            429 => (
                "TooManyRequests",
                "the server has received too many requests and has asked us to try again later",
            ),
            500 => ("InternalError", "Internal error occurred: injected fault"),
            503 => (
                "ServiceUnavailable",
                "the server is currently unable to handle the request",
            ),
            504 => (
                "Timeout",
                "the server was unable to return a response in the time allotted, but may still be processing the request",
            ),
            _ => ("InternalError", "injected fault"),
        };
        let mut e = Self::new(code, reason, message);
        if code == 429 {
            e.retry_after = Some(1);
            e.details = Some(json!({ "retryAfterSeconds": 1 }));
        }
        e
    }

    /// The `Status` object.
    pub(crate) fn to_value(&self) -> Value {
        let mut v = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(d) = &self.details {
            v["details"] = d.clone();
        }
        v
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut resp = (code, json_body(&self.to_value())).into_response();
        if let Some(secs) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&secs.to_string())
        {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        resp
    }
}

/// A JSON response body with the API server's content type.
pub(crate) fn json_body(v: &Value) -> impl IntoResponse + use<> {
    (
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::to_vec(v).unwrap_or_default(),
    )
}

/// A JSON response with a given code.
pub(crate) fn json_response(code: u16, v: &Value) -> Response {
    let code = StatusCode::from_u16(code).unwrap_or(StatusCode::OK);
    (code, json_body(v)).into_response()
}

/// `Status` with `status: Success` (returned by deletes of most resources).
pub(crate) fn success_status(rd: &ResourceDef, name: &str, uid: &str) -> Value {
    let mut details = json!({ "name": name, "kind": rd.plural, "uid": uid });
    if !rd.group.is_empty() {
        details["group"] = json!(rd.group);
    }
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": details,
    })
}
