//! Mailers: rendering the sign-in email and the development mailbox.

pub mod dev;
pub mod render;

pub use dev::DevMailer;
pub use render::{EmailRenderer, RenderedEmail};
