//! The preview namespace's network policies: deny everything, then allow what a preview needs.
//!
//! Policies are additive (a packet passes if any policy selecting the pod allows it), so the
//! set is: `default-deny` (every pod, ingress and egress, no rules); `allow-ingress-controller`
//! (inbound from the ingress controller's namespace, the only way in); `allow-same-namespace`
//! (pods of the preview talk to each other — a chart's web app and its database — and to
//! nothing in other namespaces); `allow-dns` (out to the cluster DNS pods on 53/UDP+TCP);
//! `allow-build-egress` (build pods only, out to port 443 anywhere but link-local addresses:
//! the build clones from GitHub and pushes to the registry; the workload cannot reach the
//! internet). Namespaces are selected by `kubernetes.io/metadata.name`, which Kubernetes sets.

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicyPeer,
    NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{GuardRails, PreviewMeta, ROLE_BUILD, ROLE_LABEL};

/// Names of the policies, in the order [`network_policies`] returns them.
pub const NETWORK_POLICY_NAMES: [&str; 5] = [
    "default-deny",
    "allow-ingress-controller",
    "allow-same-namespace",
    "allow-dns",
    "allow-build-egress",
];

/// The preview namespace's network policies (see the module documentation).
pub fn network_policies(meta: &PreviewMeta, rails: &GuardRails) -> Vec<NetworkPolicy> {
    let all_pods = LabelSelector::default();
    let both = Some(vec!["Ingress".to_owned(), "Egress".to_owned()]);
    let namespace_named = |name: &str| LabelSelector {
        match_labels: Some(BTreeMap::from([(
            "kubernetes.io/metadata.name".to_owned(),
            name.to_owned(),
        )])),
        ..LabelSelector::default()
    };
    let same_namespace = NetworkPolicyPeer {
        pod_selector: Some(LabelSelector::default()),
        ..NetworkPolicyPeer::default()
    };
    let port = |protocol: &str, number: i32| NetworkPolicyPort {
        protocol: Some(protocol.to_owned()),
        port: Some(IntOrString::Int(number)),
        ..NetworkPolicyPort::default()
    };
    let policy = |name: &str, spec: NetworkPolicySpec| NetworkPolicy {
        metadata: meta.object_meta(name),
        spec: Some(spec),
    };

    vec![
        policy(
            NETWORK_POLICY_NAMES[0],
            NetworkPolicySpec {
                pod_selector: Some(all_pods.clone()),
                policy_types: both.clone(),
                ..NetworkPolicySpec::default()
            },
        ),
        policy(
            NETWORK_POLICY_NAMES[1],
            NetworkPolicySpec {
                pod_selector: Some(all_pods.clone()),
                policy_types: Some(vec!["Ingress".to_owned()]),
                ingress: Some(vec![NetworkPolicyIngressRule {
                    from: Some(vec![NetworkPolicyPeer {
                        namespace_selector: Some(namespace_named(&rails.ingress_namespace)),
                        ..NetworkPolicyPeer::default()
                    }]),
                    ..NetworkPolicyIngressRule::default()
                }]),
                ..NetworkPolicySpec::default()
            },
        ),
        policy(
            NETWORK_POLICY_NAMES[2],
            NetworkPolicySpec {
                pod_selector: Some(all_pods.clone()),
                policy_types: both,
                ingress: Some(vec![NetworkPolicyIngressRule {
                    from: Some(vec![same_namespace.clone()]),
                    ..NetworkPolicyIngressRule::default()
                }]),
                egress: Some(vec![NetworkPolicyEgressRule {
                    to: Some(vec![same_namespace]),
                    ..NetworkPolicyEgressRule::default()
                }]),
            },
        ),
        policy(
            NETWORK_POLICY_NAMES[3],
            NetworkPolicySpec {
                pod_selector: Some(all_pods),
                policy_types: Some(vec!["Egress".to_owned()]),
                egress: Some(vec![NetworkPolicyEgressRule {
                    to: Some(vec![NetworkPolicyPeer {
                        namespace_selector: Some(namespace_named(&rails.dns_namespace)),
                        pod_selector: Some(LabelSelector {
                            match_labels: Some(BTreeMap::from([(
                                "k8s-app".to_owned(),
                                "kube-dns".to_owned(),
                            )])),
                            ..LabelSelector::default()
                        }),
                        ..NetworkPolicyPeer::default()
                    }]),
                    ports: Some(vec![port("UDP", 53), port("TCP", 53)]),
                }]),
                ..NetworkPolicySpec::default()
            },
        ),
        policy(
            NETWORK_POLICY_NAMES[4],
            NetworkPolicySpec {
                pod_selector: Some(LabelSelector {
                    match_labels: Some(BTreeMap::from([(
                        ROLE_LABEL.to_owned(),
                        ROLE_BUILD.to_owned(),
                    )])),
                    ..LabelSelector::default()
                }),
                policy_types: Some(vec!["Egress".to_owned()]),
                egress: Some(vec![NetworkPolicyEgressRule {
                    to: Some(vec![
                        NetworkPolicyPeer {
                            ip_block: Some(IPBlock {
                                cidr: "0.0.0.0/0".to_owned(),
                                // Link-local: cloud metadata endpoints live there.
                                except: Some(vec!["169.254.0.0/16".to_owned()]),
                            }),
                            ..NetworkPolicyPeer::default()
                        },
                        NetworkPolicyPeer {
                            ip_block: Some(IPBlock {
                                cidr: "::/0".to_owned(),
                                except: Some(vec!["fe80::/10".to_owned()]),
                            }),
                            ..NetworkPolicyPeer::default()
                        },
                    ]),
                    ports: Some(vec![port("TCP", 443)]),
                }]),
                ..NetworkPolicySpec::default()
            },
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::objects::tests::meta;

    fn by_name(name: &str) -> NetworkPolicySpec {
        network_policies(&meta(), &GuardRails::default())
            .into_iter()
            .find(|p| p.metadata.name.as_deref() == Some(name))
            .and_then(|p| p.spec)
            .unwrap_or_else(|| panic!("no policy {name}"))
    }

    #[test]
    fn one_policy_per_name_in_the_preview_namespace() {
        let policies = network_policies(&meta(), &GuardRails::default());
        let names: Vec<_> = policies
            .iter()
            .filter_map(|p| p.metadata.name.as_deref())
            .collect();
        assert_eq!(names, NETWORK_POLICY_NAMES);
        for p in &policies {
            assert_eq!(p.metadata.namespace.as_deref(), Some("acme-web-pr-12"));
            assert_eq!(
                p.metadata.labels.as_ref().unwrap()[super::super::PREVIEW_ID_LABEL],
                "7"
            );
        }
    }

    #[test]
    fn default_deny_selects_every_pod_and_allows_nothing() {
        let spec = by_name("default-deny");
        assert_eq!(spec.pod_selector, Some(LabelSelector::default()));
        assert_eq!(
            spec.policy_types,
            Some(vec!["Ingress".to_owned(), "Egress".to_owned()])
        );
        assert_eq!(spec.ingress, None);
        assert_eq!(spec.egress, None);
    }

    #[test]
    fn ingress_only_from_the_ingress_controller_namespace() {
        let spec = by_name("allow-ingress-controller");
        assert_eq!(spec.policy_types, Some(vec!["Ingress".to_owned()]));
        let from = spec.ingress.unwrap()[0].from.clone().unwrap();
        assert_eq!(from.len(), 1);
        let labels = from[0]
            .namespace_selector
            .clone()
            .unwrap()
            .match_labels
            .unwrap();
        assert_eq!(labels["kubernetes.io/metadata.name"], "ingress-nginx");
        assert_eq!(from[0].pod_selector, None);
    }

    #[test]
    fn dns_egress_to_kube_dns_on_port_53() {
        let spec = by_name("allow-dns");
        let rule = &spec.egress.unwrap()[0];
        let peer = &rule.to.as_ref().unwrap()[0];
        let ns = peer
            .namespace_selector
            .clone()
            .unwrap()
            .match_labels
            .unwrap();
        assert_eq!(ns["kubernetes.io/metadata.name"], "kube-system");
        let pods = peer.pod_selector.clone().unwrap().match_labels.unwrap();
        assert_eq!(pods["k8s-app"], "kube-dns");
        let ports: Vec<_> = rule
            .ports
            .as_ref()
            .unwrap()
            .iter()
            .map(|p| (p.protocol.clone().unwrap(), p.port.clone().unwrap()))
            .collect();
        assert_eq!(
            ports,
            [
                ("UDP".to_owned(), IntOrString::Int(53)),
                ("TCP".to_owned(), IntOrString::Int(53))
            ]
        );
    }

    #[test]
    fn only_build_pods_reach_out_and_only_on_443() {
        let spec = by_name("allow-build-egress");
        let selector = spec.pod_selector.unwrap().match_labels.unwrap();
        assert_eq!(selector.len(), 1);
        assert_eq!(selector[ROLE_LABEL], ROLE_BUILD);
        let rule = &spec.egress.unwrap()[0];
        let ports = rule.ports.as_ref().unwrap();
        assert_eq!(ports.len(), 1);
        assert_eq!(ports[0].port, Some(IntOrString::Int(443)));
        // No other policy allows egress beyond the namespace and DNS.
        for name in [
            "default-deny",
            "allow-ingress-controller",
            "allow-same-namespace",
        ] {
            for rule in by_name(name).egress.unwrap_or_default() {
                for peer in rule.to.unwrap_or_default() {
                    assert!(
                        peer.ip_block.is_none() && peer.namespace_selector.is_none(),
                        "{name}"
                    );
                }
            }
        }
    }

    #[test]
    fn configured_namespaces_are_used() {
        let rails = GuardRails {
            ingress_namespace: "traefik".into(),
            dns_namespace: "dns".into(),
            ..GuardRails::default()
        };
        let policies = network_policies(&meta(), &rails);
        let json = serde_json::to_string(&policies).unwrap();
        assert!(json.contains("\"traefik\"") && json.contains("\"dns\""));
        assert!(!json.contains("ingress-nginx") && !json.contains("kube-system"));
    }
}
