//! The resource table: every kind the simulated API server stores, with its group, version,
//! plural and scope, and the discovery documents (`/api`, `/apis`, `/version`, resource lists)
//! built from it. Adding a kind here makes it servable by every generic verb.

use serde_json::{Value, json};

/// One servable resource type.
#[derive(Debug)]
pub(crate) struct ResourceDef {
    pub group: &'static str,
    pub version: &'static str,
    pub plural: &'static str,
    pub singular: &'static str,
    pub kind: &'static str,
    pub namespaced: bool,
    pub has_status: bool,
    pub short_names: &'static [&'static str],
}

impl ResourceDef {
    /// `v1` or `apps/v1`.
    pub(crate) fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_owned()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `pods` or `deployments.apps`: how the real server names a resource in messages.
    pub(crate) fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_owned()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// `Pod` or `Deployment.apps`: how the real server names a kind in `Invalid` messages.
    pub(crate) fn kind_qualified(&self) -> String {
        if self.group.is_empty() {
            self.kind.to_owned()
        } else {
            format!("{}.{}", self.kind, self.group)
        }
    }

    pub(crate) fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }
}

macro_rules! def {
    ($group:expr, $version:expr, $plural:expr, $singular:expr, $kind:expr, $namespaced:expr, $has_status:expr, $short:expr) => {
        ResourceDef {
            group: $group,
            version: $version,
            plural: $plural,
            singular: $singular,
            kind: $kind,
            namespaced: $namespaced,
            has_status: $has_status,
            short_names: $short,
        }
    };
}

/// Every stored resource: group, version, plural, singular, kind, namespaced, has a `status`
/// subresource, short names. The last six are stored and served but have no controller (nor
/// does the simulator authorize requests by RoleBindings: it only stores them).
#[rustfmt::skip]
pub(crate) static RESOURCES: &[ResourceDef] = &[
    def!("", "v1", "namespaces", "namespace", "Namespace", false, true, &["ns"]),
    def!("", "v1", "resourcequotas", "resourcequota", "ResourceQuota", true, true, &["quota"]),
    def!("", "v1", "limitranges", "limitrange", "LimitRange", true, false, &["limits"]),
    def!("", "v1", "secrets", "secret", "Secret", true, false, &[]),
    def!("", "v1", "serviceaccounts", "serviceaccount", "ServiceAccount", true, false, &["sa"]),
    def!("", "v1", "configmaps", "configmap", "ConfigMap", true, false, &["cm"]),
    def!("", "v1", "services", "service", "Service", true, true, &["svc"]),
    def!("", "v1", "pods", "pod", "Pod", true, true, &["po"]),
    def!("", "v1", "events", "event", "Event", true, false, &["ev"]),
    def!("apps", "v1", "deployments", "deployment", "Deployment", true, true, &["deploy"]),
    def!("apps", "v1", "replicasets", "replicaset", "ReplicaSet", true, true, &["rs"]),
    def!("batch", "v1", "jobs", "job", "Job", true, true, &[]),
    def!("networking.k8s.io", "v1", "networkpolicies", "networkpolicy", "NetworkPolicy", true, false, &["netpol"]),
    def!("networking.k8s.io", "v1", "ingresses", "ingress", "Ingress", true, true, &["ing"]),
    def!("", "v1", "persistentvolumeclaims", "persistentvolumeclaim", "PersistentVolumeClaim", true, true, &["pvc"]),
    def!("apps", "v1", "statefulsets", "statefulset", "StatefulSet", true, true, &["sts"]),
    def!("batch", "v1", "cronjobs", "cronjob", "CronJob", true, true, &["cj"]),
    def!("policy", "v1", "poddisruptionbudgets", "poddisruptionbudget", "PodDisruptionBudget", true, true, &["pdb"]),
    def!("autoscaling", "v2", "horizontalpodautoscalers", "horizontalpodautoscaler", "HorizontalPodAutoscaler", true, true, &["hpa"]),
    def!("rbac.authorization.k8s.io", "v1", "rolebindings", "rolebinding", "RoleBinding", true, false, &[]),
];

/// The metrics API group (served from pod state, not stored).
pub(crate) const METRICS_GROUP: &str = "metrics.k8s.io";
pub(crate) const METRICS_VERSION: &str = "v1beta1";

/// Looks a resource up by group, version and plural.
pub(crate) fn find(group: &str, version: &str, plural: &str) -> Option<&'static ResourceDef> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// Looks a resource up by plural alone (the inspection API).
pub(crate) fn by_plural(plural: &str) -> Option<&'static ResourceDef> {
    RESOURCES.iter().find(|r| r.plural == plural)
}

pub(crate) fn namespaces() -> &'static ResourceDef {
    by_plural("namespaces").unwrap_or(&RESOURCES[0])
}

/// Looks a resource up by its `kind` (owner references, events).
pub(crate) fn by_kind(kind: &str) -> Option<&'static ResourceDef> {
    RESOURCES.iter().find(|r| r.kind == kind)
}

fn groups() -> Vec<&'static str> {
    let mut gs: Vec<&'static str> = Vec::new();
    for r in RESOURCES {
        if !r.group.is_empty() && !gs.contains(&r.group) {
            gs.push(r.group);
        }
    }
    gs
}

/// `GET /version`.
pub(crate) fn version() -> Value {
    json!({
        "major": "1",
        "minor": "35",
        "gitVersion": "v1.35.0",
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "go1.25.0",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

/// `GET /api`.
pub(crate) fn core_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{ "clientCIDR": "0.0.0.0/0", "serverAddress": server_address }],
    })
}

fn group_doc(group: &str, version: &str) -> Value {
    let gv = format!("{group}/{version}");
    json!({
        "name": group,
        "versions": [{ "groupVersion": gv, "version": version }],
        "preferredVersion": { "groupVersion": gv, "version": version },
    })
}

/// `GET /apis/{group}` (None when the group is unknown).
pub(crate) fn group(group: &str) -> Option<Value> {
    if group == METRICS_GROUP {
        let mut g = group_doc(METRICS_GROUP, METRICS_VERSION);
        g["kind"] = json!("APIGroup");
        g["apiVersion"] = json!("v1");
        return Some(g);
    }
    let r = RESOURCES.iter().find(|r| r.group == group)?;
    let mut g = group_doc(r.group, r.version);
    g["kind"] = json!("APIGroup");
    g["apiVersion"] = json!("v1");
    Some(g)
}

/// `GET /apis`.
pub(crate) fn group_list() -> Value {
    let mut list: Vec<Value> = groups()
        .into_iter()
        .filter_map(|g| {
            let r = RESOURCES.iter().find(|r| r.group == g)?;
            Some(group_doc(r.group, r.version))
        })
        .collect();
    list.push(group_doc(METRICS_GROUP, METRICS_VERSION));
    json!({ "kind": "APIGroupList", "apiVersion": "v1", "groups": list })
}

const VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// `GET /api/v1` or `GET /apis/{group}/{version}` (None when unknown).
pub(crate) fn resource_list(group: &str, version: &str) -> Option<Value> {
    let gv = if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    };
    if group == METRICS_GROUP && version == METRICS_VERSION {
        return Some(json!({
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": gv,
            "resources": [{
                "name": "pods", "singularName": "", "namespaced": true,
                "kind": "PodMetrics", "verbs": ["get", "list"],
            }],
        }));
    }
    let mut resources = Vec::new();
    for r in RESOURCES
        .iter()
        .filter(|r| r.group == group && r.version == version)
    {
        resources.push(json!({
            "name": r.plural,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": VERBS,
            "shortNames": r.short_names,
        }));
        if r.has_status {
            resources.push(json!({
                "name": format!("{}/status", r.plural),
                "singularName": "",
                "namespaced": r.namespaced,
                "kind": r.kind,
                "verbs": ["get", "patch", "update"],
            }));
        }
        if r.plural == "pods" {
            resources.push(json!({
                "name": "pods/log", "singularName": "", "namespaced": true,
                "kind": "Pod", "verbs": ["get"],
            }));
        }
    }
    if resources.is_empty() {
        return None;
    }
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": gv,
        "resources": resources,
    }))
}
