//! The baseline the session check is compared with: poem and one indexed sqlx read of the same
//! database, nothing else (no cookies, no hashing, no policy, no middleware).
//!
//! It runs the session check's own statement on a typed pool of the same size, so the ratio
//! between the two says what everything magiclink adds around that read costs.

use std::sync::Arc;

use anyhow::Context as _;
use poem::http::StatusCode;
use poem::listener::{Acceptor as _, Listener as _, TcpListener};
use poem::web::{Data, Query};
use poem::{get, handler, EndpointExt as _, IntoResponse, Response, Route};
use serde::{Deserialize, Serialize};

/// The session check's read: a session by its token hash, with its user.
const READ: &str = "SELECT s.expires, u.id, u.email FROM sessions s JOIN users u ON u.id = s.user_id \
                    WHERE s.session_token = ";

/// A typed pool on the database under test.
enum Pool {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

#[derive(Deserialize)]
struct Lookup {
    /// The session token's hash, hex.
    h: String,
}

#[derive(Serialize)]
struct Found {
    id: String,
    email: String,
    expires: i64,
}

#[handler]
async fn session(pool: Data<&Arc<Pool>>, Query(lookup): Query<Lookup>) -> Response {
    let row: Result<Option<(i64, String, String)>, sqlx::Error> = match pool.as_ref() {
        Pool::Sqlite(pool) => sqlx::query_as(&format!("{READ}?")).bind(&lookup.h).fetch_optional(pool).await,
        Pool::Postgres(pool) => sqlx::query_as(&format!("{READ}$1")).bind(&lookup.h).fetch_optional(pool).await,
    };
    match row {
        Ok(Some((expires, id, email))) => poem::web::Json(Found { id, email, expires }).into_response(),
        Ok(None) => StatusCode::NOT_FOUND.into_response(),
        Err(error) => error.to_string().with_status(StatusCode::INTERNAL_SERVER_ERROR).into_response(),
    }
}

/// Serves `GET /baseline/session?h=<hash>` on `bind` until killed, printing
/// `Listening on http://...` once it accepts connections.
pub async fn serve(database_url: &str, bind: &str, connections: u32) -> anyhow::Result<()> {
    let pool = if database_url.starts_with("sqlite:") {
        Pool::Sqlite(
            sqlx::sqlite::SqlitePoolOptions::new()
                .max_connections(connections)
                .connect(database_url)
                .await
                .context("cannot open the SQLite database")?,
        )
    } else {
        Pool::Postgres(
            sqlx::postgres::PgPoolOptions::new()
                .max_connections(connections)
                .connect(database_url)
                .await
                .context("cannot open the PostgreSQL database")?,
        )
    };
    let app = Route::new().at("/baseline/session", get(session)).data(Arc::new(pool));
    let acceptor = TcpListener::bind(bind).into_acceptor().await.context("cannot listen")?;
    let address = acceptor
        .local_addr()
        .first()
        .and_then(|address| address.as_socket_addr().copied())
        .context("no local address")?;
    println!("Listening on http://{address}");
    poem::Server::new_with_acceptor(acceptor).run(app).await.context("the baseline server failed")
}
