//! The three migration sets build one schema: the same tables, columns (and whether each may be
//! NULL), unique keys and indexes on SQLite, PostgreSQL and MariaDB. Types differ by dialect
//! on purpose (`TEXT` / `VARCHAR(254)`, `BLOB` / `BYTEA`), and so do partial-index predicates
//! (MySQL has none); names, columns and uniqueness must not.

use std::collections::BTreeSet;

use adapters::database::Dialect;
use sqlx::Row as _;
use system_tests::stores::scratch_store;

/// A schema as compared: `table.column nullable`, unique keys as column lists, and the other
/// indexes by name with their columns.
#[derive(Debug, PartialEq, Eq)]
struct Schema {
    columns: BTreeSet<String>,
    unique_keys: BTreeSet<String>,
    indexes: BTreeSet<String>,
}

/// Queries giving (table, column, nullable YES/NO) and (table, index, unique 1/0, columns).
fn catalog_queries(dialect: Dialect) -> (&'static str, &'static str) {
    match dialect {
        Dialect::Sqlite => (
            "SELECT m.name, p.name, CASE WHEN p.\"notnull\" = 1 THEN 'NO' ELSE 'YES' END \
             FROM sqlite_master m, pragma_table_info(m.name) p \
             WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' AND m.name <> '_sqlx_migrations'",
            "SELECT m.name, il.name, CAST(il.\"unique\" AS TEXT), \
                    (SELECT group_concat(name, ',') FROM (SELECT name FROM pragma_index_info(il.name) ORDER BY seqno)) \
             FROM sqlite_master m, pragma_index_list(m.name) il \
             WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' AND m.name <> '_sqlx_migrations'",
        ),
        Dialect::Postgres => (
            "SELECT table_name::text, column_name::text, is_nullable::text FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name <> '_sqlx_migrations'",
            "SELECT t.relname::text, i.relname::text, CASE WHEN ix.indisunique THEN '1' ELSE '0' END, \
                    (SELECT string_agg(a.attname::text, ',' ORDER BY k.ord) \
                     FROM unnest(ix.indkey) WITH ORDINALITY k(attnum, ord) \
                     JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum) \
             FROM pg_index ix JOIN pg_class i ON i.oid = ix.indexrelid JOIN pg_class t ON t.oid = ix.indrelid \
             JOIN pg_namespace n ON n.oid = t.relnamespace \
             WHERE n.nspname = current_schema() AND t.relname <> '_sqlx_migrations'",
        ),
        Dialect::MySql => (
            "SELECT table_name, column_name, is_nullable FROM information_schema.columns \
             WHERE table_schema = DATABASE() AND table_name <> '_sqlx_migrations'",
            "SELECT table_name, index_name, CASE WHEN non_unique = 0 THEN '1' ELSE '0' END, \
                    CAST(GROUP_CONCAT(column_name ORDER BY seq_in_index SEPARATOR ',') AS CHAR(1000)) \
             FROM information_schema.statistics \
             WHERE table_schema = DATABASE() AND table_name <> '_sqlx_migrations' \
             GROUP BY table_name, index_name, non_unique",
        ),
    }
}

/// The migrated schema of a fresh database of `dialect`, or `None` when its server is absent
/// (which fails in CI).
async fn migrated_schema(dialect: Dialect) -> Option<Schema> {
    let store = scratch_store(dialect, 2).await?;
    let (columns_query, indexes_query) = catalog_queries(dialect);
    let text = |row: &sqlx::any::AnyRow, i: usize| row.try_get::<String, _>(i).expect("a text column");
    let columns = sqlx::query(columns_query)
        .fetch_all(&store.raw)
        .await
        .expect("columns")
        .iter()
        .map(|row| format!("{}.{} nullable={}", text(row, 0), text(row, 1), text(row, 2)))
        .collect();
    let mut unique_keys = BTreeSet::new();
    let mut indexes = BTreeSet::new();
    for row in sqlx::query(indexes_query).fetch_all(&store.raw).await.expect("indexes") {
        let (table, name, unique, columns) = (text(&row, 0), text(&row, 1), text(&row, 2), text(&row, 3));
        // Unique keys are named by each backend its own way (`users_email_key`,
        // `sqlite_autoindex_users_1`, `email`): they are compared by their columns.
        if unique == "1" {
            unique_keys.insert(format!("{table}({columns})"));
        } else {
            indexes.insert(format!("{table}.{name}({columns})"));
        }
    }
    store.close().await;
    Some(Schema { columns, unique_keys, indexes })
}

#[tokio::test]
async fn sqlite_postgres_and_mysql_migrations_build_the_same_schema() {
    let Some(sqlite) = migrated_schema(Dialect::Sqlite).await else { return };
    assert!(sqlite.columns.contains("users.email nullable=NO"), "the catalog query reads columns: {sqlite:?}");
    assert!(sqlite.unique_keys.contains("users(email)"), "and unique keys: {sqlite:?}");
    assert!(sqlite.indexes.contains("outbox.outbox_pending_due(status,next_attempt_at)"), "and indexes: {sqlite:?}");
    for dialect in [Dialect::Postgres, Dialect::MySql] {
        let Some(other) = migrated_schema(dialect).await else { continue };
        assert_eq!(sqlite.columns, other.columns, "columns differ on {dialect:?}");
        assert_eq!(sqlite.unique_keys, other.unique_keys, "unique keys differ on {dialect:?}");
        assert_eq!(sqlite.indexes, other.indexes, "indexes differ on {dialect:?}");
    }
}
