//! Email: rendering every kind from templates, and the mailers that send what was rendered
//! (SMTP, Resend, the development mailbox).

pub mod dev;
pub mod render;
pub mod resend;
pub mod smtp;

pub use dev::DevMailer;
pub use render::{TemplateRenderer, TEMPLATE_NAMES};
pub use resend::{ResendMailer, ResendSettings};
pub use smtp::{parse_from, SmtpMailer, SmtpSettings, StartTls};
