//! Label and field selectors as the real server parses them: `a=b`, `a==b`, `a!=b`,
//! `a in (x,y)`, `a notin (x)`, `a`, `!a` for labels; `path=v`, `path!=v` over a fixed set of
//! field labels per resource for fields (anything else is a 400, like the real server).

use serde_json::Value;

use super::status::ApiError;

#[derive(Debug, Clone)]
enum LabelReq {
    Eq(String, String),
    NotEq(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

/// A parsed label selector (all requirements must hold).
#[derive(Debug, Clone, Default)]
pub(crate) struct LabelSelector(Vec<LabelReq>);

/// Splits on commas outside parentheses.
fn split_top(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut cur = String::new();
    for c in s.chars() {
        match c {
            '(' => {
                depth += 1;
                cur.push(c);
            }
            ')' => {
                depth -= 1;
                cur.push(c);
            }
            ',' if depth == 0 => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    out.push(cur);
    out.into_iter()
        .map(|p| p.trim().to_owned())
        .filter(|p| !p.is_empty())
        .collect()
}

fn set_values(s: &str) -> Option<Vec<String>> {
    let s = s.trim();
    let inner = s.strip_prefix('(')?.strip_suffix(')')?;
    Some(
        inner
            .split(',')
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
            .collect(),
    )
}

impl LabelSelector {
    pub(crate) fn parse(s: &str) -> Result<Self, ApiError> {
        let bad = |part: &str| {
            ApiError::bad_request(format!(
                "unable to parse requirement: found '{part}', expected: valid label selector"
            ))
        };
        let mut reqs = Vec::new();
        for part in split_top(s) {
            let req = if let Some((k, v)) = part.split_once("!=") {
                LabelReq::NotEq(k.trim().to_owned(), v.trim().to_owned())
            } else if let Some((k, v)) = part.split_once("==") {
                LabelReq::Eq(k.trim().to_owned(), v.trim().to_owned())
            } else if let Some((k, v)) = part.split_once('=') {
                LabelReq::Eq(k.trim().to_owned(), v.trim().to_owned())
            } else if let Some((k, rest)) = part.split_once(" notin ") {
                LabelReq::NotIn(
                    k.trim().to_owned(),
                    set_values(rest).ok_or_else(|| bad(&part))?,
                )
            } else if let Some((k, rest)) = part.split_once(" in ") {
                LabelReq::In(
                    k.trim().to_owned(),
                    set_values(rest).ok_or_else(|| bad(&part))?,
                )
            } else if let Some(k) = part.strip_prefix('!') {
                LabelReq::NotExists(k.trim().to_owned())
            } else if part.contains([' ', '(', ')']) {
                return Err(bad(&part));
            } else {
                LabelReq::Exists(part.clone())
            };
            reqs.push(req);
        }
        Ok(Self(reqs))
    }

    /// Whether an object's `metadata.labels` satisfy the selector.
    pub(crate) fn matches(&self, obj: &Value) -> bool {
        let labels = obj.pointer("/metadata/labels");
        let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        self.0.iter().all(|r| match r {
            LabelReq::Eq(k, v) => get(k) == Some(v.as_str()),
            LabelReq::NotEq(k, v) => get(k) != Some(v.as_str()),
            LabelReq::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            LabelReq::NotIn(k, vs) => get(k).is_none_or(|x| vs.iter().all(|v| v != x)),
            LabelReq::Exists(k) => get(k).is_some(),
            LabelReq::NotExists(k) => get(k).is_none(),
        })
    }
}

/// Whether a label map (`matchLabels` / `matchExpressions` of a LabelSelector object) selects
/// the given labels.
pub(crate) fn selector_object_matches(selector: &Value, labels: &Value) -> bool {
    let get = |k: &str| labels.get(k).and_then(Value::as_str);
    if let Some(ml) = selector.get("matchLabels").and_then(Value::as_object)
        && !ml.iter().all(|(k, v)| get(k) == v.as_str())
    {
        return false;
    }
    if let Some(exprs) = selector.get("matchExpressions").and_then(Value::as_array) {
        for e in exprs {
            let key = e.get("key").and_then(Value::as_str).unwrap_or("");
            let values: Vec<&str> = e
                .get("values")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let ok = match e.get("operator").and_then(Value::as_str).unwrap_or("") {
                "In" => get(key).is_some_and(|x| values.contains(&x)),
                "NotIn" => get(key).is_none_or(|x| !values.contains(&x)),
                "Exists" => get(key).is_some(),
                "DoesNotExist" => get(key).is_none(),
                _ => false,
            };
            if !ok {
                return false;
            }
        }
    }
    true
}

#[derive(Debug, Clone)]
struct FieldReq {
    path: String,
    value: String,
    negate: bool,
}

/// A parsed field selector.
#[derive(Debug, Clone, Default)]
pub(crate) struct FieldSelector(Vec<FieldReq>);

/// Field labels each resource supports beyond `metadata.name` / `metadata.namespace`.
fn supported_fields(resource: &str) -> &'static [&'static str] {
    match resource {
        "pods" => &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ],
        "events" => &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
        "namespaces" => &["status.phase"],
        "secrets" => &["type"],
        "replicasets" => &["status.replicas"],
        "jobs" => &["status.successful"],
        _ => &[],
    }
}

impl FieldSelector {
    pub(crate) fn parse(s: &str, resource: &str) -> Result<Self, ApiError> {
        let mut reqs = Vec::new();
        for part in split_top(s) {
            let (path, value, negate) = if let Some((k, v)) = part.split_once("!=") {
                (k, v, true)
            } else if let Some((k, v)) = part.split_once("==") {
                (k, v, false)
            } else if let Some((k, v)) = part.split_once('=') {
                (k, v, false)
            } else {
                return Err(ApiError::bad_request(format!(
                    "invalid selector: '{part}'; can't understand '{part}'"
                )));
            };
            let path = path.trim();
            if path != "metadata.name"
                && path != "metadata.namespace"
                && !supported_fields(resource).contains(&path)
            {
                return Err(ApiError::bad_request(format!(
                    "field label not supported: {path}"
                )));
            }
            reqs.push(FieldReq {
                path: path.to_owned(),
                value: value.trim().to_owned(),
                negate,
            });
        }
        Ok(Self(reqs))
    }

    pub(crate) fn matches(&self, obj: &Value) -> bool {
        self.0.iter().all(|r| {
            let pointer = match r.path.as_str() {
                "source" => "/source/component".to_owned(),
                "status.successful" => "/status/succeeded".to_owned(),
                p => format!("/{}", p.replace('.', "/")),
            };
            let actual = match obj.pointer(&pointer) {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Null) | None => String::new(),
                Some(other) => other.to_string(),
            };
            (actual == r.value) != r.negate
        })
    }
}

/// Both selectors of a list or watch.
#[derive(Debug, Clone, Default)]
pub(crate) struct Selectors {
    pub labels: LabelSelector,
    pub fields: FieldSelector,
}

impl Selectors {
    pub(crate) fn parse(
        labels: Option<&str>,
        fields: Option<&str>,
        resource: &str,
    ) -> Result<Self, ApiError> {
        Ok(Self {
            labels: labels
                .map(LabelSelector::parse)
                .transpose()?
                .unwrap_or_default(),
            fields: fields
                .map(|f| FieldSelector::parse(f, resource))
                .transpose()?
                .unwrap_or_default(),
        })
    }

    pub(crate) fn matches(&self, obj: &Value) -> bool {
        self.labels.matches(obj) && self.fields.matches(obj)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn label_selectors() {
        let o = json!({"metadata": {"labels": {"app": "web", "tier": "fe"}}});
        let m = |s: &str| {
            LabelSelector::parse(s)
                .map(|l| l.matches(&o))
                .unwrap_or(false)
        };
        assert!(m("app=web"));
        assert!(m("app==web,tier"));
        assert!(m("app in (web, api),!missing"));
        assert!(m("tier notin (be)"));
        assert!(!m("app!=web"));
        assert!(!m("missing"));
        assert!(m(""));
    }
}
