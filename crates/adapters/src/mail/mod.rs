//! Mailers: rendering the sign-in email and the development mailbox.

pub mod dev;
pub mod render;
pub mod resend;
pub mod smtp;

pub use dev::DevMailer;
pub use render::{EmailRenderer, RenderedEmail, TEMPLATE_NAMES};
pub use resend::{ResendMailer, ResendSettings};
pub use smtp::{parse_from, SmtpMailer, SmtpSettings, StartTls};
