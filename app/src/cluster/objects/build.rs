//! The in-cluster image build: a Secret with the git credentials and a one-shot BuildKit Job.
//!
//! The Job runs rootless BuildKit daemonless (`buildctl-daemonless.sh`): BuildKit fetches the
//! repository itself at the head sha (`context=<clone url>#<sha>[:<dir>]`), authenticating with
//! the `GIT_AUTH_TOKEN` build secret, builds the Dockerfile and pushes `<registry>/<repo>:<sha>`.
//! The token reaches the pod only by reference (`secretKeyRef`); it is a short-lived GitHub App
//! installation token — mint it scoped to the one repository with `contents: read`, since a
//! Dockerfile can mount build secrets and the build pod can reach the internet.
//!
//! Pod security, the trade-off: rootless BuildKit creates a user namespace (through the setuid
//! `newuidmap`) and mounts inside it, which the runtime's default seccomp and AppArmor profiles
//! forbid. It therefore runs with `seccompProfile: Unconfined`, `appArmorProfile: Unconfined` and
//! privilege escalation allowed, as BuildKit's own Kubernetes examples do — as uid 1000, not
//! privileged, capabilities left at the runtime default. Pod Security `restricted` forbids all
//! three and `baseline` the first two, so no weaker label than `privileged` admits it: the
//! namespace is applied with `namespace_for_build` for the duration of the build (see
//! `namespace.rs`). The alternative — a privileged build namespace apart from the preview, or a
//! shared BuildKit daemon the Job only talks to — isolates better and is the upgrade path; this
//! keeps one namespace per preview. `--oci-worker-no-process-sandbox` is needed because the pod
//! cannot unmask `/proc`; it means `RUN` steps share BuildKit's process namespace.
//!
//! Not yet here: registry push credentials (a docker config Secret mounted at `$DOCKER_CONFIG`);
//! without them the push works only to a registry that accepts it anonymously or by node
//! credentials.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    AppArmorProfile, Container, EmptyDirVolumeSource, EnvVar, EnvVarSource, PodSpec,
    PodTemplateSpec, ResourceRequirements, SeccompProfile, Secret, SecretKeySelector,
    SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use secrecy::{ExposeSecret as _, SecretString};

use super::{PreviewMeta, ROLE_BUILD};
use crate::cluster::naming::short_hash;
use crate::cluster::quantity::{scale_cpu, scale_memory};

/// Name of the Secret holding the git credentials of the build.
pub const BUILD_SECRET_NAME: &str = "previewd-git-auth";
/// Key of the token in [`BUILD_SECRET_NAME`]; also the BuildKit secret id BuildKit's git source
/// looks for.
pub const BUILD_SECRET_KEY: &str = "GIT_AUTH_TOKEN";

/// CPU limit of the build container: half the default namespace budget, so a rebuild fits next
/// to the running preview's pod. Requests are a quarter of the limits.
pub const BUILD_CPU: &str = "250m";
/// Memory limit of the build container (see [`BUILD_CPU`]).
pub const BUILD_MEMORY: &str = "256Mi";
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

/// The BuildKit Job building `spec` (see the module documentation for its security context).
pub fn build_job(meta: &PreviewMeta, spec: &BuildSpec) -> Job {
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
            limits: Some(resources(BUILD_CPU, BUILD_MEMORY)),
            requests: Some(resources(
                &scale_cpu(BUILD_CPU, 1, 4).unwrap_or_else(|| BUILD_CPU.to_owned()),
                &scale_memory(BUILD_MEMORY, 1, 4).unwrap_or_else(|| BUILD_MEMORY.to_owned()),
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
        let job = build_job(&meta(), &spec());
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
        let job = build_job(&meta(), &spec());
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
        let args = container(&build_job(&meta(), &spec)).args.unwrap();
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
        let c = container(&build_job(&meta(), &spec()));
        let sc = c.security_context.unwrap();
        assert_eq!(sc.run_as_non_root, Some(true));
        assert_eq!(sc.run_as_user, Some(1000));
        assert_eq!(sc.privileged, Some(false));
        let limits = c.resources.unwrap().limits.unwrap();
        assert_eq!(limits["cpu"].0, BUILD_CPU);
        assert_eq!(limits["memory"].0, BUILD_MEMORY);
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
