//! Defaulting, as the real API server fills in fields a client left out: Deployment replicas
//! and strategy, Job parallelism/completions/backoffLimit and its controller-uid selector,
//! Service type and cluster IP, pod template fields, Secret `stringData` folded into `data`,
//! Namespace finalizers and phase. Defaulted fields belong to no field manager.

use serde_json::{Map, Value, json};

use super::resources::ResourceDef;
use super::store::World;

fn obj_mut<'a>(v: &'a mut Value, key: &str) -> &'a mut Map<String, Value> {
    if !v.get(key).is_some_and(Value::is_object) {
        v[key] = json!({});
    }
    match v.get_mut(key) {
        Some(Value::Object(m)) => m,
        // Just made it an object above.
        _ => unreachable!("object was just inserted"),
    }
}

fn default(map: &mut Map<String, Value>, key: &str, value: Value) {
    map.entry(key.to_owned()).or_insert(value);
}

fn image_pull_policy(image: &str) -> &'static str {
    let last = image.rsplit('/').next().unwrap_or(image);
    let tag = if image.contains('@') {
        None
    } else {
        last.split_once(':').map(|(_, t)| t)
    };
    match tag {
        None if image.contains('@') => "IfNotPresent",
        None | Some("latest") => "Always",
        Some(_) => "IfNotPresent",
    }
}

/// Defaults of a pod spec (pods and templates). `restart_policy` is None for Job templates,
/// which must set it themselves.
fn pod_spec(spec: &mut Value, restart_policy: Option<&str>) {
    let Some(m) = spec.as_object_mut() else {
        return;
    };
    if let Some(rp) = restart_policy {
        default(m, "restartPolicy", json!(rp));
    }
    default(m, "dnsPolicy", json!("ClusterFirst"));
    default(m, "schedulerName", json!("default-scheduler"));
    default(m, "terminationGracePeriodSeconds", json!(30));
    default(m, "securityContext", json!({}));
    for list in ["containers", "initContainers"] {
        if let Some(cs) = m.get_mut(list).and_then(Value::as_array_mut) {
            for c in cs {
                let Some(cm) = c.as_object_mut() else {
                    continue;
                };
                let image = cm
                    .get("image")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned();
                default(cm, "imagePullPolicy", json!(image_pull_policy(&image)));
                default(cm, "terminationMessagePath", json!("/dev/termination-log"));
                default(cm, "terminationMessagePolicy", json!("File"));
                default(cm, "resources", json!({}));
                if let Some(ports) = cm.get_mut("ports").and_then(Value::as_array_mut) {
                    for p in ports {
                        if let Some(pm) = p.as_object_mut() {
                            default(pm, "protocol", json!("TCP"));
                        }
                    }
                }
            }
        }
    }
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding.
pub(crate) fn base64(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Fills in defaults on an object about to be stored (it already has its uid).
pub(crate) fn apply_defaults(world: &mut World, rd: &ResourceDef, obj: &mut Value) {
    match rd.plural {
        "namespaces" => {
            let name = obj
                .pointer("/metadata/name")
                .cloned()
                .unwrap_or(Value::Null);
            let meta = obj_mut(obj, "metadata");
            let labels = meta.entry("labels").or_insert_with(|| json!({}));
            if let Some(l) = labels.as_object_mut() {
                l.insert("kubernetes.io/metadata.name".to_owned(), name);
            }
            let deleting = meta.contains_key("deletionTimestamp");
            default(obj_mut(obj, "spec"), "finalizers", json!(["kubernetes"]));
            let status = obj_mut(obj, "status");
            status.insert(
                "phase".to_owned(),
                json!(if deleting { "Terminating" } else { "Active" }),
            );
        }
        "pods" => {
            if let Some(spec) = obj.get_mut("spec") {
                pod_spec(spec, Some("Always"));
                if let Some(m) = spec.as_object_mut() {
                    let sa = m
                        .get("serviceAccountName")
                        .or_else(|| m.get("serviceAccount"))
                        .cloned()
                        .unwrap_or(json!("default"));
                    m.insert("serviceAccountName".to_owned(), sa.clone());
                    m.insert("serviceAccount".to_owned(), sa);
                    default(m, "enableServiceLinks", json!(true));
                    default(m, "preemptionPolicy", json!("PreemptLowerPriority"));
                    default(m, "priority", json!(0));
                }
            }
            let status = obj_mut(obj, "status");
            default(status, "phase", json!("Pending"));
        }
        "deployments" => {
            let spec = obj_mut(obj, "spec");
            default(spec, "replicas", json!(1));
            default(spec, "revisionHistoryLimit", json!(10));
            default(spec, "progressDeadlineSeconds", json!(600));
            let strategy = spec.entry("strategy").or_insert_with(|| json!({}));
            if let Some(s) = strategy.as_object_mut() {
                default(s, "type", json!("RollingUpdate"));
                if s.get("type").and_then(Value::as_str) == Some("RollingUpdate") {
                    let ru = s.entry("rollingUpdate").or_insert_with(|| json!({}));
                    if let Some(r) = ru.as_object_mut() {
                        default(r, "maxUnavailable", json!("25%"));
                        default(r, "maxSurge", json!("25%"));
                    }
                } else {
                    s.remove("rollingUpdate");
                }
            }
            if let Some(ps) = obj.pointer_mut("/spec/template/spec") {
                pod_spec(ps, Some("Always"));
            }
        }
        "replicasets" => {
            default(obj_mut(obj, "spec"), "replicas", json!(1));
            if let Some(ps) = obj.pointer_mut("/spec/template/spec") {
                pod_spec(ps, Some("Always"));
            }
        }
        "jobs" => {
            let uid = obj.pointer("/metadata/uid").cloned().unwrap_or(Value::Null);
            let name = obj
                .pointer("/metadata/name")
                .cloned()
                .unwrap_or(Value::Null);
            let spec = obj_mut(obj, "spec");
            default(spec, "parallelism", json!(1));
            default(spec, "completions", json!(1));
            default(spec, "backoffLimit", json!(6));
            default(spec, "completionMode", json!("NonIndexed"));
            default(spec, "suspend", json!(false));
            default(spec, "podReplacementPolicy", json!("TerminatingOrFailed"));
            let manual = spec.get("manualSelector") == Some(&Value::Bool(true));
            if !manual && !spec.contains_key("selector") {
                spec.insert(
                    "selector".to_owned(),
                    json!({ "matchLabels": { "batch.kubernetes.io/controller-uid": uid.clone() } }),
                );
            }
            if let Some(t) = spec.get_mut("template") {
                let tm = obj_mut(t, "metadata");
                let labels = tm.entry("labels").or_insert_with(|| json!({}));
                if let Some(l) = labels.as_object_mut() {
                    default(l, "batch.kubernetes.io/controller-uid", uid.clone());
                    default(l, "batch.kubernetes.io/job-name", name.clone());
                    default(l, "controller-uid", uid);
                    default(l, "job-name", name);
                }
                if let Some(ps) = t.get_mut("spec") {
                    pod_spec(ps, None);
                }
            }
        }
        "services" => {
            let ip = {
                let n = world.next_counter();
                format!("10.96.{}.{}", (n / 250) % 250, n % 250 + 2)
            };
            let spec = obj_mut(obj, "spec");
            default(spec, "type", json!("ClusterIP"));
            default(spec, "sessionAffinity", json!("None"));
            if spec.get("type").and_then(Value::as_str) != Some("ExternalName") {
                default(spec, "clusterIP", json!(ip));
                let cip = spec.get("clusterIP").cloned().unwrap_or(Value::Null);
                spec.insert("clusterIPs".to_owned(), json!([cip]));
                default(spec, "ipFamilies", json!(["IPv4"]));
                default(spec, "ipFamilyPolicy", json!("SingleStack"));
                default(spec, "internalTrafficPolicy", json!("Cluster"));
            }
            if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
                for p in ports {
                    if let Some(pm) = p.as_object_mut() {
                        default(pm, "protocol", json!("TCP"));
                        if let Some(port) = pm.get("port").cloned() {
                            default(pm, "targetPort", port);
                        }
                    }
                }
            }
        }
        "secrets" => {
            let m = obj.as_object_mut();
            if let Some(m) = m {
                default(m, "type", json!("Opaque"));
                if let Some(Value::Object(sd)) = m.remove("stringData") {
                    let data = m.entry("data").or_insert_with(|| json!({}));
                    if let Some(d) = data.as_object_mut() {
                        for (k, v) in sd {
                            let text = v.as_str().unwrap_or_default().to_owned();
                            d.insert(k, json!(base64(text.as_bytes())));
                        }
                    }
                }
            }
        }
        "networkpolicies" => {
            let spec = obj_mut(obj, "spec");
            if !spec.contains_key("policyTypes") {
                let mut types = vec![json!("Ingress")];
                if spec.contains_key("egress") {
                    types.push(json!("Egress"));
                }
                spec.insert("policyTypes".to_owned(), Value::Array(types));
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_pads() {
        assert_eq!(base64(b"hello"), "aGVsbG8=");
        assert_eq!(base64(b"hi"), "aGk=");
        assert_eq!(base64(b"abc"), "YWJj");
    }

    #[test]
    fn pull_policy() {
        assert_eq!(image_pull_policy("nginx"), "Always");
        assert_eq!(image_pull_policy("nginx:latest"), "Always");
        assert_eq!(image_pull_policy("registry:5000/app:abc"), "IfNotPresent");
        assert_eq!(image_pull_policy("registry:5000/app"), "Always");
    }
}
