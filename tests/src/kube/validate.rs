//! Validation as the real API server does it on create and update: object names (DNS-1123 label
//! or subdomain, DNS-1035 for services), label keys and values, the pod templates of workloads,
//! selectors matching templates, and the fields that are immutable once set. Failures are
//! `422 Invalid` Status bodies naming each field, with the real wording.

use serde_json::Value;

use super::quantity;
use super::resources::ResourceDef;
use super::status::{ApiError, Cause};

const LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const DNS1035_MSG: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";
const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
const QUALIFIED_NAME_MSG: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// DNS-1123 label (namespaces, container names).
pub(crate) fn dns_label_errors(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    if s.len() > 63 {
        out.push("must be no more than 63 characters".to_owned());
    }
    if !is_dns_label(s) {
        out.push(LABEL_MSG.to_owned());
    }
    out
}

fn subdomain_errors(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    if s.len() > 253 {
        out.push("must be no more than 253 characters".to_owned());
    }
    if s.is_empty() || !s.split('.').all(is_dns_label) {
        out.push(SUBDOMAIN_MSG.to_owned());
    }
    out
}

fn dns1035_errors(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    if s.len() > 63 {
        out.push("must be no more than 63 characters".to_owned());
    }
    if !is_dns_label(s) || !s.starts_with(|c: char| c.is_ascii_lowercase()) {
        out.push(DNS1035_MSG.to_owned());
    }
    out
}

fn is_qualified_part(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.ends_with(|c: char| c.is_ascii_alphanumeric())
}

/// Errors for a label or annotation key (`prefix/name`).
fn key_errors(key: &str) -> Vec<String> {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    let mut out = Vec::new();
    if let Some(p) = prefix {
        for e in subdomain_errors(p) {
            out.push(format!("prefix part {e}"));
        }
    }
    if name.len() > 63 {
        out.push("name part must be no more than 63 characters".to_owned());
    }
    if !is_qualified_part(name) {
        out.push(QUALIFIED_NAME_MSG.to_owned());
    }
    out
}

fn label_value_errors(v: &str) -> Vec<String> {
    let mut out = Vec::new();
    if v.len() > 63 {
        out.push("must be no more than 63 characters".to_owned());
    }
    if !v.is_empty() && !is_qualified_part(v) {
        out.push(LABEL_VALUE_MSG.to_owned());
    }
    out
}

fn check_labels(labels: Option<&Value>, field: &str, causes: &mut Vec<Cause>) {
    let Some(map) = labels.and_then(Value::as_object) else {
        return;
    };
    for (k, v) in map {
        for e in key_errors(k) {
            causes.push(Cause::invalid(field, &Value::String(k.clone()), &e));
        }
        match v.as_str() {
            Some(s) => {
                for e in label_value_errors(s) {
                    causes.push(Cause::invalid(field, v, &e));
                }
            }
            None => causes.push(Cause::invalid(field, v, "label values must be strings")),
        }
    }
}

fn check_annotations(annotations: Option<&Value>, causes: &mut Vec<Cause>) {
    let Some(map) = annotations.and_then(Value::as_object) else {
        return;
    };
    for (k, v) in map {
        for e in key_errors(k) {
            causes.push(Cause::invalid(
                "metadata.annotations",
                &Value::String(k.clone()),
                &e,
            ));
        }
        if !v.is_string() {
            causes.push(Cause::invalid(
                "metadata.annotations",
                v,
                "annotation values must be strings",
            ));
        }
    }
}

/// Errors for `metadata.name` of a resource.
pub(crate) fn name_errors(rd: &ResourceDef, name: &str) -> Vec<String> {
    match rd.plural {
        "namespaces" => dns_label_errors(name),
        "services" => dns1035_errors(name),
        _ => subdomain_errors(name),
    }
}

fn check_quantity_map(map: Option<&Value>, field: &str, causes: &mut Vec<Cause>) {
    if let Some(m) = map.and_then(Value::as_object) {
        for (k, v) in m {
            if quantity::of_value(v).is_none() {
                causes.push(Cause::invalid(
                    &format!("{field}[{k}]"),
                    v,
                    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
                ));
            }
        }
    }
}

fn check_pod_spec(spec: Option<&Value>, field: &str, causes: &mut Vec<Cause>) {
    let Some(spec) = spec else {
        causes.push(Cause::required(field, ""));
        return;
    };
    let containers = spec.get("containers").and_then(Value::as_array);
    match containers {
        None => causes.push(Cause::required(&format!("{field}.containers"), "")),
        Some(cs) if cs.is_empty() => {
            causes.push(Cause::required(&format!("{field}.containers"), ""));
        }
        Some(cs) => {
            let mut seen = Vec::new();
            for (i, c) in cs.iter().enumerate() {
                let cf = format!("{field}.containers[{i}]");
                match c.get("name").and_then(Value::as_str) {
                    None | Some("") => causes.push(Cause::required(&format!("{cf}.name"), "")),
                    Some(n) => {
                        for e in dns_label_errors(n) {
                            causes.push(Cause::invalid(&format!("{cf}.name"), &Value::from(n), &e));
                        }
                        if seen.contains(&n) {
                            causes.push(Cause {
                                reason: "FieldValueDuplicate",
                                field: format!("{cf}.name"),
                                message: format!("Duplicate value: {n:?}"),
                            });
                        }
                        seen.push(n);
                    }
                }
                if c.get("image")
                    .and_then(Value::as_str)
                    .is_none_or(str::is_empty)
                {
                    causes.push(Cause::required(&format!("{cf}.image"), ""));
                }
                if let Some(ports) = c.get("ports").and_then(Value::as_array) {
                    for (j, p) in ports.iter().enumerate() {
                        let port = p.get("containerPort").and_then(Value::as_i64).unwrap_or(0);
                        if !(1..=65535).contains(&port) {
                            causes.push(Cause::invalid(
                                &format!("{cf}.ports[{j}].containerPort"),
                                &Value::from(port),
                                "must be between 1 and 65535, inclusive",
                            ));
                        }
                    }
                }
                let res = c.get("resources");
                let requests = res.and_then(|r| r.get("requests"));
                let limits = res.and_then(|r| r.get("limits"));
                check_quantity_map(requests, &format!("{cf}.resources.requests"), causes);
                check_quantity_map(limits, &format!("{cf}.resources.limits"), causes);
                if let (Some(req), Some(lim)) = (
                    requests.and_then(Value::as_object),
                    limits.and_then(Value::as_object),
                ) {
                    for (k, rv) in req {
                        if let (Some(r), Some(l)) = (
                            quantity::of_value(rv),
                            lim.get(k).and_then(quantity::of_value),
                        ) && r > l
                        {
                            causes.push(Cause::invalid(
                                &format!("{cf}.resources.requests"),
                                rv,
                                &format!(
                                    "must be less than or equal to {k} limit of {}",
                                    lim.get(k).map(value_text).unwrap_or_default()
                                ),
                            ));
                        }
                    }
                }
            }
        }
    }
    if let Some(rp) = spec.get("restartPolicy").and_then(Value::as_str)
        && !["Always", "OnFailure", "Never"].contains(&rp)
    {
        causes.push(Cause::unsupported(
            &format!("{field}.restartPolicy"),
            rp,
            &["Always", "OnFailure", "Never"],
        ));
    }
}

fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn check_template(obj: &Value, causes: &mut Vec<Cause>) {
    let template = obj.pointer("/spec/template");
    check_labels(
        template.and_then(|t| t.pointer("/metadata/labels")),
        "spec.template.metadata.labels",
        causes,
    );
    check_pod_spec(
        template.and_then(|t| t.get("spec")),
        "spec.template.spec",
        causes,
    );
}

fn check_selector_matches(obj: &Value, causes: &mut Vec<Cause>) {
    match obj.pointer("/spec/selector") {
        None => causes.push(Cause::required("spec.selector", "")),
        Some(sel) => {
            let labels = obj
                .pointer("/spec/template/metadata/labels")
                .cloned()
                .unwrap_or(Value::Object(Default::default()));
            let empty = sel
                .get("matchLabels")
                .and_then(Value::as_object)
                .is_none_or(|m| m.is_empty())
                && sel
                    .get("matchExpressions")
                    .and_then(Value::as_array)
                    .is_none_or(|m| m.is_empty());
            if empty {
                causes.push(Cause::invalid(
                    "spec.selector",
                    sel,
                    "empty selector is invalid for deployment",
                ));
            } else if !super::selectors::selector_object_matches(sel, &labels) {
                causes.push(Cause::invalid(
                    "spec.template.metadata.labels",
                    &labels,
                    "`selector` does not match template `labels`",
                ));
            }
        }
    }
}

fn immutable(old: &Value, new: &Value, pointer: &str, field: &str, causes: &mut Vec<Cause>) {
    let (a, b) = (old.pointer(pointer), new.pointer(pointer));
    if a.is_some() && a != b {
        causes.push(Cause::invalid(
            field,
            b.unwrap_or(&Value::Null),
            "field is immutable",
        ));
    }
}

/// Strips the fields a pod update may change, to compare the rest.
fn pod_spec_mutable_stripped(spec: Option<&Value>) -> Value {
    let mut s = spec.cloned().unwrap_or(Value::Null);
    if let Some(m) = s.as_object_mut() {
        m.remove("activeDeadlineSeconds");
        m.remove("tolerations");
        m.remove("terminationGracePeriodSeconds");
        for list in ["containers", "initContainers"] {
            if let Some(cs) = m.get_mut(list).and_then(Value::as_array_mut) {
                for c in cs {
                    if let Some(cm) = c.as_object_mut() {
                        cm.remove("image");
                    }
                }
            }
        }
    }
    s
}

/// Validates an object about to be stored (`old` on updates).
pub(crate) fn validate(rd: &ResourceDef, obj: &Value, old: Option<&Value>) -> Result<(), ApiError> {
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let mut causes = Vec::new();
    if old.is_none() {
        for e in name_errors(rd, name) {
            causes.push(Cause::invalid("metadata.name", &Value::from(name), &e));
        }
    }
    check_labels(
        obj.pointer("/metadata/labels"),
        "metadata.labels",
        &mut causes,
    );
    check_annotations(obj.pointer("/metadata/annotations"), &mut causes);
    match rd.plural {
        "pods" => check_pod_spec(obj.get("spec"), "spec", &mut causes),
        "deployments" | "replicasets" => {
            check_selector_matches(obj, &mut causes);
            check_template(obj, &mut causes);
            if obj
                .pointer("/spec/replicas")
                .and_then(Value::as_i64)
                .is_some_and(|r| r < 0)
            {
                causes.push(Cause::invalid(
                    "spec.replicas",
                    obj.pointer("/spec/replicas").unwrap_or(&Value::Null),
                    "must be greater than or equal to 0",
                ));
            }
        }
        "jobs" => {
            check_template(obj, &mut causes);
            let rp = obj
                .pointer("/spec/template/spec/restartPolicy")
                .and_then(Value::as_str)
                .unwrap_or("Always");
            if rp != "OnFailure" && rp != "Never" {
                causes.push(Cause::unsupported(
                    "spec.template.spec.restartPolicy",
                    rp,
                    &["OnFailure", "Never"],
                ));
            }
        }
        "services" => {
            let external =
                obj.pointer("/spec/type").and_then(Value::as_str) == Some("ExternalName");
            let ports = obj.pointer("/spec/ports").and_then(Value::as_array);
            if !external && ports.is_none_or(|p| p.is_empty()) {
                causes.push(Cause::required("spec.ports", ""));
            }
            for (i, p) in ports.into_iter().flatten().enumerate() {
                let port = p.get("port").and_then(Value::as_i64).unwrap_or(0);
                if !(1..=65535).contains(&port) {
                    causes.push(Cause::invalid(
                        &format!("spec.ports[{i}].port"),
                        &Value::from(port),
                        "must be between 1 and 65535, inclusive",
                    ));
                }
                if ports.is_some_and(|ps| ps.len() > 1)
                    && p.get("name")
                        .and_then(Value::as_str)
                        .is_none_or(str::is_empty)
                {
                    causes.push(Cause::required(&format!("spec.ports[{i}].name"), ""));
                }
            }
        }
        "ingresses" => {
            let rules = obj.pointer("/spec/rules").and_then(Value::as_array);
            for (i, r) in rules.into_iter().flatten().enumerate() {
                let paths = r.pointer("/http/paths").and_then(Value::as_array);
                for (j, p) in paths.into_iter().flatten().enumerate() {
                    if p.get("pathType").and_then(Value::as_str).is_none() {
                        causes.push(Cause::required(
                            &format!("spec.rules[{i}].http.paths[{j}].pathType"),
                            "pathType must be specified",
                        ));
                    }
                }
            }
        }
        _ => {}
    }
    if let Some(old) = old {
        match rd.plural {
            "deployments" | "replicasets" => {
                immutable(old, obj, "/spec/selector", "spec.selector", &mut causes);
            }
            "jobs" => {
                immutable(old, obj, "/spec/selector", "spec.selector", &mut causes);
                immutable(old, obj, "/spec/template", "spec.template", &mut causes);
                immutable(
                    old,
                    obj,
                    "/spec/completions",
                    "spec.completions",
                    &mut causes,
                );
            }
            "configmaps" | "secrets" if old.get("immutable") == Some(&Value::Bool(true)) => {
                for f in ["data", "binaryData"] {
                    if old.get(f) != obj.get(f) {
                        causes.push(Cause::forbidden(
                            f,
                            "field is immutable when `immutable` is set",
                        ));
                    }
                }
            }
            "services" => {
                let (a, b) = (
                    old.pointer("/spec/clusterIP"),
                    obj.pointer("/spec/clusterIP"),
                );
                if a.is_some() && b.is_some() && a != b {
                    causes.push(Cause::invalid(
                        "spec.clusterIPs[0]",
                        b.unwrap_or(&Value::Null),
                        "may not change once set",
                    ));
                }
            }
            "pods"
                if pod_spec_mutable_stripped(old.get("spec"))
                    != pod_spec_mutable_stripped(obj.get("spec")) =>
            {
                causes.push(Cause::forbidden(
                    "spec",
                    "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)",
                ));
            }
            _ => {}
        }
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(rd, name, &causes))
    }
}
