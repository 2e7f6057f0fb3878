//! Everything previewd sends to Kubernetes, and the sending.
//!
//! A preview is one namespace ([`naming::namespace_name`]) holding the guard rails
//! (ResourceQuota, LimitRange, NetworkPolicies) and the workload — the repository's Helm chart
//! ([`helm::render_chart`]) or the built-in web service (Deployment, Service, Ingress). Every
//! namespace previewd creates is followed, under the chart's RBAC, by the worker's RoleBinding in
//! it (`objects/access.rs`). An image build runs beside the preview, in a short-lived namespace
//! of its own per attempt. Cleaning up is deleting the namespaces. The jobs speak to this module
//! in intents (`preview.rs`); the order of objects, ownership checks, labels and pruning are
//! decided here.
//!
//! - `naming.rs` — namespace names and label values from arbitrary repository names.
//! - `objects/` — pure, typed builders of every object (k8s-openapi types, no I/O).
//! - `kinds.rs` — the kinds a chart may contain, with their REST plurals.
//! - `helm.rs` — `helm template`, then vetting and labelling the rendered objects.
//! - `preview.rs` — the intents: prepare the namespace, run the build, apply the workload,
//!   remove a preview, list what this install owns.
//! - `observe.rs` — waiting for the build and the workload, and classifying failures from the
//!   current attempt's objects.
//! - `inspect.rs` — what the dashboard reads: pods, logs (once or followed), the current
//!   attempt's events, usage against the quota.
//! - `apply.rs` — [`Cluster`]: server-side apply, deletes, [`ClusterError`] sorting retryable
//!   trouble from rejections.
//! - `credentials_secret.rs` — the one Secret the app may write: where the "Register GitHub
//!   App" flow stores the App's credentials in the Helm chart.
//!
//! Only `apply.rs`, `observe.rs`, `inspect.rs`, `preview.rs` and `credentials_secret.rs` do I/O against the
//! cluster and only `helm.rs` runs a program; the rest is data in, objects out, checked by unit
//! tests and against the Kubernetes schemas (`app/tests/k8s_schemas.rs`).

mod apply;
mod credentials_secret;
pub mod helm;
pub mod inspect;
pub mod kinds;
pub mod naming;
pub mod objects;
pub mod observe;
mod preview;

pub use apply::{Cluster, ClusterError, DeleteOutcome};
pub use credentials_secret::{CredentialsSecret, Filled};
pub use helm::{HelmError, label_objects, parse_rendered, render_chart, vet_ingresses};
pub use naming::{
    build_namespace_name, is_dns1123_label, is_label_value, label_value, namespace_name,
};
pub use objects::{
    ACCESS_BINDING_NAME, BuildBudget, BuildSpec, EgressTarget, GuardRails, PreviewMeta,
    VIEWER_BINDING_NAME, WebService, access_binding, build_job, build_namespace,
    build_network_policies, build_quota, build_secret, deployment, ingress, limit_range, namespace,
    network_policies, resource_quota, service, to_apply_json, viewer_binding,
};
pub use preview::{BuildRequest, OwnedNamespace};
