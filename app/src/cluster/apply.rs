//! The kube-rs side: applying objects, deleting a preview's namespace, and what went wrong.
//!
//! Every write is a server-side apply with field manager `previewd` and `force` (previewd owns
//! the fields it sets; a conflict with a human's `kubectl edit` resolves in previewd's favour).
//! Typed objects and chart objects both go through `Api<DynamicObject>`: the REST path comes from
//! the type (typed) or from the allow-list of `kinds.rs` (chart), so no discovery call is made.
//!
//! With the chart's least-privilege RBAC the worker holds no namespaced rights of its own: each
//! namespace it applies is followed at once by the RoleBinding of `objects/access.rs`
//! ([`Cluster::with_namespace_access`]), and that apply returns only once the API server honours
//! the binding, so every namespace previewd creates — preview or build — is one it can work in.
//!
//! [`ClusterError`] separates what is worth retrying — the API server unreachable, overloaded
//! (429), failing (5xx) or slow — from rejections (the object or the request is wrong: 4xx with
//! the server's message), which a retry would only repeat. Messages never carry object bodies
//! (a Secret's data), and server messages go through [`crate::sanitize`].

use std::any::TypeId;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, ResourceQuota};
use k8s_openapi::{ClusterResourceScope, NamespaceResourceScope};
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams,
};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::kinds::allowed_kind;
use super::objects::{FIELD_MANAGER, access_binding, viewer_binding};
use crate::config::NamespaceAccess;
use crate::sanitize::sanitize;

/// Time allowed to open a connection to the API server.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest server message kept in an error.
const MAX_MESSAGE_CHARS: usize = 1000;
/// How long a fresh RoleBinding may take to be honoured (RBAC is read from a cache).
const BINDING_PATIENCE: Duration = Duration::from_secs(10);

/// A connection to the cluster previews run in.
#[derive(Clone)]
pub struct Cluster {
    client: Client,
    /// The role bound in every namespace applied (`PREVIEW_ROLE`), if any.
    access: Option<Arc<NamespaceAccess>>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster").finish_non_exhaustive()
    }
}

/// What deleting a namespace found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteOutcome {
    /// The namespace exists and is now terminating (its objects go first: foreground).
    Deleting,
    /// There was no such namespace: for clean-up, success.
    AlreadyGone,
}

/// Why a cluster call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The cluster could not be reached or did not cope (connection, TLS handshake, timeout,
    /// 429, 5xx): try again later.
    #[error("Kubernetes API unavailable: {message}")]
    Unavailable { message: String },
    /// The API server refused the request (403, 404, 409, 422, …): retrying repeats it.
    #[error("Kubernetes API rejected the request ({code} {reason}): {message}")]
    Rejected {
        code: u16,
        reason: String,
        message: String,
    },
    /// No usable configuration (kubeconfig unreadable, no in-cluster environment, bad TLS).
    #[error("Kubernetes client configuration: {0}")]
    Config(String),
    /// The object cannot be sent as it is (no name, no namespace, a kind outside the allow-list).
    #[error("cannot apply this object: {0}")]
    Invalid(String),
    /// The API server's answer did not decode.
    #[error("unexpected answer from the Kubernetes API: {0}")]
    Decode(String),
    /// A namespace previewd would use exists and was not created by this install for this
    /// preview: previewd never adopts it.
    #[error(
        "the namespace {namespace} already exists and was not created by this previewd for this \
         preview; previewd does not take over namespaces it did not create (ask a cluster \
         operator to remove or rename it)"
    )]
    NotOurs { namespace: String },
}

impl ClusterError {
    /// Whether trying again later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }

    /// The HTTP status of a rejection.
    pub fn status_code(&self) -> Option<u16> {
        match self {
            Self::Rejected { code, .. } => Some(*code),
            _ => None,
        }
    }

    pub(crate) fn from_kube(error: kube::Error) -> Self {
        match error {
            kube::Error::Api(status) => {
                let message = redact(&status.message);
                let reason = status.reason.clone();
                let code = status.code;
                // A namespace still terminating refuses new objects (403 "is being terminated")
                // until it is gone: waiting helps.
                let terminating = code == 403 && message.contains("being terminated");
                if code == 408 || code == 429 || code >= 500 || terminating {
                    Self::Unavailable {
                        message: format!("{code} {reason}: {message}"),
                    }
                } else {
                    Self::Rejected {
                        code,
                        reason,
                        message,
                    }
                }
            }
            kube::Error::SerdeError(e) => Self::Decode(redact(&e.to_string())),
            kube::Error::FromUtf8(e) => Self::Decode(redact(&e.to_string())),
            kube::Error::BuildRequest(e) => Self::Invalid(redact(&e.to_string())),
            kube::Error::InferConfig(e) => Self::Config(redact(&e.to_string())),
            kube::Error::InferKubeconfig(e) => Self::Config(redact(&e.to_string())),
            kube::Error::RustlsTls(e) => Self::Config(redact(&e.to_string())),
            kube::Error::TlsRequired => Self::Config("TLS required but unavailable".to_owned()),
            kube::Error::ProxyProtocolUnsupported { .. }
            | kube::Error::ProxyProtocolDisabled { .. } => Self::Config(redact(&error.to_string())),
            // Connection, I/O, timeouts, credential refresh: the infrastructure.
            other => Self::Unavailable {
                message: redact(&error_chain(&other)),
            },
        }
    }
}

impl Cluster {
    /// Connects with the kubeconfig at `kubeconfig` (its current context), or else the usual way
    /// (`KUBECONFIG`, `~/.kube/config`, then the in-cluster service account). kube's own retries
    /// are off: the jobs retry, with backoff, what [`ClusterError::is_retryable`] says to.
    pub async fn connect(kubeconfig: Option<&Path>) -> Result<Self, ClusterError> {
        let mut config = match kubeconfig {
            Some(path) => {
                let file = Kubeconfig::read_from(path).map_err(|e| {
                    ClusterError::Config(format!(
                        "reading {}: {}",
                        path.display(),
                        redact(&e.to_string())
                    ))
                })?;
                Config::from_custom_kubeconfig(file, &KubeConfigOptions::default())
                    .await
                    .map_err(|e| ClusterError::Config(redact(&e.to_string())))?
            }
            None => Config::infer()
                .await
                .map_err(|e| ClusterError::Config(redact(&e.to_string())))?,
        };
        config.default_retry = false;
        config.connect_timeout = Some(CONNECT_TIMEOUT);
        let client = Client::try_from(config).map_err(ClusterError::from_kube)?;
        Ok(Self::from_client(client))
    }

    /// Uses an existing client (tests, or a caller with its own configuration).
    pub fn from_client(client: Client) -> Self {
        Self {
            client,
            access: None,
        }
    }

    /// From now on, every Namespace applied is followed by the RoleBinding granting
    /// `access.cluster_role` to the worker in it (`None`: no binding, the credentials reach
    /// every namespace by themselves).
    #[must_use]
    pub fn with_namespace_access(mut self, access: Option<NamespaceAccess>) -> Self {
        self.access = access.map(Arc::new);
        self
    }

    /// The underlying client, for reads this module does not wrap (watches, logs).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Server-side applies `obj` (cluster-scoped, or namespaced in its `metadata.namespace`) and
    /// returns the object as the API server stored it. A Namespace is followed by the worker's
    /// RoleBinding in it when [`Self::with_namespace_access`] asked for one.
    pub async fn apply<T>(&self, obj: &T) -> Result<T, ClusterError>
    where
        T: kube::Resource<DynamicType = ()> + Serialize + DeserializeOwned,
        T::Scope: 'static,
    {
        let resource = ApiResource::erase::<T>(&());
        let name = obj.meta().name.clone().unwrap_or_default();
        let scope = TypeId::of::<T::Scope>();
        let namespace = if scope == TypeId::of::<ClusterResourceScope>() {
            None
        } else {
            let namespace = obj.meta().namespace.as_deref();
            if scope == TypeId::of::<NamespaceResourceScope>() && namespace.is_none() {
                return Err(ClusterError::Invalid(format!(
                    "{} {name:?} has no namespace",
                    resource.kind
                )));
            }
            namespace
        };
        let mut body =
            serde_json::to_value(obj).map_err(|e| ClusterError::Invalid(e.to_string()))?;
        if let Some(map) = body.as_object_mut() {
            map.insert("apiVersion".to_owned(), resource.api_version.clone().into());
            map.insert("kind".to_owned(), resource.kind.clone().into());
        }
        let applied = self.apply_value(&resource, namespace, &name, &body).await?;
        if let Some(access) = &self.access
            && resource.group.is_empty()
            && resource.kind == "Namespace"
        {
            let labels = obj.meta().labels.clone().unwrap_or_default();
            self.bind_access(&name, labels, access).await?;
        }
        let applied =
            serde_json::to_value(applied).map_err(|e| ClusterError::Decode(e.to_string()))?;
        serde_json::from_value(applied).map_err(|e| ClusterError::Decode(e.to_string()))
    }

    /// Applies the worker's RoleBinding in `namespace` (and the app's viewer binding, when
    /// configured), then waits (up to [`BINDING_PATIENCE`])
    /// until a namespaced read the role grants stops being refused: RBAC decisions come from a
    /// cache, and the objects applied next must not meet a 403 in the meantime.
    async fn bind_access(
        &self,
        namespace: &str,
        labels: BTreeMap<String, String>,
        access: &NamespaceAccess,
    ) -> Result<(), ClusterError> {
        let mut bindings = vec![access_binding(namespace, labels.clone(), access)];
        if let Some(viewer) = &access.viewer {
            bindings.push(viewer_binding(namespace, labels, viewer));
        }
        let resource = ApiResource::erase::<k8s_openapi::api::rbac::v1::RoleBinding>(&());
        for binding in &bindings {
            let mut body =
                serde_json::to_value(binding).map_err(|e| ClusterError::Invalid(e.to_string()))?;
            if let Some(map) = body.as_object_mut() {
                map.insert("apiVersion".to_owned(), resource.api_version.clone().into());
                map.insert("kind".to_owned(), resource.kind.clone().into());
            }
            let name = binding.metadata.name.clone().unwrap_or_default();
            self.apply_value(&resource, Some(namespace), &name, &body)
                .await?;
        }
        let quotas: Api<ResourceQuota> = Api::namespaced(self.client.clone(), namespace);
        let started = std::time::Instant::now();
        let mut pause = Duration::from_millis(50);
        loop {
            match quotas.list(&ListParams::default().limit(1)).await {
                Ok(_) => return Ok(()),
                Err(kube::Error::Api(status))
                    if status.code == 403 && started.elapsed() < BINDING_PATIENCE =>
                {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(1));
                }
                Err(e) => return Err(ClusterError::from_kube(e)),
            }
        }
    }

    /// Server-side applies a rendered chart object (see `helm.rs`): its kind must be one of the
    /// allow-list and it must carry `metadata.namespace`.
    pub async fn apply_json(&self, obj: &Value) -> Result<(), ClusterError> {
        let text = |pointer: &str| {
            obj.pointer(pointer)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        };
        let (Some(api_version), Some(kind)) = (text("/apiVersion"), text("/kind")) else {
            return Err(ClusterError::Invalid("no apiVersion or kind".to_owned()));
        };
        let Some(name) = text("/metadata/name") else {
            return Err(ClusterError::Invalid(format!(
                "{kind} without metadata.name"
            )));
        };
        let Some(namespace) = text("/metadata/namespace") else {
            return Err(ClusterError::Invalid(format!(
                "{kind} {name:?} has no namespace"
            )));
        };
        let Some(allowed) = allowed_kind(api_version, kind) else {
            return Err(ClusterError::Invalid(format!(
                "{api_version} {kind} is not a kind previewd applies"
            )));
        };
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        let resource = ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk(group, version, kind),
            allowed.plural,
        );
        self.apply_value(&resource, Some(namespace), name, obj)
            .await?;
        Ok(())
    }

    /// Deletes namespace `name` with foreground propagation; a missing namespace is
    /// [`DeleteOutcome::AlreadyGone`]. Deletion is asynchronous: poll [`Self::namespace_exists`]
    /// to know when it is gone.
    pub async fn delete_namespace(&self, name: &str) -> Result<DeleteOutcome, ClusterError> {
        let api: Api<Namespace> = Api::all(self.client.clone());
        match api.delete(name, &DeleteParams::foreground()).await {
            Ok(_) => Ok(DeleteOutcome::Deleting),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(DeleteOutcome::AlreadyGone),
            // Already terminating: a second delete is refused with 409, the first one is at work.
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(DeleteOutcome::Deleting),
            Err(e) => Err(ClusterError::from_kube(e)),
        }
    }

    /// Deletes one object of an allowed kind (see `kinds.rs`) in `namespace`; a missing one is
    /// fine. Dependents are removed in the background.
    pub async fn delete_object(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Result<(), ClusterError> {
        let api = self.dynamic_api(api_version, kind, namespace)?;
        match api.delete(name, &DeleteParams::background()).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
            Err(e) => Err(ClusterError::from_kube(e)),
        }
    }

    /// Objects of an allowed kind in `namespace` matching `selector`: (name, object).
    pub async fn list_objects(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        selector: &str,
    ) -> Result<Vec<DynamicObject>, ClusterError> {
        let api = self.dynamic_api(api_version, kind, namespace)?;
        api.list(&ListParams::default().labels(selector))
            .await
            .map(|list| list.items)
            .map_err(ClusterError::from_kube)
    }

    fn dynamic_api(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
    ) -> Result<Api<DynamicObject>, ClusterError> {
        let Some(allowed) = allowed_kind(api_version, kind) else {
            return Err(ClusterError::Invalid(format!(
                "{api_version} {kind} is not a kind previewd applies"
            )));
        };
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        let resource = ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk(group, version, kind),
            allowed.plural,
        );
        Ok(Api::namespaced_with(
            self.client.clone(),
            namespace,
            &resource,
        ))
    }

    /// Whether namespace `name` exists (a terminating namespace still does).
    pub async fn namespace_exists(&self, name: &str) -> Result<bool, ClusterError> {
        let api: Api<Namespace> = Api::all(self.client.clone());
        match api.get_opt(name).await {
            Ok(found) => Ok(found.is_some()),
            Err(e) => Err(ClusterError::from_kube(e)),
        }
    }

    async fn apply_value(
        &self,
        resource: &ApiResource,
        namespace: Option<&str>,
        name: &str,
        body: &Value,
    ) -> Result<DynamicObject, ClusterError> {
        if name.is_empty() {
            return Err(ClusterError::Invalid(format!(
                "{} without metadata.name",
                resource.kind
            )));
        }
        let api: Api<DynamicObject> = match namespace {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, resource),
            None => Api::all_with(self.client.clone(), resource),
        };
        let params = PatchParams::apply(FIELD_MANAGER).force();
        api.patch(name, &params, &Patch::Apply(body))
            .await
            .map_err(ClusterError::from_kube)
    }
}

/// `error` and its sources, joined (kube's top-level messages say little: "ServiceError: …").
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}

/// `message` without credentials (the house sanitizer), capped in length.
fn redact(message: &str) -> String {
    sanitize(message, MAX_MESSAGE_CHARS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::Status;

    fn api_error(code: u16, reason: &str, message: &str) -> ClusterError {
        let mut status = Status::failure(message, reason);
        status.code = code;
        ClusterError::from_kube(kube::Error::Api(Box::new(status)))
    }

    #[test]
    fn server_trouble_is_retryable_rejections_are_not() {
        for code in [408, 429, 500, 502, 503, 504] {
            let e = api_error(code, "InternalError", "etcd timeout");
            assert!(e.is_retryable(), "{code}: {e}");
            assert!(e.to_string().contains("etcd timeout"));
        }
        for (code, reason) in [
            (400, "BadRequest"),
            (403, "Forbidden"),
            (404, "NotFound"),
            (409, "Conflict"),
            (422, "Invalid"),
        ] {
            let e = api_error(code, reason, "the object is not allowed");
            assert!(!e.is_retryable(), "{code}");
            assert_eq!(e.status_code(), Some(code));
            let text = e.to_string();
            assert!(
                text.contains(reason) && text.contains("the object is not allowed"),
                "{text}"
            );
        }
        // A namespace still terminating refuses objects until it is gone: worth waiting for.
        let e = api_error(
            403,
            "Forbidden",
            "unable to create new content in namespace p because it is being terminated",
        );
        assert!(e.is_retryable(), "{e}");
    }

    #[test]
    fn connection_failures_are_retryable() {
        let e = ClusterError::from_kube(kube::Error::Service("connection refused".into()));
        assert!(e.is_retryable());
        assert!(e.to_string().contains("connection refused"));
        let e = ClusterError::from_kube(kube::Error::TlsRequired);
        assert!(!e.is_retryable());
    }

    #[test]
    fn tokens_in_server_messages_are_redacted() {
        let e = api_error(
            422,
            "Invalid",
            "bad value ghs_abcdefghijklmnop0123456789 and Bearer sometoken",
        );
        let text = e.to_string();
        assert!(
            !text.contains("ghs_abc") && !text.contains("sometoken"),
            "{text}"
        );
        assert!(text.contains("[REDACTED]"));
        assert!(redact(&"x ".repeat(2000)).chars().count() <= MAX_MESSAGE_CHARS + 1);
    }
}
