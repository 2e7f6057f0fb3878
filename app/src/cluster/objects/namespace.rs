//! The preview namespace and the guard rails created in it before anything else.
//!
//! Pod Security Admission (PSA) is configured by namespace labels and checked when a pod is
//! created. Preview namespaces are `restricted` for enforce, warn and audit, always: the one
//! thing that needs more — the rootless in-cluster image build — runs in a short-lived build
//! namespace of its own (`build.rs`), so nothing a repository's chart creates is ever admitted
//! under a weaker level.
//!
//! The ResourceQuota bounds the whole namespace (requests and limits of CPU and memory, pod
//! count) and holds the workload alone (the build has its own budget). Since a quota on CPU and
//! memory makes Kubernetes refuse pods without those resources, the LimitRange gives every
//! container defaults: half the namespace's budget as limit, a quarter of that as request.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    LimitRange, LimitRangeItem, LimitRangeSpec, Namespace, ResourceQuota, ResourceQuotaSpec,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::{GuardRails, PreviewMeta};
use crate::units::{scale_cpu, scale_memory};

/// Name of the ResourceQuota and of the LimitRange.
pub const GUARD_RAILS_NAME: &str = "previewd-guard-rails";

/// The preview namespace: previewd's labels and annotations, and Pod Security Admission
/// `restricted` for enforce, warn and audit.
pub fn namespace(meta: &PreviewMeta) -> Namespace {
    namespace_with(meta, "restricted", BTreeMap::new())
}

/// A namespace of `meta` enforcing Pod Security level `enforce` (warning and auditing against
/// `restricted` whatever it enforces), with `extra` labels.
pub(super) fn namespace_with(
    meta: &PreviewMeta,
    enforce: &str,
    extra: BTreeMap<String, String>,
) -> Namespace {
    let mut labels = meta.labels();
    labels.extend(extra);
    for (key, value) in [
        ("pod-security.kubernetes.io/enforce", enforce),
        ("pod-security.kubernetes.io/enforce-version", "latest"),
        ("pod-security.kubernetes.io/warn", "restricted"),
        ("pod-security.kubernetes.io/warn-version", "latest"),
        ("pod-security.kubernetes.io/audit", "restricted"),
        ("pod-security.kubernetes.io/audit-version", "latest"),
    ] {
        labels.insert(key.to_owned(), value.to_owned());
    }
    Namespace {
        metadata: ObjectMeta {
            name: Some(meta.namespace.clone()),
            labels: Some(labels),
            annotations: Some(meta.annotations()),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    }
}

/// The namespace's budget: CPU and memory (requests and limits each up to the guard rail) and
/// the pod count.
pub fn resource_quota(meta: &PreviewMeta, rails: &GuardRails) -> ResourceQuota {
    let q = |s: &str| Quantity(s.to_owned());
    let hard = BTreeMap::from([
        ("requests.cpu".to_owned(), q(&rails.cpu)),
        ("limits.cpu".to_owned(), q(&rails.cpu)),
        ("requests.memory".to_owned(), q(&rails.memory)),
        ("limits.memory".to_owned(), q(&rails.memory)),
        ("pods".to_owned(), q(&rails.max_pods.to_string())),
    ]);
    ResourceQuota {
        metadata: meta.object_meta(GUARD_RAILS_NAME),
        spec: Some(ResourceQuotaSpec {
            hard: Some(hard),
            ..ResourceQuotaSpec::default()
        }),
        ..ResourceQuota::default()
    }
}

/// Defaults for containers that declare no resources, so the quota admits them: limit = half
/// the namespace budget, request = a quarter of the limit. (Unparseable guard rails, which
/// [`GuardRails::validate`] refuses, fall back to the raw value for both.)
pub fn limit_range(meta: &PreviewMeta, rails: &GuardRails) -> LimitRange {
    let cpu_limit = scale_cpu(&rails.cpu, 1, 2).unwrap_or_else(|| rails.cpu.clone());
    let memory_limit = scale_memory(&rails.memory, 1, 2).unwrap_or_else(|| rails.memory.clone());
    let cpu_request = scale_cpu(&cpu_limit, 1, 4).unwrap_or_else(|| cpu_limit.clone());
    let memory_request = scale_memory(&memory_limit, 1, 4).unwrap_or_else(|| memory_limit.clone());
    let pair = |cpu: String, memory: String| {
        BTreeMap::from([
            ("cpu".to_owned(), Quantity(cpu)),
            ("memory".to_owned(), Quantity(memory)),
        ])
    };
    LimitRange {
        metadata: meta.object_meta(GUARD_RAILS_NAME),
        spec: Some(LimitRangeSpec {
            limits: vec![LimitRangeItem {
                type_: "Container".to_owned(),
                default: Some(pair(cpu_limit, memory_limit)),
                default_request: Some(pair(cpu_request, memory_request)),
                ..LimitRangeItem::default()
            }],
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::objects::tests::meta;

    fn labels(ns: &Namespace) -> BTreeMap<String, String> {
        ns.metadata.labels.clone().unwrap_or_default()
    }

    #[test]
    fn namespace_is_labelled_and_restricted() {
        let ns = namespace(&meta());
        assert_eq!(ns.metadata.name.as_deref(), Some("acme-web-pr-12"));
        assert_eq!(ns.metadata.namespace, None);
        let labels = labels(&ns);
        for (key, value) in meta().labels() {
            assert_eq!(labels[&key], value);
        }
        for mode in ["enforce", "warn", "audit"] {
            assert_eq!(
                labels[&format!("pod-security.kubernetes.io/{mode}")],
                "restricted"
            );
        }
        assert_eq!(
            labels["pod-security.kubernetes.io/enforce-version"],
            "latest"
        );
    }

    #[test]
    fn quota_holds_the_guard_rails() {
        let quota = resource_quota(&meta(), &GuardRails::default());
        let hard = quota.spec.unwrap().hard.unwrap();
        let get = |k: &str| hard[k].0.clone();
        assert_eq!(get("requests.cpu"), "500m");
        assert_eq!(get("limits.cpu"), "500m");
        assert_eq!(get("requests.memory"), "512Mi");
        assert_eq!(get("limits.memory"), "512Mi");
        assert_eq!(get("pods"), "10");
        assert_eq!(quota.metadata.namespace.as_deref(), Some("acme-web-pr-12"));
    }

    #[test]
    fn limit_range_defaults_fit_the_quota_with_requests_below_limits() {
        let range = limit_range(&meta(), &GuardRails::default());
        let item = &range.spec.unwrap().limits[0];
        assert_eq!(item.type_, "Container");
        let default = item.default.clone().unwrap();
        let request = item.default_request.clone().unwrap();
        assert_eq!(default["cpu"].0, "250m");
        assert_eq!(default["memory"].0, "256Mi");
        assert_eq!(request["cpu"].0, "62m");
        assert_eq!(request["memory"].0, "64Mi");

        let big = GuardRails {
            cpu: "4".into(),
            memory: "8Gi".into(),
            ..GuardRails::default()
        };
        let item = &limit_range(&meta(), &big).spec.unwrap().limits[0];
        assert_eq!(item.default.as_ref().unwrap()["cpu"].0, "2");
        assert_eq!(item.default_request.as_ref().unwrap()["memory"].0, "1Gi");
    }
}
