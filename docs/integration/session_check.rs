//! A Rust backend's check of who is signed in, with reqwest (features `json`) and serde.

use serde::Deserialize;

/// The session document magiclink answers with.
#[derive(Debug, Deserialize)]
pub struct Session {
    /// Who is signed in.
    pub user: SessionUser,
    /// When the session expires, RFC 3339.
    pub expires: String,
}

/// The signed-in user.
#[derive(Debug, Deserialize)]
pub struct SessionUser {
    /// Stable id.
    pub id: String,
    /// The address they signed in with.
    pub email: String,
}

/// The session of a request that carried `cookie_header` (`None` if nobody is signed in), and
/// the `Set-Cookie` values to pass back to the browser (a session magiclink just extended).
pub async fn current_session(
    http: &reqwest::Client,
    magiclink_url: &str,
    cookie_header: Option<&str>,
) -> reqwest::Result<(Option<Session>, Vec<String>)> {
    let mut request = http.get(format!("{magiclink_url}/api/auth/session")).header("accept", "application/json");
    if let Some(cookie) = cookie_header {
        request = request.header("cookie", cookie);
    }
    let response = request.send().await?.error_for_status()?;
    let set_cookies = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .map(str::to_owned)
        .collect();
    let session: Option<Session> = response.json().await?;
    Ok((session, set_cookies))
}
