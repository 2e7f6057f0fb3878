//! A GitHub App installation on an account (organisation or user). The primary key is GitHub's
//! installation id, so webhooks map onto rows without a lookup table.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "installations")]
pub struct Model {
    /// GitHub's installation id.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: i64,
    /// Login of the account the App is installed on.
    pub account_login: String,
    /// `Organization` or `User`, as GitHub names it.
    pub account_type: String,
    /// Set while GitHub reports the installation suspended; no work is done for it then.
    pub suspended_at: Option<DateTimeUtc>,
    /// Set when the App was uninstalled; the row stays as history.
    pub deleted_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(has_many = "super::repository::Entity")]
    Repository,
}

impl Related<super::repository::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Repository.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
