//! Every webhook delivery received, by GitHub's delivery GUID (unique): a redelivered GUID is
//! recognised and answered without new work.

use sea_orm::entity::prelude::*;

/// What the app decided about a delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
pub enum DeliveryOutcome {
    /// Acted upon: state recorded and jobs enqueued.
    #[sea_orm(string_value = "accepted")]
    Accepted,
    /// An event or action previewd does not act on.
    #[sea_orm(string_value = "ignored")]
    Ignored,
    /// Could not be processed; GitHub shows it failed and it can be redelivered.
    #[sea_orm(string_value = "failed")]
    Failed,
    /// Understood, but refused for a reason a redelivery cannot fix (answered 2xx, the reason
    /// recorded in `detail`).
    #[sea_orm(string_value = "rejected")]
    Rejected,
}

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_deliveries")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// `X-GitHub-Delivery`.
    #[sea_orm(unique)]
    pub guid: String,
    /// `X-GitHub-Event`.
    pub event: String,
    pub action: Option<String>,
    pub installation_id: Option<i64>,
    pub repository_full_name: Option<String>,
    pub outcome: DeliveryOutcome,
    /// Short reason for the outcome, for operators.
    pub detail: Option<String>,
    pub received_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
