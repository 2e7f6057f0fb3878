//! A preview environment: one per pull request, kept after deletion as history. Its status
//! follows the lifecycle of DESIGN.md §4; the ids of the GitHub objects that show it (check run,
//! deployment, sticky comment) are remembered here so that no listing call is needed to find them.

use sea_orm::entity::prelude::*;

/// Where a preview is in its life (DESIGN.md §4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(24))")]
pub enum PreviewStatus {
    /// Untrusted head commit waiting for approval by someone with write permission.
    #[sea_orm(string_value = "awaiting_approval")]
    AwaitingApproval,
    /// A deploy of the head commit is queued.
    #[sea_orm(string_value = "pending")]
    Pending,
    #[sea_orm(string_value = "building")]
    Building,
    #[sea_orm(string_value = "deploying")]
    Deploying,
    #[sea_orm(string_value = "running")]
    Running,
    #[sea_orm(string_value = "failed")]
    Failed,
    #[sea_orm(string_value = "deleting")]
    Deleting,
    #[sea_orm(string_value = "deleted")]
    Deleted,
}

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "previews")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    #[sea_orm(unique)]
    pub pull_request_id: i64,
    pub status: PreviewStatus,
    /// Kubernetes namespace (DNS-1123 label), unique across previews.
    #[sea_orm(unique)]
    pub namespace: String,
    /// Public URL once the preview has run at least once.
    pub url: Option<String>,
    /// The commit the preview should show; a deploy of any other sha is superseded.
    pub head_sha: String,
    /// Head commit approved for an untrusted pull request; approval is per commit.
    pub approved_sha: Option<String>,
    /// GitHub deployment for the head commit.
    pub github_deployment_id: Option<i64>,
    /// The one sticky comment on the pull request.
    pub comment_id: Option<i64>,
    /// Idle expiry, pushed back by every deploy; the `preview:keep` label holds it.
    pub expires_at: Option<DateTimeUtc>,
    /// When the pull request was warned of the coming expiry (once per idle period).
    pub expiry_warned_at: Option<DateTimeUtc>,
    /// Sanitized, length-capped reason of the last failure.
    pub last_error: Option<String>,
    /// Set when cleanup ran out of attempts: operators are alerted and must look.
    pub cleanup_failed: bool,
    /// The attempt whose outcome the preview shows: the newest one asked for. A deploy job of any
    /// other attempt stops at its next step.
    pub current_attempt_id: Option<i64>,
    /// Bumped by every removal request and every revival: a cleanup job acts only on the removal
    /// it was enqueued for.
    pub generation: i64,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub deleted_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::pull_request::Entity",
        from = "Column::PullRequestId",
        to = "super::pull_request::Column::Id"
    )]
    PullRequest,
    #[sea_orm(has_many = "super::deploy_attempt::Entity")]
    DeployAttempt,
}

impl Related<super::pull_request::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::PullRequest.def()
    }
}

impl Related<super::deploy_attempt::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::DeployAttempt.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
