//! Fault injection: answers GitHub gives on a bad day, armed by a test and consumed by requests.
//!
//! A [`Fault`] applies to one route key (as in [`super::Calls::by_route`]) or to every route,
//! optionally only to one literal path (one pull request's comments, say), and fires `times`
//! times. Faults fire in the order they were injected. Latency faults delay the answer; status
//! and secondary-rate-limit faults replace it (nothing is applied); the after-apply faults let
//! the request change GitHub's state first and then fail it with a 5xx or answer it only after a
//! delay — what a real GitHub does on a bad day, and why a client must look before it retries a
//! create; `UnauthorizedOnFirstUse` makes the first request made with a freshly minted
//! installation token fail with 401 "Bad credentials". Dropped webhook deliveries are counted
//! here too.

use std::time::Duration;

/// A fault to inject with [`super::GitHubSim::inject`].
#[derive(Clone, Debug)]
pub struct Fault {
    /// A route key such as `"POST /repos/{owner}/{repo}/check-runs"` (see [`super::routes::keys`]);
    /// `None` matches every request.
    pub route: Option<String>,
    /// A literal request path such as `/repos/acme/web/issues/1/comments`; `None`: any path.
    pub path: Option<String>,
    pub kind: FaultKind,
    /// How many matching requests it affects.
    pub times: u32,
}

impl Fault {
    /// A fault on every route.
    pub fn any(kind: FaultKind, times: u32) -> Self {
        Self {
            route: None,
            path: None,
            kind,
            times,
        }
    }

    /// A fault on one route key.
    pub fn on(route: &str, kind: FaultKind, times: u32) -> Self {
        Self {
            route: Some(route.to_owned()),
            path: None,
            kind,
            times,
        }
    }

    /// Narrows the fault to requests for one literal path.
    pub fn at_path(mut self, path: &str) -> Self {
        self.path = Some(path.to_owned());
        self
    }
}

/// What an injected fault does.
#[derive(Clone, Debug)]
pub enum FaultKind {
    /// Answer with this status and a GitHub-shaped error body (e.g. 500, 502, 503).
    Status(u16),
    /// A secondary rate limit: `status` (403 or 429) with `retry-after`.
    SecondaryRateLimit { status: u16, retry_after_secs: u64 },
    /// The first request made with a freshly minted installation token gets 401.
    UnauthorizedOnFirstUse,
    /// Delay the answer.
    Latency(Duration),
    /// Apply the request, then answer with this status (e.g. 502) instead of its result.
    FailAfterApply(u16),
    /// Apply the request, then wait this long before answering it (longer than the client waits).
    SlowAfterApply(Duration),
}

/// The armed faults and the webhook-drop counter.
#[derive(Default)]
pub(crate) struct Faults {
    armed: Vec<Fault>,
    pub drop_deliveries: u32,
    pub forge_deliveries: u32,
}

impl Faults {
    pub fn inject(&mut self, fault: Fault) {
        if fault.times > 0 {
            self.armed.push(fault);
        }
    }

    /// Consumes one firing of the first armed fault on `route` that `wanted` accepts.
    fn take(
        &mut self,
        route: &str,
        path: &str,
        wanted: impl Fn(&FaultKind) -> bool,
    ) -> Option<FaultKind> {
        let i = self.armed.iter().position(|f| {
            f.route.as_deref().is_none_or(|r| r == route)
                && f.path.as_deref().is_none_or(|p| p == path)
                && wanted(&f.kind)
        })?;
        let fault = &mut self.armed[i];
        fault.times -= 1;
        let kind = fault.kind.clone();
        if fault.times == 0 {
            self.armed.remove(i);
        }
        Some(kind)
    }

    /// Extra delay for this request.
    pub fn take_latency(&mut self, route: &str, path: &str) -> Duration {
        match self.take(route, path, |k| matches!(k, FaultKind::Latency(_))) {
            Some(FaultKind::Latency(d)) => d,
            _ => Duration::ZERO,
        }
    }

    /// A failure that replaces this request's answer.
    pub fn take_failure(&mut self, route: &str, path: &str) -> Option<FaultKind> {
        self.take(route, path, |k| {
            matches!(
                k,
                FaultKind::Status(_) | FaultKind::SecondaryRateLimit { .. }
            )
        })
    }

    /// A fault that acts once the request has been applied.
    pub fn take_after_apply(&mut self, route: &str, path: &str) -> Option<FaultKind> {
        self.take(route, path, |k| {
            matches!(
                k,
                FaultKind::FailAfterApply(_) | FaultKind::SlowAfterApply(_)
            )
        })
    }

    /// Whether this first use of a fresh token must be refused.
    pub fn take_unauthorized_first_use(&mut self, route: &str) -> bool {
        self.take(route, "", |k| {
            matches!(k, FaultKind::UnauthorizedOnFirstUse)
        })
        .is_some()
    }

    /// Whether the next webhook must be signed with a wrong secret (consumes one).
    pub fn take_forge(&mut self) -> bool {
        if self.forge_deliveries > 0 {
            self.forge_deliveries -= 1;
            true
        } else {
            false
        }
    }

    /// Whether the next webhook must be dropped (consumes one).
    pub fn take_drop(&mut self) -> bool {
        if self.drop_deliveries > 0 {
            self.drop_deliveries -= 1;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_fire_in_order_and_wear_out() {
        let mut f = Faults::default();
        f.inject(Fault::on("GET /a", FaultKind::Status(502), 2));
        f.inject(Fault::any(FaultKind::Status(500), 1));
        assert!(matches!(
            f.take_failure("GET /b", "/b"),
            Some(FaultKind::Status(500))
        ));
        assert!(f.take_failure("GET /b", "/b").is_none());
        assert!(matches!(
            f.take_failure("GET /a", "/a"),
            Some(FaultKind::Status(502))
        ));
        assert!(matches!(
            f.take_failure("GET /a", "/a"),
            Some(FaultKind::Status(502))
        ));
        assert!(f.take_failure("GET /a", "/a").is_none());
        assert_eq!(f.take_latency("GET /a", "/a"), Duration::ZERO);
    }

    #[test]
    fn path_faults_fire_only_on_their_path() {
        let mut f = Faults::default();
        f.inject(Fault::on("POST /c/{id}", FaultKind::FailAfterApply(502), 1).at_path("/c/2"));
        assert!(f.take_after_apply("POST /c/{id}", "/c/1").is_none());
        assert!(
            f.take_failure("POST /c/{id}", "/c/2").is_none(),
            "not a before-apply fault"
        );
        assert!(matches!(
            f.take_after_apply("POST /c/{id}", "/c/2"),
            Some(FaultKind::FailAfterApply(502))
        ));
    }
}
