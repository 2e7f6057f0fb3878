//! What the jobs ask of the cluster, as intents: prepare a preview's namespace, run an image
//! build, apply a workload, remove a preview, find what this install owns. The deploy job says
//! *what* it wants; the order of the objects, the ownership checks, labelling and pruning are
//! decided here, once.
//!
//! - [`Cluster::prepare_namespace`]: the namespace (Pod Security `restricted`) and its guard
//!   rails. An existing namespace is used only if this install created it for this preview;
//!   any other is refused ([`ClusterError::NotOurs`]), never adopted.
//! - [`Cluster::run_build`]: the build in a namespace of its own for this attempt (see
//!   `objects/build.rs`), waited for, and the namespace deleted when the build ends — on
//!   success, failure, or when the waiting is abandoned (a newer commit, a cleanup).
//! - [`Cluster::apply_workload`]: labels and applies the workload's objects, replaces one whose
//!   unchangeable fields changed (a Job's template, a Deployment's selector), and prunes workload objects the new set
//!   no longer has (an object dropped from a chart between commits, or the built-in service when
//!   a chart takes over).
//! - [`Cluster::remove_preview`]: the preview namespace and any build namespaces it left.
//! - [`Cluster::owned_namespaces`]: every namespace labelled as this install's.

use std::collections::HashSet;

use k8s_openapi::api::core::v1::Namespace;
use kube::{Api, api::ListParams};
use secrecy::SecretString;
use serde_json::Value;
use tokio::time::Instant;

use super::kinds::ALLOWED_KINDS;
use super::objects::{
    ATTEMPT_LABEL, BuildBudget, BuildSpec, EgressTarget, GuardRails, INSTALL_LABEL, MANAGED_BY,
    MANAGED_BY_LABEL, PART_LABEL, PART_WORKLOAD, PREVIEW_ID_LABEL, PreviewMeta, REPO_LABEL,
    ROLE_BUILD, ROLE_LABEL, build_job, build_job_name, build_namespace, build_network_policies,
    build_quota, build_secret, limit_range, namespace, network_policies, resource_quota,
};
use super::observe::{Outcome, Scope};
use super::{Cluster, ClusterError, label_objects, label_value};

/// An image build to run for an attempt.
pub struct BuildRequest<'a> {
    /// The preview and attempt (its namespace is the preview's; the build gets its own).
    pub meta: &'a PreviewMeta,
    pub spec: BuildSpec,
    /// The token the build clones with (minted for this build alone).
    pub token: SecretString,
    pub budget: BuildBudget,
    /// Where the build may connect to (the git host, the registry).
    pub egress: Vec<EgressTarget>,
    /// Namespace of the cluster DNS.
    pub dns_namespace: String,
}

/// A namespace labelled as this install's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedNamespace {
    pub name: String,
    pub created: Option<chrono::DateTime<chrono::Utc>>,
    /// The preview it belongs to (its label).
    pub preview_id: Option<i64>,
    /// For a build namespace: the attempt it builds.
    pub build_attempt: Option<i64>,
    /// The repository label it carries (it follows renames at the next deploy or reconcile).
    pub repo_label: Option<String>,
}

/// Deletes a build namespace when dropped, unless [`BuildNamespace::delete`] ran: a build whose
/// waiting is abandoned (its future dropped) still leaves nothing behind.
struct BuildNamespace {
    cluster: Cluster,
    name: String,
    armed: bool,
}

impl BuildNamespace {
    async fn delete(mut self) {
        self.armed = false;
        if let Err(e) = self.cluster.delete_namespace(&self.name).await {
            tracing::warn!(namespace = %self.name, error = %e, "could not delete the build namespace; the orphan sweep will");
        }
    }
}

impl Drop for BuildNamespace {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let (cluster, name) = (self.cluster.clone(), self.name.clone());
            runtime.spawn(async move {
                if let Err(e) = cluster.delete_namespace(&name).await {
                    tracing::warn!(namespace = %name, error = %e, "could not delete the build namespace; the orphan sweep will");
                }
            });
        }
    }
}

impl Cluster {
    /// Makes the preview's namespace ready for its workload (see the module documentation).
    pub async fn prepare_namespace(
        &self,
        meta: &PreviewMeta,
        rails: &GuardRails,
    ) -> Result<(), ClusterError> {
        self.refuse_foreign_namespace(meta, &meta.namespace).await?;
        self.apply(&namespace(meta)).await?;
        self.apply(&resource_quota(meta, rails)).await?;
        self.apply(&limit_range(meta, rails)).await?;
        for policy in network_policies(meta, rails) {
            self.apply(&policy).await?;
        }
        Ok(())
    }

    /// `Err(NotOurs)` when namespace `name` exists without this install's and this preview's
    /// labels; `Err(Unavailable)` while it is still terminating (a cleanup's delete).
    async fn refuse_foreign_namespace(
        &self,
        meta: &PreviewMeta,
        name: &str,
    ) -> Result<(), ClusterError> {
        let api: Api<Namespace> = Api::all(self.client().clone());
        let Some(existing) = api.get_opt(name).await.map_err(ClusterError::from_kube)? else {
            return Ok(());
        };
        let labels = existing.metadata.labels.unwrap_or_default();
        let ours = labels.get(INSTALL_LABEL) == Some(&label_value(&meta.install_id))
            && labels.get(PREVIEW_ID_LABEL) == Some(&meta.preview_id.to_string());
        if !ours {
            return Err(ClusterError::NotOurs {
                namespace: name.to_owned(),
            });
        }
        if existing.metadata.deletion_timestamp.is_some() {
            return Err(ClusterError::Unavailable {
                message: format!("namespace {name} is still being deleted"),
            });
        }
        Ok(())
    }

    /// Runs the image build of `request` until it ends or `deadline` passes (see the module
    /// documentation); its namespace is gone (or going) when this returns.
    pub async fn run_build(
        &self,
        request: BuildRequest<'_>,
        deadline: Instant,
    ) -> Result<Outcome, ClusterError> {
        let meta = request.meta.for_build();
        self.refuse_foreign_namespace(&meta, &meta.namespace)
            .await?;
        let guard = BuildNamespace {
            cluster: self.clone(),
            name: meta.namespace.clone(),
            armed: true,
        };
        let job = build_job(&meta, &request.spec, &request.budget);
        let job_name = build_job_name(&request.spec.sha);
        let outcome = async {
            self.apply(&build_namespace(&meta)).await?;
            self.apply(&build_quota(&meta, &request.budget)).await?;
            for policy in build_network_policies(&meta, &request.egress, &request.dns_namespace) {
                self.apply(&policy).await?;
            }
            self.apply(&build_secret(&meta, &request.token)).await?;
            self.apply(&job).await?;
            self.wait_job(&meta.namespace, &job_name, deadline).await
        }
        .await;
        guard.delete().await;
        outcome
    }

    /// Applies the workload `objects` of the preview (see the module documentation).
    pub async fn apply_workload(
        &self,
        meta: &PreviewMeta,
        mut objects: Vec<Value>,
    ) -> Result<(), ClusterError> {
        label_objects(&mut objects, meta);
        let mut kept: HashSet<(String, String)> = HashSet::new();
        for object in &objects {
            self.apply_replacing(object).await?;
            let text = |p: &str| {
                object
                    .pointer(p)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            };
            kept.insert((text("/kind"), text("/metadata/name")));
        }
        let selector = format!(
            "{PART_LABEL}={PART_WORKLOAD},{PREVIEW_ID_LABEL}={}",
            meta.preview_id
        );
        for kind in ALLOWED_KINDS {
            let found = self
                .list_objects(kind.api_version, kind.kind, &meta.namespace, &selector)
                .await?;
            for object in found {
                let name = object.metadata.name.clone().unwrap_or_default();
                if !kept.contains(&(kind.kind.to_owned(), name.clone())) {
                    tracing::info!(namespace = %meta.namespace, kind = kind.kind, %name, "pruning an object the workload no longer has");
                    self.delete_object(kind.api_version, kind.kind, &meta.namespace, &name)
                        .await?;
                }
            }
        }
        Ok(())
    }

    /// Applies `object`; one refused because a field that cannot change did (a Job's template,
    /// a Deployment's selector when a chart takes over from the built-in service) is deleted
    /// and created anew.
    async fn apply_replacing(&self, object: &Value) -> Result<(), ClusterError> {
        match self.apply_json(object).await {
            Err(ClusterError::Rejected {
                code: 422, message, ..
            }) if message.contains("immutable") => {
                let text = |p: &str| {
                    object
                        .pointer(p)
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                };
                tracing::info!(
                    kind = text("/kind"),
                    name = text("/metadata/name"),
                    "replacing an object whose unchangeable fields changed"
                );
                self.delete_object(
                    text("/apiVersion"),
                    text("/kind"),
                    text("/metadata/namespace"),
                    text("/metadata/name"),
                )
                .await?;
                self.apply_json(object).await
            }
            other => other,
        }
    }

    /// Waits until the preview's workload of `meta.attempt_id` is ready (see
    /// [`Cluster::wait_workloads`]).
    pub async fn wait_ready(
        &self,
        meta: &PreviewMeta,
        since: chrono::DateTime<chrono::Utc>,
        deadline: Instant,
    ) -> Result<Outcome, ClusterError> {
        let scope = Scope {
            attempt_id: meta.attempt_id,
            since,
        };
        self.wait_workloads(&meta.namespace, &scope, deadline).await
    }

    /// Deletes preview `preview_id`'s namespace and any build namespace of it this install
    /// left, and waits until the preview namespace is gone; false when `deadline` passed first.
    pub async fn remove_preview(
        &self,
        namespace: &str,
        preview_id: i64,
        install_id: &str,
        deadline: Instant,
    ) -> Result<bool, ClusterError> {
        self.delete_namespace(namespace).await?;
        for owned in self.owned_namespaces(install_id).await? {
            if owned.preview_id == Some(preview_id) && owned.build_attempt.is_some() {
                self.delete_namespace(&owned.name).await?;
            }
        }
        self.wait_namespace_gone(namespace, deadline).await
    }

    /// Every namespace labelled as this install's (previewd's, with `install_id`).
    pub async fn owned_namespaces(
        &self,
        install_id: &str,
    ) -> Result<Vec<OwnedNamespace>, ClusterError> {
        let api: Api<Namespace> = Api::all(self.client().clone());
        let selector = format!(
            "{MANAGED_BY_LABEL}={MANAGED_BY},{INSTALL_LABEL}={}",
            label_value(install_id)
        );
        let list = api
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(ClusterError::from_kube)?;
        Ok(list
            .items
            .into_iter()
            .filter_map(|n| {
                let labels = n.metadata.labels.clone().unwrap_or_default();
                let number = |key: &str| labels.get(key).and_then(|v| v.parse::<i64>().ok());
                let build = labels.get(ROLE_LABEL).map(String::as_str) == Some(ROLE_BUILD);
                Some(OwnedNamespace {
                    created: n
                        .metadata
                        .creation_timestamp
                        .and_then(|t| chrono::DateTime::from_timestamp(t.0.as_second(), 0)),
                    preview_id: number(PREVIEW_ID_LABEL),
                    build_attempt: if build { number(ATTEMPT_LABEL) } else { None },
                    repo_label: labels.get(REPO_LABEL).cloned(),
                    name: n.metadata.name?,
                })
            })
            .collect())
    }

    /// Brings the preview namespace's labels up to date (a renamed repository), without
    /// touching anything in it.
    pub async fn relabel_namespace(&self, meta: &PreviewMeta) -> Result<(), ClusterError> {
        self.apply(&namespace(meta)).await.map(drop)
    }
}
