//! Event objects (`core/v1 events`) recorded by the simulated controllers, scheduler and
//! kubelet, like the real ones: `involvedObject`, `reason`, `message`, `type`, `source`,
//! `count`. A repeated event (same series key) updates `count` instead of adding an object.

use serde_json::{Value, json};

use super::resources;
use super::store::{Key, World, now_string};
use super::verbs::meta_str;

/// Records (or bumps) an event about `involved`. `series` identifies repeats of one event;
/// nothing is written when the series already has this count and message.
#[expect(clippy::too_many_arguments, reason = "mirrors the fields of an Event")]
pub(crate) fn emit(
    w: &mut World,
    involved: &Value,
    type_: &str,
    reason: &str,
    message: &str,
    component: &str,
    series: &str,
    count: i64,
) {
    let ns = meta_str(involved, "namespace").to_owned();
    let live = w
        .get_obj("namespaces", "", &ns)
        .is_some_and(|n| n.pointer("/metadata/deletionTimestamp").is_none());
    if !live {
        return;
    }
    let series = format!("{}/{series}", meta_str(involved, "uid"));
    if let Some((name, c, m)) = w.ctl.events.get(&series).cloned() {
        if c == count && m == message {
            return;
        }
        let k = Key::new("events", &ns, &name);
        if let Some(stored) = w.get(&k).cloned() {
            let mut obj = stored.obj.clone();
            obj["count"] = json!(count);
            obj["message"] = json!(message);
            obj["lastTimestamp"] = json!(now_string());
            w.write(k, obj, stored.managed);
            w.ctl
                .events
                .insert(series, (name, count, message.to_owned()));
            return;
        }
    }
    let name = format!(
        "{}.{}",
        meta_str(involved, "name"),
        &uuid::Uuid::new_v4().simple().to_string()[..16]
    );
    let now = now_string();
    let kind = involved.get("kind").and_then(Value::as_str).unwrap_or("");
    let api_version = involved
        .get("apiVersion")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .or_else(|| resources::by_kind(kind).map(|r| r.api_version()))
        .unwrap_or_default();
    let obj = json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "name": name,
            "namespace": ns,
            "uid": uuid::Uuid::new_v4().to_string(),
            "creationTimestamp": now,
        },
        "involvedObject": {
            "kind": kind,
            "namespace": ns,
            "name": meta_str(involved, "name"),
            "uid": meta_str(involved, "uid"),
            "apiVersion": api_version,
            "resourceVersion": meta_str(involved, "resourceVersion"),
        },
        "reason": reason,
        "message": message,
        "source": { "component": component },
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": count,
        "type": type_,
        "eventTime": null,
        "reportingComponent": component,
        "reportingInstance": "",
    });
    w.write(Key::new("events", &ns, &name), obj, Vec::new());
    w.ctl
        .events
        .insert(series, (name, count, message.to_owned()));
}
