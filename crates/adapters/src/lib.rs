//! Adapters: the implementations of the ports that talk to the outside world.
//!
//! - [`database`]: the storage ports of one database as `Arc<dyn ...>`, chosen by the URL's
//!   scheme, with its migrations: what everything above this crate holds.
//! - [`sql`]: every storage port, written once for SQLite, PostgreSQL and MySQL/MariaDB,
//!   with the per-backend migrations (its `sqlite` module prepares the SQLite file).
//! - [`mail`]: mailers; today the development mailbox, which keeps messages in memory.
//! - [`redis`]: rate-limit counters in Redis, shared by every instance.
//! - [`clock`]: the system clock.
//! - [`jose`]: signs ID, access and logout tokens; [`webhook`]: POSTs notices to apps.
//!
//! Nothing here is chosen or configured by itself: `xtask`'s composition root builds what the
//! configuration names and hands it to `web` as `Arc<dyn Port>`.

pub mod clock;
pub mod database;
pub mod handover;
pub mod jose;
pub mod mail;
pub mod migrations;
pub mod password;
pub mod redis;
pub mod sql;
pub mod webauthn;
pub mod webhook;

mod time;
