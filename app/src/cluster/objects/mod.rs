//! Typed builders of every Kubernetes object previewd sends for a preview; no I/O.
//!
//! Each builder takes the preview's [`PreviewMeta`] (namespace and identity, which become labels
//! and annotations) and the settings of one concern, and returns a k8s-openapi object ready for
//! server-side apply: `namespace.rs` (the namespace and its guard rails: quota, limits),
//! `access.rs` (the worker's RoleBinding in a namespace it created), `network.rs` (network
//! policies), `build.rs` (the in-cluster image build in a namespace of its own), `web.rs` (the
//! built-in single web service). Keeping them pure keeps them testable: the unit tests check
//! their shape, `app/tests/k8s_schemas.rs` validates them against the Kubernetes 1.35 schemas.
//! [`to_apply_json`] turns any of them into the body of an apply request.

mod access;
mod build;
mod namespace;
mod network;
mod web;

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::naming::{is_dns1123_label, label_value};
use crate::units::Quantity;

pub use access::{ACCESS_BINDING_NAME, VIEWER_BINDING_NAME, access_binding, viewer_binding};
pub use build::{
    BUILD_DEADLINE_SECONDS, BUILD_SECRET_KEY, BUILD_SECRET_NAME, BUILD_TTL_SECONDS, BuildBudget,
    BuildSpec, EgressTarget, build_job, build_job_name, build_namespace, build_network_policies,
    build_quota, build_secret,
};
pub use namespace::{GUARD_RAILS_NAME, limit_range, namespace, resource_quota};
pub use network::{NETWORK_POLICY_NAMES, network_policies};
pub use web::{WEB_NAME, WebService, deployment, ingress, service};

/// Field manager of every server-side apply previewd makes.
pub const FIELD_MANAGER: &str = "previewd";
/// Label on every object previewd creates (value [`MANAGED_BY`]).
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// Value of [`MANAGED_BY_LABEL`].
pub const MANAGED_BY: &str = "previewd";
/// Label: the repository, as a [`label_value`].
pub const REPO_LABEL: &str = "previewd.dev/repo";
/// Label: the pull request number.
pub const PR_LABEL: &str = "previewd.dev/pr";
/// Label: the preview's database id.
pub const PREVIEW_ID_LABEL: &str = "previewd.dev/preview-id";
/// Label: the install that created the object (sweeps touch only their own install's objects,
/// and a namespace without it is never adopted).
pub const INSTALL_LABEL: &str = "previewd.dev/install";
/// Label on pod templates and build namespaces: the deploy attempt they belong to, so failures
/// are read from the current attempt's objects only, and every attempt rolls its pods.
pub const ATTEMPT_LABEL: &str = "previewd.dev/attempt";
/// Label on every object of a preview's workload (chart or built-in): objects carrying it that a
/// later deploy no longer contains are pruned.
pub const PART_LABEL: &str = "previewd.dev/part";
/// [`PART_LABEL`] value of workload objects.
pub const PART_WORKLOAD: &str = "workload";
/// Label on pods saying what they are for; network policies select on it.
pub const ROLE_LABEL: &str = "previewd.dev/role";
/// [`ROLE_LABEL`] of image-build pods (the only pods allowed out to the internet).
pub const ROLE_BUILD: &str = "build";
/// [`ROLE_LABEL`] of the built-in web service's pods.
pub const ROLE_WEB: &str = "web";
/// Annotation: the repository's full name as GitHub spells it (labels cannot hold a `/`).
pub const REPO_ANNOTATION: &str = "previewd.dev/repo-full-name";
/// Annotation: the commit the objects were built from.
pub const SHA_ANNOTATION: &str = "previewd.dev/sha";
/// Prefix of every label and annotation previewd owns; charts may not set these on pods.
pub const PREVIEWD_PREFIX: &str = "previewd.dev/";

/// Which preview an object belongs to: where it goes and how it is labelled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviewMeta {
    /// The preview namespace ([`crate::cluster::namespace_name`]).
    pub namespace: String,
    /// `owner/repo`.
    pub repo_full_name: String,
    pub pr_number: u64,
    /// The preview's database id.
    pub preview_id: i64,
    /// The head commit being deployed.
    pub sha: String,
    /// This install's id ([`INSTALL_LABEL`]).
    pub install_id: String,
    /// The deploy attempt ([`ATTEMPT_LABEL`]).
    pub attempt_id: i64,
}

impl PreviewMeta {
    /// The labels every object of this preview carries; they select the preview's objects for
    /// pruning and clean-up.
    pub fn labels(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (MANAGED_BY_LABEL.to_owned(), MANAGED_BY.to_owned()),
            (REPO_LABEL.to_owned(), label_value(&self.repo_full_name)),
            (PR_LABEL.to_owned(), self.pr_number.to_string()),
            (PREVIEW_ID_LABEL.to_owned(), self.preview_id.to_string()),
            (INSTALL_LABEL.to_owned(), label_value(&self.install_id)),
        ])
    }

    /// The labels of a pod template of the workload: the role, and the attempt.
    pub fn pod_labels(&self, role: &str) -> BTreeMap<String, String> {
        let mut labels = self.labels_with_role(role);
        labels.insert(ATTEMPT_LABEL.to_owned(), self.attempt_id.to_string());
        labels
    }

    /// The same preview, addressed in the short-lived namespace of this attempt's image build.
    pub fn for_build(&self) -> Self {
        Self {
            namespace: crate::cluster::naming::build_namespace_name(
                &self.namespace,
                self.attempt_id,
            ),
            ..self.clone()
        }
    }

    /// The labels plus `previewd.dev/role=<role>` (pods and what selects them).
    pub fn labels_with_role(&self, role: &str) -> BTreeMap<String, String> {
        let mut labels = self.labels();
        labels.insert(ROLE_LABEL.to_owned(), role.to_owned());
        labels
    }

    /// Annotations for humans: the repository as GitHub spells it, and the commit.
    pub fn annotations(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (REPO_ANNOTATION.to_owned(), self.repo_full_name.clone()),
            (SHA_ANNOTATION.to_owned(), self.sha.clone()),
        ])
    }

    /// Metadata of a namespaced object named `name` in the preview namespace.
    pub(crate) fn object_meta(&self, name: &str) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(self.namespace.clone()),
            labels: Some(self.labels()),
            annotations: Some(self.annotations()),
            ..ObjectMeta::default()
        }
    }
}

/// The limits every preview namespace gets, configured per install (values are Kubernetes
/// quantities). Check them with [`GuardRails::validate`] when reading the configuration: the
/// builders are total and use what they are given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuardRails {
    /// Total CPU of the namespace (requests and limits), e.g. `500m`.
    pub cpu: String,
    /// Total memory of the namespace (requests and limits), e.g. `512Mi`.
    pub memory: String,
    /// Most pods at once (build pods included).
    pub max_pods: u32,
    /// Namespace of the ingress controller, the only source of inbound traffic.
    pub ingress_namespace: String,
    /// Namespace of the cluster DNS (pods labelled `k8s-app=kube-dns`).
    pub dns_namespace: String,
}

impl Default for GuardRails {
    fn default() -> Self {
        Self {
            cpu: "500m".to_owned(),
            memory: "512Mi".to_owned(),
            max_pods: 10,
            ingress_namespace: "ingress-nginx".to_owned(),
            dns_namespace: "kube-system".to_owned(),
        }
    }
}

impl GuardRails {
    /// Checks the quantities parse and the namespaces are namespace names; the error names the
    /// offending setting.
    pub fn validate(&self) -> Result<(), String> {
        if Quantity::cpu(&self.cpu).is_err() {
            return Err(format!(
                "guard rail cpu {:?} is not a CPU quantity like 500m or 2",
                self.cpu
            ));
        }
        if Quantity::memory(&self.memory).is_err() {
            return Err(format!(
                "guard rail memory {:?} is not a memory quantity like 512Mi or 1Gi",
                self.memory
            ));
        }
        if self.max_pods == 0 {
            return Err("guard rail max_pods must be at least 1".to_owned());
        }
        for (what, ns) in [
            ("ingress", &self.ingress_namespace),
            ("dns", &self.dns_namespace),
        ] {
            // Namespaces may start with a digit, which `is_dns1123_label` refuses: allow it here.
            if !is_dns1123_label(&format!("n{ns}")) || ns.is_empty() || ns.len() > 63 {
                return Err(format!(
                    "guard rail {what} namespace {ns:?} is not a namespace name"
                ));
            }
        }
        Ok(())
    }
}

/// `obj` as the JSON body of a server-side apply: `apiVersion` and `kind` set (apply requires
/// them; k8s-openapi writes them too, this makes it explicit).
pub fn to_apply_json<T: serde::Serialize + k8s_openapi::Resource>(obj: &T) -> serde_json::Value {
    // Reason: k8s-openapi objects are plain data with string map keys; serializing cannot fail.
    let mut value = serde_json::to_value(obj).expect("k8s-openapi objects serialize to JSON");
    if let Some(map) = value.as_object_mut() {
        map.insert("apiVersion".to_owned(), T::API_VERSION.into());
        map.insert("kind".to_owned(), T::KIND.into());
    }
    value
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn meta() -> PreviewMeta {
        PreviewMeta {
            namespace: "acme-web-pr-12".to_owned(),
            repo_full_name: "acme/web".to_owned(),
            pr_number: 12,
            preview_id: 7,
            sha: "0123456789abcdef0123456789abcdef01234567".to_owned(),
            install_id: "test-install".to_owned(),
            attempt_id: 41,
        }
    }

    #[test]
    fn labels_identify_the_preview() {
        let labels = meta().labels();
        assert_eq!(labels.len(), 5);
        assert_eq!(labels[INSTALL_LABEL], "test-install");
        assert_eq!(labels[MANAGED_BY_LABEL], "previewd");
        assert_eq!(labels[REPO_LABEL], label_value("acme/web"));
        assert_eq!(labels[PR_LABEL], "12");
        assert_eq!(labels[PREVIEW_ID_LABEL], "7");
        assert!(
            labels
                .values()
                .all(|v| crate::cluster::naming::is_label_value(v))
        );
        assert_eq!(meta().annotations()[REPO_ANNOTATION], "acme/web");
    }

    #[test]
    fn guard_rails_validate() {
        assert_eq!(GuardRails::default().validate(), Ok(()));
        let bad_cpu = GuardRails {
            cpu: "lots".into(),
            ..GuardRails::default()
        };
        assert!(bad_cpu.validate().unwrap_err().contains("cpu"));
        let bad_mem = GuardRails {
            memory: "512MB".into(),
            ..GuardRails::default()
        };
        assert!(bad_mem.validate().unwrap_err().contains("memory"));
        let no_pods = GuardRails {
            max_pods: 0,
            ..GuardRails::default()
        };
        assert!(no_pods.validate().is_err());
        let bad_ns = GuardRails {
            dns_namespace: "Kube_System".into(),
            ..GuardRails::default()
        };
        assert!(bad_ns.validate().unwrap_err().contains("dns"));
    }

    #[test]
    fn apply_json_carries_api_version_and_kind() {
        let json = to_apply_json(&namespace(&meta()));
        assert_eq!(json["apiVersion"], "v1");
        assert_eq!(json["kind"], "Namespace");
        let json = to_apply_json(&deployment(&meta(), &web::tests::web()));
        assert_eq!(json["apiVersion"], "apps/v1");
        assert_eq!(json["kind"], "Deployment");
        assert_eq!(json["metadata"]["namespace"], "acme-web-pr-12");
    }
}
