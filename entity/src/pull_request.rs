//! A pull request as last reported by GitHub. Unique per (repository, number).

use sea_orm::entity::prelude::*;

/// Whether the pull request is open, closed unmerged, or merged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
pub enum PullRequestState {
    #[sea_orm(string_value = "open")]
    Open,
    #[sea_orm(string_value = "closed")]
    Closed,
    #[sea_orm(string_value = "merged")]
    Merged,
}

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "pull_requests")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub repository_id: i64,
    /// GitHub's pull request number (not bounded by 32 bits).
    pub number: i64,
    pub title: String,
    /// Login of the pull request's author.
    pub author_login: String,
    pub head_ref: String,
    pub head_sha: String,
    pub base_ref: String,
    /// True when the head branch lives in another repository (a fork).
    pub from_fork: bool,
    pub draft: bool,
    pub state: PullRequestState,
    /// Label names, as a JSON array of strings.
    pub labels: Json,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::repository::Entity",
        from = "Column::RepositoryId",
        to = "super::repository::Column::Id"
    )]
    Repository,
    #[sea_orm(has_one = "super::preview::Entity")]
    Preview,
}

impl Related<super::repository::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Repository.def()
    }
}

impl Related<super::preview::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Preview.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
