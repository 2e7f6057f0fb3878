//! The preview's workload: the repository's Helm chart, rendered by the real `helm template`
//! from the same ref as its config (the base branch for untrusted authors), or the built-in web
//! service. Either way the objects go to `Cluster::apply_workload`, which labels them, applies
//! them and prunes what the previous deploy had and this one does not.
//!
//! A chart is the repository's code: its files come through GitHub's contents API (at most
//! [`MAX_CHART_FILES`]), symbolic links and cluster-scoped kinds are refused when it renders,
//! and its Ingresses may serve the preview's own host only.

use std::path::PathBuf;

use previewd::{
    cluster::{self, PreviewMeta, WebService},
    github::RepoName,
    previews::{
        records::AttemptContext,
        repo_config::RepoConfig,
        report::{Failure, FailureKind},
    },
};

use super::Stop;
use crate::context::JobContext;

/// Most files a repository's chart may have.
pub const MAX_CHART_FILES: usize = 200;

/// Applies the workload of `config` running `image` (see the module documentation).
pub(super) async fn apply(
    ctx: &JobContext,
    actx: &AttemptContext,
    repo: &RepoName,
    config: &RepoConfig,
    meta: &PreviewMeta,
    image: &str,
    trusted_author: bool,
) -> Result<(), Stop> {
    let host = format!("{}.{}", meta.namespace, ctx.config.preview_domain);
    let objects = match &config.chart {
        Some(chart) => {
            render(
                ctx,
                actx,
                repo,
                config,
                chart.as_str(),
                meta,
                image,
                &host,
                trusted_author,
            )
            .await?
        }
        None => {
            let web = WebService {
                image: image.to_owned(),
                port: config.port,
                health_path: config.health.clone(),
                env: config.env.clone(),
                cpu: config.cpu.text.clone(),
                memory: config.memory.text.clone(),
                host,
                ingress_class: ctx.config.ingress_class.clone(),
                tls_secret: ctx.config.tls_secret.clone(),
            };
            vec![
                cluster::to_apply_json(&cluster::deployment(meta, &web)),
                cluster::to_apply_json(&cluster::service(meta, &web)),
                cluster::to_apply_json(&cluster::ingress(meta, &web)),
            ]
        }
    };
    ctx.cluster.apply_workload(meta, objects).await?;
    Ok(())
}

#[expect(
    clippy::too_many_arguments,
    reason = "one call site; the values are all distinct facts of the deploy"
)]
async fn render(
    ctx: &JobContext,
    actx: &AttemptContext,
    repo: &RepoName,
    config: &RepoConfig,
    chart: &str,
    meta: &PreviewMeta,
    image: &str,
    host: &str,
    trusted_author: bool,
) -> Result<Vec<serde_json::Value>, Stop> {
    let git_ref = if trusted_author {
        actx.attempt.sha.as_str()
    } else {
        actx.pull_request.base_ref.as_str()
    };
    let dir = ChartDir::new(actx.attempt.id)?;
    fetch(ctx, actx, repo, chart, git_ref, &dir.0).await?;
    let url = format!("https://{host}");
    let (repository, tag) = image.rsplit_once(':').unwrap_or((image, "latest"));
    let values = serde_json::json!({
        "image": { "repository": repository, "tag": tag },
        "previewd": { "url": url, "host": host, "namespace": meta.namespace, "sha": actx.attempt.sha },
        "env": config.env,
    });
    let objects = cluster::render_chart(
        &ctx.config.helm_bin,
        &dir.0,
        "preview",
        &meta.namespace,
        &values,
    )
    .await
    .map_err(|e| {
        Stop::User(Failure::new(
            FailureKind::Config,
            format!("the chart {chart} does not render: {e}"),
        ))
    })?;
    cluster::vet_ingresses(&objects, host).map_err(|e| {
        Stop::User(Failure::new(
            FailureKind::Config,
            format!("the chart {chart}: {e}"),
        ))
    })?;
    Ok(objects)
}

/// Copies the chart directory `chart` at `git_ref` into `dir`, file by file.
async fn fetch(
    ctx: &JobContext,
    actx: &AttemptContext,
    repo: &RepoName,
    chart: &str,
    git_ref: &str,
    dir: &std::path::Path,
) -> Result<(), Stop> {
    let installation = actx.repository.installation_id;
    let mut pending = vec![chart.to_owned()];
    let mut files = 0;
    while let Some(path) = pending.pop() {
        let Some(entries) = ctx
            .github
            .directory(installation, repo, &path, git_ref)
            .await?
        else {
            return Err(Stop::User(Failure::new(
                FailureKind::Config,
                format!("chart directory {path} does not exist at {git_ref}"),
            )));
        };
        for (entry, is_dir) in entries {
            if is_dir {
                pending.push(entry);
                continue;
            }
            files += 1;
            if files > MAX_CHART_FILES {
                return Err(Stop::User(Failure::new(
                    FailureKind::Config,
                    format!("the chart has more than {MAX_CHART_FILES} files"),
                )));
            }
            let text = ctx
                .github
                .file(installation, repo, &entry, git_ref)
                .await?
                .unwrap_or_default();
            let relative = entry
                .strip_prefix(chart)
                .unwrap_or(&entry)
                .trim_start_matches('/');
            let target = dir.join(relative);
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| Stop::Infra(format!("chart files: {e}")))?;
            }
            std::fs::write(&target, text).map_err(|e| Stop::Infra(format!("chart files: {e}")))?;
        }
    }
    Ok(())
}

/// A temporary directory for a chart's files, removed when dropped.
struct ChartDir(PathBuf);

impl ChartDir {
    fn new(attempt_id: i64) -> Result<Self, Stop> {
        let dir = std::env::temp_dir().join("previewd").join(format!(
            "chart-{attempt_id}-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir)
            .map_err(|e| Stop::Infra(format!("temporary directory: {e}")))?;
        Ok(Self(dir))
    }
}

impl Drop for ChartDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
