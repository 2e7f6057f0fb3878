//! The preview namespace's network policies: deny everything, then allow what a preview needs.
//!
//! Policies are additive (a packet passes if any policy selecting the pod allows it), so the
//! set is: `default-deny` (every pod, ingress and egress, no rules); `allow-ingress-controller`
//! (inbound from the ingress controller's namespace, the only way in); `allow-same-namespace`
//! (pods of the preview talk to each other — a chart's web app and its database — and to
//! nothing in other namespaces); `allow-dns` (out to the cluster DNS pods on 53/UDP+TCP). The
//! workload cannot reach the internet; the image build, which must reach the git host and the
//! registry, runs in a namespace of its own with policies of its own (`build.rs`). Namespaces
//! are selected by `kubernetes.io/metadata.name`, which Kubernetes sets.

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicyPeer,
    NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{GuardRails, PreviewMeta};

/// Names of the policies, in the order [`network_policies`] returns them.
pub const NETWORK_POLICY_NAMES: [&str; 4] = [
    "default-deny",
    "allow-ingress-controller",
    "allow-same-namespace",
    "allow-dns",
];

/// The preview namespace's network policies (see the module documentation).
pub fn network_policies(meta: &PreviewMeta, rails: &GuardRails) -> Vec<NetworkPolicy> {
    let all_pods = LabelSelector::default();
    let both = Some(vec!["Ingress".to_owned(), "Egress".to_owned()]);
    let same_namespace = NetworkPolicyPeer {
        pod_selector: Some(LabelSelector::default()),
        ..NetworkPolicyPeer::default()
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
        policy(NETWORK_POLICY_NAMES[3], allow_dns(&rails.dns_namespace)),
    ]
}

/// Egress from every pod to the cluster DNS pods (`k8s-app=kube-dns` in `dns_namespace`) on
/// port 53, UDP and TCP.
pub(super) fn allow_dns(dns_namespace: &str) -> NetworkPolicySpec {
    NetworkPolicySpec {
        pod_selector: Some(LabelSelector::default()),
        policy_types: Some(vec!["Egress".to_owned()]),
        egress: Some(vec![NetworkPolicyEgressRule {
            to: Some(vec![NetworkPolicyPeer {
                namespace_selector: Some(namespace_named(dns_namespace)),
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
    }
}

/// A selector of the namespace called `name` (Kubernetes labels every namespace with it).
pub(super) fn namespace_named(name: &str) -> LabelSelector {
    LabelSelector {
        match_labels: Some(BTreeMap::from([(
            "kubernetes.io/metadata.name".to_owned(),
            name.to_owned(),
        )])),
        ..LabelSelector::default()
    }
}

/// `protocol` port `number`.
pub(super) fn port(protocol: &str, number: i32) -> NetworkPolicyPort {
    NetworkPolicyPort {
        protocol: Some(protocol.to_owned()),
        port: Some(IntOrString::Int(number)),
        ..NetworkPolicyPort::default()
    }
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
    fn no_preview_pod_reaches_beyond_the_namespace_and_dns() {
        for policy in network_policies(&meta(), &GuardRails::default()) {
            let name = policy.metadata.name.clone().unwrap_or_default();
            for rule in policy.spec.unwrap().egress.unwrap_or_default() {
                for peer in rule.to.unwrap_or_default() {
                    assert!(peer.ip_block.is_none(), "{name}");
                    if let Some(ns) = peer.namespace_selector {
                        assert_eq!(name, "allow-dns");
                        assert_eq!(
                            ns.match_labels.unwrap()["kubernetes.io/metadata.name"],
                            "kube-system"
                        );
                    }
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
