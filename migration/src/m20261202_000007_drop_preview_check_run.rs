//! A preview's check run is its current attempt's (`deploy_attempts.check_run_id`): the copy on
//! `previews` cost a second write each time a check run was created, and nothing read it.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Previews::Table)
                    .drop_column(Previews::CheckRunId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Previews::Table)
                    .add_column_if_not_exists(big_integer_null(Previews::CheckRunId))
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum Previews {
    Table,
    CheckRunId,
}
