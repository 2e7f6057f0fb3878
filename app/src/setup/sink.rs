//! Where a registration's credentials go: the credentials file (`GITHUB_APP_CREDENTIALS`, mode
//! 0600, never overwritten) or, in the Helm chart, a Kubernetes Secret that is mounted as that
//! file (`GITHUB_APP_CREDENTIALS_SECRET`). Either way a second registration cannot replace the
//! first: the file is created exclusively, the Secret updated only while its key is empty.

use std::path::PathBuf;

use secrecy::SecretString;

use crate::{
    cluster::{CredentialsSecret, Filled},
    config::RegistrationConfig,
    credentials::{self, AppCredentials, CredentialsError, FILE_NAME},
};

/// The destination of the credentials.
#[derive(Debug, Clone)]
pub enum Sink {
    File(PathBuf),
    Secret(Box<CredentialsSecret>),
}

/// What storing found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    Stored,
    /// Another registration got there first.
    AlreadyRegistered,
}

impl Sink {
    /// The destination `config` names (connecting to the cluster for a Secret).
    pub async fn open(config: &RegistrationConfig) -> anyhow::Result<Self> {
        match &config.secret {
            None => Ok(Self::File(config.credentials_file.clone())),
            Some(name) => {
                let secret = CredentialsSecret::connect(config.kubeconfig.as_deref(), name)
                    .await
                    .map_err(|e| anyhow::anyhow!("GITHUB_APP_CREDENTIALS_SECRET {name}: {e}"))?;
                Ok(Self::Secret(Box::new(secret)))
            }
        }
    }

    /// Where, for people: a path or `Secret NAMESPACE/NAME`.
    pub fn describe(&self) -> String {
        match self {
            Self::File(path) => path.display().to_string(),
            Self::Secret(s) => format!("Secret {}", s.target()),
        }
    }

    /// Checks that a registration could be stored now: nothing registered yet and the place
    /// writable. The message says what is wrong, for the setup page.
    pub async fn check_ready(&self) -> Result<(), SinkProblem> {
        match self {
            Self::File(path) => credentials::check_writable(path).map_err(|e| match e {
                CredentialsError::Exists { .. } => SinkProblem::AlreadyRegistered,
                other => SinkProblem::Unusable(other.to_string()),
            }),
            Self::Secret(secret) => match secret.is_filled(FILE_NAME).await {
                Ok(false) => Ok(()),
                Ok(true) => Err(SinkProblem::AlreadyRegistered),
                Err(e) => Err(SinkProblem::Unusable(format!(
                    "Secret {}: {e}",
                    secret.target()
                ))),
            },
        }
    }

    /// Stores `credentials` unless a registration is stored already.
    pub async fn store(&self, credentials: &AppCredentials) -> Result<Stored, SinkProblem> {
        match self {
            Self::File(path) => match credentials::write_new(path, credentials) {
                Ok(()) => Ok(Stored::Stored),
                Err(CredentialsError::Exists { .. }) => Ok(Stored::AlreadyRegistered),
                Err(e) => Err(SinkProblem::Unusable(e.to_string())),
            },
            Self::Secret(secret) => {
                let json: SecretString = credentials.to_json();
                match secret.fill(FILE_NAME, &json).await {
                    Ok(Filled::Stored) => Ok(Stored::Stored),
                    Ok(Filled::AlreadyFilled) => Ok(Stored::AlreadyRegistered),
                    Err(e) => Err(SinkProblem::Unusable(format!(
                        "Secret {}: {e}",
                        secret.target()
                    ))),
                }
            }
        }
    }
}

/// Why the credentials cannot be stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SinkProblem {
    AlreadyRegistered,
    /// The file's directory is not writable, the Secret is missing or forbidden, ...
    Unusable(String),
}
