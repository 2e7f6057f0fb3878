//! The kinds a repository's chart may create in its preview, with their REST names.
//!
//! A preview lives in one namespace, so a chart may only contain namespaced workload and
//! configuration objects. Left out on purpose: everything cluster-scoped (Namespace, ClusterRole,
//! CRDs, PersistentVolume…); Role and RoleBinding (preview namespaces get no API access);
//! NetworkPolicy (policies are additive, a chart's own could open what previewd's close);
//! DaemonSet (one pod per node is not a preview's business); and every kind the table does not
//! name. Knowing the plural here lets `apply.rs` address these objects without a discovery call.

/// One allowed kind: `apiVersion`, `kind`, the plural of its REST path, and where its pod
/// template is (for the checks of `helm.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AllowedKind {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub plural: &'static str,
    /// JSON pointer to the pod template's labels, if the kind makes pods.
    pub pod_labels: Option<&'static str>,
}

const TEMPLATE: Option<&str> = Some("/spec/template/metadata/labels");

/// Every kind a chart may render.
pub const ALLOWED_KINDS: &[AllowedKind] = &[
    kind("v1", "ConfigMap", "configmaps", None),
    kind("v1", "Secret", "secrets", None),
    kind("v1", "Service", "services", None),
    kind("v1", "ServiceAccount", "serviceaccounts", None),
    kind(
        "v1",
        "PersistentVolumeClaim",
        "persistentvolumeclaims",
        None,
    ),
    kind("v1", "Pod", "pods", Some("/metadata/labels")),
    kind("apps/v1", "Deployment", "deployments", TEMPLATE),
    kind("apps/v1", "StatefulSet", "statefulsets", TEMPLATE),
    kind("batch/v1", "Job", "jobs", TEMPLATE),
    kind(
        "batch/v1",
        "CronJob",
        "cronjobs",
        Some("/spec/jobTemplate/spec/template/metadata/labels"),
    ),
    kind("networking.k8s.io/v1", "Ingress", "ingresses", None),
    kind(
        "policy/v1",
        "PodDisruptionBudget",
        "poddisruptionbudgets",
        None,
    ),
    kind(
        "autoscaling/v2",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
        None,
    ),
];

const fn kind(
    api_version: &'static str,
    kind: &'static str,
    plural: &'static str,
    pod_labels: Option<&'static str>,
) -> AllowedKind {
    AllowedKind {
        api_version,
        kind,
        plural,
        pod_labels,
    }
}

/// The allowed kind `api_version`/`kind`, if it is one.
pub fn allowed_kind(api_version: &str, kind: &str) -> Option<&'static AllowedKind> {
    ALLOWED_KINDS
        .iter()
        .find(|k| k.api_version == api_version && k.kind == kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_scoped_and_rbac_kinds_are_not_allowed() {
        for (api_version, kind) in [
            ("v1", "Namespace"),
            ("v1", "PersistentVolume"),
            ("rbac.authorization.k8s.io/v1", "ClusterRole"),
            ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
            ("rbac.authorization.k8s.io/v1", "RoleBinding"),
            ("apiextensions.k8s.io/v1", "CustomResourceDefinition"),
            ("networking.k8s.io/v1", "NetworkPolicy"),
            ("apps/v1", "DaemonSet"),
            ("extensions/v1beta1", "Ingress"),
        ] {
            assert_eq!(allowed_kind(api_version, kind), None, "{kind}");
        }
        assert_eq!(
            allowed_kind("apps/v1", "Deployment").unwrap().plural,
            "deployments"
        );
    }

    #[test]
    fn plurals_match_the_typed_resources() {
        use k8s_openapi::Resource as _;
        use k8s_openapi::api::{apps, autoscaling, batch, core, networking, policy};
        let typed = [
            (
                core::v1::ConfigMap::API_VERSION,
                core::v1::ConfigMap::KIND,
                core::v1::ConfigMap::URL_PATH_SEGMENT,
            ),
            (
                core::v1::Secret::API_VERSION,
                core::v1::Secret::KIND,
                core::v1::Secret::URL_PATH_SEGMENT,
            ),
            (
                core::v1::Service::API_VERSION,
                core::v1::Service::KIND,
                core::v1::Service::URL_PATH_SEGMENT,
            ),
            (
                core::v1::ServiceAccount::API_VERSION,
                core::v1::ServiceAccount::KIND,
                core::v1::ServiceAccount::URL_PATH_SEGMENT,
            ),
            (
                core::v1::PersistentVolumeClaim::API_VERSION,
                core::v1::PersistentVolumeClaim::KIND,
                core::v1::PersistentVolumeClaim::URL_PATH_SEGMENT,
            ),
            (
                core::v1::Pod::API_VERSION,
                core::v1::Pod::KIND,
                core::v1::Pod::URL_PATH_SEGMENT,
            ),
            (
                apps::v1::Deployment::API_VERSION,
                apps::v1::Deployment::KIND,
                apps::v1::Deployment::URL_PATH_SEGMENT,
            ),
            (
                apps::v1::StatefulSet::API_VERSION,
                apps::v1::StatefulSet::KIND,
                apps::v1::StatefulSet::URL_PATH_SEGMENT,
            ),
            (
                batch::v1::Job::API_VERSION,
                batch::v1::Job::KIND,
                batch::v1::Job::URL_PATH_SEGMENT,
            ),
            (
                batch::v1::CronJob::API_VERSION,
                batch::v1::CronJob::KIND,
                batch::v1::CronJob::URL_PATH_SEGMENT,
            ),
            (
                networking::v1::Ingress::API_VERSION,
                networking::v1::Ingress::KIND,
                networking::v1::Ingress::URL_PATH_SEGMENT,
            ),
            (
                policy::v1::PodDisruptionBudget::API_VERSION,
                policy::v1::PodDisruptionBudget::KIND,
                policy::v1::PodDisruptionBudget::URL_PATH_SEGMENT,
            ),
            (
                autoscaling::v2::HorizontalPodAutoscaler::API_VERSION,
                autoscaling::v2::HorizontalPodAutoscaler::KIND,
                autoscaling::v2::HorizontalPodAutoscaler::URL_PATH_SEGMENT,
            ),
        ];
        assert_eq!(typed.len(), ALLOWED_KINDS.len());
        for (api_version, kind, plural) in typed {
            let allowed = allowed_kind(api_version, kind).unwrap_or_else(|| panic!("{kind}"));
            assert_eq!(allowed.plural, plural, "{kind}");
        }
    }
}
