//! Admission on create, as the real admission chain does it: LimitRange defaults (and maxima)
//! for pod containers, then ResourceQuota — a pod whose cpu/memory requests or limits, or a
//! count of objects, would exceed a quota's `hard` is refused with `403 Forbidden
//! ... exceeded quota: ...`. The quota controller reuses [`usage`] to fill `status.used`.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::quantity;
use super::resources::ResourceDef;
use super::status::ApiError;
use super::store::World;

const NANO: i128 = 1_000_000_000;

fn resources_of<'a>(c: &'a Value, kind: &str) -> Option<&'a Map<String, Value>> {
    c.get("resources")
        .and_then(|r| r.get(kind))
        .and_then(Value::as_object)
}

/// Applies the namespace's LimitRange container defaults; refuses limits above a maximum.
fn limit_ranges(
    world: &World,
    rd: &ResourceDef,
    ns: &str,
    pod: &mut Value,
) -> Result<(), ApiError> {
    let name = pod
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let mut items: Vec<Value> = Vec::new();
    for lr in world.objs("limitranges", Some(ns)) {
        if let Some(limits) = lr.pointer("/spec/limits").and_then(Value::as_array) {
            items.extend(
                limits
                    .iter()
                    .filter(|l| l.get("type").and_then(Value::as_str) == Some("Container"))
                    .cloned(),
            );
        }
    }
    let Some(containers) = pod
        .pointer_mut("/spec/containers")
        .and_then(Value::as_array_mut)
    else {
        return Ok(());
    };
    for c in containers.iter_mut() {
        let Some(cm) = c.as_object_mut() else {
            continue;
        };
        let res = cm.entry("resources").or_insert_with(|| json!({}));
        let Some(res) = res.as_object_mut() else {
            continue;
        };
        for item in &items {
            for (section, from) in [("limits", "default"), ("requests", "defaultRequest")] {
                if let Some(defaults) = item.get(from).and_then(Value::as_object) {
                    let target = res.entry(section).or_insert_with(|| json!({}));
                    if let Some(t) = target.as_object_mut() {
                        for (k, v) in defaults {
                            t.entry(k.clone()).or_insert_with(|| v.clone());
                        }
                    }
                }
            }
        }
        // Requests default to limits.
        if let Some(limits) = res.get("limits").and_then(Value::as_object).cloned() {
            let requests = res.entry("requests").or_insert_with(|| json!({}));
            if let Some(r) = requests.as_object_mut() {
                for (k, v) in limits {
                    r.entry(k).or_insert(v);
                }
            }
        }
        for item in &items {
            if let Some(max) = item.get("max").and_then(Value::as_object) {
                for (k, mv) in max {
                    let limit = res.get("limits").and_then(|l| l.get(k));
                    if let (Some(m), Some(l)) =
                        (quantity::of_value(mv), limit.and_then(quantity::of_value))
                        && l > m
                    {
                        return Err(ApiError::forbidden(
                            rd,
                            &name,
                            &format!(
                                "maximum {k} usage per Container is {}, but limit is {}",
                                quantity::format(m),
                                quantity::format(l)
                            ),
                        ));
                    }
                }
            }
        }
        if res
            .get("requests")
            .and_then(Value::as_object)
            .is_some_and(Map::is_empty)
        {
            res.remove("requests");
        }
        if res
            .get("limits")
            .and_then(Value::as_object)
            .is_some_and(Map::is_empty)
        {
            res.remove("limits");
        }
    }
    Ok(())
}

/// Whether a pod counts against quota (not finished, not being deleted).
fn pod_counts(p: &Value) -> bool {
    let phase = p
        .pointer("/status/phase")
        .and_then(Value::as_str)
        .unwrap_or("");
    phase != "Succeeded" && phase != "Failed" && p.pointer("/metadata/deletionTimestamp").is_none()
}

/// The quota key a hard limit name refers to (`cpu` means `requests.cpu`).
fn canonical(key: &str) -> &str {
    match key {
        "cpu" => "requests.cpu",
        "memory" => "requests.memory",
        k => k,
    }
}

/// What one pod needs, per compute quota key; `missing` lists containers without a value.
fn pod_compute(pod: &Value, key: &str) -> (i128, Vec<String>) {
    let (section, res) = match canonical(key).split_once('.') {
        Some((s, r)) => (s, r),
        None => return (0, Vec::new()),
    };
    let mut total = 0;
    let mut missing = Vec::new();
    for c in pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        match resources_of(c, section)
            .and_then(|m| m.get(res))
            .and_then(quantity::of_value)
        {
            Some(q) => total += q,
            None => missing.push(
                c.get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned(),
            ),
        }
    }
    (total, missing)
}

fn is_compute(key: &str) -> bool {
    matches!(
        canonical(key),
        "requests.cpu" | "requests.memory" | "limits.cpu" | "limits.memory"
    )
}

/// What creating one object of `rd` adds to a quota key (None when the key does not count it).
fn object_count_key(rd: &ResourceDef, key: &str) -> bool {
    let count_key = if rd.group.is_empty() {
        format!("count/{}", rd.plural)
    } else {
        format!("count/{}.{}", rd.plural, rd.group)
    };
    key == count_key
        || (key == rd.plural
            && matches!(
                rd.plural,
                "pods"
                    | "services"
                    | "configmaps"
                    | "secrets"
                    | "resourcequotas"
                    | "persistentvolumeclaims"
            ))
}

/// Current usage of every `hard` key of a quota in `ns`.
pub(crate) fn usage(world: &World, ns: &str, hard: &Map<String, Value>) -> BTreeMap<String, i128> {
    let pods: Vec<Value> = world
        .objs("pods", Some(ns))
        .into_iter()
        .filter(pod_counts)
        .collect();
    let mut out = BTreeMap::new();
    for key in hard.keys() {
        let used = if is_compute(key) {
            pods.iter().map(|p| pod_compute(p, key).0).sum()
        } else if let Some(rd) = super::resources::RESOURCES
            .iter()
            .find(|rd| object_count_key(rd, key))
        {
            let n = if rd.plural == "pods" {
                pods.len()
            } else {
                world.iter(rd.plural, Some(ns)).count()
            };
            i128::try_from(n).unwrap_or(0) * NANO
        } else {
            0
        };
        out.insert(key.clone(), used);
    }
    out
}

/// Refuses an object whose creation would exceed a ResourceQuota in `ns`.
fn quota(world: &World, rd: &ResourceDef, ns: &str, obj: &Value) -> Result<(), ApiError> {
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    for q in world.objs("resourcequotas", Some(ns)) {
        let qname = q
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("");
        let Some(hard) = q.pointer("/spec/hard").and_then(Value::as_object) else {
            continue;
        };
        let used = usage(world, ns, hard);
        let mut requested: BTreeMap<String, i128> = BTreeMap::new();
        let mut missing: Vec<String> = Vec::new();
        for key in hard.keys() {
            if rd.plural == "pods" && is_compute(key) {
                let (need, lacking) = pod_compute(obj, key);
                if !lacking.is_empty() {
                    missing.push(format!("{} for: {}", canonical(key), lacking.join(",")));
                }
                requested.insert(key.clone(), need);
            } else if object_count_key(rd, key) {
                requested.insert(key.clone(), NANO);
            }
        }
        if !missing.is_empty() {
            return Err(ApiError::forbidden(
                rd,
                name,
                &format!("failed quota: {qname}: must specify {}", missing.join("; ")),
            ));
        }
        let exceeded: Vec<&String> = requested
            .iter()
            .filter(|(k, need)| {
                let limit = hard
                    .get(*k)
                    .and_then(quantity::of_value)
                    .unwrap_or(i128::MAX);
                **need > 0 && used.get(*k).copied().unwrap_or(0) + **need > limit
            })
            .map(|(k, _)| k)
            .collect();
        if !exceeded.is_empty() {
            let list = |f: &dyn Fn(&String) -> i128| {
                exceeded
                    .iter()
                    .map(|k| format!("{k}={}", quantity::format(f(k))))
                    .collect::<Vec<_>>()
                    .join(",")
            };
            return Err(ApiError::forbidden(
                rd,
                name,
                &format!(
                    "exceeded quota: {qname}, requested: {}, used: {}, limited: {}",
                    list(&|k| requested.get(k).copied().unwrap_or(0)),
                    list(&|k| used.get(k).copied().unwrap_or(0)),
                    list(&|k| hard.get(k).and_then(quantity::of_value).unwrap_or(0)),
                ),
            ));
        }
    }
    Ok(())
}

/// Runs admission for a create of `obj` into `ns` (mutating it with LimitRange defaults).
pub(crate) fn admit_create(
    world: &World,
    rd: &ResourceDef,
    ns: &str,
    obj: &mut Value,
) -> Result<(), ApiError> {
    if !rd.namespaced {
        return Ok(());
    }
    if rd.plural == "pods" {
        limit_ranges(world, rd, ns, obj)?;
    }
    quota(world, rd, ns, obj)
}
