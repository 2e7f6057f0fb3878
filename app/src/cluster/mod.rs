//! Everything previewd sends to Kubernetes, and the sending.
//!
//! A preview is one namespace ([`naming::namespace_name`]) holding, in the order the deploy job
//! applies them: the namespace itself with Pod Security labels (followed, under the chart's
//! RBAC, by the worker's RoleBinding in it: `objects/access.rs`), the guard rails (ResourceQuota,
//! LimitRange, NetworkPolicies), then either an image build (Secret + BuildKit Job) or nothing,
//! then the workload — the repository's Helm chart ([`helm::render_chart`]) or the built-in web
//! service (Deployment, Service, Ingress). Cleaning up is deleting the namespace.
//!
//! - `naming.rs` — namespace names and label values from arbitrary repository names.
//! - `objects/` — pure, typed builders of every object (k8s-openapi types, no I/O).
//! - `kinds.rs` — the kinds a chart may contain, with their REST plurals.
//! - `helm.rs` — `helm template`, then vetting and labelling the rendered objects.
//! - `apply.rs` — [`Cluster`]: server-side apply, namespace deletion, [`ClusterError`] sorting
//!   retryable trouble from rejections.
//! - `quantity.rs` — the little resource-quantity arithmetic the builders need.
//! - `credentials_secret.rs` — the one Secret the app may write: where the "Register GitHub
//!   App" flow stores the App's credentials in the Helm chart.
//!
//! Only `apply.rs`, `observe.rs` and `credentials_secret.rs` do I/O against the cluster and only
//! `helm.rs` runs a program; the rest is data in, objects out, checked by unit tests and against
//! the Kubernetes schemas (`app/tests/k8s_schemas.rs`).

mod apply;
mod credentials_secret;
pub mod helm;
pub mod kinds;
pub mod naming;
pub mod objects;
pub mod observe;
mod quantity;

pub use apply::{Cluster, ClusterError, DeleteOutcome};
pub use credentials_secret::{CredentialsSecret, Filled};
pub use helm::{HelmError, label_objects, parse_rendered, render_chart};
pub use naming::{is_dns1123_label, is_label_value, label_value, namespace_name};
pub use objects::{
    ACCESS_BINDING_NAME, BuildSpec, GuardRails, PreviewMeta, WebService, access_binding, build_job,
    build_secret, deployment, ingress, limit_range, namespace, namespace_for_build,
    network_policies, resource_quota, service, to_apply_json,
};
