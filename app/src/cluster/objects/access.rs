//! The worker's access to a namespace it created: one RoleBinding that grants the install's
//! preview ClusterRole (`PREVIEW_ROLE`) to the worker's own ServiceAccount in that namespace.
//!
//! The Helm chart gives the worker no namespaced rights anywhere: it may create namespaces and
//! bind that one role in them (`bind` on that ClusterRole alone), so everything else it does —
//! quotas, builds, workloads, logs — it can do only in namespaces it made and bound. The
//! RoleBinding is applied right after its namespace (see `apply.rs`), before any other object.

use std::collections::BTreeMap;

use k8s_openapi::api::rbac::v1::{RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::config::NamespaceAccess;

/// Name of the RoleBinding in every namespace previewd creates.
pub const ACCESS_BINDING_NAME: &str = "previewd-worker";

/// The RoleBinding granting `access.cluster_role` to the worker in `namespace`, labelled like
/// the namespace (so sweeps and pruning see it as previewd's).
pub fn access_binding(
    namespace: &str,
    labels: BTreeMap<String, String>,
    access: &NamespaceAccess,
) -> RoleBinding {
    RoleBinding {
        metadata: ObjectMeta {
            name: Some(ACCESS_BINDING_NAME.to_owned()),
            namespace: Some(namespace.to_owned()),
            labels: Some(labels),
            ..ObjectMeta::default()
        },
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".to_owned(),
            kind: "ClusterRole".to_owned(),
            name: access.cluster_role.clone(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".to_owned(),
            name: access.service_account.name.clone(),
            namespace: Some(access.service_account.namespace.clone()),
            api_group: None,
        }]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SecretName;

    #[test]
    fn binds_the_preview_role_to_the_worker() {
        let access = NamespaceAccess {
            cluster_role: "previewd-preview".into(),
            service_account: SecretName {
                namespace: "previewd".into(),
                name: "previewd-worker".into(),
            },
        };
        let labels = BTreeMap::from([("app.kubernetes.io/managed-by".into(), "previewd".into())]);
        let b = access_binding("acme-web-pr-1", labels, &access);
        assert_eq!(b.metadata.namespace.as_deref(), Some("acme-web-pr-1"));
        assert_eq!(b.role_ref.kind, "ClusterRole");
        assert_eq!(b.role_ref.name, "previewd-preview");
        let subject = &b.subjects.as_ref().expect("subjects")[0];
        assert_eq!(
            (
                subject.kind.as_str(),
                subject.name.as_str(),
                subject.namespace.as_deref()
            ),
            ("ServiceAccount", "previewd-worker", Some("previewd"))
        );
    }
}
