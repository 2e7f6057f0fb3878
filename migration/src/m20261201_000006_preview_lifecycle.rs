//! What the one owner of the preview lifecycle (`previews::lifecycle`) needs from the schema:
//!
//! - `previews.current_attempt_id`: the attempt whose outcome the preview shows; a deploy job
//!   whose attempt is not it stops ("newest attempt wins"), and its late writes change nothing.
//! - `previews.generation`: bumped by every removal request and every revival, so a cleanup job
//!   acts only on the removal it was enqueued for (a reopen while cleanup runs wins).
//! - `pull_requests.number` as a 64-bit integer: GitHub's numbers are not bounded by 32 bits.
//!   SQLite's `integer` already holds 64 bits; only PostgreSQL's column changes type.
//! - `install_settings`: facts of this install that every process shares, such as the install
//!   id that labels everything previewd creates in the cluster.

use sea_orm_migration::{prelude::*, schema::*, sea_orm::DatabaseBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Previews::Table)
                    .add_column_if_not_exists(big_integer_null(Previews::CurrentAttemptId))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Previews::Table)
                    .add_column_if_not_exists(big_integer(Previews::Generation).default(0))
                    .to_owned(),
            )
            .await?;
        if manager.get_database_backend() == DatabaseBackend::Postgres {
            manager
                .alter_table(
                    Table::alter()
                        .table(PullRequests::Table)
                        .modify_column(
                            ColumnDef::new(PullRequests::Number)
                                .big_integer()
                                .not_null(),
                        )
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_table(
                Table::create()
                    .table(InstallSettings::Table)
                    .if_not_exists()
                    .col(string_len(InstallSettings::Key, 64).primary_key())
                    .col(text(InstallSettings::Value))
                    .col(timestamp_with_time_zone(InstallSettings::CreatedAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(InstallSettings::Table).to_owned())
            .await?;
        for column in [Previews::Generation, Previews::CurrentAttemptId] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Previews::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Previews {
    Table,
    CurrentAttemptId,
    Generation,
}

#[derive(DeriveIden)]
enum PullRequests {
    Table,
    Number,
}

#[derive(DeriveIden)]
enum InstallSettings {
    Table,
    Key,
    Value,
    CreatedAt,
}
