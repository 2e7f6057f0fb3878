//! The shapes of the simulator's answers: success replies, GitHub-shaped errors (`message`,
//! `documentation_url`, `status`, and `errors` for 422), reading JSON request bodies with GitHub's
//! validation vocabulary, and page-number pagination with a `Link` header.

use std::collections::BTreeMap;

use axum::http::HeaderMap;
use serde_json::{Value, json};

use super::{auth::Caller, state::TokenScope};

/// GitHub's generic documentation link in error bodies.
pub const DOCS: &str = "https://docs.github.com/rest";

/// A request as a handler sees it, after routing and authentication.
pub(crate) struct Req<'a> {
    pub caller: Caller,
    /// What the installation token may reach (`None` for the App's JWT).
    pub scope: Option<TokenScope>,
    /// Path parameters by template name, percent-decoded.
    pub params: Vec<(&'static str, String)>,
    pub query: BTreeMap<String, String>,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

impl Req<'_> {
    /// A path parameter (the route table guarantees it exists).
    pub fn param(&self, name: &str) -> &str {
        self.params
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_default()
    }

    /// A numeric path parameter; a non-number is GitHub's 404.
    pub fn id(&self, name: &str) -> Result<i64, ApiError> {
        self.param(name).parse().map_err(|_| ApiError::not_found())
    }

    /// `{owner}/{repo}` of the path.
    pub fn repo_name(&self) -> String {
        format!("{}/{}", self.param("owner"), self.param("repo"))
    }

    /// The JSON body as an object; an empty body is an empty object.
    pub fn json(&self) -> Result<serde_json::Map<String, Value>, ApiError> {
        if self.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(serde_json::Map::new());
        }
        match serde_json::from_slice::<Value>(self.body) {
            Ok(Value::Object(map)) => Ok(map),
            Ok(_) => Err(ApiError::new(400, "Body should be a JSON object")),
            Err(_) => Err(ApiError::new(400, "Problems parsing JSON")),
        }
    }
}

/// A successful answer.
pub(crate) struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
    pub content_type: &'static str,
    pub headers: Vec<(&'static str, String)>,
}

impl Reply {
    pub fn json(status: u16, value: &Value) -> Self {
        Self {
            status,
            body: serde_json::to_vec(value).unwrap_or_default(),
            content_type: "application/json; charset=utf-8",
            headers: Vec::new(),
        }
    }

    pub fn ok(value: &Value) -> Self {
        Self::json(200, value)
    }

    pub fn created(value: &Value) -> Self {
        Self::json(201, value)
    }

    pub fn no_content() -> Self {
        Self {
            status: 204,
            body: Vec::new(),
            content_type: "application/json; charset=utf-8",
            headers: Vec::new(),
        }
    }

    pub fn with_header(mut self, name: &'static str, value: Option<String>) -> Self {
        if let Some(value) = value {
            self.headers.push((name, value));
        }
        self
    }
}

/// An error answer shaped like GitHub's.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub status: u16,
    pub message: String,
    pub errors: Option<Value>,
    pub documentation_url: String,
    pub headers: Vec<(&'static str, String)>,
}

pub(crate) type ApiResult = Result<Reply, ApiError>;

impl ApiError {
    pub fn new(status: u16, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            errors: None,
            documentation_url: DOCS.to_owned(),
            headers: Vec::new(),
        }
    }

    pub fn not_found() -> Self {
        Self::new(404, "Not Found")
    }

    pub fn bad_credentials() -> Self {
        Self::new(401, "Bad credentials")
    }

    /// 422 "Validation Failed" with one entry per problem.
    pub fn validation(resource: &str, problems: Vec<Problem>) -> Self {
        let errors = problems
            .into_iter()
            .map(|p| {
                let mut e = json!({"resource": resource, "code": p.code, "field": p.field});
                if let Some(m) = p.message {
                    e["message"] = Value::String(m);
                }
                e
            })
            .collect();
        Self {
            errors: Some(Value::Array(errors)),
            ..Self::new(422, "Validation Failed")
        }
    }

    pub fn body(&self) -> Value {
        let mut body = json!({
            "message": self.message,
            "documentation_url": self.documentation_url,
            "status": self.status.to_string(),
        });
        if let Some(errors) = &self.errors {
            body["errors"] = errors.clone();
        }
        body
    }
}

/// One entry of a 422's `errors`.
pub(crate) struct Problem {
    pub code: &'static str,
    pub field: String,
    pub message: Option<String>,
}

impl Problem {
    pub fn missing(field: &str) -> Self {
        Self {
            code: "missing_field",
            field: field.to_owned(),
            message: None,
        }
    }

    pub fn invalid(field: &str, message: Option<String>) -> Self {
        Self {
            code: "invalid",
            field: field.to_owned(),
            message,
        }
    }
}

/// Reads fields of a JSON body, collecting problems GitHub would report.
pub(crate) struct Fields<'a> {
    pub map: &'a serde_json::Map<String, Value>,
    pub problems: Vec<Problem>,
}

impl<'a> Fields<'a> {
    pub fn new(map: &'a serde_json::Map<String, Value>) -> Self {
        Self {
            map,
            problems: Vec::new(),
        }
    }

    /// Whether the field was sent (even as null).
    pub fn has(&self, name: &str) -> bool {
        self.map.contains_key(name)
    }

    /// An optional string (null counts as absent); another type is `invalid`.
    pub fn string(&mut self, name: &str) -> Option<String> {
        match self.map.get(name) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                self.problems.push(Problem::invalid(name, None));
                None
            }
        }
    }

    /// A required non-empty string.
    pub fn required(&mut self, name: &str) -> Option<String> {
        if !self.has(name) || self.map.get(name).is_some_and(Value::is_null) {
            self.problems.push(Problem::missing(name));
            return None;
        }
        match self.string(name) {
            Some(s) if s.is_empty() => {
                self.problems.push(Problem::invalid(name, None));
                None
            }
            s => s,
        }
    }

    /// An optional string that must be one of `allowed`.
    pub fn one_of(&mut self, name: &str, allowed: &[&str]) -> Option<String> {
        let v = self.string(name)?;
        if allowed.contains(&v.as_str()) {
            Some(v)
        } else {
            self.problems.push(Problem::invalid(
                name,
                Some(format!("{name} is not included in the list")),
            ));
            None
        }
    }

    /// An optional string of at most `max` characters.
    pub fn bounded(&mut self, name: &str, max: usize) -> Option<String> {
        let v = self.string(name)?;
        if v.chars().count() > max {
            self.problems.push(Problem::invalid(
                name,
                Some(format!("{name} is too long (maximum is {max} characters)")),
            ));
        }
        Some(v)
    }

    /// An optional boolean.
    pub fn boolean(&mut self, name: &str) -> Option<bool> {
        match self.map.get(name) {
            None | Some(Value::Null) => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(_) => {
                self.problems.push(Problem::invalid(name, None));
                None
            }
        }
    }

    /// An optional RFC 3339 timestamp.
    pub fn time(&mut self, name: &str) -> Option<chrono::DateTime<chrono::Utc>> {
        let s = self.string(name)?;
        match chrono::DateTime::parse_from_rfc3339(&s) {
            Ok(t) => Some(t.with_timezone(&chrono::Utc)),
            Err(_) => {
                self.problems.push(Problem::invalid(name, None));
                None
            }
        }
    }

    /// Ok when no problem was found, else the 422.
    pub fn finish(self, resource: &str) -> Result<(), ApiError> {
        if self.problems.is_empty() {
            Ok(())
        } else {
            Err(ApiError::validation(resource, self.problems))
        }
    }
}

/// Cuts one page out of `items` by `per_page` (default 30, at most 100) and `page` (from 1), and
/// builds GitHub's `Link` header (next, last, first, prev) with absolute URLs.
pub(crate) fn paginate<T: Clone>(
    items: &[T],
    req: &Req<'_>,
    base_url: &str,
    path: &str,
) -> (Vec<T>, Option<String>) {
    let per_page = req
        .query
        .get("per_page")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(30)
        .clamp(1, 100);
    let page = req
        .query
        .get("page")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(1)
        .max(1);
    let start = (page - 1).saturating_mul(per_page).min(items.len());
    let end = (start + per_page).min(items.len());
    let last = items.len().div_ceil(per_page).max(1);
    let url = |p: usize| {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in &req.query {
            if k != "page" && k != "per_page" {
                q.append_pair(k, v);
            }
        }
        q.append_pair("per_page", &per_page.to_string());
        q.append_pair("page", &p.to_string());
        format!("<{base_url}{path}?{}>", q.finish())
    };
    let mut links = Vec::new();
    if page < last {
        links.push(format!("{}; rel=\"next\"", url(page + 1)));
        links.push(format!("{}; rel=\"last\"", url(last)));
    }
    if page > 1 {
        links.push(format!("{}; rel=\"first\"", url(1)));
        links.push(format!("{}; rel=\"prev\"", url((page - 1).min(last))));
    }
    let link = (!links.is_empty()).then(|| links.join(", "));
    (items[start..end].to_vec(), link)
}
