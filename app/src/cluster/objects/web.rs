//! The built-in workload: one web service (Deployment, Service, Ingress) from a ready image.
//!
//! Used when the repository has no chart. The pod passes Pod Security `restricted` (non-root,
//! no privilege escalation, all capabilities dropped, `RuntimeDefault` seccomp) — so an image
//! whose user is root, or a non-numeric user Kubernetes cannot check, fails to start, which the
//! deploy job reports. One replica, `Recreate` so a new commit never needs room for two pods in
//! the quota, requests half the limits. The app gets `PORT` and `PREVIEWD_*` variables (URL,
//! repository, PR, sha, namespace) besides the repository's own. The Ingress serves
//! `https://<host>` only: TLS for the host (the wildcard secret when configured, else the
//! controller's default certificate) and nginx's forced redirect from HTTP.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EnvVar, HTTPGetAction, PodSecurityContext, PodSpec,
    PodTemplateSpec, Probe, ResourceRequirements, SeccompProfile, SecurityContext, Service,
    ServicePort, ServiceSpec,
};
use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule,
    IngressServiceBackend, IngressSpec, IngressTLS, ServiceBackendPort,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{MANAGED_BY, MANAGED_BY_LABEL, PreviewMeta, ROLE_WEB};
use crate::units::{scale_cpu, scale_memory};

/// Name of the Deployment, Service and Ingress of the built-in web service.
pub const WEB_NAME: &str = "web";
/// Name of the container port (the Service and the probes refer to it).
const PORT_NAME: &str = "http";
/// Prefix of the variables previewd sets; the repository's own may not use it.
const ENV_PREFIX: &str = "PREVIEWD_";

/// The built-in web service of a preview.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebService {
    /// The image to run (built or given).
    pub image: String,
    /// The port the app listens on.
    pub port: u16,
    /// Path answering 2xx when the app is ready, e.g. `/healthz`.
    pub health_path: String,
    /// The repository's environment variables (`PREVIEWD_*` names are ignored).
    pub env: BTreeMap<String, String>,
    /// CPU limit of the container (requests are half).
    pub cpu: String,
    /// Memory limit of the container (requests are half).
    pub memory: String,
    /// Public host name, `<namespace>.<preview domain>`.
    pub host: String,
    /// `spec.ingressClassName`; `None` uses the cluster's default class.
    pub ingress_class: Option<String>,
    /// Secret holding the wildcard certificate; `None` uses the controller's default one.
    pub tls_secret: Option<String>,
}

/// The selector of the web pods: constant, since a Deployment's selector cannot change (the
/// namespace already scopes it to the preview).
fn selector_labels() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_owned(), WEB_NAME.to_owned()),
        (MANAGED_BY_LABEL.to_owned(), MANAGED_BY.to_owned()),
    ])
}

/// The web Deployment (see the module documentation).
pub fn deployment(meta: &PreviewMeta, web: &WebService) -> Deployment {
    let mut pod_labels = meta.pod_labels(ROLE_WEB);
    pod_labels.extend(selector_labels());
    let url = format!("https://{}", web.host);
    let mut env: Vec<EnvVar> = [
        ("PORT", web.port.to_string()),
        ("PREVIEWD_URL", url),
        ("PREVIEWD_REPO", meta.repo_full_name.clone()),
        ("PREVIEWD_PR", meta.pr_number.to_string()),
        ("PREVIEWD_SHA", meta.sha.clone()),
        ("PREVIEWD_NAMESPACE", meta.namespace.clone()),
    ]
    .into_iter()
    .filter(|(name, _)| *name != "PORT" || !web.env.contains_key("PORT"))
    .map(|(name, value)| plain_env(name, &value))
    .collect();
    env.extend(
        web.env
            .iter()
            .filter(|(name, _)| !name.starts_with(ENV_PREFIX))
            .map(|(name, value)| plain_env(name, value)),
    );

    let quantity = |s: String| Quantity(s);
    let cpu_request = scale_cpu(&web.cpu, 1, 2).unwrap_or_else(|| web.cpu.clone());
    let memory_request = scale_memory(&web.memory, 1, 2).unwrap_or_else(|| web.memory.clone());
    let probe = |initial_delay: i32, failures: i32| Probe {
        http_get: Some(HTTPGetAction {
            path: Some(web.health_path.clone()),
            port: IntOrString::String(PORT_NAME.to_owned()),
            scheme: Some("HTTP".to_owned()),
            ..HTTPGetAction::default()
        }),
        initial_delay_seconds: Some(initial_delay),
        period_seconds: Some(5),
        timeout_seconds: Some(2),
        failure_threshold: Some(failures),
        ..Probe::default()
    };

    let container = Container {
        name: WEB_NAME.to_owned(),
        image: Some(web.image.clone()),
        image_pull_policy: Some("IfNotPresent".to_owned()),
        ports: Some(vec![ContainerPort {
            name: Some(PORT_NAME.to_owned()),
            container_port: i32::from(web.port),
            protocol: Some("TCP".to_owned()),
            ..ContainerPort::default()
        }]),
        env: Some(env),
        resources: Some(ResourceRequirements {
            limits: Some(BTreeMap::from([
                ("cpu".to_owned(), quantity(web.cpu.clone())),
                ("memory".to_owned(), quantity(web.memory.clone())),
            ])),
            requests: Some(BTreeMap::from([
                ("cpu".to_owned(), quantity(cpu_request)),
                ("memory".to_owned(), quantity(memory_request)),
            ])),
            ..ResourceRequirements::default()
        }),
        readiness_probe: Some(probe(2, 3)),
        // Generous: a slow start must not become a restart loop before readiness times out.
        liveness_probe: Some(probe(30, 6)),
        security_context: Some(SecurityContext {
            run_as_non_root: Some(true),
            allow_privilege_escalation: Some(false),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".to_owned()]),
                ..Capabilities::default()
            }),
            seccomp_profile: Some(runtime_default()),
            ..SecurityContext::default()
        }),
        ..Container::default()
    };

    let mut metadata = meta.object_meta(WEB_NAME);
    metadata.labels = Some(meta.labels_with_role(ROLE_WEB));
    Deployment {
        metadata,
        spec: Some(DeploymentSpec {
            replicas: Some(1),
            revision_history_limit: Some(2),
            progress_deadline_seconds: Some(600),
            selector: LabelSelector {
                match_labels: Some(selector_labels()),
                ..LabelSelector::default()
            },
            strategy: Some(DeploymentStrategy {
                type_: Some("Recreate".to_owned()),
                ..DeploymentStrategy::default()
            }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    annotations: Some(meta.annotations()),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    automount_service_account_token: Some(false),
                    enable_service_links: Some(false),
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        seccomp_profile: Some(runtime_default()),
                        ..PodSecurityContext::default()
                    }),
                    containers: vec![container],
                    ..PodSpec::default()
                }),
            },
            ..DeploymentSpec::default()
        }),
        ..Deployment::default()
    }
}

/// The web Service: port 80 to the container's `http` port, cluster-internal.
pub fn service(meta: &PreviewMeta, _web: &WebService) -> Service {
    Service {
        metadata: meta.object_meta(WEB_NAME),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".to_owned()),
            selector: Some(selector_labels()),
            ports: Some(vec![ServicePort {
                name: Some(PORT_NAME.to_owned()),
                port: 80,
                target_port: Some(IntOrString::String(PORT_NAME.to_owned())),
                protocol: Some("TCP".to_owned()),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// The web Ingress: `https://<host>/` to the Service, HTTPS only.
pub fn ingress(meta: &PreviewMeta, web: &WebService) -> Ingress {
    let mut metadata = meta.object_meta(WEB_NAME);
    let annotations = metadata.annotations.get_or_insert_with(BTreeMap::new);
    annotations.insert(
        "nginx.ingress.kubernetes.io/force-ssl-redirect".to_owned(),
        "true".to_owned(),
    );
    annotations.insert(
        "nginx.ingress.kubernetes.io/ssl-redirect".to_owned(),
        "true".to_owned(),
    );
    Ingress {
        metadata,
        spec: Some(IngressSpec {
            ingress_class_name: web.ingress_class.clone(),
            tls: Some(vec![IngressTLS {
                hosts: Some(vec![web.host.clone()]),
                secret_name: web.tls_secret.clone(),
            }]),
            rules: Some(vec![IngressRule {
                host: Some(web.host.clone()),
                http: Some(HTTPIngressRuleValue {
                    paths: vec![HTTPIngressPath {
                        path: Some("/".to_owned()),
                        path_type: "Prefix".to_owned(),
                        backend: IngressBackend {
                            service: Some(IngressServiceBackend {
                                name: WEB_NAME.to_owned(),
                                port: Some(ServiceBackendPort {
                                    name: Some(PORT_NAME.to_owned()),
                                    ..ServiceBackendPort::default()
                                }),
                            }),
                            ..IngressBackend::default()
                        },
                    }],
                }),
            }]),
            ..IngressSpec::default()
        }),
        ..Ingress::default()
    }
}

fn plain_env(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value: Some(value.to_owned()),
        ..EnvVar::default()
    }
}

fn runtime_default() -> SeccompProfile {
    SeccompProfile {
        type_: "RuntimeDefault".to_owned(),
        ..SeccompProfile::default()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::cluster::objects::tests::meta;

    pub(crate) fn web() -> WebService {
        WebService {
            image: "registry.example.com/acme/web:0123456".to_owned(),
            port: 8080,
            health_path: "/healthz".to_owned(),
            env: BTreeMap::from([
                ("FEATURE_X".to_owned(), "1".to_owned()),
                ("PREVIEWD_URL".to_owned(), "https://evil.example".to_owned()),
            ]),
            cpu: "500m".to_owned(),
            memory: "256Mi".to_owned(),
            host: "acme-web-pr-12.preview.example.com".to_owned(),
            ingress_class: Some("nginx".to_owned()),
            tls_secret: Some("preview-wildcard-tls".to_owned()),
        }
    }

    fn pod(d: &Deployment) -> PodSpec {
        d.spec.clone().unwrap().template.spec.unwrap()
    }

    #[test]
    fn deployment_is_restricted() {
        let d = deployment(&meta(), &web());
        let pod = pod(&d);
        assert_eq!(pod.automount_service_account_token, Some(false));
        let psc = pod.security_context.unwrap();
        assert_eq!(psc.run_as_non_root, Some(true));
        assert_eq!(psc.seccomp_profile.unwrap().type_, "RuntimeDefault");
        let sc = pod.containers[0].security_context.clone().unwrap();
        assert_eq!(sc.run_as_non_root, Some(true));
        assert_eq!(sc.allow_privilege_escalation, Some(false));
        assert_eq!(sc.capabilities.unwrap().drop.unwrap(), ["ALL"]);
        assert_eq!(sc.seccomp_profile.unwrap().type_, "RuntimeDefault");
        assert_eq!(sc.privileged, None);
        assert!(pod.host_network.is_none() && pod.host_pid.is_none() && pod.volumes.is_none());
    }

    #[test]
    fn deployment_runs_one_replica_with_probes_and_resources() {
        let d = deployment(&meta(), &web());
        let spec = d.spec.clone().unwrap();
        assert_eq!(spec.replicas, Some(1));
        assert_eq!(spec.strategy.unwrap().type_.as_deref(), Some("Recreate"));
        let selector = spec.selector.match_labels.unwrap();
        let template_labels = spec.template.metadata.unwrap().labels.unwrap();
        for (k, v) in &selector {
            assert_eq!(&template_labels[k], v, "selector must match the template");
        }
        let c = &pod(&d).containers[0];
        for probe in [&c.readiness_probe, &c.liveness_probe] {
            let get = probe.clone().unwrap().http_get.unwrap();
            assert_eq!(get.path.as_deref(), Some("/healthz"));
            assert_eq!(get.port, IntOrString::String("http".into()));
        }
        assert_eq!(c.ports.clone().unwrap()[0].container_port, 8080);
        let resources = c.resources.clone().unwrap();
        assert_eq!(resources.limits.unwrap()["cpu"].0, "500m");
        let requests = resources.requests.unwrap();
        assert_eq!(requests["cpu"].0, "250m");
        assert_eq!(requests["memory"].0, "128Mi");
    }

    #[test]
    fn environment_has_previewd_variables_that_the_repo_cannot_override() {
        let env = pod(&deployment(&meta(), &web())).containers[0]
            .env
            .clone()
            .unwrap();
        let get = |name: &str| {
            let found: Vec<_> = env.iter().filter(|e| e.name == name).collect();
            assert_eq!(found.len(), 1, "{name} set {} times", found.len());
            found[0].value.clone().unwrap()
        };
        assert_eq!(
            get("PREVIEWD_URL"),
            "https://acme-web-pr-12.preview.example.com"
        );
        assert_eq!(get("PREVIEWD_PR"), "12");
        assert_eq!(get("PREVIEWD_REPO"), "acme/web");
        assert_eq!(get("PORT"), "8080");
        assert_eq!(get("FEATURE_X"), "1");

        let own_port = WebService {
            env: BTreeMap::from([("PORT".to_owned(), "3000".to_owned())]),
            ..web()
        };
        let env = pod(&deployment(&meta(), &own_port)).containers[0]
            .env
            .clone()
            .unwrap();
        let ports: Vec<_> = env.iter().filter(|e| e.name == "PORT").collect();
        assert_eq!(ports.len(), 1);
        assert_eq!(ports[0].value.as_deref(), Some("3000"));
    }

    #[test]
    fn service_targets_the_pods() {
        let d = deployment(&meta(), &web());
        let s = service(&meta(), &web()).spec.unwrap();
        assert_eq!(s.selector, d.spec.unwrap().selector.match_labels);
        let port = &s.ports.unwrap()[0];
        assert_eq!(port.port, 80);
        assert_eq!(port.target_port, Some(IntOrString::String("http".into())));
    }

    #[test]
    fn ingress_is_https_only() {
        let i = ingress(&meta(), &web());
        let annotations = i.metadata.annotations.unwrap();
        assert_eq!(
            annotations["nginx.ingress.kubernetes.io/force-ssl-redirect"],
            "true"
        );
        let spec = i.spec.unwrap();
        assert_eq!(spec.ingress_class_name.as_deref(), Some("nginx"));
        let tls = &spec.tls.unwrap()[0];
        assert_eq!(
            tls.hosts.as_deref(),
            Some(&["acme-web-pr-12.preview.example.com".to_owned()][..])
        );
        assert_eq!(tls.secret_name.as_deref(), Some("preview-wildcard-tls"));
        let rule = &spec.rules.unwrap()[0];
        assert_eq!(
            rule.host.as_deref(),
            Some("acme-web-pr-12.preview.example.com")
        );
        let backend = rule.http.clone().unwrap().paths[0]
            .backend
            .service
            .clone()
            .unwrap();
        assert_eq!(backend.name, WEB_NAME);

        let default_cert = ingress(
            &meta(),
            &WebService {
                tls_secret: None,
                ingress_class: None,
                ..web()
            },
        );
        let spec = default_cert.spec.unwrap();
        assert_eq!(spec.tls.unwrap()[0].secret_name, None);
        assert_eq!(spec.ingress_class_name, None);
    }
}
