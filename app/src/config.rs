//! Configuration shared by both binaries: every setting from a flag and an environment variable.
//!
//! [`Settings`] is what clap parses (flags win over variables, variables over defaults); the
//! `*_config` methods turn it into validated, typed configuration for one concern each, so a
//! command only demands what it uses (`previewd migrate` needs no GitHub key). Every problem is a
//! [`ConfigError`] that names the setting by its variable and flag and says what is wrong, in one
//! line; the binaries print it and exit with code 2. Secrets are [`SecretString`] from the moment
//! they are parsed and are never printed: `Debug` of a secret shows `[REDACTED]`.

use std::{fmt, net::SocketAddr, path::PathBuf, time::Duration};

use clap::{Args, ValueEnum};

use crate::units::Quantity;
use secrecy::{ExposeSecret, SecretString};
use url::Url;

/// Process exit code for a missing or invalid setting (the conventional "usage" code).
pub const EXIT_CONFIG: i32 = 2;

/// Every setting, as parsed from flags and environment variables.
#[derive(Debug, Clone, Args)]
pub struct Settings {
    /// The GitHub App's numeric id, from the App's settings page.
    #[arg(long, env = "GITHUB_APP_ID", global = true)]
    pub github_app_id: Option<String>,

    /// Path of the GitHub App's private key (PEM). Either this or GITHUB_PRIVATE_KEY is required.
    #[arg(long, env = "GITHUB_PRIVATE_KEY_PATH", global = true)]
    pub github_private_key_path: Option<PathBuf>,

    /// The GitHub App's private key itself (PEM text), instead of a path.
    #[arg(long, env = "GITHUB_PRIVATE_KEY", global = true, hide_env_values = true, value_parser = secret)]
    pub github_private_key: Option<SecretString>,

    /// Secret shared with GitHub to sign webhook deliveries (X-Hub-Signature-256).
    #[arg(long, env = "GITHUB_WEBHOOK_SECRET", global = true, hide_env_values = true, value_parser = secret)]
    pub github_webhook_secret: Option<SecretString>,

    /// GitHub REST API base URL; set it for GitHub Enterprise Server (`https://HOST/api/v3`).
    #[arg(
        long,
        env = "GITHUB_API_URL",
        global = true,
        default_value = "https://api.github.com"
    )]
    pub github_api_url: String,

    /// Web address of GitHub, where people register and install the App and clone from; set it
    /// for GitHub Enterprise Server (`https://HOST`). Default: derived from GITHUB_API_URL
    /// (`https://api.github.com` → `https://github.com`, `https://HOST/api/v3` → `https://HOST`).
    #[arg(long, env = "GITHUB_URL", global = true)]
    pub github_url: Option<String>,

    /// The App's OAuth client id (its settings page), for the dashboard's "Sign in with GitHub".
    /// Default: the one stored in GITHUB_APP_CREDENTIALS when the App was registered from here.
    #[arg(long, env = "GITHUB_CLIENT_ID", global = true)]
    pub github_client_id: Option<String>,

    /// The App's OAuth client secret (with GITHUB_CLIENT_ID).
    #[arg(long, env = "GITHUB_CLIENT_SECRET", global = true, hide_env_values = true, value_parser = secret)]
    pub github_client_secret: Option<SecretString>,

    /// GitHub logins and organization teams (`org/team-slug`), comma-separated, who see and act
    /// on every preview on the dashboard.
    #[arg(long, env = "OPERATORS", global = true, default_value = "")]
    pub operators: String,

    /// File holding the App's credentials as the "Register GitHub App" page stored them (mode
    /// 0600). Read when GITHUB_APP_ID, the private key and the webhook secret are all unset.
    #[arg(
        long,
        env = "GITHUB_APP_CREDENTIALS",
        global = true,
        default_value = "github-app.json"
    )]
    pub github_app_credentials: PathBuf,

    /// Kubernetes Secret (`NAMESPACE/NAME`) the "Register GitHub App" page stores the
    /// credentials in, instead of writing GITHUB_APP_CREDENTIALS (which then is where that
    /// Secret is mounted).
    #[arg(long, env = "GITHUB_APP_CREDENTIALS_SECRET", global = true)]
    pub github_app_credentials_secret: Option<String>,

    /// Database URL: `sqlite://FILE?mode=rwc` (single node) or `postgres://USER@HOST/DB`.
    #[arg(long, env = "DATABASE_URL", global = true, hide_env_values = true,
          default_value = "sqlite://previewd.db?mode=rwc", value_parser = secret)]
    pub database_url: SecretString,

    /// Redis URL for the job queues.
    #[arg(long, env = "REDIS_URL", global = true, hide_env_values = true,
          default_value = "redis://127.0.0.1:6379", value_parser = secret)]
    pub redis_url: SecretString,

    /// Prefix of every Redis key previewd writes, so several installs (or tests) share a Redis.
    #[arg(long, env = "REDIS_PREFIX", global = true, default_value = "previewd")]
    pub redis_prefix: String,

    /// Kubeconfig file for the cluster previews run in; unset: in-cluster config or ~/.kube/config.
    #[arg(long, env = "KUBECONFIG", global = true)]
    pub kubeconfig: Option<PathBuf>,

    /// DNS domain under which previews are served: `https://<namespace>.<PREVIEW_DOMAIN>`.
    #[arg(long, env = "PREVIEW_DOMAIN", global = true)]
    pub preview_domain: Option<String>,

    /// Address the app's HTTP server listens on (webhooks, dashboard, API, MCP, health).
    #[arg(
        long,
        env = "LISTEN_ADDR",
        global = true,
        default_value = "127.0.0.1:3000"
    )]
    pub listen_addr: String,

    /// URL at which people and GitHub reach the app (links in check runs and comments).
    /// Default: `http://LISTEN_ADDR`.
    #[arg(long, env = "PUBLIC_URL", global = true)]
    pub public_url: Option<String>,

    /// Log format: `text` for people, `json` for log collectors.
    #[arg(long, env = "LOG_FORMAT", global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Log filter in `tracing` syntax, e.g. `info` or `previewd=debug,info`.
    #[arg(long, env = "RUST_LOG", global = true, default_value = "info")]
    pub log_filter: String,

    /// Upper bound for one whole deploy (build, apply, become ready), e.g. `3m`, `90s`.
    #[arg(long, env = "DEPLOY_TIMEOUT", global = true, default_value = "3m")]
    pub deploy_timeout: String,

    /// Upper bound for one whole cleanup (namespace deleted and gone), e.g. `5m`.
    #[arg(long, env = "CLEANUP_TIMEOUT", global = true, default_value = "5m")]
    pub cleanup_timeout: String,

    /// Jobs one worker process runs at the same time.
    #[arg(long, env = "WORKER_CONCURRENCY", global = true, default_value = "4")]
    pub worker_concurrency: String,

    /// Stable name of this worker (the pod name in Kubernetes): a restarted worker re-claims
    /// the jobs it held when it died. Default: `HOSTNAME`, else `worker`.
    #[arg(long, env = "WORKER_NAME", global = true)]
    pub worker_name: Option<String>,

    /// Registry previews' images are built into (`<registry>/<owner>/<repo>:<sha>`); unset:
    /// repositories must name a ready-made `image:`.
    #[arg(long, env = "PREVIEW_REGISTRY", global = true)]
    pub preview_registry: Option<String>,

    /// Push to PREVIEW_REGISTRY over plain HTTP (a registry inside the cluster).
    #[arg(
        long,
        env = "REGISTRY_INSECURE",
        global = true,
        default_value = "false"
    )]
    pub registry_insecure: String,

    /// Image of the in-cluster builder (rootless BuildKit).
    #[arg(
        long,
        env = "BUILDER_IMAGE",
        global = true,
        default_value = "moby/buildkit:v0.26.2-rootless"
    )]
    pub builder_image: String,

    /// The `helm` binary that renders repositories' charts.
    #[arg(long, env = "HELM_BIN", global = true, default_value = "helm")]
    pub helm_bin: PathBuf,

    /// Namespace of the ingress controller (the only source of traffic into previews).
    #[arg(
        long,
        env = "INGRESS_NAMESPACE",
        global = true,
        default_value = "ingress-nginx"
    )]
    pub ingress_namespace: String,

    /// IngressClass of previews' Ingresses; unset: the cluster's default class.
    #[arg(long, env = "INGRESS_CLASS", global = true)]
    pub ingress_class: Option<String>,

    /// Secret (in each preview namespace's ingress) holding the wildcard certificate; unset: the
    /// ingress controller's default certificate.
    #[arg(long, env = "PREVIEW_TLS_SECRET", global = true)]
    pub preview_tls_secret: Option<String>,

    /// CPU of a preview when its repository does not say (also its namespace quota).
    #[arg(long, env = "PREVIEW_CPU", global = true, default_value = "500m")]
    pub preview_cpu: String,

    /// Memory of a preview when its repository does not say (also its namespace quota).
    #[arg(long, env = "PREVIEW_MEMORY", global = true, default_value = "512Mi")]
    pub preview_memory: String,

    /// Most CPU a repository may ask for in `.github/preview.yml`.
    #[arg(long, env = "PREVIEW_MAX_CPU", global = true, default_value = "2")]
    pub preview_max_cpu: String,

    /// Most memory a repository may ask for in `.github/preview.yml`.
    #[arg(long, env = "PREVIEW_MAX_MEMORY", global = true, default_value = "2Gi")]
    pub preview_max_memory: String,

    /// Idle time after which a preview is removed, unless its repository says otherwise.
    #[arg(long, env = "PREVIEW_TTL", global = true, default_value = "72h")]
    pub preview_ttl: String,

    /// Longest `ttl` a repository may ask for in `.github/preview.yml`.
    #[arg(long, env = "PREVIEW_MAX_TTL", global = true, default_value = "720h")]
    pub preview_max_ttl: String,

    /// Registries a repository's ready-made `image:` may come from, comma-separated (e.g.
    /// `ghcr.io/acme,registry.example.com`); unset: any.
    #[arg(long, env = "IMAGE_REGISTRIES", global = true)]
    pub image_registries: Option<String>,

    /// CPU of one in-cluster image build (its container's limit and its build namespace's quota).
    #[arg(long, env = "BUILD_CPU", global = true, default_value = "1")]
    pub build_cpu: String,

    /// Memory of one in-cluster image build.
    #[arg(long, env = "BUILD_MEMORY", global = true, default_value = "2Gi")]
    pub build_memory: String,

    /// Where image builds may connect to, comma-separated `CIDR:PORT` or `namespace=NAME:PORT`
    /// entries; unset: the git host and PREVIEW_REGISTRY, resolved when each build starts.
    #[arg(long, env = "BUILD_EGRESS", global = true)]
    pub build_egress: Option<String>,

    /// How often a worker compares open pull requests with the previews and heals both ways
    /// (`off` to disable).
    #[arg(long, env = "RECONCILE_INTERVAL", global = true, default_value = "5m")]
    pub reconcile_interval: String,

    /// How often a worker asks GitHub to redeliver webhooks that failed (`off` to disable).
    #[arg(long, env = "REDELIVERY_INTERVAL", global = true, default_value = "5m")]
    pub redelivery_interval: String,

    /// How often a worker warns of and removes previews idle past their TTL (`off` to disable).
    #[arg(long, env = "EXPIRY_INTERVAL", global = true, default_value = "1m")]
    pub expiry_interval: String,

    /// A namespace labelled as previewd's but with no live preview is deleted after this long.
    #[arg(long, env = "ORPHAN_GRACE", global = true, default_value = "10m")]
    pub orphan_grace: String,

    /// Also probe each preview's public URL before calling it ready (needs the preview domain to
    /// resolve from the worker).
    #[arg(long, env = "PROBE_URLS", global = true, default_value = "false")]
    pub probe_urls: String,

    /// ClusterRole the worker binds, in every namespace it creates, to WORKER_SERVICE_ACCOUNT
    /// (the Helm chart's least-privilege RBAC); unset: no binding is made.
    #[arg(long, env = "PREVIEW_ROLE", global = true)]
    pub preview_role: Option<String>,

    /// The worker's own ServiceAccount as `NAMESPACE/NAME`, the subject of PREVIEW_ROLE's
    /// bindings.
    #[arg(long, env = "WORKER_SERVICE_ACCOUNT", global = true)]
    pub worker_service_account: Option<String>,

    /// ClusterRole of the dashboard's reads (pods, logs, events, usage) that the worker also
    /// binds, in every namespace it creates, to APP_SERVICE_ACCOUNT; needs PREVIEW_ROLE.
    #[arg(long, env = "VIEWER_ROLE", global = true)]
    pub viewer_role: Option<String>,

    /// The app's own ServiceAccount as `NAMESPACE/NAME`, the subject of VIEWER_ROLE's bindings.
    #[arg(long, env = "APP_SERVICE_ACCOUNT", global = true)]
    pub app_service_account: Option<String>,
}

/// A ClusterRole name and a `NAMESPACE/NAME` ServiceAccount, each checked and blamed on its
/// setting.
fn role_grant(
    (role_key, role): (&'static str, &str),
    (account_key, account): (&'static str, &str),
) -> Result<RoleGrant, ConfigError> {
    let subdomain_ok = role.len() <= 253
        && role.split('.').all(|l| {
            !l.is_empty()
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        });
    if !subdomain_ok {
        return Err(ConfigError::new(
            role_key,
            format!("must be a ClusterRole name, got {role:?}"),
        ));
    }
    let service_account =
        parse_object_name(account).map_err(|p| ConfigError::new(account_key, p))?;
    Ok(RoleGrant {
        cluster_role: role.to_owned(),
        service_account,
    })
}

fn secret(value: &str) -> Result<SecretString, std::convert::Infallible> {
    Ok(SecretString::from(value))
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// A setting that is missing or invalid. Displays as one line naming the setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The environment variable (the flag is derived from it).
    pub variable: &'static str,
    /// What is wrong, without the value when the value is secret.
    pub problem: String,
}

impl ConfigError {
    fn new(variable: &'static str, problem: impl Into<String>) -> Self {
        Self {
            variable,
            problem: problem.into(),
        }
    }

    fn flag(&self) -> String {
        format!("--{}", self.variable.to_ascii_lowercase().replace('_', "-"))
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}) {}", self.variable, self.flag(), self.problem)
    }
}

impl std::error::Error for ConfigError {}

/// The GitHub App's identity and secrets.
#[derive(Clone)]
pub struct GithubConfig {
    pub app_id: u64,
    /// The App's RSA private key in PEM form, already checked to parse.
    pub private_key: SecretString,
    pub webhook_secret: SecretString,
    /// REST API base, without a trailing slash.
    pub api_url: Url,
    /// GitHub's web address (GITHUB_URL or derived from the API URL).
    pub web_url: Url,
    /// The App's OAuth client, for signing people in; `None` leaves the dashboard closed.
    pub oauth: Option<OAuthClient>,
}

/// The OAuth client of the GitHub App (client id and secret from its settings page).
#[derive(Clone)]
pub struct OAuthClient {
    pub client_id: String,
    pub client_secret: SecretString,
}

impl fmt::Debug for OAuthClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthClient")
            .field("client_id", &self.client_id)
            .field("client_secret", &"[REDACTED]")
            .finish()
    }
}

impl fmt::Debug for GithubConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GithubConfig")
            .field("app_id", &self.app_id)
            .field("private_key", &"[REDACTED]")
            .field("webhook_secret", &"[REDACTED]")
            .field("api_url", &self.api_url.as_str())
            .field("web_url", &self.web_url.as_str())
            .field("oauth", &self.oauth)
            .finish()
    }
}

/// Where the GitHub App's identity comes from.
#[derive(Debug, Clone)]
pub enum GithubSource {
    /// Configured: by GITHUB_APP_ID, the key and the webhook secret, or by the credentials file.
    Ready(GithubConfig),
    /// Not registered yet: none of those settings and no credentials file.
    Unregistered(RegistrationConfig),
}

/// What the "Register GitHub App" flow needs to know besides the server's settings.
#[derive(Debug, Clone)]
pub struct RegistrationConfig {
    /// GITHUB_APP_CREDENTIALS: written by the flow, or where the Secret is mounted.
    pub credentials_file: PathBuf,
    /// GITHUB_APP_CREDENTIALS_SECRET, when the flow stores into a Kubernetes Secret.
    pub secret: Option<SecretName>,
    /// KUBECONFIG, for reaching that Secret (unset: in-cluster).
    pub kubeconfig: Option<PathBuf>,
    pub api_url: Url,
    pub web_url: Url,
}

/// A namespaced Kubernetes object's `NAMESPACE/NAME`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretName {
    pub namespace: String,
    pub name: String,
}

impl fmt::Display for SecretName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// The ClusterRole the worker binds in each namespace it creates, and to whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespaceAccess {
    /// PREVIEW_ROLE.
    pub cluster_role: String,
    /// WORKER_SERVICE_ACCOUNT.
    pub service_account: SecretName,
    /// VIEWER_ROLE for APP_SERVICE_ACCOUNT, bound beside it (None: the app reads nothing there).
    pub viewer: Option<RoleGrant>,
}

/// A ClusterRole granted to one ServiceAccount in a namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleGrant {
    pub cluster_role: String,
    pub service_account: SecretName,
}

/// Connections to the stores.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub database_url: SecretString,
    pub redis_url: SecretString,
    /// Prefix of every Redis key (queues included).
    pub redis_prefix: String,
}

/// What the app's HTTP server needs beyond the stores.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen_addr: SocketAddr,
    pub public_url: Url,
    pub preview_domain: String,
    /// Lowercase GitHub logins who see and act on every preview (OPERATORS).
    pub operators: Vec<String>,
    /// Lowercase (organization, team slug) whose active members are operators too (OPERATORS).
    pub operator_teams: Vec<(String, String)>,
    /// How far Extend pushes a preview's expiry (PREVIEW_TTL).
    pub preview_ttl: Duration,
    /// KUBECONFIG, for the dashboard's reads in preview namespaces (unset: in-cluster).
    pub kubeconfig: Option<PathBuf>,
}

/// What a worker needs beyond the stores.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub name: String,
    pub concurrency: usize,
    pub deploy_timeout: Duration,
    pub cleanup_timeout: Duration,
    pub preview_domain: String,
    pub kubeconfig: Option<PathBuf>,
    pub registry: Option<String>,
    pub registry_insecure: bool,
    pub builder_image: String,
    pub helm_bin: PathBuf,
    pub ingress_namespace: String,
    pub ingress_class: Option<String>,
    pub tls_secret: Option<String>,
    /// Defaults and maximums of what repositories may ask for.
    pub limits: RepoLimits,
    /// What one image build may use.
    pub build_budget: crate::cluster::BuildBudget,
    /// `BUILD_EGRESS`; `None`: resolved per build.
    pub build_egress: Option<Vec<crate::cluster::EgressTarget>>,
    pub ttl: Duration,
    pub probe_urls: bool,
    /// `None`: off.
    pub reconcile_interval: Option<Duration>,
    /// `None`: off.
    pub redelivery_interval: Option<Duration>,
    /// `None`: off.
    pub expiry_interval: Option<Duration>,
    pub orphan_grace: Duration,
    /// `None`: the worker binds no role in the namespaces it creates.
    pub namespace_access: Option<NamespaceAccess>,
}

impl Settings {
    /// Database and Redis connection settings (always valid: both have defaults).
    pub fn store_config(&self) -> Result<StoreConfig, ConfigError> {
        let url = self.database_url.expose_secret();
        if !(url.starts_with("sqlite:")
            || url.starts_with("postgres://")
            || url.starts_with("postgresql://"))
        {
            return Err(ConfigError::new(
                "DATABASE_URL",
                "must start with sqlite: or postgres:// (value not shown: it may hold a password)",
            ));
        }
        let redis = self.redis_url.expose_secret();
        if !(redis.starts_with("redis://")
            || redis.starts_with("rediss://")
            || redis.starts_with("unix://"))
        {
            return Err(ConfigError::new(
                "REDIS_URL",
                "must start with redis://, rediss:// or unix:// (value not shown: it may hold a password)",
            ));
        }
        let prefix = &self.redis_prefix;
        if prefix.is_empty()
            || !prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c))
        {
            return Err(ConfigError::new(
                "REDIS_PREFIX",
                format!("must be non-empty letters, digits, '-', '_', '.' or ':', got {prefix:?}"),
            ));
        }
        Ok(StoreConfig {
            database_url: self.database_url.clone(),
            redis_url: self.redis_url.clone(),
            redis_prefix: prefix.clone(),
        })
    }

    /// The GitHub App's identity: from the settings, else from the credentials file; an error
    /// when it is neither (the app then serves its "Register GitHub App" page instead, see
    /// [`Self::github_source`]).
    pub fn github_config(&self) -> Result<GithubConfig, ConfigError> {
        match self.github_source()? {
            GithubSource::Ready(config) => Ok(config),
            GithubSource::Unregistered(_) => Err(ConfigError::new(
                "GITHUB_APP_ID",
                "is required, or register the App: start previewd and open PUBLIC_URL/setup",
            )),
        }
    }

    /// Where the App's identity comes from. Any of GITHUB_APP_ID, GITHUB_PRIVATE_KEY(_PATH) and
    /// GITHUB_WEBHOOK_SECRET given: all three must be, and they win. None given: the credentials
    /// file if it exists, else [`GithubSource::Unregistered`].
    pub fn github_source(&self) -> Result<GithubSource, ConfigError> {
        let api_url = parse_http_url(&self.github_api_url)
            .map_err(|p| ConfigError::new("GITHUB_API_URL", p))?;
        let web_url = match self.github_url.as_deref().map(str::trim) {
            None | Some("") => crate::github::urls::web_url(&api_url),
            Some(raw) => parse_http_url(raw).map_err(|p| ConfigError::new("GITHUB_URL", p))?,
        };
        let any_setting = self.github_app_id.is_some()
            || self.github_private_key.is_some()
            || self.github_private_key_path.is_some()
            || self.github_webhook_secret.is_some();
        let oauth = self.oauth_client()?;
        if any_setting {
            return self
                .github_config_from_settings(api_url, web_url)
                .map(|c| GithubSource::Ready(GithubConfig { oauth, ..c }));
        }
        let path = &self.github_app_credentials;
        let problem = |e: crate::credentials::CredentialsError| {
            ConfigError::new("GITHUB_APP_CREDENTIALS", format!("is unusable: {e}"))
        };
        if crate::credentials::exists(path).map_err(problem)? {
            let credentials = crate::credentials::read(path).map_err(problem)?;
            check_private_key(&credentials.private_key).map_err(|p| {
                ConfigError::new(
                    "GITHUB_APP_CREDENTIALS",
                    format!("{}: the private key {p}", path.display()),
                )
            })?;
            return Ok(GithubSource::Ready(GithubConfig {
                app_id: credentials.app_id,
                private_key: credentials.private_key,
                webhook_secret: credentials.webhook_secret,
                api_url,
                web_url,
                oauth: oauth.or(Some(OAuthClient {
                    client_id: credentials.client_id,
                    client_secret: credentials.client_secret,
                })),
            }));
        }
        let secret = match self.github_app_credentials_secret.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(raw) => Some(
                parse_object_name(raw)
                    .map_err(|p| ConfigError::new("GITHUB_APP_CREDENTIALS_SECRET", p))?,
            ),
        };
        Ok(GithubSource::Unregistered(RegistrationConfig {
            credentials_file: path.clone(),
            secret,
            kubeconfig: self.kubeconfig.clone(),
            api_url,
            web_url,
        }))
    }

    fn github_config_from_settings(
        &self,
        api_url: Url,
        web_url: Url,
    ) -> Result<GithubConfig, ConfigError> {
        let app_id = match self.github_app_id.as_deref().map(str::trim) {
            None | Some("") => {
                return Err(ConfigError::new(
                    "GITHUB_APP_ID",
                    "is required: the App's numeric id from its settings page",
                ));
            }
            Some(raw) => match raw.parse::<u64>() {
                Ok(id) if id > 0 => id,
                _ => {
                    return Err(ConfigError::new(
                        "GITHUB_APP_ID",
                        format!("must be a positive integer, got {raw:?}"),
                    ));
                }
            },
        };

        let private_key = match (&self.github_private_key, &self.github_private_key_path) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::new(
                    "GITHUB_PRIVATE_KEY",
                    "and GITHUB_PRIVATE_KEY_PATH are both set: give only one",
                ));
            }
            (Some(pem), None) => {
                check_private_key(pem).map_err(|p| ConfigError::new("GITHUB_PRIVATE_KEY", p))?;
                pem.clone()
            }
            (None, Some(path)) => {
                let pem = std::fs::read_to_string(path).map_err(|e| {
                    ConfigError::new(
                        "GITHUB_PRIVATE_KEY_PATH",
                        format!("cannot be read: {}: {e}", path.display()),
                    )
                })?;
                let pem = SecretString::from(pem);
                check_private_key(&pem).map_err(|p| {
                    ConfigError::new(
                        "GITHUB_PRIVATE_KEY_PATH",
                        format!("{}: {p}", path.display()),
                    )
                })?;
                pem
            }
            (None, None) => {
                return Err(ConfigError::new(
                    "GITHUB_PRIVATE_KEY_PATH",
                    "is required (or GITHUB_PRIVATE_KEY): the App's private key in PEM form",
                ));
            }
        };

        let webhook_secret = match &self.github_webhook_secret {
            Some(s) if !s.expose_secret().is_empty() => s.clone(),
            _ => {
                return Err(ConfigError::new(
                    "GITHUB_WEBHOOK_SECRET",
                    "is required: the secret GitHub signs webhook deliveries with",
                ));
            }
        };

        Ok(GithubConfig {
            app_id,
            private_key,
            webhook_secret,
            api_url,
            web_url,
            oauth: None,
        })
    }

    /// GITHUB_CLIENT_ID with GITHUB_CLIENT_SECRET, both or neither.
    fn oauth_client(&self) -> Result<Option<OAuthClient>, ConfigError> {
        let id = self
            .github_client_id
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty());
        let secret = self
            .github_client_secret
            .as_ref()
            .filter(|s| !s.expose_secret().is_empty());
        match (id, secret) {
            (None, None) => Ok(None),
            (Some(id), Some(secret)) => Ok(Some(OAuthClient {
                client_id: id.to_owned(),
                client_secret: secret.clone(),
            })),
            (Some(_), None) => Err(ConfigError::new(
                "GITHUB_CLIENT_SECRET",
                "is required with GITHUB_CLIENT_ID (both from the App's settings page)",
            )),
            (None, Some(_)) => Err(ConfigError::new(
                "GITHUB_CLIENT_ID",
                "is required with GITHUB_CLIENT_SECRET (both from the App's settings page)",
            )),
        }
    }

    /// Listen address, public URL and preview domain for the app's HTTP server.
    pub fn server_config(&self) -> Result<ServerConfig, ConfigError> {
        let listen_addr: SocketAddr = self.listen_addr.parse().map_err(|_| {
            ConfigError::new(
                "LISTEN_ADDR",
                format!(
                    "must be IP:PORT such as 127.0.0.1:3000 or [::]:3000, got {:?}",
                    self.listen_addr
                ),
            )
        })?;
        let public_url = match &self.public_url {
            Some(raw) => parse_http_url(raw).map_err(|p| ConfigError::new("PUBLIC_URL", p))?,
            None => Url::parse(&format!("http://{listen_addr}")).map_err(|e| {
                ConfigError::new(
                    "PUBLIC_URL",
                    format!("cannot be derived from LISTEN_ADDR: {e}"),
                )
            })?,
        };
        let mut operators = Vec::new();
        let mut operator_teams = Vec::new();
        let login_ok = |l: &str| {
            !l.is_empty()
                && l.len() <= 39
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        };
        for entry in self
            .operators
            .split(',')
            .map(str::trim)
            .filter(|l| !l.is_empty())
        {
            let refuse = || {
                ConfigError::new(
                    "OPERATORS",
                    format!(
                        "must be GitHub logins or organization teams (org/team-slug) separated \
                         by commas, got {entry:?}"
                    ),
                )
            };
            match entry.split_once('/') {
                Some((org, team)) => {
                    let team_ok = !team.is_empty()
                        && team.len() <= 100
                        && team
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
                    if !login_ok(org) || !team_ok {
                        return Err(refuse());
                    }
                    operator_teams.push((org.to_ascii_lowercase(), team.to_ascii_lowercase()));
                }
                None if login_ok(entry) => operators.push(entry.to_ascii_lowercase()),
                None => return Err(refuse()),
            }
        }
        Ok(ServerConfig {
            listen_addr,
            public_url,
            preview_domain: self.preview_domain()?,
            operators,
            operator_teams,
            preview_ttl: parse_duration(&self.preview_ttl)
                .map_err(|p| ConfigError::new("PREVIEW_TTL", p))?,
            kubeconfig: self.kubeconfig.clone(),
        })
    }

    /// Worker identity, concurrency, timeouts and cluster access.
    pub fn worker_config(&self) -> Result<WorkerConfig, ConfigError> {
        let name = self
            .worker_name
            .clone()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(|| "worker".to_owned());
        let concurrency = match self.worker_concurrency.trim().parse::<usize>() {
            Ok(n @ 1..=256) => n,
            _ => {
                return Err(ConfigError::new(
                    "WORKER_CONCURRENCY",
                    format!(
                        "must be an integer from 1 to 256, got {:?}",
                        self.worker_concurrency
                    ),
                ));
            }
        };
        let deploy_timeout = parse_duration(&self.deploy_timeout)
            .map_err(|p| ConfigError::new("DEPLOY_TIMEOUT", p))?;
        let cleanup_timeout = parse_duration(&self.cleanup_timeout)
            .map_err(|p| ConfigError::new("CLEANUP_TIMEOUT", p))?;
        if let Some(path) = &self.kubeconfig
            && !path.is_file()
        {
            return Err(ConfigError::new(
                "KUBECONFIG",
                format!("names no readable file: {}", path.display()),
            ));
        }
        let cpu = |variable: &'static str, raw: &str| {
            Quantity::cpu(raw).map_err(|p| ConfigError::new(variable, p))
        };
        let memory = |variable: &'static str, raw: &str| {
            Quantity::memory(raw).map_err(|p| ConfigError::new(variable, p))
        };
        let image_registries = match self.image_registries.as_deref() {
            None => Vec::new(),
            Some(list) => list
                .split(',')
                .map(str::trim)
                .filter(|r| !r.is_empty())
                .map(|r| {
                    let valid = r
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || ".-_:/".contains(c))
                        && !r.starts_with('/')
                        && !r.ends_with('/');
                    if valid {
                        Ok(r.to_ascii_lowercase())
                    } else {
                        Err(ConfigError::new(
                            "IMAGE_REGISTRIES",
                            format!("{r:?} is not a registry such as ghcr.io/acme"),
                        ))
                    }
                })
                .collect::<Result<_, _>>()?,
        };
        let ttl =
            parse_duration(&self.preview_ttl).map_err(|p| ConfigError::new("PREVIEW_TTL", p))?;
        let max_ttl = parse_duration(&self.preview_max_ttl)
            .map_err(|p| ConfigError::new("PREVIEW_MAX_TTL", p))?;
        if ttl > max_ttl {
            return Err(ConfigError::new(
                "PREVIEW_TTL",
                "must not be above PREVIEW_MAX_TTL",
            ));
        }
        let limits = RepoLimits {
            default_cpu: cpu("PREVIEW_CPU", &self.preview_cpu)?,
            default_memory: memory("PREVIEW_MEMORY", &self.preview_memory)?,
            max_cpu: cpu("PREVIEW_MAX_CPU", &self.preview_max_cpu)?,
            max_memory: memory("PREVIEW_MAX_MEMORY", &self.preview_max_memory)?,
            max_ttl,
            image_registries,
        };
        let build_budget = crate::cluster::BuildBudget {
            cpu: cpu("BUILD_CPU", &self.build_cpu)?.text,
            memory: memory("BUILD_MEMORY", &self.build_memory)?.text,
        };
        let build_egress = match self.build_egress.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(list) => Some(
                list.split(',')
                    .map(str::trim)
                    .filter(|e| !e.is_empty())
                    .map(|e| parse_egress(e).map_err(|p| ConfigError::new("BUILD_EGRESS", p)))
                    .collect::<Result<_, _>>()?,
            ),
        };
        if limits.default_cpu.value > limits.max_cpu.value {
            return Err(ConfigError::new(
                "PREVIEW_CPU",
                "must not be above PREVIEW_MAX_CPU",
            ));
        }
        if limits.default_memory.value > limits.max_memory.value {
            return Err(ConfigError::new(
                "PREVIEW_MEMORY",
                "must not be above PREVIEW_MAX_MEMORY",
            ));
        }
        let registry = match self.preview_registry.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(r)
                if r.chars()
                    .all(|c| c.is_ascii_alphanumeric() || ".-_:/".contains(c))
                    && !r.ends_with('/') =>
            {
                Some(r.to_owned())
            }
            Some(r) => {
                return Err(ConfigError::new(
                    "PREVIEW_REGISTRY",
                    format!(
                        "must be a registry host[/path] such as registry.example.com/previews, got {r:?}"
                    ),
                ));
            }
        };
        let namespace_ok = |n: &str| {
            !n.is_empty()
                && n.len() <= 63
                && n.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        };
        if !namespace_ok(&self.ingress_namespace) {
            return Err(ConfigError::new(
                "INGRESS_NAMESPACE",
                format!("must be a namespace name, got {:?}", self.ingress_namespace),
            ));
        }
        Ok(WorkerConfig {
            name,
            concurrency,
            deploy_timeout,
            cleanup_timeout,
            preview_domain: self.preview_domain()?,
            kubeconfig: self.kubeconfig.clone(),
            registry,
            registry_insecure: parse_bool("REGISTRY_INSECURE", &self.registry_insecure)?,
            builder_image: self.builder_image.trim().to_owned(),
            helm_bin: self.helm_bin.clone(),
            ingress_namespace: self.ingress_namespace.clone(),
            ingress_class: self.ingress_class.clone().filter(|c| !c.trim().is_empty()),
            tls_secret: self
                .preview_tls_secret
                .clone()
                .filter(|c| !c.trim().is_empty()),
            limits,
            build_budget,
            build_egress,
            ttl,
            probe_urls: parse_bool("PROBE_URLS", &self.probe_urls)?,
            reconcile_interval: parse_interval("RECONCILE_INTERVAL", &self.reconcile_interval)?,
            redelivery_interval: parse_interval("REDELIVERY_INTERVAL", &self.redelivery_interval)?,
            expiry_interval: parse_interval("EXPIRY_INTERVAL", &self.expiry_interval)?,
            orphan_grace: match self.orphan_grace.trim() {
                "0" | "0s" => Duration::ZERO,
                raw => parse_duration(raw).map_err(|p| ConfigError::new("ORPHAN_GRACE", p))?,
            },
            namespace_access: self.namespace_access()?,
        })
    }

    fn namespace_access(&self) -> Result<Option<NamespaceAccess>, ConfigError> {
        let role = self
            .preview_role
            .as_deref()
            .map(str::trim)
            .filter(|r| !r.is_empty());
        let account = self
            .worker_service_account
            .as_deref()
            .map(str::trim)
            .filter(|a| !a.is_empty());
        match (role, account) {
            (None, None) => match self.viewer_grant()? {
                None => Ok(None),
                Some(_) => Err(ConfigError::new(
                    "VIEWER_ROLE",
                    "needs PREVIEW_ROLE: the worker binds it beside its own role",
                )),
            },
            (Some(_), None) => Err(ConfigError::new(
                "WORKER_SERVICE_ACCOUNT",
                "is required with PREVIEW_ROLE: the NAMESPACE/NAME the role is bound to",
            )),
            (None, Some(_)) => Err(ConfigError::new(
                "PREVIEW_ROLE",
                "is required with WORKER_SERVICE_ACCOUNT: the ClusterRole to bind",
            )),
            (Some(role), Some(account)) => {
                let worker =
                    role_grant(("PREVIEW_ROLE", role), ("WORKER_SERVICE_ACCOUNT", account))?;
                Ok(Some(NamespaceAccess {
                    cluster_role: worker.cluster_role,
                    service_account: worker.service_account,
                    viewer: self.viewer_grant()?,
                }))
            }
        }
    }

    /// VIEWER_ROLE and APP_SERVICE_ACCOUNT, both or neither (only with PREVIEW_ROLE).
    fn viewer_grant(&self) -> Result<Option<RoleGrant>, ConfigError> {
        let set = |v: &Option<String>| {
            v.as_deref()
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        match (set(&self.viewer_role), set(&self.app_service_account)) {
            (None, None) => Ok(None),
            (Some(_), None) => Err(ConfigError::new(
                "APP_SERVICE_ACCOUNT",
                "is required with VIEWER_ROLE: the NAMESPACE/NAME the role is bound to",
            )),
            (None, Some(_)) => Err(ConfigError::new(
                "VIEWER_ROLE",
                "is required with APP_SERVICE_ACCOUNT: the ClusterRole to bind",
            )),
            (Some(role), Some(account)) => {
                role_grant(("VIEWER_ROLE", &role), ("APP_SERVICE_ACCOUNT", &account)).map(Some)
            }
        }
    }

    fn preview_domain(&self) -> Result<String, ConfigError> {
        let raw = self
            .preview_domain
            .as_deref()
            .map(str::trim)
            .unwrap_or_default();
        if raw.is_empty() {
            return Err(ConfigError::new(
                "PREVIEW_DOMAIN",
                "is required: the wildcard DNS domain previews are served under, e.g. preview.example.com",
            ));
        }
        let domain = raw.trim_end_matches('.').to_ascii_lowercase();
        if !is_dns_name(&domain) {
            return Err(ConfigError::new(
                "PREVIEW_DOMAIN",
                format!("must be a DNS name such as preview.example.com, got {raw:?}"),
            ));
        }
        Ok(domain)
    }
}

/// A period, or `off` (also `0`) for none.
fn parse_interval(variable: &'static str, raw: &str) -> Result<Option<Duration>, ConfigError> {
    match raw.trim() {
        "off" | "0" | "" => Ok(None),
        other => parse_duration(other)
            .map(Some)
            .map_err(|p| ConfigError::new(variable, p)),
    }
}

fn parse_bool(variable: &'static str, raw: &str) -> Result<bool, ConfigError> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" | "" => Ok(false),
        _ => Err(ConfigError::new(
            variable,
            format!("must be true or false, got {raw:?}"),
        )),
    }
}

/// Checks that `pem` holds an RSA private key the App JWT can be signed with.
fn check_private_key(pem: &SecretString) -> Result<(), String> {
    let text = pem.expose_secret();
    if !text.contains("-----BEGIN") {
        return Err("is not PEM: expected a -----BEGIN RSA PRIVATE KEY----- block".to_owned());
    }
    jsonwebtoken::EncodingKey::from_rsa_pem(text.as_bytes())
        .map(|_| ())
        .map_err(|_| "is not a valid RSA private key in PEM form".to_owned())
}

fn parse_http_url(raw: &str) -> Result<Url, String> {
    let url =
        Url::parse(raw.trim()).map_err(|e| format!("must be an absolute URL: {e}, got {raw:?}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(format!(
            "must be an http:// or https:// URL with a host, got {raw:?}"
        ));
    }
    Ok(url)
}

/// `NAMESPACE/NAME`, both DNS-1123 labels.
fn parse_object_name(raw: &str) -> Result<SecretName, String> {
    let label = |s: &str| {
        !s.is_empty()
            && s.len() <= 63
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !s.starts_with('-')
            && !s.ends_with('-')
    };
    match raw.split_once('/') {
        Some((namespace, name)) if label(namespace) && label(name) => Ok(SecretName {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        }),
        _ => Err(format!("must be NAMESPACE/NAME, got {raw:?}")),
    }
}

/// True for a lowercase DNS name: dot-separated labels of letters, digits and inner hyphens.
fn is_dns_name(name: &str) -> bool {
    name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

pub use crate::units::parse_duration;

/// One `BUILD_EGRESS` entry: `CIDR:PORT` (`140.82.112.0/20:443`, `[2001:db8::/32]:443`) or
/// `namespace=NAME:PORT`.
fn parse_egress(entry: &str) -> Result<crate::cluster::EgressTarget, String> {
    use crate::cluster::EgressTarget;
    let bad = || {
        format!(
            "{entry:?} must be CIDR:PORT (10.0.0.0/8:443) or namespace=NAME:PORT (namespace=registry:5000)"
        )
    };
    let (target, port) = entry.rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().ok().filter(|p| *p > 0).ok_or_else(bad)?;
    if let Some(name) = target.strip_prefix("namespace=") {
        let valid = !name.is_empty()
            && name.len() <= 63
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        return if valid {
            Ok(EgressTarget::Namespace {
                name: name.to_owned(),
                port,
            })
        } else {
            Err(bad())
        };
    }
    let cidr = target.trim_start_matches('[').trim_end_matches(']');
    let (address, prefix) = cidr.split_once('/').ok_or_else(bad)?;
    let address: std::net::IpAddr = address.parse().map_err(|_| bad())?;
    let prefix: u8 = prefix.parse().map_err(|_| bad())?;
    let most = if address.is_ipv4() { 32 } else { 128 };
    if prefix > most {
        return Err(bad());
    }
    Ok(EgressTarget::Cidr {
        cidr: format!("{address}/{prefix}"),
        port,
    })
}

/// What this install lets repositories ask for in `.github/preview.yml`, and its defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoLimits {
    pub default_cpu: Quantity,
    pub default_memory: Quantity,
    pub max_cpu: Quantity,
    pub max_memory: Quantity,
    /// Longest `ttl`.
    pub max_ttl: Duration,
    /// Registries `image:` may name (`ghcr.io`, `ghcr.io/acme`); empty: any.
    pub image_registries: Vec<String>,
}

impl Default for RepoLimits {
    fn default() -> Self {
        let cpu = |s: &str| Quantity::cpu(s).unwrap_or_else(|e| unreachable!("{e}"));
        let memory = |s: &str| Quantity::memory(s).unwrap_or_else(|e| unreachable!("{e}"));
        Self {
            default_cpu: cpu("500m"),
            default_memory: memory("512Mi"),
            max_cpu: cpu("2"),
            max_memory: memory("2Gi"),
            max_ttl: Duration::from_secs(720 * 3600),
            image_registries: Vec::new(),
        }
    }
}

impl RepoLimits {
    /// Whether image reference `image` comes from one of the allowed registries (any, when the
    /// list is empty). A reference without a registry host is Docker Hub's (`docker.io/…`).
    pub fn image_allowed(&self, image: &str) -> bool {
        if self.image_registries.is_empty() {
            return true;
        }
        let image = image.to_ascii_lowercase();
        let first = image.split('/').next().unwrap_or_default();
        let has_host = image.contains('/')
            && (first.contains('.') || first.contains(':') || first == "localhost");
        let full = if has_host {
            image
        } else if image.contains('/') {
            format!("docker.io/{image}")
        } else {
            format!("docker.io/library/{image}")
        };
        self.image_registries
            .iter()
            .any(|r| full.starts_with(&format!("{r}/")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    #[command(args_override_self = true)]
    struct Cli {
        #[command(flatten)]
        settings: Settings,
    }

    /// Parses flags only: the environment of the test process must not leak in, so every
    /// variable-backed setting is given as a flag or left to its default.
    fn parse(args: &[&str]) -> Settings {
        let mut argv = vec!["previewd"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv).expect("flags parse").settings
    }

    const KEY: &str = include_str!("../../tests/fixtures/app-key.pem");

    fn full() -> Vec<String> {
        vec![
            "--github-app-id=42".into(),
            format!("--github-private-key={KEY}"),
            "--github-webhook-secret=s3cret".into(),
            "--preview-domain=preview.example.com".into(),
        ]
    }

    fn with(extra: &[&str]) -> Settings {
        let mut args = full();
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        parse(&refs)
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("3m"), Ok(Duration::from_secs(180)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("72h"), Ok(Duration::from_secs(259_200)));
        assert_eq!(parse_duration("2d"), Ok(Duration::from_secs(172_800)));
        assert_eq!(parse_duration("180"), Ok(Duration::from_secs(180)));
        for bad in [
            "",
            "m",
            "3x",
            "1.5h",
            "0s",
            "-3m",
            "3m5",
            "99999999999999999999d",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn complete_settings_validate() {
        let s = with(&[]);
        let gh = s.github_config().expect("valid");
        assert_eq!(gh.app_id, 42);
        assert_eq!(gh.api_url.as_str(), "https://api.github.com/");
        let server = s.server_config().expect("valid");
        assert_eq!(server.listen_addr.to_string(), "127.0.0.1:3000");
        assert_eq!(server.public_url.as_str(), "http://127.0.0.1:3000/");
        assert_eq!(server.preview_domain, "preview.example.com");
        let worker = s.worker_config().expect("valid");
        assert_eq!(worker.deploy_timeout, Duration::from_secs(180));
        assert_eq!(worker.cleanup_timeout, Duration::from_secs(300));
        let store = s.store_config().expect("valid");
        assert_eq!(store.redis_prefix, "previewd");
    }

    #[test]
    fn operators_are_logins_and_teams() {
        let server = with(&["--operators=Olga, acme/Platform-Team ,bob"])
            .server_config()
            .expect("valid");
        assert_eq!(server.operators, vec!["olga".to_owned(), "bob".to_owned()]);
        assert_eq!(
            server.operator_teams,
            vec![("acme".to_owned(), "platform-team".to_owned())]
        );
        for bad in [
            "a b",
            "acme/",
            "/team",
            "acme/te am",
            "a/b/c",
            "x".repeat(40).as_str(),
        ] {
            let e = with(&[&format!("--operators={bad}")])
                .server_config()
                .expect_err(bad);
            assert!(e.to_string().contains("OPERATORS"), "{bad:?}: {e}");
        }
    }

    #[test]
    fn the_viewer_role_comes_with_the_apps_account_and_the_preview_role() {
        let worker = [
            "--preview-role=previewd-preview",
            "--worker-service-account=previewd/previewd-worker",
        ];
        let mut args = worker.to_vec();
        args.extend([
            "--viewer-role=previewd-viewer",
            "--app-service-account=previewd/previewd-app",
        ]);
        let access = with(&args)
            .worker_config()
            .expect("valid")
            .namespace_access
            .expect("access");
        let viewer = access.viewer.expect("viewer");
        assert_eq!(viewer.cluster_role, "previewd-viewer");
        assert_eq!(viewer.service_account.name, "previewd-app");
        let mut half = worker.to_vec();
        half.push("--viewer-role=previewd-viewer");
        let e = with(&half).worker_config().expect_err("half");
        assert!(e.to_string().contains("APP_SERVICE_ACCOUNT"), "{e}");
        let e = with(&["--viewer-role=v", "--app-service-account=p/a"])
            .worker_config()
            .expect_err("no preview role");
        assert!(e.to_string().contains("VIEWER_ROLE"), "{e}");
        let mut bad = worker.to_vec();
        bad.extend(["--viewer-role=Not A Role", "--app-service-account=p/a"]);
        let e = with(&bad).worker_config().expect_err("bad role");
        assert!(e.to_string().contains("VIEWER_ROLE"), "{e}");
    }

    #[test]
    fn enterprise_server_api_url_is_kept() {
        let s = with(&["--github-api-url=https://ghe.acme.internal/api/v3"]);
        assert_eq!(
            s.github_config().expect("valid").api_url.as_str(),
            "https://ghe.acme.internal/api/v3"
        );
    }

    #[test]
    fn missing_app_id_is_named() {
        let s = parse(&[
            "--github-webhook-secret=x",
            "--preview-domain=p.example.com",
        ]);
        let err = s.github_config().expect_err("missing id");
        assert_eq!(err.variable, "GITHUB_APP_ID");
        assert!(
            err.to_string()
                .starts_with("GITHUB_APP_ID (--github-app-id) is required")
        );
    }

    #[test]
    fn invalid_values_are_named() {
        type Check = fn(&Settings) -> Result<(), ConfigError>;
        let cases: &[(&[&str], &str, Check)] = &[
            (&["--github-app-id=abc"], "GITHUB_APP_ID", |s| {
                s.github_config().map(drop)
            }),
            (
                &["--github-private-key=not a key"],
                "GITHUB_PRIVATE_KEY",
                |s| s.github_config().map(drop),
            ),
            (&["--github-api-url=ftp://x"], "GITHUB_API_URL", |s| {
                s.github_config().map(drop)
            }),
            (&["--listen-addr=localhost"], "LISTEN_ADDR", |s| {
                s.server_config().map(drop)
            }),
            (&["--preview-domain=Not A Domain"], "PREVIEW_DOMAIN", |s| {
                s.server_config().map(drop)
            }),
            (&["--deploy-timeout=soon"], "DEPLOY_TIMEOUT", |s| {
                s.worker_config().map(drop)
            }),
            (&["--worker-concurrency=0"], "WORKER_CONCURRENCY", |s| {
                s.worker_config().map(drop)
            }),
            (&["--database-url=mysql://x"], "DATABASE_URL", |s| {
                s.store_config().map(drop)
            }),
            (&["--redis-prefix=a b"], "REDIS_PREFIX", |s| {
                s.store_config().map(drop)
            }),
        ];
        for (args, variable, check) in cases {
            // Later flags win, so each case overrides one valid setting.
            let s = with(args);
            let err = check(&s).expect_err(variable);
            assert_eq!(&err.variable, variable, "{args:?}: {err}");
            assert!(!err.to_string().contains('\n'), "one line: {err}");
        }
    }

    #[test]
    fn both_key_sources_is_an_error() {
        let s = with(&["--github-private-key-path=/nonexistent.pem"]);
        let err = s.github_config().expect_err("two keys");
        assert!(err.to_string().contains("both set"), "{err}");
    }

    #[test]
    fn secrets_never_show_in_debug_or_errors() {
        let s = with(&[
            "--database-url=postgres://u:hunter2@db/x",
            "--redis-url=redis://:pw123@r",
        ]);
        let debug = format!("{s:?} {:?} {:?}", s.github_config(), s.store_config());
        for secret in ["s3cret", "hunter2", "pw123", "PRIVATE KEY"] {
            assert!(!debug.contains(secret), "{secret} leaked into {debug}");
        }
        let bad = with(&["--database-url=mysql://u:hunter2@db/x"]);
        let err = bad.store_config().expect_err("bad scheme").to_string();
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn github_web_address_is_derived_or_given() {
        // The derivation rules are tested in `github::urls`.
        let u = |s: &str| Url::parse(s).expect("url");
        assert_eq!(
            crate::github::urls::web_url(&u("https://api.github.com")).as_str(),
            "https://github.com/"
        );
        let s = with(&["--github-url=https://code.acme.internal"]);
        assert_eq!(
            s.github_config().expect("valid").web_url.as_str(),
            "https://code.acme.internal/"
        );
        let bad = with(&["--github-url=code.acme.internal"]);
        assert_eq!(bad.github_config().expect_err("bad").variable, "GITHUB_URL");
    }

    fn no_app_settings(extra: &[&str]) -> Settings {
        let mut args = vec!["--preview-domain=preview.example.com"];
        args.extend_from_slice(extra);
        parse(&args)
    }

    #[test]
    fn without_app_settings_or_file_the_app_is_unregistered() {
        let missing = std::env::temp_dir().join("previewd-no-such-dir/github-app.json");
        let flag = format!("--github-app-credentials={}", missing.display());
        let s = no_app_settings(&[&flag, "--github-app-credentials-secret=previewd/gh-app"]);
        match s.github_source().expect("valid") {
            GithubSource::Unregistered(r) => {
                assert_eq!(r.credentials_file, missing);
                assert_eq!(
                    r.secret.map(|n| n.to_string()).as_deref(),
                    Some("previewd/gh-app")
                );
            }
            GithubSource::Ready(_) => panic!("nothing configures the App"),
        }
        let err = s.github_config().expect_err("unregistered");
        assert!(err.to_string().contains("/setup"), "{err}");
        let bad = no_app_settings(&[&flag, "--github-app-credentials-secret=gh-app"]);
        assert_eq!(
            bad.github_source().expect_err("no namespace").variable,
            "GITHUB_APP_CREDENTIALS_SECRET"
        );
    }

    #[test]
    fn the_credentials_file_configures_the_app() {
        let dir = std::env::temp_dir().join(format!("previewd-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("github-app.json");
        let _ = std::fs::remove_file(&path);
        let credentials = crate::credentials::AppCredentials {
            app_id: 99,
            slug: "previewd-test".into(),
            html_url: "https://github.com/apps/previewd-test".into(),
            owner: "acme".into(),
            private_key: SecretString::from(KEY),
            webhook_secret: SecretString::from("from-the-file"),
            client_id: "Iv1.x".into(),
            client_secret: SecretString::from("client"),
        };
        crate::credentials::write_new(&path, &credentials).expect("written");
        let flag = format!("--github-app-credentials={}", path.display());
        let gh = no_app_settings(&[&flag])
            .github_config()
            .expect("from the file");
        assert_eq!(gh.app_id, 99);
        assert_eq!(gh.webhook_secret.expose_secret(), "from-the-file");
        // Settings win over the file, and must then be complete.
        let mut args = full();
        args.push(flag.clone());
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        assert_eq!(parse(&refs).github_config().expect("settings").app_id, 42);
        let partial = no_app_settings(&[&flag, "--github-app-id=5"]);
        assert_eq!(
            partial.github_config().expect_err("partial").variable,
            "GITHUB_PRIVATE_KEY_PATH"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn namespace_access_needs_both_halves() {
        let s = with(&[
            "--preview-role=previewd-preview",
            "--worker-service-account=previewd/previewd-worker",
        ]);
        let access = s
            .worker_config()
            .expect("valid")
            .namespace_access
            .expect("set");
        assert_eq!(access.cluster_role, "previewd-preview");
        assert_eq!(
            access.service_account.to_string(),
            "previewd/previewd-worker"
        );
        assert!(
            with(&[])
                .worker_config()
                .expect("valid")
                .namespace_access
                .is_none()
        );
        for (args, variable) in [
            (&["--preview-role=r"][..], "WORKER_SERVICE_ACCOUNT"),
            (&["--worker-service-account=a/b"][..], "PREVIEW_ROLE"),
            (
                &["--preview-role=R", "--worker-service-account=a/b"][..],
                "PREVIEW_ROLE",
            ),
            (
                &["--preview-role=r", "--worker-service-account=b"][..],
                "WORKER_SERVICE_ACCOUNT",
            ),
        ] {
            let err = with(args).worker_config().expect_err("invalid");
            assert_eq!(err.variable, variable, "{args:?}");
        }
    }
}
