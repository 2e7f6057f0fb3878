//! GitHub's published REST description (npm `@octokit/openapi`) as a check on the simulator:
//! [`Spec::fetch`] installs the package into a cache outside the repository (never committed),
//! and [`Spec::check`] validates an answer against an operation's response schema with a small
//! JSON-schema checker — the subset GitHub's description uses: `$ref`, `type` (with OpenAPI
//! 3.0's `nullable`), `enum`, `required`, `properties`, `additionalProperties`, `items`, `allOf`,
//! `anyOf`, `oneOf` (as "at least one") and the `date-time` format. A missing required field or
//! a value of the wrong type is a problem; fields the description does not list are allowed
//! unless it says `additionalProperties: false`, as GitHub adds fields over time. The same
//! checker holds previewd's own REST API to the document it serves ([`Spec::from_value`],
//! [`Spec::answer_schema`]; `type` may also be a list of types there).

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::Context as _;
use serde_json::Value;

/// The pinned version of GitHub's description.
pub const OPENAPI_VERSION: &str = "23.0.2";

/// Where the package is installed: `PREVIEWD_NPM_CACHE`, else `~/.cache/previewd/npm`.
pub fn cache_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("PREVIEWD_NPM_CACHE") {
        return PathBuf::from(dir);
    }
    let home = std::env::var("HOME").unwrap_or_else(|_| "/tmp".to_owned());
    Path::new(&home).join(".cache/previewd/npm")
}

/// Why the description is not available: npm is not there or the registry cannot be reached
/// (the test says so and skips), or something else went wrong (the test fails).
#[derive(Debug)]
pub enum Unavailable {
    NoRegistry(String),
    Broken(anyhow::Error),
}

/// GitHub's REST description.
pub struct Spec {
    doc: Value,
}

impl Spec {
    /// Installs `@octokit/openapi` (pinned) into [`cache_dir`] unless it is there, and loads
    /// `api.github.com.json`.
    pub fn fetch() -> Result<Self, Unavailable> {
        let dir = cache_dir();
        let package = dir.join("node_modules/@octokit/openapi");
        let installed = std::fs::read_to_string(package.join("package.json"))
            .ok()
            .and_then(|p| serde_json::from_str::<Value>(&p).ok())
            .and_then(|p| p.get("version").and_then(Value::as_str).map(str::to_owned));
        if installed.as_deref() != Some(OPENAPI_VERSION) {
            std::fs::create_dir_all(&dir)
                .map_err(|e| Unavailable::Broken(anyhow::anyhow!("{}: {e}", dir.display())))?;
            let out = Command::new("npm")
                .args([
                    "install",
                    "--no-audit",
                    "--no-fund",
                    "--ignore-scripts",
                    "--no-save",
                ])
                .arg("--prefix")
                .arg(&dir)
                .arg(format!("@octokit/openapi@{OPENAPI_VERSION}"))
                .output()
                .map_err(|e| Unavailable::NoRegistry(format!("npm is not available: {e}")))?;
            if !out.status.success() {
                let err = String::from_utf8_lossy(&out.stderr).into_owned();
                let unreachable = [
                    "ENOTFOUND",
                    "ECONNREFUSED",
                    "ETIMEDOUT",
                    "EAI_AGAIN",
                    "ENETUNREACH",
                    "ECONNRESET",
                ]
                .iter()
                .any(|code| err.contains(code));
                return Err(if unreachable {
                    Unavailable::NoRegistry(format!("the npm registry is unreachable: {err}"))
                } else {
                    Unavailable::Broken(anyhow::anyhow!("npm install failed: {err}"))
                });
            }
        }
        let path = package.join("generated/api.github.com.json");
        Self::load(&path).map_err(Unavailable::Broken)
    }

    /// Loads a description file.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        Ok(Self {
            doc: serde_json::from_slice(&text).context("parsing GitHub's description")?,
        })
    }

    /// A description already parsed (previewd's own, fetched from the app).
    pub fn from_value(doc: Value) -> Self {
        Self { doc }
    }

    /// The template of the operation a request to `path` (query and all) reaches, if the
    /// description has one: `/api/v1/previews/12/logs?tail=5` → `/api/v1/previews/{preview}/logs`.
    pub fn template_of(&self, method: &str, path: &str) -> Option<String> {
        let path = path.split('?').next().unwrap_or_default();
        let wanted: Vec<&str> = path.split('/').collect();
        self.doc
            .get("paths")?
            .as_object()?
            .iter()
            .find_map(|(template, item)| {
                let parts: Vec<&str> = template.split('/').collect();
                let fits = parts.len() == wanted.len()
                    && parts
                        .iter()
                        .zip(&wanted)
                        .all(|(t, w)| t.starts_with('{') || t == w)
                    && item.get(method.to_ascii_lowercase()).is_some();
                fits.then(|| template.clone())
            })
    }

    /// The schema of `method template`'s answer with `status` as `content_type` — the
    /// status's own response, else the operation's `default`.
    pub fn answer_schema(
        &self,
        method: &str,
        template: &str,
        status: u16,
        content_type: &str,
    ) -> Option<&Value> {
        let responses = self
            .doc
            .get("paths")?
            .get(template)?
            .get(method.to_ascii_lowercase())?
            .get("responses")?;
        let response = responses
            .get(status.to_string())
            .or_else(|| responses.get("default"))?;
        self.deref(response)?
            .get("content")?
            .get(content_type)?
            .get("schema")
    }

    /// The response schema of `method template` (the simulator's template; parameter names may
    /// differ) for `status`, if the description has one.
    pub fn response_schema(&self, method: &str, template: &str, status: u16) -> Option<&Value> {
        let wanted = shape(template);
        let (_, item) = self
            .doc
            .get("paths")?
            .as_object()?
            .iter()
            .find(|(path, _)| shape(path) == wanted)?;
        let responses = item.get(method.to_ascii_lowercase())?.get("responses")?;
        let response = self.deref(responses.get(status.to_string())?)?;
        response
            .get("content")?
            .get("application/json")?
            .get("schema")
    }

    /// Whether the description has `method template` at all.
    pub fn has_operation(&self, method: &str, template: &str) -> bool {
        let wanted = shape(template);
        self.doc
            .get("paths")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .any(|(path, item)| {
                shape(path) == wanted && item.get(method.to_ascii_lowercase()).is_some()
            })
    }

    fn deref<'a>(&'a self, v: &'a Value) -> Option<&'a Value> {
        let mut v = v;
        for _ in 0..16 {
            let Some(r) = v.get("$ref").and_then(Value::as_str) else {
                return Some(v);
            };
            v = self.doc.pointer(r.strip_prefix('#')?)?;
        }
        None
    }

    /// The problems of `value` against `schema`, each with its JSON pointer; empty when it fits.
    pub fn check(&self, schema: &Value, value: &Value) -> Vec<String> {
        let mut out = Vec::new();
        self.check_at(schema, value, "", &mut out, 0);
        out
    }

    fn check_at(&self, schema: &Value, value: &Value, at: &str, out: &mut Vec<String>, depth: u32) {
        if depth > 64 {
            out.push(format!("{at}: schema nested too deep"));
            return;
        }
        let Some(schema) = self.deref(schema) else {
            out.push(format!("{at}: unresolvable $ref"));
            return;
        };
        if value.is_null() && schema.get("nullable") == Some(&Value::Bool(true)) {
            return;
        }
        if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
            for s in all {
                self.check_at(s, value, at, out, depth + 1);
            }
        }
        for key in ["anyOf", "oneOf"] {
            if let Some(any) = schema.get(key).and_then(Value::as_array) {
                let mut first = None;
                let fits = any.iter().any(|s| {
                    let mut problems = Vec::new();
                    self.check_at(s, value, at, &mut problems, depth + 1);
                    let ok = problems.is_empty();
                    if first.is_none() {
                        first = Some(problems);
                    }
                    ok
                });
                if !fits {
                    let why = first.unwrap_or_default().join("; ");
                    out.push(format!(
                        "{at}: fits none of the {} alternatives ({key}); the first says: {why}",
                        any.len()
                    ));
                }
            }
        }
        let kinds: Vec<&str> = match schema.get("type") {
            Some(Value::String(kind)) => vec![kind.as_str()],
            Some(Value::Array(kinds)) => kinds.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        if !kinds.is_empty() && !kinds.iter().any(|kind| fits_type(kind, value)) {
            out.push(format!(
                "{at}: expected {}, got {}",
                kinds.join(" or "),
                type_of(value)
            ));
            return;
        }
        if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
            && !allowed.contains(value)
        {
            out.push(format!(
                "{at}: {value} is not one of {}",
                Value::Array(allowed.clone())
            ));
        }
        if schema.get("format").and_then(Value::as_str) == Some("date-time")
            && let Some(s) = value.as_str()
            && chrono::DateTime::parse_from_rfc3339(s).is_err()
        {
            out.push(format!("{at}: {s:?} is not a date-time"));
        }
        if let Some(object) = value.as_object() {
            if let Some(required) = schema.get("required").and_then(Value::as_array) {
                for name in required.iter().filter_map(Value::as_str) {
                    if !object.contains_key(name) {
                        out.push(format!("{at}/{name}: required but missing"));
                    }
                }
            }
            let properties = schema.get("properties").and_then(Value::as_object);
            for (name, v) in object {
                let here = format!("{at}/{name}");
                match (
                    properties.and_then(|p| p.get(name)),
                    schema.get("additionalProperties"),
                ) {
                    (Some(s), _) => self.check_at(s, v, &here, out, depth + 1),
                    (None, Some(Value::Bool(false))) => {
                        out.push(format!("{here}: not allowed (additionalProperties: false)"));
                    }
                    (None, Some(s)) if s.is_object() => self.check_at(s, v, &here, out, depth + 1),
                    (None, _) => {}
                }
            }
        }
        if let (Some(items), Some(array)) = (schema.get("items"), value.as_array()) {
            for (i, v) in array.iter().enumerate() {
                self.check_at(items, v, &format!("{at}/{i}"), out, depth + 1);
            }
        }
    }
}

/// A path template with its parameter names erased: `/repos/{}/{}/check-runs/{}`.
fn shape(template: &str) -> String {
    template
        .split('/')
        .map(|s| if s.starts_with('{') { "{}" } else { s })
        .collect::<Vec<_>>()
        .join("/")
}

/// Whether `value` is of the JSON Schema type `kind` (an unknown type name fits anything).
fn fits_type(kind: &str, value: &Value) -> bool {
    match kind {
        "string" => value.is_string(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        "object" => value.is_object(),
        "array" => value.is_array(),
        "null" => value.is_null(),
        _ => true,
    }
}

fn type_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn spec() -> Spec {
        Spec {
            doc: json!({
                "paths": {"/things/{thing_id}": {"get": {"responses": {"200": {"content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/thing"}}}}}}}},
                "components": {"schemas": {
                    "thing": {"type": "object", "required": ["id", "state"], "properties": {
                        "id": {"type": "integer"},
                        "state": {"type": "string", "enum": ["open", "closed"]},
                        "at": {"type": "string", "format": "date-time", "nullable": true},
                        "owner": {"anyOf": [{"type": "null"}, {"$ref": "#/components/schemas/user"}]},
                        "tags": {"type": "array", "items": {"type": "string"}}}},
                    "user": {"type": "object", "required": ["login"], "properties": {"login": {"type": "string"}}}
                }}
            }),
        }
    }

    #[test]
    fn the_checker_finds_missing_fields_and_wrong_types() {
        let spec = spec();
        let schema = spec
            .response_schema("GET", "/things/{id}", 200)
            .expect("schema");
        let good = json!({"id": 1, "state": "open", "at": null, "owner": {"login": "a"}, "tags": ["x"], "extra": 1});
        assert!(
            spec.check(schema, &good).is_empty(),
            "{:?}",
            spec.check(schema, &good)
        );
        let problems = spec.check(
            schema,
            &json!({"id": "1", "tags": [2], "owner": {}, "at": "yesterday"}),
        );
        let text = problems.join("\n");
        for expected in [
            "/id: expected integer",
            "/state: required",
            "/tags/0: expected string",
            "/owner: fits none",
            "/at: \"yesterday\" is not a date-time",
        ] {
            assert!(text.contains(expected), "{expected} in {text}");
        }
        assert_eq!(
            spec.check(schema, &json!({"id": 1, "state": "gone"})).len(),
            1
        );
        assert!(spec.response_schema("GET", "/things/{id}", 404).is_none());
    }
}
