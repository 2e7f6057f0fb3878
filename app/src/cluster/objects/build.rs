//! The in-cluster image build: a short-lived namespace of its own, a Secret with the git
//! credentials and a one-shot BuildKit Job.
//!
//! The Job runs rootless BuildKit daemonless (`buildctl-daemonless.sh`): BuildKit fetches the
//! repository itself at the head sha (`context=<clone url>#<sha>[:<dir>]`), authenticating with
//! the `GIT_AUTH_TOKEN` build secret, builds the Dockerfile and pushes `<registry>/<repo>:<sha>`.
//! The token reaches the pod only by reference (`secretKeyRef`); it is an installation token
//! minted for this build alone (the one repository, `contents: read`), and it goes away with the
//! build namespace.
//!
//! Pod security, the trade-off: rootless BuildKit creates a user namespace (through the setuid
//! `newuidmap`) and mounts inside it, which the runtime's default seccomp and AppArmor profiles
//! forbid. It therefore runs with `seccompProfile: Unconfined`, `appArmorProfile: Unconfined` and
//! privilege escalation allowed, as BuildKit's own Kubernetes examples do — as uid 1000, not
//! privileged, capabilities left at the runtime default. Pod Security `restricted` forbids all
//! three and `baseline` the first two, so only `privileged` admits it. That level is given to the
//! **build namespace** alone ([`build_namespace`], `<preview namespace>--b<attempt>`), one per
//! attempt and deleted when the build ends: the preview's own namespace stays `restricted`, so
//! nothing a repository's chart creates is ever admitted as privileged. The build namespace has
//! its own budget ([`build_quota`]) and its own network policies
//! ([`build_network_policies`]): nothing in, and out only to the cluster DNS, the git host and
//! the registry ([`EgressTarget`]) — not every address on 443. `--oci-worker-no-process-sandbox`
//! is needed because the pod cannot unmask `/proc`; it means `RUN` steps share BuildKit's process
//! namespace.
//!
//! Not yet here: registry push credentials (a docker config Secret mounted at `$DOCKER_CONFIG`);
//! without them the push works only to a registry that accepts it anonymously or by node
//! credentials.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    AppArmorProfile, Container, EmptyDirVolumeSource, EnvVar, EnvVarSource, Namespace, PodSpec,
    PodTemplateSpec, ResourceQuota, ResourceQuotaSpec, ResourceRequirements, SeccompProfile,
    Secret, SecretKeySelector, SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyPeer, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use secrecy::{ExposeSecret as _, SecretString};

use super::network::{allow_dns, namespace_named, port};
use super::{ATTEMPT_LABEL, GUARD_RAILS_NAME, PreviewMeta, ROLE_BUILD, ROLE_LABEL};
use crate::cluster::naming::short_hash;
use crate::units::{scale_cpu, scale_memory};

/// Name of the Secret holding the git credentials of the build.
pub const BUILD_SECRET_NAME: &str = "previewd-git-auth";
/// Key of the token in [`BUILD_SECRET_NAME`]; also the BuildKit secret id BuildKit's git source
/// looks for.
pub const BUILD_SECRET_KEY: &str = "GIT_AUTH_TOKEN";

/// What one build may use: the build container's limits and the build namespace's quota
/// (requests are a quarter of the limits). Kubernetes quantities, checked when the configuration
/// is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildBudget {
    pub cpu: String,
    pub memory: String,
}

impl Default for BuildBudget {
    fn default() -> Self {
        Self {
            cpu: "1".to_owned(),
            memory: "2Gi".to_owned(),
        }
    }
}

/// Somewhere the build may connect to: the git host and the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EgressTarget {
    /// An address range (`10.1.2.3/32`, `140.82.112.0/20`, `2001:db8::/64`) on a TCP port.
    Cidr { cidr: String, port: u16 },
    /// Pods of a namespace of the cluster (an in-cluster registry) on a TCP port.
    Namespace { name: String, port: u16 },
}

/// The build namespace of `meta` (a [`PreviewMeta::for_build`]): Pod Security `privileged`
/// enforced (warn and audit `restricted`), labelled as the build of its attempt.
pub fn build_namespace(meta: &PreviewMeta) -> Namespace {
    super::namespace::namespace_with(
        meta,
        "privileged",
        BTreeMap::from([
            (ROLE_LABEL.to_owned(), ROLE_BUILD.to_owned()),
            (ATTEMPT_LABEL.to_owned(), meta.attempt_id.to_string()),
        ]),
    )
}

/// The build namespace's budget: one pod of `budget`.
pub fn build_quota(meta: &PreviewMeta, budget: &BuildBudget) -> ResourceQuota {
    let q = |s: &str| Quantity(s.to_owned());
    ResourceQuota {
        metadata: meta.object_meta(GUARD_RAILS_NAME),
        spec: Some(ResourceQuotaSpec {
            hard: Some(BTreeMap::from([
                ("requests.cpu".to_owned(), q(&budget.cpu)),
                ("limits.cpu".to_owned(), q(&budget.cpu)),
                ("requests.memory".to_owned(), q(&budget.memory)),
                ("limits.memory".to_owned(), q(&budget.memory)),
                ("pods".to_owned(), q("1")),
            ])),
            ..ResourceQuotaSpec::default()
        }),
        ..ResourceQuota::default()
    }
}

/// The build namespace's policies: `default-deny` (in and out), `allow-dns`, and
/// `allow-build-egress` to exactly `targets`.
pub fn build_network_policies(
    meta: &PreviewMeta,
    targets: &[EgressTarget],
    dns_namespace: &str,
) -> Vec<NetworkPolicy> {
    let policy = |name: &str, spec: NetworkPolicySpec| NetworkPolicy {
        metadata: meta.object_meta(name),
        spec: Some(spec),
    };
    let rules = targets
        .iter()
        .map(|target| match target {
            EgressTarget::Cidr { cidr, port: p } => NetworkPolicyEgressRule {
                to: Some(vec![NetworkPolicyPeer {
                    ip_block: Some(IPBlock {
                        cidr: cidr.clone(),
                        except: None,
                    }),
                    ..NetworkPolicyPeer::default()
                }]),
                ports: Some(vec![port("TCP", i32::from(*p))]),
            },
            EgressTarget::Namespace { name, port: p } => NetworkPolicyEgressRule {
                to: Some(vec![NetworkPolicyPeer {
                    namespace_selector: Some(namespace_named(name)),
                    ..NetworkPolicyPeer::default()
                }]),
                ports: Some(vec![port("TCP", i32::from(*p))]),
            },
        })
        .collect();
    vec![
        policy(
            "default-deny",
            NetworkPolicySpec {
                pod_selector: Some(LabelSelector::default()),
                policy_types: Some(vec!["Ingress".to_owned(), "Egress".to_owned()]),
                ..NetworkPolicySpec::default()
            },
        ),
        policy("allow-dns", allow_dns(dns_namespace)),
        policy(
            "allow-build-egress",
            NetworkPolicySpec {
                pod_selector: Some(LabelSelector::default()),
                policy_types: Some(vec!["Egress".to_owned()]),
                egress: Some(rules),
                ..NetworkPolicySpec::default()
            },
        ),
    ]
}
/// A build taking longer is killed and counts as failed.
pub const BUILD_DEADLINE_SECONDS: i64 = 30 * 60;
/// A finished build Job (and its pod, with the logs) is kept this long for diagnosis.
pub const BUILD_TTL_SECONDS: i32 = 60 * 60;

/// Where BuildKit keeps its state in the rootless image (uid 1000's home).
const BUILDKIT_STATE_DIR: &str = "/home/user/.local/share/buildkit";
/// The uid and gid the rootless image is built for.
const BUILDKIT_UID: i64 = 1000;

/// What to build and where to push it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildSpec {
    /// HTTPS clone URL, e.g. `https://github.com/acme/web.git` (no credentials in it).
    pub clone_url: String,
    /// The commit to build.
    pub sha: String,
    /// Path of the Dockerfile relative to `context` (as in Compose), e.g. `Dockerfile`.
    pub dockerfile: String,
    /// Directory of the build context in the repository; `.` or empty for the root.
    pub context: String,
    /// Image reference to push, `<registry>/<repo>:<sha>`.
    pub image: String,
    /// The BuildKit image, e.g. `moby/buildkit:v0.26.2-rootless`.
    pub builder_image: String,
    /// Push over plain HTTP / without verifying TLS (a registry inside the cluster).
    pub registry_insecure: bool,
}

/// The build Job's name for `sha`: `build-<first 12 hex of sha>`, so each commit gets its own
/// Job (a Job's pod template cannot change) and re-applying the same commit's Job is a no-op.
pub fn build_job_name(sha: &str) -> String {
    let lower = sha.to_ascii_lowercase();
    if lower.len() >= 7 && lower.bytes().all(|b| b.is_ascii_hexdigit()) {
        format!("build-{}", &lower[..lower.len().min(12)])
    } else {
        format!("build-{}", short_hash(sha))
    }
}

/// The Secret with the installation token the build clones with (`type: Opaque`). Never log
/// this object: its `data` holds the token.
pub fn build_secret(meta: &PreviewMeta, token: &SecretString) -> Secret {
    let mut metadata = meta.object_meta(BUILD_SECRET_NAME);
    metadata.labels = Some(meta.labels_with_role(ROLE_BUILD));
    Secret {
        metadata,
        type_: Some("Opaque".to_owned()),
        data: Some(BTreeMap::from([(
            BUILD_SECRET_KEY.to_owned(),
            ByteString(token.expose_secret().as_bytes().to_vec()),
        )])),
        ..Secret::default()
    }
}

/// The BuildKit Job building `spec` within `budget` (see the module documentation for its
/// security context).
pub fn build_job(meta: &PreviewMeta, spec: &BuildSpec, budget: &BuildBudget) -> Job {
    let labels = meta.labels_with_role(ROLE_BUILD);
    let context_dir = spec.context.trim_matches('/');
    let git_context = if context_dir.is_empty() || context_dir == "." {
        format!("{}#{}", spec.clone_url, spec.sha)
    } else {
        format!("{}#{}:{}", spec.clone_url, spec.sha, context_dir)
    };
    let mut output = format!("type=image,name={},push=true", spec.image);
    if spec.registry_insecure {
        output.push_str(",registry.insecure=true");
    }
    let args = [
        "build",
        "--frontend",
        "dockerfile.v0",
        "--opt",
        &format!("context={git_context}"),
        "--opt",
        &format!("filename={}", spec.dockerfile),
        "--secret",
        &format!("id={BUILD_SECRET_KEY},env={BUILD_SECRET_KEY}"),
        "--output",
        &output,
    ]
    .map(str::to_owned)
    .to_vec();

    let quantity = |s: &str| Quantity(s.to_owned());
    let resources = |cpu: &str, memory: &str| {
        BTreeMap::from([
            ("cpu".to_owned(), quantity(cpu)),
            ("memory".to_owned(), quantity(memory)),
        ])
    };
    let container = Container {
        name: "buildkit".to_owned(),
        image: Some(spec.builder_image.clone()),
        command: Some(vec!["buildctl-daemonless.sh".to_owned()]),
        args: Some(args),
        env: Some(vec![
            EnvVar {
                name: "BUILDKITD_FLAGS".to_owned(),
                value: Some("--oci-worker-no-process-sandbox".to_owned()),
                ..EnvVar::default()
            },
            EnvVar {
                name: BUILD_SECRET_KEY.to_owned(),
                value_from: Some(EnvVarSource {
                    secret_key_ref: Some(SecretKeySelector {
                        name: BUILD_SECRET_NAME.to_owned(),
                        key: BUILD_SECRET_KEY.to_owned(),
                        optional: Some(false),
                    }),
                    ..EnvVarSource::default()
                }),
                ..EnvVar::default()
            },
        ]),
        resources: Some(ResourceRequirements {
            limits: Some(resources(&budget.cpu, &budget.memory)),
            requests: Some(resources(
                &scale_cpu(&budget.cpu, 1, 4).unwrap_or_else(|| budget.cpu.clone()),
                &scale_memory(&budget.memory, 1, 4).unwrap_or_else(|| budget.memory.clone()),
            )),
            ..ResourceRequirements::default()
        }),
        security_context: Some(SecurityContext {
            run_as_user: Some(BUILDKIT_UID),
            run_as_group: Some(BUILDKIT_UID),
            run_as_non_root: Some(true),
            privileged: Some(false),
            // Unconfined and privilege escalation: required by rootless BuildKit, see above.
            seccomp_profile: Some(SeccompProfile {
                type_: "Unconfined".to_owned(),
                ..SeccompProfile::default()
            }),
            app_armor_profile: Some(AppArmorProfile {
                type_: "Unconfined".to_owned(),
                ..AppArmorProfile::default()
            }),
            ..SecurityContext::default()
        }),
        volume_mounts: Some(vec![VolumeMount {
            name: "buildkitd".to_owned(),
            mount_path: BUILDKIT_STATE_DIR.to_owned(),
            ..VolumeMount::default()
        }]),
        ..Container::default()
    };

    let mut metadata = meta.object_meta(&build_job_name(&spec.sha));
    metadata.labels = Some(labels.clone());
    Job {
        metadata,
        spec: Some(JobSpec {
            backoff_limit: Some(0),
            active_deadline_seconds: Some(BUILD_DEADLINE_SECONDS),
            ttl_seconds_after_finished: Some(BUILD_TTL_SECONDS),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    annotations: Some(meta.annotations()),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    restart_policy: Some("Never".to_owned()),
                    automount_service_account_token: Some(false),
                    enable_service_links: Some(false),
                    containers: vec![container],
                    volumes: Some(vec![Volume {
                        name: "buildkitd".to_owned(),
                        empty_dir: Some(EmptyDirVolumeSource {
                            size_limit: Some(quantity("10Gi")),
                            ..EmptyDirVolumeSource::default()
                        }),
                        ..Volume::default()
                    }]),
                    ..PodSpec::default()
                }),
            },
            ..JobSpec::default()
        }),
        ..Job::default()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::cluster::objects::tests::meta;
    use crate::cluster::objects::{ROLE_LABEL, to_apply_json};

    pub(crate) const TOKEN: &str = "ghs_SuperSecretInstallationToken0123456789";

    pub(crate) fn spec() -> BuildSpec {
        BuildSpec {
            clone_url: "https://github.com/acme/web.git".to_owned(),
            sha: meta().sha,
            dockerfile: "Dockerfile".to_owned(),
            context: ".".to_owned(),
            image: format!("registry.example.com/acme/web:{}", meta().sha),
            builder_image: "moby/buildkit:v0.26.2-rootless".to_owned(),
            registry_insecure: false,
        }
    }

    fn container(job: &Job) -> Container {
        job.spec.clone().unwrap().template.spec.unwrap().containers[0].clone()
    }

    #[test]
    fn secret_holds_the_token_as_opaque_data() {
        let secret = build_secret(&meta(), &SecretString::from(TOKEN));
        assert_eq!(secret.metadata.name.as_deref(), Some(BUILD_SECRET_NAME));
        assert_eq!(secret.type_.as_deref(), Some("Opaque"));
        assert_eq!(secret.data.unwrap()[BUILD_SECRET_KEY].0, TOKEN.as_bytes());
        assert_eq!(secret.string_data, None);
    }

    #[test]
    fn the_token_reaches_the_job_only_by_reference() {
        let job = build_job(&meta(), &spec(), &BuildBudget::default());
        let json = to_apply_json(&job).to_string();
        assert!(
            !json.contains(TOKEN) && !json.contains("ghs_"),
            "token inline: {json}"
        );
        let env = container(&job).env.unwrap();
        let token = env.iter().find(|e| e.name == BUILD_SECRET_KEY).unwrap();
        assert_eq!(token.value, None);
        let reference = token.value_from.clone().unwrap().secret_key_ref.unwrap();
        assert_eq!(
            (reference.name.as_str(), reference.key.as_str()),
            (BUILD_SECRET_NAME, BUILD_SECRET_KEY)
        );
        assert!(
            env.iter()
                .all(|e| e.value.as_deref().is_none_or(|v| !v.contains("ghs_")))
        );
    }

    #[test]
    fn job_runs_buildctl_once_with_a_deadline() {
        let job = build_job(&meta(), &spec(), &BuildBudget::default());
        assert_eq!(job.metadata.name.as_deref(), Some("build-0123456789ab"));
        let job_spec = job.spec.clone().unwrap();
        assert_eq!(job_spec.backoff_limit, Some(0));
        assert_eq!(
            job_spec.active_deadline_seconds,
            Some(BUILD_DEADLINE_SECONDS)
        );
        assert_eq!(job_spec.ttl_seconds_after_finished, Some(BUILD_TTL_SECONDS));
        let pod = job_spec.template.spec.unwrap();
        assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
        assert_eq!(pod.automount_service_account_token, Some(false));
        let template_labels = job_spec.template.metadata.unwrap().labels.unwrap();
        assert_eq!(template_labels[ROLE_LABEL], ROLE_BUILD);

        let c = container(&job);
        assert_eq!(c.command.unwrap(), ["buildctl-daemonless.sh"]);
        let args = c.args.unwrap();
        let sha = meta().sha;
        for expected in [
            "build".to_owned(),
            "dockerfile.v0".to_owned(),
            format!("context=https://github.com/acme/web.git#{sha}"),
            "filename=Dockerfile".to_owned(),
            "id=GIT_AUTH_TOKEN,env=GIT_AUTH_TOKEN".to_owned(),
            format!("type=image,name=registry.example.com/acme/web:{sha},push=true"),
        ] {
            assert!(args.contains(&expected), "{expected} not in {args:?}");
        }
    }

    #[test]
    fn subdirectory_context_and_insecure_registry() {
        let spec = BuildSpec {
            context: "services/api/".to_owned(),
            registry_insecure: true,
            ..spec()
        };
        let args = container(&build_job(&meta(), &spec, &BuildBudget::default()))
            .args
            .unwrap();
        let sha = meta().sha;
        assert!(args.contains(&format!(
            "context=https://github.com/acme/web.git#{sha}:services/api"
        )));
        assert!(
            args.iter()
                .any(|a| a.ends_with(",push=true,registry.insecure=true"))
        );
    }

    #[test]
    fn build_pod_is_rootless_and_bounded() {
        let c = container(&build_job(&meta(), &spec(), &BuildBudget::default()));
        let sc = c.security_context.unwrap();
        assert_eq!(sc.run_as_non_root, Some(true));
        assert_eq!(sc.run_as_user, Some(1000));
        assert_eq!(sc.privileged, Some(false));
        let limits = c.resources.unwrap().limits.unwrap();
        assert_eq!(limits["cpu"].0, "1");
        assert_eq!(limits["memory"].0, "2Gi");
    }

    #[test]
    fn the_build_namespace_is_privileged_bounded_and_closed() {
        let meta = meta().for_build();
        assert_eq!(meta.namespace, "acme-web-pr-12--b41");
        let ns = build_namespace(&meta);
        let labels = ns.metadata.labels.unwrap();
        assert_eq!(labels["pod-security.kubernetes.io/enforce"], "privileged");
        assert_eq!(labels["pod-security.kubernetes.io/warn"], "restricted");
        assert_eq!(labels[ROLE_LABEL], ROLE_BUILD);
        assert_eq!(labels[ATTEMPT_LABEL], "41");
        let hard = build_quota(&meta, &BuildBudget::default())
            .spec
            .unwrap()
            .hard
            .unwrap();
        assert_eq!(hard["pods"].0, "1");
        assert_eq!(hard["limits.cpu"].0, "1");
        let targets = [
            EgressTarget::Cidr {
                cidr: "140.82.112.3/32".into(),
                port: 443,
            },
            EgressTarget::Namespace {
                name: "registry".into(),
                port: 5000,
            },
        ];
        let policies = build_network_policies(&meta, &targets, "kube-system");
        let egress = policies[2].spec.clone().unwrap().egress.unwrap();
        assert_eq!(egress.len(), 2);
        let to = |i: usize| egress[i].to.clone().unwrap()[0].clone();
        assert_eq!(to(0).ip_block.unwrap().cidr, "140.82.112.3/32");
        assert_eq!(
            egress[1].ports.clone().unwrap()[0].port,
            Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(5000))
        );
        assert!(to(1).namespace_selector.is_some());
        for p in &policies {
            assert_eq!(p.metadata.namespace.as_deref(), Some("acme-web-pr-12--b41"));
        }
    }

    #[test]
    fn job_names_are_short_and_valid() {
        assert_eq!(build_job_name("ABCDEF0123456789"), "build-abcdef012345");
        assert_eq!(build_job_name("abcdef0"), "build-abcdef0");
        let odd = build_job_name("not a sha/../");
        assert!(odd.starts_with("build-") && odd.len() == 14, "{odd}");
        assert!(crate::cluster::naming::is_dns1123_label(&odd));
    }
}
