//! Where every write goes: the [`Writer`] and the transaction it hands out, [`WriteTx`].
//!
//! On PostgreSQL and MySQL/MariaDB a write transaction is an ordinary pooled transaction: the
//! servers lock rows, so writers run side by side, and a lone statement runs on the pool
//! without a transaction around it (one round trip, not three).
//!
//! On SQLite one connection writes at a time, and each transaction ends in a `COMMIT` that
//! writes every page it changed into the WAL. Writes here commit as a group instead: the one
//! writer keeps a transaction open while writes are queued behind it, each write runs inside a
//! savepoint of its own (so one that fails, or is abandoned, rolls back only itself), and when
//! nobody is queued (or [`MAX_TURNS_PER_COMMIT`] writes have run) a single `COMMIT` makes the
//! whole group durable. Each caller's `commit` returns only then, with the group's outcome:
//! nobody is told "done" before it is. The hot pages (the right edge of the sessions, links,
//! outbox and audit indexes, which every write appends to) are written to the WAL once per
//! group instead of once per write, and the savepoint that ends one write and the one that
//! starts the next are a single round trip to SQLite's thread. The guarantees stay those of
//! one transaction per write: writes run one after another in the order they queued, each
//! sees everything the earlier ones did, and each is all-or-nothing.
//!
//! The connection is handed from write to write through a fair (first come, first served)
//! lock. Whoever releases it with the group still open must know that someone will take it
//! next, or commit: the number waiting is counted, and a waiter that gives up (its request
//! cancelled, or the acquire timeout past) starts a task that commits what is open.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sqlx::any::AnyRow;
use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection, AnyPool, Transaction};

/// A statement with its values bound.
pub(crate) type AnyQuery<'q> = sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>>;
use tokio::sync::{oneshot, Mutex, OwnedMutexGuard};

/// The most writes one SQLite commit holds: past it the group commits even with writes
/// queued, so that the first of a long queue waits for a bounded number of others.
pub const MAX_TURNS_PER_COMMIT: usize = 32;

/// What the store writes through (see the module documentation).
#[derive(Debug, Clone)]
pub(crate) enum Writer {
    /// PostgreSQL and MySQL/MariaDB: transactions from the shared pool.
    Pooled {
        /// The pool (the readers' own).
        pool: AnyPool,
        /// The statement that starts a write transaction.
        begin: &'static str,
    },
    /// SQLite: group commit on its one writing connection.
    Grouped(Arc<GroupCommit>),
}

/// A write transaction: deref it to run statements, then [`WriteTx::commit`] or
/// [`WriteTx::rollback`]; dropped without either, it rolls back.
pub(crate) enum WriteTx {
    /// A server's transaction.
    Pooled(Transaction<'static, Any>),
    /// A turn on SQLite's one writer, inside the open group.
    Turn(Turn),
}

impl Writer {
    /// Group commit over `pool`, SQLite's pool of one writing connection; a write waits at
    /// most `acquire_timeout` for its turn.
    pub(crate) fn grouped(pool: AnyPool, acquire_timeout: Duration) -> Self {
        Self::Grouped(Arc::new(GroupCommit {
            pool,
            slot: Arc::new(Mutex::new(WriterState::default())),
            waiting: AtomicUsize::new(0),
            acquire_timeout,
            turns: AtomicU64::new(0),
            commits: AtomicU64::new(0),
        }))
    }

    /// The pool underneath, for the metrics and for closing.
    pub(crate) fn pool(&self) -> &AnyPool {
        match self {
            Self::Pooled { pool, .. } => pool,
            Self::Grouped(group) => &group.pool,
        }
    }

    /// Starts a write transaction.
    ///
    /// # Errors
    /// The driver's error; [`sqlx::Error::PoolTimedOut`] when SQLite's writer stayed busy
    /// past the acquire timeout.
    pub(crate) async fn begin(&self) -> Result<WriteTx, sqlx::Error> {
        match self {
            Self::Pooled { pool, begin } => Ok(WriteTx::Pooled(pool.begin_with(*begin).await?)),
            Self::Grouped(group) => Ok(WriteTx::Turn(Arc::clone(group).turn().await?)),
        }
    }

    /// Runs one statement that writes: on the servers straight on the pool, on SQLite as a
    /// write of its own in the group.
    ///
    /// # Errors
    /// The driver's error, the statement's or the commit's.
    pub(crate) async fn execute(&self, query: AnyQuery<'_>) -> Result<sqlx::any::AnyQueryResult, sqlx::Error> {
        match self {
            Self::Pooled { pool, .. } => query.execute(pool).await,
            Self::Grouped(_) => {
                let mut tx = self.begin().await?;
                let done = query.execute(&mut *tx).await?;
                tx.commit().await?;
                Ok(done)
            }
        }
    }

    /// Like [`Writer::execute`], for a statement that returns at most one row (a read that
    /// must see every write before it, not only what a reader's snapshot holds).
    ///
    /// # Errors
    /// The driver's error, the statement's or the commit's.
    pub(crate) async fn fetch_optional(&self, query: AnyQuery<'_>) -> Result<Option<AnyRow>, sqlx::Error> {
        match self {
            Self::Pooled { pool, .. } => query.fetch_optional(pool).await,
            Self::Grouped(_) => {
                let mut tx = self.begin().await?;
                let row = query.fetch_optional(&mut *tx).await?;
                tx.commit().await?;
                Ok(row)
            }
        }
    }

    /// Like [`Writer::fetch_optional`], for every row.
    ///
    /// # Errors
    /// The driver's error, the statement's or the commit's.
    pub(crate) async fn fetch_all(&self, query: AnyQuery<'_>) -> Result<Vec<AnyRow>, sqlx::Error> {
        match self {
            Self::Pooled { pool, .. } => query.fetch_all(pool).await,
            Self::Grouped(_) => {
                let mut tx = self.begin().await?;
                let rows = query.fetch_all(&mut *tx).await?;
                tx.commit().await?;
                Ok(rows)
            }
        }
    }

    /// Waits for the writes under way, commits what is open and closes the pool.
    pub(crate) async fn close(&self) {
        if let Self::Grouped(group) = self {
            let mut slot = Arc::clone(&group.slot).lock_owned().await;
            commit_group(&mut slot, group).await;
            slot.connection = None;
        }
        self.pool().close().await;
    }

    /// SQLite's writes and the commits that made them durable so far (`None` on the servers).
    pub(crate) fn group_commits(&self) -> Option<GroupCommitCounts> {
        match self {
            Self::Pooled { .. } => None,
            Self::Grouped(group) => Some(GroupCommitCounts {
                writes: group.turns.load(Ordering::Relaxed),
                commits: group.commits.load(Ordering::Relaxed),
            }),
        }
    }
}

/// How many writes SQLite's writer ran and in how many commits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GroupCommitCounts {
    /// Writes that began (committed, rolled back or abandoned).
    pub writes: u64,
    /// `COMMIT`s run.
    pub commits: u64,
}

impl std::ops::Deref for WriteTx {
    type Target = AnyConnection;

    fn deref(&self) -> &AnyConnection {
        match self {
            Self::Pooled(tx) => tx,
            Self::Turn(turn) => turn.connection(),
        }
    }
}

impl std::ops::DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        match self {
            Self::Pooled(tx) => tx,
            Self::Turn(turn) => turn.connection_mut(),
        }
    }
}

impl WriteTx {
    /// Makes this write durable: on the servers its own `COMMIT`; on SQLite once the group it
    /// ran in has committed.
    ///
    /// # Errors
    /// The commit's failure (on SQLite the group's, the same for every write in it).
    pub(crate) async fn commit(self) -> Result<(), sqlx::Error> {
        match self {
            Self::Pooled(tx) => tx.commit().await,
            Self::Turn(turn) => turn.commit().await,
        }
    }

    /// Undoes this write (on SQLite, only this write: the savepoint is rolled back by the
    /// next round trip on the writer, before anything else runs on it).
    ///
    /// # Errors
    /// The server's failure to roll back.
    pub(crate) async fn rollback(self) -> Result<(), sqlx::Error> {
        match self {
            Self::Pooled(tx) => tx.rollback().await,
            Self::Turn(turn) => {
                turn.end(Ending::RolledBack);
                Ok(())
            }
        }
    }
}

/// A statement whose result nobody reads, with its values (owned, so that it can wait in a
/// list): one part of `SqlStore::run_together`.
pub(crate) struct Deferred {
    pub(super) sql: String,
    pub(super) bind: Box<dyn for<'q> FnOnce(AnyQuery<'q>) -> AnyQuery<'q> + Send>,
}

impl Deferred {
    /// `sql` (in the store's dialect already), its values bound by `bind` in order.
    pub(crate) fn new(
        sql: impl Into<String>,
        bind: impl for<'q> FnOnce(AnyQuery<'q>) -> AnyQuery<'q> + Send + 'static,
    ) -> Self {
        Self { sql: sql.into(), bind: Box::new(bind) }
    }
}

/// SQLite's one writer and the group open on it.
#[derive(Debug)]
pub(crate) struct GroupCommit {
    /// The pool of one writing connection.
    pool: AnyPool,
    /// The connection and the open group; whoever holds the lock is the one writing.
    slot: Arc<Mutex<WriterState>>,
    /// Writes waiting for the lock.
    waiting: AtomicUsize,
    /// How long a write waits for its turn before failing as unavailable.
    acquire_timeout: Duration,
    /// Writes begun, for [`Writer::group_commits`].
    turns: AtomicU64,
    /// Commits run, for [`Writer::group_commits`].
    commits: AtomicU64,
}

/// What the lock guards.
#[derive(Debug, Default)]
struct WriterState {
    /// The writing connection, kept from group to group; given back to the pool (which opens
    /// a fresh one when asked) after a failure, and when the store closes.
    connection: Option<PoolConnection<Any>>,
    /// The transaction open on it, if any.
    open: Option<OpenGroup>,
}

/// A transaction open on SQLite's writer, and who waits for it to commit.
#[derive(Debug)]
struct OpenGroup {
    /// One per write that kept its savepoint: told the group's outcome.
    members: Vec<oneshot::Sender<Result<(), Arc<sqlx::Error>>>>,
    /// Writes run in this group.
    turns: usize,
    /// Where the last write's savepoint stands.
    last: Ending,
}

/// Where a write's savepoint stands; acted on by the next statement on the writer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// Keep what it did: `RELEASE` (or the group's `COMMIT`).
    Released,
    /// Undo what it did: `ROLLBACK TO`, then `RELEASE`.
    RolledBack,
    /// A group's first write was cancelled while its `BEGIN IMMEDIATE; SAVEPOINT` was on its
    /// way: whether a transaction is open is unknown, so whatever is open is rolled back. The
    /// group has no members yet, so nobody's write is lost.
    Uncertain,
}

impl GroupCommit {
    /// Waits for the writer, opens a group if none is, and starts a savepoint: this caller's
    /// turn.
    async fn turn(self: Arc<Self>) -> Result<Turn, sqlx::Error> {
        let waiting = Waiting::new(&self);
        let slot = tokio::time::timeout(self.acquire_timeout, Arc::clone(&self.slot).lock_owned())
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)?;
        waiting.took_the_lock();
        self.turns.fetch_add(1, Ordering::Relaxed);
        // From here a cancelled caller drops the turn, and the turn hands the group on.
        let mut turn = Turn { group: Arc::clone(&self), slot: Some(slot), opened: false };
        let state = turn.state_mut();
        if state.open.as_ref().is_some_and(|group| group.last == Ending::Uncertain) {
            abandon_group(state, &self, "an earlier write was cancelled mid-statement").await;
        }
        if state.connection.is_none() {
            state.connection = Some(self.pool.acquire().await?);
        }
        let opening = match state.open.as_mut() {
            Some(group) => match group.last {
                Ending::Released => "RELEASE SAVEPOINT write_turn; SAVEPOINT write_turn",
                _ => "ROLLBACK TO SAVEPOINT write_turn; RELEASE SAVEPOINT write_turn; SAVEPOINT write_turn",
            },
            None => "BEGIN IMMEDIATE; SAVEPOINT write_turn",
        };
        // Should this caller be cancelled while the statement is on its way, SQLite's thread
        // runs it whole or not at all. Inside an open group either leaves one savepoint named
        // `write_turn` holding exactly what the last write's ending must keep or undo (its own,
        // or a new empty one), so `last` stays as it is and the next statement ends it right
        // either way. Only a group's opening is uncertain: a transaction may or may not be open.
        state.open.get_or_insert_with(|| OpenGroup { members: Vec::new(), turns: 0, last: Ending::Uncertain });
        let Some(connection) = state.connection.as_mut() else { return Err(sqlx::Error::PoolClosed) };
        match run(connection, opening).await {
            Ok(_) => {
                let group = turn.open_group_mut();
                group.turns += 1;
                // Until it says otherwise, a write that is dropped rolls back.
                group.last = Ending::RolledBack;
                turn.opened = true;
                Ok(turn)
            }
            Err(error) => {
                // Whatever state the connection is in, the group cannot go on: roll it back and
                // tell its members, who have not been answered yet.
                abandon_group(turn.state_mut(), &self, &error.to_string()).await;
                Err(error)
            }
        }
    }
}
/// Counts a caller waiting for the writer; one that gives up before taking the lock makes
/// sure the open group is committed by someone.
struct Waiting<'a> {
    group: &'a Arc<GroupCommit>,
    took_the_lock: bool,
}

impl<'a> Waiting<'a> {
    fn new(group: &'a Arc<GroupCommit>) -> Self {
        group.waiting.fetch_add(1, Ordering::SeqCst);
        Self { group, took_the_lock: false }
    }

    fn took_the_lock(mut self) {
        self.took_the_lock = true;
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.group.waiting.fetch_sub(1, Ordering::SeqCst);
        if !self.took_the_lock {
            // Whoever let go of the lock may have counted on this caller to carry the group on.
            let group = Arc::clone(self.group);
            spawn(async move {
                let mut slot = Arc::clone(&group.slot).lock_owned().await;
                commit_group(&mut slot, &group).await;
            });
        }
    }
}

/// One write's use of SQLite's writer. Dropped without an ending, it rolls back.
pub(crate) struct Turn {
    group: Arc<GroupCommit>,
    /// The lock, until the turn ends.
    slot: Option<OwnedMutexGuard<WriterState>>,
    /// Whether its savepoint is open: only then is there anything of its own to keep or undo.
    opened: bool,
}

/// What a turn's lock holds while the turn lasts.
const HELD: &str = "a turn holds the writer's lock, its connection and its group until it ends";

impl Turn {
    fn state_mut(&mut self) -> &mut WriterState {
        self.slot.as_deref_mut().expect(HELD)
    }

    fn open_group_mut(&mut self) -> &mut OpenGroup {
        self.state_mut().open.as_mut().expect(HELD)
    }

    fn connection(&self) -> &AnyConnection {
        self.slot.as_deref().and_then(|state| state.connection.as_deref()).expect(HELD)
    }

    fn connection_mut(&mut self) -> &mut AnyConnection {
        self.state_mut().connection.as_deref_mut().expect(HELD)
    }

    /// Keeps what this write did and waits for its group to commit.
    async fn commit(mut self) -> Result<(), sqlx::Error> {
        let (told, outcome) = oneshot::channel();
        self.open_group_mut().members.push(told);
        self.end(Ending::Released);
        match outcome.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(failure)) => Err(shared_failure(&failure)),
            // The task committing the group was dropped: the runtime is shutting down.
            Err(_) => Err(sqlx::Error::PoolClosed),
        }
    }

    /// Ends the turn as `ending` says.
    fn end(mut self, ending: Ending) {
        self.finish(ending);
    }

    /// Lets go of the writer: the next write carries the group on, or, with none waiting
    /// (or the group full), a task of its own commits it, so that a caller cancelled while
    /// waiting for the outcome cannot leave the group open.
    fn finish(&mut self, ending: Ending) {
        let Some(mut slot) = self.slot.take() else { return };
        let Some(group) = slot.open.as_mut() else { return };
        // A turn cancelled before its savepoint opened leaves the last one as it stood.
        if self.opened {
            group.last = ending;
        }
        let full = group.turns >= MAX_TURNS_PER_COMMIT;
        if full || self.group.waiting.load(Ordering::SeqCst) == 0 {
            let owner = Arc::clone(&self.group);
            spawn(async move { commit_group(&mut slot, &owner).await });
        }
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        self.finish(Ending::RolledBack);
    }
}

/// Commits the open group, if any, and tells its members.
async fn commit_group(state: &mut WriterState, owner: &GroupCommit) {
    let Some(group) = state.open.take() else { return };
    let statement = match group.last {
        Ending::Released => "COMMIT",
        Ending::RolledBack => "ROLLBACK TO SAVEPOINT write_turn; COMMIT",
        Ending::Uncertain => {
            state.open = Some(group);
            abandon_group(state, owner, "a write was cancelled mid-statement").await;
            return;
        }
    };
    let Some(connection) = state.connection.as_mut() else { return };
    owner.commits.fetch_add(1, Ordering::Relaxed);
    let outcome = match run(connection, statement).await {
        Ok(_) => Ok(()),
        Err(error) => {
            // SQLite may have rolled back on its own (a full disk); if not, this does, so the
            // writer is never left inside a transaction.
            let _ = run(connection, "ROLLBACK").await;
            Err(Arc::new(error))
        }
    };
    if outcome.is_err() {
        // A fresh connection for the next group, whatever this one went through.
        state.connection = None;
    }
    for member in group.members {
        // A member that stopped waiting (its request cancelled) needs no answer.
        let _ = member.send(outcome.clone());
    }
}

/// Rolls the open group back because `why` left it unusable, failing its members, and lets
/// the connection go (the pool opens a fresh one for the next group).
async fn abandon_group(state: &mut WriterState, owner: &GroupCommit, why: &str) {
    let Some(group) = state.open.take() else { return };
    owner.commits.fetch_add(1, Ordering::Relaxed);
    if let Some(mut connection) = state.connection.take() {
        let _ = run(&mut connection, "ROLLBACK").await;
    }
    let failure = Arc::new(sqlx::Error::Protocol(format!("the group of writes was rolled back: {why}")));
    for member in group.members {
        let _ = member.send(Err(Arc::clone(&failure)));
    }
}

/// Runs `statements` (one or several, without parameters) on the writer.
async fn run(connection: &mut PoolConnection<Any>, statements: &'static str) -> Result<(), sqlx::Error> {
    use sqlx::Executor as _;
    let connection: &mut AnyConnection = connection;
    connection.execute(statements).await.map(drop)
}

/// Starts `task` on the runtime, if there is one (there is none only while a process ends).
fn spawn(task: impl std::future::Future<Output = ()> + Send + 'static) {
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(task);
    }
}

/// The group's failure, as each of its writes reports it: a database's answer stays one (a
/// full disk is a 500, as without groups), anything else means the database could not be asked.
fn shared_failure(failure: &sqlx::Error) -> sqlx::Error {
    match failure {
        sqlx::Error::Database(database) => sqlx::Error::Database(Box::new(GroupFailed {
            message: database.message().to_owned(),
            code: database.code().map(std::borrow::Cow::into_owned),
            kind: database.kind(),
        })),
        sqlx::Error::PoolTimedOut => sqlx::Error::PoolTimedOut,
        sqlx::Error::PoolClosed => sqlx::Error::PoolClosed,
        other => sqlx::Error::Io(std::io::Error::other(other.to_string())),
    }
}

/// The database's answer to a group's `COMMIT`, given to each write in it.
#[derive(Debug)]
struct GroupFailed {
    message: String,
    code: Option<String>,
    kind: sqlx::error::ErrorKind,
}

impl std::fmt::Display for GroupFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the commit of a group of writes failed: {}", self.message)
    }
}

impl std::error::Error for GroupFailed {}

impl sqlx::error::DatabaseError for GroupFailed {
    fn message(&self) -> &str {
        &self.message
    }

    fn code(&self) -> Option<std::borrow::Cow<'_, str>> {
        self.code.as_deref().map(std::borrow::Cow::Borrowed)
    }

    fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
        self
    }

    fn kind(&self) -> sqlx::error::ErrorKind {
        match self.kind {
            sqlx::error::ErrorKind::UniqueViolation => sqlx::error::ErrorKind::UniqueViolation,
            sqlx::error::ErrorKind::ForeignKeyViolation => sqlx::error::ErrorKind::ForeignKeyViolation,
            sqlx::error::ErrorKind::NotNullViolation => sqlx::error::ErrorKind::NotNullViolation,
            sqlx::error::ErrorKind::CheckViolation => sqlx::error::ErrorKind::CheckViolation,
            _ => sqlx::error::ErrorKind::Other,
        }
    }
}

#[cfg(test)]
mod tests {
    //! The group commit's own rules, on a real SQLite file: what the store's guarantees rest
    //! on. (The store's contracts, races included, run on every database in
    //! `tests/conformance.rs`.)

    use super::*;

    /// A writer and a reader on a fresh file holding one table of numbers.
    async fn scratch() -> (tempfile::TempDir, Writer, AnyPool) {
        sqlx::any::install_default_drivers();
        let dir = tempfile::tempdir().expect("a folder");
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("group.sqlite").display());
        let options = sqlx::any::AnyPoolOptions::new();
        let writer = options.clone().max_connections(1).connect(&url).await.expect("a writer");
        let reader = options.max_connections(2).connect(&url).await.expect("a reader");
        sqlx::query("PRAGMA journal_mode = WAL").execute(&writer).await.expect("WAL");
        sqlx::query("CREATE TABLE numbers (n INTEGER PRIMARY KEY)").execute(&writer).await.expect("a table");
        (dir, Writer::grouped(writer, Duration::from_secs(5)), reader)
    }

    async fn insert(tx: &mut WriteTx, n: i64) -> Result<(), sqlx::Error> {
        sqlx::query("INSERT INTO numbers (n) VALUES (?)").bind(n).execute(&mut **tx).await.map(drop)
    }

    async fn stored(reader: &AnyPool) -> Vec<i64> {
        sqlx::query_scalar("SELECT n FROM numbers ORDER BY n").fetch_all(reader).await.expect("read")
    }

    /// Waits (yielding, never sleeping) until `n` writes are queued behind the lock.
    async fn until_waiting(writer: &Writer, n: usize) {
        let Writer::Grouped(group) = writer else { panic!("SQLite groups its writes") };
        while group.waiting.load(Ordering::SeqCst) < n {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn writes_queued_behind_one_commit_together_and_none_is_answered_before_it() {
        let (_dir, writer, reader) = scratch().await;
        let mut first = writer.begin().await.expect("a turn");
        insert(&mut first, 0).await.expect("insert");
        let queued: Vec<_> = (1..=20)
            .map(|n| {
                let writer = writer.clone();
                tokio::spawn(async move {
                    let mut tx = writer.begin().await?;
                    insert(&mut tx, n).await?;
                    tx.commit().await
                })
            })
            .collect();
        until_waiting(&writer, 20).await;
        // Nothing is visible, and nothing answered, while the group is open.
        assert_eq!(stored(&reader).await, Vec::<i64>::new());
        assert!(queued.iter().all(|write| !write.is_finished()));
        first.commit().await.expect("the group commits");
        for write in queued {
            write.await.expect("joined").expect("committed with the group");
        }
        assert_eq!(stored(&reader).await, (0..=20).collect::<Vec<i64>>());
        let counts = writer.group_commits().expect("counted");
        assert_eq!(counts.writes, 21);
        // The first write's group took every write queued behind it (at most
        // MAX_TURNS_PER_COMMIT, more than the 21 here).
        assert_eq!(counts.commits, 1, "{counts:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_write_that_fails_rolls_back_or_is_dropped_undoes_only_itself() {
        let (_dir, writer, reader) = scratch().await;
        let mut first = writer.begin().await.expect("a turn");
        insert(&mut first, 1).await.expect("insert");
        let spawn_write = |n: i64, ending: &'static str| {
            let writer = writer.clone();
            tokio::spawn(async move {
                let mut tx = writer.begin().await?;
                insert(&mut tx, n * 10).await?;
                match ending {
                    "commit" => tx.commit().await,
                    "rollback" => tx.rollback().await,
                    "drop" => {
                        drop(tx);
                        Ok(())
                    }
                    // A second row with the first write's number: refused, as a unique index
                    // refuses a taken address, and the write gives up.
                    _ => insert(&mut tx, 1).await,
                }
            })
        };
        let writes = [
            spawn_write(2, "commit"),
            spawn_write(3, "rollback"),
            spawn_write(4, "commit"),
            spawn_write(5, "drop"),
            spawn_write(6, "fail"),
            spawn_write(7, "commit"),
        ];
        until_waiting(&writer, writes.len()).await;
        first.commit().await.expect("the group commits");
        let mut outcomes = Vec::new();
        for write in writes {
            outcomes.push(write.await.expect("joined").is_ok());
        }
        assert_eq!(outcomes, [true, true, true, true, false, true]);
        assert_eq!(stored(&reader).await, [1, 20, 40, 70]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_caller_cancelled_while_queued_or_mid_write_leaves_no_group_open() {
        let (_dir, writer, reader) = scratch().await;
        let mut first = writer.begin().await.expect("a turn");
        insert(&mut first, 1).await.expect("insert");
        // Queued, then cancelled before its turn: whoever let go of the lock counted on it.
        let cancelled_while_queued = {
            let writer = writer.clone();
            tokio::spawn(async move {
                let _never = writer.begin().await;
            })
        };
        until_waiting(&writer, 1).await;
        let committed = {
            let writer = writer.clone();
            tokio::spawn(async move { first.commit().await.map(|()| writer) })
        };
        cancelled_while_queued.abort();
        let writer = committed.await.expect("joined").expect("the group commits without the cancelled write");
        assert_eq!(stored(&reader).await, [1]);

        // Cancelled while holding its turn (its statement done): its row is undone and the
        // next write goes ahead.
        let (started, turn_open) = oneshot::channel();
        let holder = {
            let writer = writer.clone();
            tokio::spawn(async move {
                let mut tx = writer.begin().await.expect("a turn");
                insert(&mut tx, 2).await.expect("insert");
                let _ = started.send(());
                std::future::pending::<()>().await;
                drop(tx);
            })
        };
        turn_open.await.expect("the turn is open");
        holder.abort();
        let _ = holder.await;
        let mut next = writer.begin().await.expect("the writer is free again");
        insert(&mut next, 3).await.expect("insert");
        next.commit().await.expect("commits");
        assert_eq!(stored(&reader).await, [1, 3]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_write_waits_no_longer_than_the_acquire_timeout_and_says_unavailable() {
        let (_dir, writer, _reader) = scratch().await;
        let Writer::Grouped(group) = &writer else { panic!("SQLite groups its writes") };
        let impatient = Writer::Grouped(Arc::new(GroupCommit {
            pool: group.pool.clone(),
            slot: Arc::clone(&group.slot),
            waiting: AtomicUsize::new(0),
            acquire_timeout: Duration::from_millis(50),
            turns: AtomicU64::new(0),
            commits: AtomicU64::new(0),
        }));
        let held = writer.begin().await.expect("a turn");
        let refused = impatient.begin().await.err().expect("no turn while the writer is held");
        assert!(matches!(refused, sqlx::Error::PoolTimedOut), "{refused:?}");
        held.commit().await.expect("the holder is unaffected");
    }
}
