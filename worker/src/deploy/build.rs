//! The image of an attempt: ready-made (`image:` in the repository's config, `{sha}` filled
//! in), or built in the cluster from the head commit.
//!
//! A build runs in a namespace of its own for this attempt (`Cluster::run_build`), with a token
//! that can read this one repository and nothing else, and a network policy that lets it reach
//! the git host and the registry only. Those two are `BUILD_EGRESS` when the install sets it;
//! otherwise their host names are resolved as the build starts (an address literal is used as
//! it is) — a trade-off: an address that changes during the build is not followed.

use std::net::IpAddr;

use previewd::{
    cluster::{BuildRequest, BuildSpec, EgressTarget, PreviewMeta, observe::Outcome},
    github::api::CheckStatus,
    previews::{
        repo_config::{ImageSource, RepoConfig},
        report::{self, Failure, FailureKind},
    },
};
use tokio::time::Instant;
use url::Url;

use super::{Stop, current, failure_of, while_current};
use crate::context::JobContext;

/// The image reference to deploy, built first when the repository builds from source.
pub(super) async fn image(
    ctx: &JobContext,
    attempt_id: i64,
    config: &RepoConfig,
    meta: &PreviewMeta,
    deadline: Instant,
) -> Result<String, Stop> {
    let ImageSource::Build {
        dockerfile,
        context,
    } = &config.source
    else {
        return Ok(config.source.ready_image(&meta.sha).unwrap_or_default());
    };
    let actx = current(ctx, attempt_id).await?;
    ctx.reporter
        .check_run(
            &actx,
            CheckStatus::InProgress,
            report::in_progress(&actx.attempt.sha, "Building the image"),
        )
        .await?;
    let Some(registry) = &ctx.config.registry else {
        return Err(Stop::User(Failure::new(
            FailureKind::Config,
            "This install has no image registry (PREVIEW_REGISTRY), so it cannot build images: \
             set `image:` in .github/preview.yml to an image your CI builds.",
        )));
    };
    let image = format!(
        "{registry}/{}:{}",
        actx.repository.full_name.to_ascii_lowercase(),
        actx.attempt.sha
    );
    // The build runs the PR's code: its token may read this repository's contents and
    // nothing else, and expires within the hour.
    let repo = previewd::github::RepoName::parse(&actx.repository.full_name).ok_or_else(|| {
        Stop::User(Failure::new(
            FailureKind::Config,
            "the repository's name is not one GitHub gives",
        ))
    })?;
    let token = ctx
        .github
        .clone_token(actx.repository.installation_id, &repo)
        .await?
        .token;
    let request = BuildRequest {
        meta,
        spec: BuildSpec {
            clone_url: ctx.clone_url(&actx.repository.full_name),
            sha: actx.attempt.sha.clone(),
            dockerfile: dockerfile.as_str().to_owned(),
            context: context.as_str().to_owned(),
            image: image.clone(),
            builder_image: ctx.config.builder_image.clone(),
            registry_insecure: ctx.config.registry_insecure,
        },
        token,
        budget: ctx.config.build_budget.clone(),
        egress: egress(ctx, registry).await?,
        dns_namespace: previewd::cluster::GuardRails::default().dns_namespace,
    };
    match Box::pin(while_current(
        ctx,
        attempt_id,
        ctx.cluster.run_build(request, deadline),
    ))
    .await??
    {
        Outcome::Ready => Ok(image),
        Outcome::Failed(d) | Outcome::TimedOut(d) => Err(Stop::User(failure_of(d))),
    }
}

/// Where the build may connect to: `BUILD_EGRESS`, or the git host and `registry` resolved now.
async fn egress(ctx: &JobContext, registry: &str) -> Result<Vec<EgressTarget>, Stop> {
    if let Some(configured) = &ctx.config.build_egress {
        return Ok(configured.clone());
    }
    let git = &ctx.git_web;
    let git_host = git.host_str().unwrap_or_default().to_owned();
    let git_port = git.port_or_known_default().unwrap_or(443);
    let (registry_host, registry_port) = registry_address(registry, ctx.config.registry_insecure);
    let mut targets = resolve(&git_host, git_port).await?;
    targets.extend(resolve(&registry_host, registry_port).await?);
    Ok(targets)
}

/// Host and port of the registry in `PREVIEW_REGISTRY` (`host[:port][/path]`): the explicit
/// port, else 80 for a plain-HTTP registry and 443 otherwise.
fn registry_address(registry: &str, insecure: bool) -> (String, u16) {
    let scheme = if insecure { "http" } else { "https" };
    match Url::parse(&format!("{scheme}://{registry}")) {
        Ok(url) => (
            url.host_str()
                .unwrap_or_default()
                .trim_matches(['[', ']'])
                .to_owned(),
            url.port_or_known_default().unwrap_or(443),
        ),
        Err(_) => (registry.to_owned(), if insecure { 80 } else { 443 }),
    }
}

/// `host` as `/32` (or `/128`) ranges on `port`: as it is when it is an address, else resolved.
async fn resolve(host: &str, port: u16) -> Result<Vec<EgressTarget>, Stop> {
    let cidr = |ip: IpAddr| EgressTarget::Cidr {
        cidr: match ip {
            IpAddr::V4(v4) => format!("{v4}/32"),
            IpAddr::V6(v6) => format!("{v6}/128"),
        },
        port,
    };
    if let Ok(ip) = host.trim_matches(['[', ']']).parse::<IpAddr>() {
        return Ok(vec![cidr(ip)]);
    }
    let found = tokio::net::lookup_host((host, port)).await.map_err(|e| {
        Stop::Infra(format!(
            "cannot resolve {host} for the build's network policy ({e}); set BUILD_EGRESS"
        ))
    })?;
    let mut targets: Vec<EgressTarget> = found.map(|a| cidr(a.ip())).collect();
    targets.dedup();
    Ok(targets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_addresses() {
        assert_eq!(
            registry_address("registry.example.com/previews", false),
            ("registry.example.com".to_owned(), 443)
        );
        assert_eq!(
            registry_address("10.0.0.5:5000/previews", true),
            ("10.0.0.5".to_owned(), 5000)
        );
        assert_eq!(
            registry_address("registry.local", true),
            ("registry.local".to_owned(), 80)
        );
    }

    #[tokio::test]
    async fn addresses_are_used_as_they_are() {
        let targets = resolve("10.0.0.5", 5000).await.ok().unwrap_or_default();
        assert_eq!(
            targets,
            [EgressTarget::Cidr {
                cidr: "10.0.0.5/32".into(),
                port: 5000
            }]
        );
    }
}
