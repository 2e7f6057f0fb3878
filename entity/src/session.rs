//! A dashboard session. The id is a hash of the cookie's random value, so a database read does
//! not hand out usable cookies.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "sessions")]
pub struct Model {
    /// SHA-256 (hex) of the session cookie value.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// Signed-in user; `None` during the OAuth round trip.
    pub user_id: Option<i64>,
    /// Session data (OAuth state, CSRF token, flash messages) as JSON.
    pub data: Json,
    pub expires_at: DateTimeUtc,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::user::Entity",
        from = "Column::UserId",
        to = "super::user::Column::Id"
    )]
    User,
}

impl Related<super::user::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::User.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
