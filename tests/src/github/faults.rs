//! Fault injection: answers GitHub gives on a bad day, armed by a test and consumed by requests.
//!
//! A [`Fault`] applies to one route key (as in [`super::Calls::by_route`]) or to every route, and
//! fires `times` times. Faults fire in the order they were injected. Latency faults delay the
//! answer; status and secondary-rate-limit faults replace it; `UnauthorizedOnFirstUse` makes the
//! first request made with a freshly minted installation token fail with 401 "Bad credentials".
//! Dropped webhook deliveries are counted here too.

use std::time::Duration;

/// A fault to inject with [`super::GitHubSim::inject`].
#[derive(Clone, Debug)]
pub struct Fault {
    /// A route key such as `"POST /repos/{owner}/{repo}/check-runs"` (see [`super::routes::keys`]);
    /// `None` matches every request.
    pub route: Option<String>,
    pub kind: FaultKind,
    /// How many matching requests it affects.
    pub times: u32,
}

impl Fault {
    /// A fault on every route.
    pub fn any(kind: FaultKind, times: u32) -> Self {
        Self {
            route: None,
            kind,
            times,
        }
    }

    /// A fault on one route key.
    pub fn on(route: &str, kind: FaultKind, times: u32) -> Self {
        Self {
            route: Some(route.to_owned()),
            kind,
            times,
        }
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
}

/// The armed faults and the webhook-drop counter.
#[derive(Default)]
pub(crate) struct Faults {
    armed: Vec<Fault>,
    pub drop_deliveries: u32,
}

impl Faults {
    pub fn inject(&mut self, fault: Fault) {
        if fault.times > 0 {
            self.armed.push(fault);
        }
    }

    /// Consumes one firing of the first armed fault on `route` that `wanted` accepts.
    fn take(&mut self, route: &str, wanted: impl Fn(&FaultKind) -> bool) -> Option<FaultKind> {
        let i = self
            .armed
            .iter()
            .position(|f| f.route.as_deref().is_none_or(|r| r == route) && wanted(&f.kind))?;
        let fault = &mut self.armed[i];
        fault.times -= 1;
        let kind = fault.kind.clone();
        if fault.times == 0 {
            self.armed.remove(i);
        }
        Some(kind)
    }

    /// Extra delay for this request.
    pub fn take_latency(&mut self, route: &str) -> Duration {
        match self.take(route, |k| matches!(k, FaultKind::Latency(_))) {
            Some(FaultKind::Latency(d)) => d,
            _ => Duration::ZERO,
        }
    }

    /// A failure that replaces this request's answer.
    pub fn take_failure(&mut self, route: &str) -> Option<FaultKind> {
        self.take(route, |k| {
            matches!(
                k,
                FaultKind::Status(_) | FaultKind::SecondaryRateLimit { .. }
            )
        })
    }

    /// Whether this first use of a fresh token must be refused.
    pub fn take_unauthorized_first_use(&mut self, route: &str) -> bool {
        self.take(route, |k| matches!(k, FaultKind::UnauthorizedOnFirstUse))
            .is_some()
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
            f.take_failure("GET /b"),
            Some(FaultKind::Status(500))
        ));
        assert!(f.take_failure("GET /b").is_none());
        assert!(matches!(
            f.take_failure("GET /a"),
            Some(FaultKind::Status(502))
        ));
        assert!(matches!(
            f.take_failure("GET /a"),
            Some(FaultKind::Status(502))
        ));
        assert!(f.take_failure("GET /a").is_none());
        assert_eq!(f.take_latency("GET /a"), Duration::ZERO);
    }
}
