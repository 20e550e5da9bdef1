//! What differs between SQLite, PostgreSQL and MySQL/MariaDB, and nothing else.
//!
//! The store's statements are written once, with `?` placeholders, and pass through
//! [`Dialect::sql`] on their way to the database. The few places where the dialects really
//! differ are methods here: how a write transaction starts, how rows are locked, how a
//! duplicate insert is ignored, and how the migration bookkeeping is read. Each answer is one
//! short string; the rules around them (single use, retirement, leases, purges) stay in
//! [`super::store`].

use std::borrow::Cow;

/// One SQL dialect the store speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// SQLite 3.35+ (bundled by sqlx).
    Sqlite,
    /// PostgreSQL 13+.
    Postgres,
    /// MySQL 8.0+ or MariaDB 10.6+ (both have `SKIP LOCKED`).
    MySql,
}

impl Dialect {
    /// The backend's name, as `migrate --status` and the logs show it.
    pub fn name(self) -> &'static str {
        match self {
            Dialect::Sqlite => "sqlite",
            Dialect::Postgres => "postgres",
            Dialect::MySql => "mysql",
        }
    }

    /// The dialect a database URL's scheme names, if any.
    pub fn from_scheme(scheme: &str) -> Option<Self> {
        match scheme {
            "sqlite" => Some(Dialect::Sqlite),
            "postgres" | "postgresql" => Some(Dialect::Postgres),
            "mysql" | "mariadb" => Some(Dialect::MySql),
            _ => None,
        }
    }

    /// A statement written with `?` placeholders, as this dialect wants it: PostgreSQL numbers
    /// them (`$1`, `$2`, ...); SQLite and MySQL take `?` as written. Placeholders are bound in
    /// order and never reused, which is all MySQL allows.
    pub(crate) fn sql(self, text: &str) -> Cow<'_, str> {
        if self != Dialect::Postgres {
            return Cow::Borrowed(text);
        }
        let mut numbered = String::with_capacity(text.len() + 16);
        let mut next = 1;
        let mut in_literal = false;
        for character in text.chars() {
            match character {
                '\'' => {
                    in_literal = !in_literal;
                    numbered.push(character);
                }
                '?' if !in_literal => {
                    numbered.push('$');
                    numbered.push_str(&next.to_string());
                    next += 1;
                }
                _ => numbered.push(character),
            }
        }
        Cow::Owned(numbered)
    }

    /// The statement that starts a transaction that will write. SQLite's default `BEGIN` takes
    /// its write lock only at the first write, and a transaction that read first may then be
    /// refused it (`SQLITE_BUSY`, which no busy timeout waits out); `BEGIN IMMEDIATE` takes the
    /// lock up front, so writers queue instead. The servers lock rows, not the database.
    pub(crate) fn begin_write(self) -> &'static str {
        match self {
            Dialect::Sqlite => "BEGIN IMMEDIATE",
            Dialect::Postgres | Dialect::MySql => "BEGIN",
        }
    }

    /// Whether an `UPDATE` can hand back the rows it changed (`UPDATE ... RETURNING`):
    /// SQLite and PostgreSQL can; MySQL and MariaDB cannot, and read them back instead.
    pub(crate) fn update_returning(self) -> bool {
        match self {
            Dialect::Sqlite | Dialect::Postgres => true,
            Dialect::MySql => false,
        }
    }

    /// The suffix of a `SELECT` that locks the rows it reads until the transaction ends. SQLite
    /// needs none: [`Dialect::begin_write`] already holds the whole database.
    pub(crate) fn for_update(self) -> &'static str {
        match self {
            Dialect::Sqlite => "",
            Dialect::Postgres | Dialect::MySql => " FOR UPDATE",
        }
    }

    /// Like [`Dialect::for_update`], passing over rows another transaction has locked: two
    /// outbox workers claim disjoint rows instead of queueing behind each other.
    pub(crate) fn for_update_skip_locked(self) -> &'static str {
        match self {
            Dialect::Sqlite => "",
            Dialect::Postgres | Dialect::MySql => " FOR UPDATE SKIP LOCKED",
        }
    }

    /// The suffix of an `INSERT` that makes it do nothing when a row with the same value of
    /// the unique `key_column` exists. SQLite and PostgreSQL name the key, so a conflict on any
    /// other unique index still fails loudly. MySQL cannot name it (`ON DUPLICATE KEY` covers
    /// every unique index) and its `INSERT IGNORE` would also swallow other errors, so it gets
    /// an update of the key to itself, which changes nothing.
    pub(crate) fn on_duplicate_do_nothing(self, key_column: &str) -> String {
        match self {
            Dialect::Sqlite | Dialect::Postgres => format!(" ON CONFLICT ({key_column}) DO NOTHING"),
            Dialect::MySql => format!(" ON DUPLICATE KEY UPDATE {key_column} = {key_column}"),
        }
    }

    /// Statements that take (answering 1) and release a lock held while migrations are read,
    /// run and read again, so that of instances starting at once exactly one applies, and
    /// reports, each migration. sqlx's own lock covers only the run, and on MySQL it is
    /// `GET_LOCK(name, -1)`, which MySQL reads as "wait forever" and MariaDB refuses (it answers
    /// NULL and locks nothing); a year-long timeout means the same on both. SQLite serves one
    /// machine.
    pub(crate) fn migration_lock(self) -> Option<(&'static str, &'static str)> {
        match self {
            Dialect::MySql => Some((
                "SELECT GET_LOCK('magiclink_migrations', 31536000)",
                "SELECT RELEASE_LOCK('magiclink_migrations')",
            )),
            // A key of our own (the advisory lock sqlx takes inside the run uses another).
            Dialect::Postgres => Some((
                "SELECT CAST(1 AS BIGINT) FROM (SELECT pg_advisory_lock(7318563214009315)) AS taken",
                "SELECT pg_advisory_unlock(7318563214009315)",
            )),
            Dialect::Sqlite => None,
        }
    }

    /// The statements that refresh the query planner's statistics after a bulk load.
    pub(crate) fn analyze(self) -> &'static [&'static str] {
        match self {
            Dialect::Sqlite => &["ANALYZE"],
            Dialect::Postgres => &["ANALYZE users", "ANALYZE sessions"],
            Dialect::MySql => &["ANALYZE TABLE users, sessions"],
        }
    }

    /// How this backend shows a statement's query plan: the prefix to put before it.
    pub fn explain(self) -> &'static str {
        match self {
            Dialect::Sqlite => "EXPLAIN QUERY PLAN ",
            Dialect::Postgres | Dialect::MySql => "EXPLAIN ",
        }
    }

    /// A query counting the tables named `?` in the current database (0 or 1).
    pub(crate) fn count_tables_named(self) -> &'static str {
        match self {
            Dialect::Sqlite => "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?",
            Dialect::Postgres => {
                "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = ?"
            }
            Dialect::MySql => {
                "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = ?"
            }
        }
    }

    /// The applied migrations: version, and when, in milliseconds since the epoch.
    /// (`installed_on` is a different type in each backend's bookkeeping table.)
    pub(crate) fn applied_migrations(self) -> &'static str {
        match self {
            Dialect::Sqlite => {
                "SELECT version, CAST(strftime('%s', installed_on) AS INTEGER) * 1000 FROM _sqlx_migrations WHERE success"
            }
            Dialect::Postgres => {
                "SELECT version, CAST(EXTRACT(EPOCH FROM installed_on) * 1000 AS BIGINT) FROM _sqlx_migrations WHERE success"
            }
            Dialect::MySql => {
                "SELECT version, CAST(UNIX_TIMESTAMP(installed_on) * 1000 AS SIGNED) FROM _sqlx_migrations WHERE success"
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Dialect;

    #[test]
    fn postgres_placeholders_are_numbered_outside_literals_only() {
        let text = "UPDATE t SET a = ? WHERE b = '?' AND c = ? LIMIT ?";
        assert_eq!(Dialect::Postgres.sql(text), "UPDATE t SET a = $1 WHERE b = '?' AND c = $2 LIMIT $3");
        assert_eq!(Dialect::Sqlite.sql(text), text);
        assert_eq!(Dialect::MySql.sql(text), text);
    }

    #[test]
    fn every_scheme_the_docs_name_picks_its_dialect() {
        for (scheme, dialect) in [
            ("sqlite", Dialect::Sqlite),
            ("postgres", Dialect::Postgres),
            ("postgresql", Dialect::Postgres),
            ("mysql", Dialect::MySql),
            ("mariadb", Dialect::MySql),
        ] {
            assert_eq!(Dialect::from_scheme(scheme), Some(dialect));
        }
        assert_eq!(Dialect::from_scheme("oracle"), None);
    }
}
