//! Fault injection and request counters: tests queue faults (a Status code or a delay) for a
//! verb and/or resource, each consumed a given number of times, and read back how many requests
//! of each (verb, resource) the server saw — also by API group, namespace, name and field manager
//! ([`Target`], what an RBAC rule would have to allow) — plus every path it could not serve.

use std::collections::BTreeMap;
use std::time::Duration;

/// What an injected fault does to a matching request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultKind {
    /// Answer with a `Status` body of this code instead of serving the request (500, 503, 429
    /// with `Retry-After: 1`, ...). A 410 on a watch is sent the way the real server sends it: a
    /// 200 stream holding one `ERROR` event with an `Expired` Status.
    Status(u16),
    /// Serve the request normally after this delay.
    Slow(Duration),
}

/// A fault for requests matching `verb` and `resource` (None matches any), applied `times`
/// times. Verbs: `get list watch create patch apply update delete deletecollection`; resources
/// are plurals (`deployments`), subresources as `pods/log`, `deployments/status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    pub verb: Option<String>,
    pub resource: Option<String>,
    pub kind: FaultKind,
    pub times: u32,
}

impl Fault {
    /// A fault answering `code` once, for any request (narrow it with [`Fault::verb`] etc.).
    pub fn status(code: u16) -> Self {
        Self {
            verb: None,
            resource: None,
            kind: FaultKind::Status(code),
            times: 1,
        }
    }

    /// A fault delaying one request by `delay`.
    pub fn slow(delay: Duration) -> Self {
        Self {
            verb: None,
            resource: None,
            kind: FaultKind::Slow(delay),
            times: 1,
        }
    }

    /// Only requests with this verb.
    pub fn verb(mut self, verb: &str) -> Self {
        self.verb = Some(verb.to_owned());
        self
    }

    /// Only requests for this resource (plural).
    pub fn resource(mut self, resource: &str) -> Self {
        self.resource = Some(resource.to_owned());
        self
    }

    /// Applied this many times.
    pub fn times(mut self, times: u32) -> Self {
        self.times = times;
        self
    }

    fn matches(&self, verb: &str, resource: &str) -> bool {
        self.verb.as_deref().is_none_or(|v| v == verb)
            && self.resource.as_deref().is_none_or(|r| r == resource)
    }
}

/// What one API request touched, as an RBAC rule sees it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Target {
    /// As in [`Fault`]: `get list watch create apply patch update delete deletecollection`.
    pub verb: String,
    /// API group (`""` for the core group, `apps`, `rbac.authorization.k8s.io`, ...).
    pub group: String,
    /// Plural, with the subresource as `pods/log`.
    pub resource: String,
    /// `None` for cluster-scoped objects and for lists and watches across all namespaces.
    pub namespace: Option<String>,
    /// `None` for collections (list, watch, create, deletecollection).
    pub name: Option<String>,
    /// The request's `fieldManager` query parameter, which tells clients apart.
    pub field_manager: Option<String>,
    /// Who sent it: the name given to [`super::KubeSim::kubeconfig_for`] for the kubeconfig
    /// used, `None` for the main one ([`super::KubeSim::kubeconfig_path`]).
    pub client: Option<String>,
}

/// Request counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Requests {
    /// Every request the server received.
    pub total: u64,
    /// Requests by (verb, resource); non-resource paths count as (`get`, the path).
    pub by_verb_resource: BTreeMap<(String, String), u64>,
    /// API requests for stored resources (and metrics) by [`Target`]; discovery and
    /// unimplemented paths are not in it.
    pub by_target: BTreeMap<Target, u64>,
    /// `METHOD PATH` of every request the simulator does not implement.
    pub unimplemented: Vec<String>,
}

impl Requests {
    /// How many requests had this verb and resource.
    pub fn count(&self, verb: &str, resource: &str) -> u64 {
        self.by_verb_resource
            .get(&(verb.to_owned(), resource.to_owned()))
            .copied()
            .unwrap_or(0)
    }
}

/// Pending faults and the counters (behind their own mutex in the server state).
#[derive(Debug, Default)]
pub(crate) struct Faults {
    pending: Vec<Fault>,
    pub(crate) requests: Requests,
}

impl Faults {
    pub(crate) fn inject(&mut self, fault: Fault) {
        if fault.times > 0 {
            self.pending.push(fault);
        }
    }

    pub(crate) fn count(&mut self, verb: &str, resource: &str) {
        self.requests.total += 1;
        *self
            .requests
            .by_verb_resource
            .entry((verb.to_owned(), resource.to_owned()))
            .or_insert(0) += 1;
    }

    pub(crate) fn count_target(&mut self, target: Target) {
        *self.requests.by_target.entry(target).or_insert(0) += 1;
    }

    pub(crate) fn unimplemented(&mut self, what: String) {
        self.requests.unimplemented.push(what);
    }

    /// Consumes one use of the first fault matching this request, oldest first.
    pub(crate) fn take(&mut self, verb: &str, resource: &str) -> Option<FaultKind> {
        let i = self
            .pending
            .iter()
            .position(|f| f.matches(verb, resource))?;
        let kind = self.pending[i].kind.clone();
        self.pending[i].times -= 1;
        if self.pending[i].times == 0 {
            self.pending.remove(i);
        }
        Some(kind)
    }
}
