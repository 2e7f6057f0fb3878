//! The Kubernetes Secret the "Register GitHub App" flow stores the App's credentials in, when
//! previewd runs from the Helm chart (`GITHUB_APP_CREDENTIALS_SECRET`).
//!
//! The chart creates the Secret empty and keeps it on uninstall; the app may only `get` and
//! `update` that one Secret by name. [`CredentialsSecret::fill`] writes the credentials key only
//! if it is still absent, with the resourceVersion it read, so two registrations racing on two
//! replicas cannot both win: the second update meets a 409 Conflict. Every process reads the
//! credentials back from the Secret mounted as a file, never through the API.

use std::collections::BTreeMap;
use std::path::Path;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::PostParams;
use secrecy::{ExposeSecret, SecretString};

use super::apply::{Cluster, ClusterError};
use super::objects::FIELD_MANAGER;
use crate::config::SecretName;

/// What [`CredentialsSecret::fill`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filled {
    /// The key was absent and now holds the value.
    Stored,
    /// The key was there already (another registration finished first): nothing written.
    AlreadyFilled,
}

/// One named Secret the app may read and update.
#[derive(Clone)]
pub struct CredentialsSecret {
    api: Api<Secret>,
    target: SecretName,
}

impl std::fmt::Debug for CredentialsSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialsSecret")
            .field("target", &self.target.to_string())
            .finish_non_exhaustive()
    }
}

impl CredentialsSecret {
    /// Connects as [`Cluster::connect`] does (the kubeconfig, else in-cluster).
    pub async fn connect(
        kubeconfig: Option<&Path>,
        target: &SecretName,
    ) -> Result<Self, ClusterError> {
        let cluster = Cluster::connect(kubeconfig).await?;
        Ok(Self {
            api: Api::namespaced(cluster.client().clone(), &target.namespace),
            target: target.clone(),
        })
    }

    /// `NAMESPACE/NAME`.
    pub fn target(&self) -> &SecretName {
        &self.target
    }

    /// Whether `key` holds a value. A missing Secret is an error: the chart creates it.
    pub async fn is_filled(&self, key: &str) -> Result<bool, ClusterError> {
        let secret = self
            .api
            .get(&self.target.name)
            .await
            .map_err(ClusterError::from_kube)?;
        Ok(has_key(&secret, key))
    }

    /// Sets `key` to `value` unless it holds a value already.
    pub async fn fill(&self, key: &str, value: &SecretString) -> Result<Filled, ClusterError> {
        let mut secret = self
            .api
            .get(&self.target.name)
            .await
            .map_err(ClusterError::from_kube)?;
        if has_key(&secret, key) {
            return Ok(Filled::AlreadyFilled);
        }
        secret.data.get_or_insert_with(BTreeMap::new).insert(
            key.to_owned(),
            ByteString(value.expose_secret().as_bytes().to_vec()),
        );
        secret.metadata.managed_fields = None;
        let params = PostParams {
            field_manager: Some(FIELD_MANAGER.to_owned()),
            ..PostParams::default()
        };
        // metadata.resourceVersion is the one read above: a concurrent writer makes this 409.
        match self.api.replace(&self.target.name, &params, &secret).await {
            Ok(_) => Ok(Filled::Stored),
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(Filled::AlreadyFilled),
            Err(e) => Err(ClusterError::from_kube(e)),
        }
    }
}

fn has_key(secret: &Secret, key: &str) -> bool {
    secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .is_some_and(|v| !v.0.is_empty())
        || secret
            .string_data
            .as_ref()
            .and_then(|d| d.get(key))
            .is_some_and(|v| !v.is_empty())
}
