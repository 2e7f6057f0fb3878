//! Webhook deliveries, unique by GitHub's delivery GUID.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(WebhookDeliveries::Table)
                    .if_not_exists()
                    .col(big_pk_auto(WebhookDeliveries::Id))
                    .col(string_len_uniq(WebhookDeliveries::Guid, 64))
                    .col(string_len(WebhookDeliveries::Event, 64))
                    .col(string_len_null(WebhookDeliveries::Action, 64))
                    .col(big_integer_null(WebhookDeliveries::InstallationId))
                    .col(string_null(WebhookDeliveries::RepositoryFullName))
                    .col(string_len(WebhookDeliveries::Outcome, 16))
                    .col(text_null(WebhookDeliveries::Detail))
                    .col(timestamp_with_time_zone(WebhookDeliveries::ReceivedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("idx_webhook_deliveries_received_at")
                    .table(WebhookDeliveries::Table)
                    .col(WebhookDeliveries::ReceivedAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(
                Table::drop()
                    .table(WebhookDeliveries::Table)
                    .if_exists()
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum WebhookDeliveries {
    Table,
    Id,
    Guid,
    Event,
    Action,
    InstallationId,
    RepositoryFullName,
    Outcome,
    Detail,
    ReceivedAt,
}
