//! Request bodies and query strings, and their one conversion into the domain's parsed values.
//!
//! Every field is optional at this level so that a missing field becomes a clear message from
//! our own validation rather than a generic deserialisation failure.

use std::net::IpAddr;

use domain::audit::RequestOrigin;
use domain::{EmailAddress, InvalidEmail, LinkToken};
use ports::{RedeemLink, RequestLink};
use serde::Deserialize;

use crate::settings::WebSettings;

/// `Debug` for a request body that holds a password (and, with it, usually an address): only
/// the fields named are shown, and `..` says the rest was left out, so that logging a form by
/// accident logs no secret.
macro_rules! debug_showing_only {
    ($type:ident { $($shown:ident),* }) => {
        impl std::fmt::Debug for $type {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($type))$(.field(stringify!($shown), &self.$shown))*.finish_non_exhaustive()
            }
        }
    };
}
pub(crate) use debug_showing_only;

/// Longest `User-Agent` kept with a session; the rest is dropped.
const MAX_USER_AGENT: usize = 512;

/// A state-changing form, which carries the double-submit CSRF token.
pub trait CsrfProtected {
    /// The submitted token, if any.
    fn csrf_token(&self) -> Option<&str>;
}

impl CsrfProtected for SignInForm {
    fn csrf_token(&self) -> Option<&str> {
        self.csrf_token.as_deref()
    }
}

impl CsrfProtected for CallbackForm {
    fn csrf_token(&self) -> Option<&str> {
        self.csrf_token.as_deref()
    }
}

impl CsrfProtected for SignOutForm {
    fn csrf_token(&self) -> Option<&str> {
        self.csrf_token.as_deref()
    }
}

/// `POST {base}/signin/email`.
#[derive(Debug, Default, Deserialize)]
pub struct SignInForm {
    /// The typed address.
    #[serde(default)]
    pub email: String,
    /// The double-submit CSRF token.
    #[serde(default, rename = "csrfToken")]
    pub csrf_token: Option<String>,
    /// Where to land after sign-in.
    #[serde(default, rename = "callbackUrl")]
    pub callback_url: Option<String>,
}

impl SignInForm {
    /// The use-case request, or why the address is not acceptable: a non-ASCII local part is
    /// refused unless the settings allow it. The callback is reduced by [`WebSettings::callback`].
    ///
    /// # Errors
    /// The address's [`InvalidEmail`] reason.
    pub fn to_request(
        &self,
        settings: &WebSettings,
        client: Option<IpAddr>,
        lang: &str,
        origin: RequestOrigin,
    ) -> Result<RequestLink, InvalidEmail> {
        let email = typed_address(settings, &self.email)?;
        Ok(RequestLink {
            email,
            callback: settings.callback(self.callback_url.as_deref()),
            client,
            lang: lang.to_owned(),
            origin,
        })
    }
}

/// A typed address as this site accepts it: parsed, and with a non-ASCII local part refused
/// unless the settings allow it. The sign-in form and the account page's new address use it.
///
/// # Errors
/// The address's [`InvalidEmail`] reason.
pub fn typed_address(settings: &WebSettings, typed: &str) -> Result<EmailAddress, InvalidEmail> {
    let email = EmailAddress::parse(typed)?;
    if !settings.allow_unicode_local_part && !email.has_ascii_local_part() {
        return Err(InvalidEmail::NonAsciiLocalPart);
    }
    Ok(email)
}

/// `GET {base}/callback/email`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct CallbackQuery {
    /// The link token.
    #[serde(default)]
    pub token: Option<String>,
    /// The address the link was sent to.
    #[serde(default)]
    pub email: Option<String>,
    /// Where to land after sign-in.
    #[serde(default, rename = "callbackUrl")]
    pub callback_url: Option<String>,
}

/// The link's token or address is not something this service could have sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MalformedLink;

impl CallbackQuery {
    /// The use-case request, or [`MalformedLink`].
    ///
    /// # Errors
    /// [`MalformedLink`] when the token or address is missing or malformed.
    pub fn to_request(
        &self,
        user_agent: Option<&str>,
        client: Option<IpAddr>,
        origin: RequestOrigin,
    ) -> Result<RedeemLink, MalformedLink> {
        let token = LinkToken::parse(self.token.as_deref().ok_or(MalformedLink)?).map_err(|_| MalformedLink)?;
        let email = EmailAddress::parse(self.email.as_deref().ok_or(MalformedLink)?).map_err(|_| MalformedLink)?;
        Ok(RedeemLink { token, email, user_agent: user_agent.map(self::user_agent), client, origin })
    }
}

/// The `User-Agent` as kept with a session: its first [`MAX_USER_AGENT`] characters.
pub fn user_agent(raw: &str) -> String {
    raw.chars().take(MAX_USER_AGENT).collect()
}

/// `POST {base}/callback/email`: the confirm page's button (`token`, `email`, `callbackUrl`)
/// or the code form (`code`).
#[derive(Debug, Default, Deserialize)]
pub struct CallbackForm {
    /// The double-submit CSRF token.
    #[serde(default, rename = "csrfToken")]
    pub csrf_token: Option<String>,
    /// The link's fields from the confirm page, as the `GET` callback reads them.
    #[serde(flatten)]
    pub link: CallbackQuery,
    /// The short code from the email, typed in the browser that asked for the link.
    #[serde(default)]
    pub code: Option<String>,
}

/// `POST {base}/signout`.
#[derive(Debug, Default, Deserialize)]
pub struct SignOutForm {
    /// The double-submit CSRF token.
    #[serde(default, rename = "csrfToken")]
    pub csrf_token: Option<String>,
}

/// Query of the sign-in page: pre-filled values.
#[derive(Debug, Default, Deserialize)]
pub struct SignInPageQuery {
    /// Where to land after sign-in.
    #[serde(default, rename = "callbackUrl")]
    pub callback_url: Option<String>,
    /// An address to pre-fill.
    #[serde(default)]
    pub email: Option<String>,
}

/// Query of the error page.
#[derive(Debug, Default, Deserialize)]
pub struct AuthErrorQuery {
    /// Auth.js's error code, e.g. `Verification`.
    #[serde(default)]
    pub error: Option<String>,
    /// Which verification failure: `used`, `expired` or `invalid`.
    #[serde(default)]
    pub reason: Option<String>,
}

/// Query of `/dev/mailbox`.
#[derive(Debug, Default, Deserialize)]
pub struct MailboxQuery {
    /// Only messages to this address.
    #[serde(default)]
    pub to: Option<String>,
    /// At most this many (default 50, at most 1000).
    #[serde(default)]
    pub limit: Option<usize>,
}

#[cfg(test)]
mod tests {
    use super::{CallbackQuery, MalformedLink};

    #[test]
    fn malformed_callback_queries_are_refused_before_any_lookup() {
        let token = domain::LinkToken::from_random_bytes([1; 32]).encode();
        let cases = [
            (None, Some("a@example.com")),
            (Some(token.as_str()), None),
            (Some("short"), Some("a@example.com")),
            (Some(token.as_str()), Some("not an address")),
        ];
        for (token, email) in cases {
            let query =
                CallbackQuery { token: token.map(str::to_owned), email: email.map(str::to_owned), callback_url: None };
            assert_eq!(
                query.to_request(None, None, domain::audit::RequestOrigin::default()).map(|_| ()),
                Err(MalformedLink)
            );
        }
    }
}
