//! Back-channel logout (OpenID Connect Back-Channel Logout 1.0): when a session ends that an
//! app got an ID token in, the app is told server to server, so it can end its own session
//! even though the person's browser never visits it.
//!
//! The notice is queued by the store in the transaction that ends the session (a committed
//! sign-out always has its notices) and delivered by the outbox worker, retried like an email.
//! The logout token is signed when each attempt is made, not when the notice is queued: apps
//! refuse old tokens (`iat`, `exp` two minutes later), and a retry an hour on must still be
//! accepted. The app's registration is read at that moment too, so an app removed or no
//! longer registered for back-channel logout meanwhile is not told.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use domain::oidc::{LogoutNotice, LogoutTokenClaims, LOGOUT_TOKEN_LIFETIME_SECONDS};

use crate::random::os_random;
use crate::webhook::HttpPost;

use super::store::{ClientStore, TokenSigner};

/// Turns queued logout notices into signed requests.
pub struct BackchannelLogout {
    clients: Arc<dyn ClientStore>,
    signer: Arc<dyn TokenSigner>,
    issuer: String,
}

impl BackchannelLogout {
    /// Over the clients, the signer, and the issuer the ID tokens named.
    pub fn new(clients: Arc<dyn ClientStore>, signer: Arc<dyn TokenSigner>, issuer: String) -> Self {
        Self { clients, signer, issuer }
    }

    /// The POST that tells the app of `notice`, with a logout token signed at `now`; `None`
    /// when the app is gone or has no back-channel logout URI any more (the notice is then
    /// dropped, not retried).
    ///
    /// # Errors
    /// On a storage failure or when signing fails: the attempt is retried.
    pub async fn request(&self, notice: &LogoutNotice, now: DateTime<Utc>) -> anyhow::Result<Option<HttpPost>> {
        let Some(client) = self.clients.find_client(&notice.client_id).await? else { return Ok(None) };
        let Some(url) = client.backchannel_logout_uri else { return Ok(None) };
        let iat = now.timestamp();
        let claims = LogoutTokenClaims {
            iss: self.issuer.clone(),
            sub: notice.user_id.as_str().to_owned(),
            aud: client.id.as_str().to_owned(),
            iat,
            exp: iat + LOGOUT_TOKEN_LIFETIME_SECONDS,
            jti: domain::hex::encode(&os_random::<16>()?),
            sid: notice.session_id.as_str().to_owned(),
        };
        let token = self.signer.sign_logout_token(&claims, client.id_token_algorithm).await?;
        let body = url::form_urlencoded::Serializer::new(String::new()).append_pair("logout_token", &token).finish();
        Ok(Some(HttpPost {
            url,
            content_type: "application/x-www-form-urlencoded",
            headers: Vec::new(),
            body: body.into_bytes(),
        }))
    }
}
