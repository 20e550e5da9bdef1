//! The composition root of magiclink and the commands that run it.
//!
//! This is the one crate that knows every other: it reads the configuration ([`settings`]),
//! picks and builds the adapters it names, hands them to `web` as ports ([`wiring`]), and
//! offers the commands people run ([`cli`]): `serve`, `migrate`, `outbox`, `secret`. Two
//! binaries share it: `magiclink`, the product that ships, and `xtask`, the developer's
//! `cargo xtask`, which runs the same commands from the workspace root and adds the developer
//! tasks in [`tasks`].

pub mod cli;
pub mod clients;
pub mod metrics;
pub mod settings;
pub mod tasks;
pub mod wiring;
