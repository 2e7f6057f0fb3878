//! A repository the App can see through an installation. The primary key is GitHub's repository
//! id, which survives renames; `full_name` is kept current from webhooks.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "repositories")]
pub struct Model {
    /// GitHub's repository id.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: i64,
    pub installation_id: i64,
    /// `owner/name`.
    pub full_name: String,
    pub default_branch: String,
    pub private: bool,
    /// Set when the repository was removed from the installation.
    pub removed_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::installation::Entity",
        from = "Column::InstallationId",
        to = "super::installation::Column::Id"
    )]
    Installation,
    #[sea_orm(has_many = "super::pull_request::Entity")]
    PullRequest,
}

impl Related<super::installation::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Installation.def()
    }
}

impl Related<super::pull_request::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::PullRequest.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
