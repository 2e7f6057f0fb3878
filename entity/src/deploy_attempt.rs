//! One attempt to deploy one commit of a preview. Unique per (preview, sha, attempt): each
//! event or person asking for a deploy (open, push, Re-run, Redeploy, approval, the reconciler)
//! makes a new attempt number, with its own check run. Infrastructure retries happen inside an
//! attempt and do not make a new one.

use sea_orm::entity::prelude::*;

/// Outcome of a deploy attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
pub enum AttemptStatus {
    #[sea_orm(string_value = "queued")]
    Queued,
    #[sea_orm(string_value = "running")]
    Running,
    #[sea_orm(string_value = "succeeded")]
    Succeeded,
    #[sea_orm(string_value = "failed")]
    Failed,
    /// A newer commit became the head before this attempt finished.
    #[sea_orm(string_value = "superseded")]
    Superseded,
    /// Stopped by cleanup (pull request closed, Destroy, expiry).
    #[sea_orm(string_value = "cancelled")]
    Cancelled,
    #[sea_orm(string_value = "timed_out")]
    TimedOut,
}

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "deploy_attempts")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub preview_id: i64,
    pub sha: String,
    /// 1 for the first attempt at this sha, then 2, 3, ...
    pub attempt: i32,
    pub status: AttemptStatus,
    /// What asked for it: `opened`, `synchronize`, `rerun`, `redeploy`, `reconcile`, ...
    pub trigger: String,
    pub check_run_id: Option<i64>,
    pub github_deployment_id: Option<i64>,
    /// Image reference that was deployed or built.
    pub image: Option<String>,
    /// Classified failure reason (e.g. `image_pull`, `crash_loop`, `config`).
    pub error_kind: Option<String>,
    /// Sanitized, length-capped failure message.
    pub error: Option<String>,
    /// Sanitized tail of build or container logs.
    pub log_tail: Option<String>,
    pub created_at: DateTimeUtc,
    pub started_at: Option<DateTimeUtc>,
    pub finished_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::preview::Entity",
        from = "Column::PreviewId",
        to = "super::preview::Column::Id"
    )]
    Preview,
}

impl Related<super::preview::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Preview.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
