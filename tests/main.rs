//! The system tests, as one test binary: each module is one area of the service, tested over
//! the real wiring. One binary links the whole stack once, where a binary per file linked it
//! nineteen times (most of CI's time on two cores). `metrics.rs` stays a binary of its own: the
//! `metrics` facade has one recorder per process, and every other test's requests would count
//! in it.

mod account_data;
mod architecture;
mod audit;
mod browser;
mod conformance;
mod faults;
mod forward_auth;
mod hostile;
mod http_flow;
mod integration_snippets;
mod languages;
mod oidc;
mod oidc_clients;
mod outbox_burst;
mod pages;
mod passkeys;
mod passwords;
mod rate_limits;
mod resend;
mod scale;
mod scanner_safe;
mod schema_agreement;
mod secret_rotation;
mod shared_host;
mod smtp;
mod webhooks;
