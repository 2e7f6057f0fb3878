//! The worker's access to a namespace it created: one RoleBinding that grants the install's
//! preview ClusterRole (`PREVIEW_ROLE`) to the worker's own ServiceAccount in that namespace —
//! and, beside it, one granting the viewer ClusterRole (`VIEWER_ROLE`: read pods, logs, events,
//! usage) to the app's ServiceAccount, for the dashboard.
//!
//! The Helm chart gives the worker no namespaced rights anywhere: it may create namespaces and
//! bind that one role in them (`bind` on that ClusterRole alone), so everything else it does —
//! quotas, builds, workloads, logs — it can do only in namespaces it made and bound. The
//! RoleBinding is applied right after its namespace (see `apply.rs`), before any other object.

use std::collections::BTreeMap;

use k8s_openapi::api::rbac::v1::{RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::config::{NamespaceAccess, RoleGrant, SecretName};

/// Name of the worker's RoleBinding in every namespace previewd creates.
pub const ACCESS_BINDING_NAME: &str = "previewd-worker";
/// Name of the app's (viewer) RoleBinding beside it.
pub const VIEWER_BINDING_NAME: &str = "previewd-viewer";

/// The RoleBinding granting `access.cluster_role` to the worker in `namespace`, labelled like
/// the namespace (so sweeps and pruning see it as previewd's).
pub fn access_binding(
    namespace: &str,
    labels: BTreeMap<String, String>,
    access: &NamespaceAccess,
) -> RoleBinding {
    binding(
        ACCESS_BINDING_NAME,
        namespace,
        labels,
        &access.cluster_role,
        &access.service_account,
    )
}

/// The RoleBinding granting the viewer role to the app in `namespace`, labelled likewise.
pub fn viewer_binding(
    namespace: &str,
    labels: BTreeMap<String, String>,
    viewer: &RoleGrant,
) -> RoleBinding {
    binding(
        VIEWER_BINDING_NAME,
        namespace,
        labels,
        &viewer.cluster_role,
        &viewer.service_account,
    )
}

fn binding(
    name: &str,
    namespace: &str,
    labels: BTreeMap<String, String>,
    cluster_role: &str,
    account: &SecretName,
) -> RoleBinding {
    RoleBinding {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(namespace.to_owned()),
            labels: Some(labels),
            ..ObjectMeta::default()
        },
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".to_owned(),
            kind: "ClusterRole".to_owned(),
            name: cluster_role.to_owned(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".to_owned(),
            name: account.name.clone(),
            namespace: Some(account.namespace.clone()),
            api_group: None,
        }]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds_the_preview_role_to_the_worker() {
        let access = NamespaceAccess {
            cluster_role: "previewd-preview".into(),
            service_account: SecretName {
                namespace: "previewd".into(),
                name: "previewd-worker".into(),
            },
            viewer: Some(RoleGrant {
                cluster_role: "previewd-viewer".into(),
                service_account: SecretName {
                    namespace: "previewd".into(),
                    name: "previewd-app".into(),
                },
            }),
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
        let v = viewer_binding(
            "acme-web-pr-1",
            b.metadata.labels.clone().unwrap_or_default(),
            access.viewer.as_ref().expect("viewer"),
        );
        assert_eq!(v.metadata.name.as_deref(), Some(VIEWER_BINDING_NAME));
        assert_eq!(v.role_ref.name, "previewd-viewer");
        assert_eq!(
            v.subjects.as_ref().expect("subjects")[0].name,
            "previewd-app"
        );
    }
}
