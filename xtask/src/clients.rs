//! The operator's OpenID Connect commands: `clients add|list|remove|rotate-secret` registers
//! the apps that sign people in through magiclink, and `keys list|rotate` manages the keys
//! their ID tokens are signed with. A client secret is printed once, when it is made: only its
//! hash is stored.

use clap::Subcommand;
use domain::audit::AuditKind;
use domain::oidc::{Client, ClientId, ClientKind, ClientSecret};
use serde_json::json;

use crate::settings::{ConfiguredClient, Program, Settings};

/// `clients add|list|remove|rotate-secret`.
#[derive(Debug, Subcommand)]
pub enum ClientsCommand {
    /// Register an app; prints its client_id and, for a confidential client, its client_secret
    /// (once: only its hash is kept).
    Add {
        /// The name people see on the consent page ("Grafana").
        #[arg(long)]
        name: String,
        /// Where codes may be sent (exact match; any port on 127.0.0.1 or [::1]). Repeatable.
        #[arg(long = "redirect-uri", required = true)]
        redirect_uris: Vec<String>,
        /// Where people may be sent after signing out through the app. Repeatable.
        #[arg(long = "post-logout-redirect-uri")]
        post_logout_redirect_uris: Vec<String>,
        /// A browser or native app that can keep no secret: no secret, PKCE required.
        #[arg(long)]
        public: bool,
        /// The team's own app: no consent page.
        #[arg(long)]
        first_party: bool,
        /// Sign its ID tokens with RS256 (the default), ES256 or EdDSA.
        #[arg(long, default_value = "RS256")]
        id_token_alg: String,
        /// Where to POST a logout token when a session the app signed in through ends
        /// (OpenID Connect Back-Channel Logout; https, or http on a loopback address).
        #[arg(long)]
        backchannel_logout_uri: Option<String>,
        /// Its client_id (letters, digits, '-', '_', '.'); random when not given.
        #[arg(long)]
        id: Option<String>,
        /// Print one JSON object instead of lines.
        #[arg(long)]
        json: bool,
    },
    /// List the registered apps.
    List {
        /// Print one JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Remove an app and everything issued to it (its codes, tokens and people's consents).
    Remove {
        /// Its client_id.
        client_id: String,
    },
    /// Print a new client secret and its hash, for a client listed in the configuration
    /// (`oidc.clients`, `secret_hash`): the secret goes to the app, the hash into the file.
    NewSecret {
        /// Print one JSON object instead of lines.
        #[arg(long)]
        json: bool,
    },
    /// Give a confidential app a new secret; the old one stops working at once.
    RotateSecret {
        /// Its client_id.
        client_id: String,
        /// Print one JSON object instead of lines.
        #[arg(long)]
        json: bool,
    },
}

/// A client listed in the configuration is changed there, not by command (the next start would
/// undo it).
async fn refuse_configured(store: &adapters::database::Database, id: &ClientId) -> anyhow::Result<()> {
    if store.clients.find_client(id).await?.is_some_and(|client| client.from_config) {
        anyhow::bail!("`{id}` is listed in the configuration (oidc.clients): change it there");
    }
    Ok(())
}

/// `keys list|rotate`.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// List the signing keys: current and retired (still published until what they signed has
    /// expired).
    List,
    /// Make a new signing key for every algorithm; the old ones are retired, still published
    /// until every ID token they signed has expired, then deleted.
    Rotate,
}

fn client_id(raw: &str) -> anyhow::Result<ClientId> {
    ClientId::parse(raw).map_err(|refusal| anyhow::anyhow!("`{raw}`: {refusal}"))
}

fn new_secret() -> anyhow::Result<ClientSecret> {
    Ok(ClientSecret::from_random_bytes(ports::random::os_random()?))
}

/// Runs a `clients` command.
///
/// # Errors
/// On bad arguments, a missing or unmigrated database, or a storage failure.
pub async fn clients(settings: &Settings, command: ClientsCommand, program: Program) -> anyhow::Result<()> {
    if let ClientsCommand::NewSecret { json: as_json } = command {
        let secret = new_secret()?;
        let hash = secret.hash().to_hex();
        if as_json {
            println!("{}", json!({ "client_secret": secret.encode(), "secret_hash": hash }));
        } else {
            println!("client_secret: {}", secret.encode());
            println!("secret_hash: {hash}");
            println!("(The secret goes into the app's settings, the hash into oidc.clients' secret_hash.)");
        }
        return Ok(());
    }
    let store = crate::wiring::open_migrated(settings, program).await?;
    let result = async {
        match command {
            ClientsCommand::Add {
                name,
                redirect_uris,
                post_logout_redirect_uris,
                public,
                first_party,
                id_token_alg,
                backchannel_logout_uri,
                id,
                json,
            } => {
                let id = match id {
                    Some(id) => id,
                    None => ClientId::from_random_bytes(ports::random::os_random()?).as_str().to_owned(),
                };
                let secret = (!public).then(new_secret).transpose()?;
                // The same checks as a client listed in the configuration, by the same code.
                let spec = ConfiguredClient {
                    id,
                    name,
                    redirect_uris,
                    post_logout_redirect_uris,
                    secret_hash: secret.as_ref().map(|secret| secret.hash().to_hex()).unwrap_or_default(),
                    public,
                    first_party,
                    id_token_alg,
                    backchannel_logout_uri: backchannel_logout_uri.unwrap_or_default(),
                };
                let client = spec.to_client(chrono::Utc::now()).map_err(|problem| anyhow::anyhow!("{problem}"))?;
                let client = Client { from_config: false, ..client };
                match store.clients.add_client(&client).await? {
                    ports::ClientAdded::Added => {}
                    ports::ClientAdded::IdTaken => anyhow::bail!("a client with the id `{}` exists already", client.id),
                }
                let command = format!("clients add {}", client.id);
                crate::wiring::operator_did(&store, AuditKind::OperatorCommand, None, &command).await?;
                let secret = secret.map(|secret| secret.encode());
                if json {
                    let mut shown = describe(&client);
                    shown["client_secret"] = json!(secret);
                    println!("{shown}");
                } else {
                    println!("Registered {} ({})", client.name, if public { "public" } else { "confidential" });
                    println!("client_id: {}", client.id);
                    if let Some(secret) = secret {
                        println!("client_secret: {secret}");
                        println!("(Shown this once: only its hash is stored. Put it in the app's settings now.)");
                    }
                }
            }
            ClientsCommand::List { json } => {
                for client in store.clients.list_clients().await? {
                    if json {
                        println!("{}", describe(&client));
                    } else {
                        let kind = match client.kind {
                            ClientKind::Public => "public",
                            ClientKind::Confidential => "confidential",
                        };
                        let party = if client.first_party { ", first-party" } else { "" };
                        let party =
                            if client.from_config { format!("{party}, from configuration") } else { party.to_owned() };
                        let uris: Vec<&str> = client.redirect_uris.iter().map(url::Url::as_str).collect();
                        println!("{}  {}  ({kind}{party})  {}", client.id, client.name, uris.join(" "));
                    }
                }
            }
            ClientsCommand::Remove { client_id: raw } => {
                let id = client_id(&raw)?;
                refuse_configured(&store, &id).await?;
                anyhow::ensure!(store.clients.remove_client(&id).await?, "no client has the id `{id}`");
                crate::wiring::operator_did(&store, AuditKind::OperatorCommand, None, &format!("clients remove {id}"))
                    .await?;
                println!("Removed {id}, its codes and tokens, and the consents given to it");
            }
            ClientsCommand::NewSecret { .. } => {}
            ClientsCommand::RotateSecret { client_id: raw, json } => {
                let id = client_id(&raw)?;
                refuse_configured(&store, &id).await?;
                let secret = new_secret()?;
                anyhow::ensure!(
                    store.clients.set_client_secret(&id, &secret.hash()).await?,
                    "no confidential client has the id `{id}` (a public client has no secret)"
                );
                let command = format!("clients rotate-secret {id}");
                crate::wiring::operator_did(&store, AuditKind::OperatorCommand, None, &command).await?;
                if json {
                    println!("{}", json!({ "client_id": id.as_str(), "client_secret": secret.encode() }));
                } else {
                    println!("client_id: {id}");
                    println!("client_secret: {}", secret.encode());
                    println!("(The old secret no longer works. Shown this once: only its hash is stored.)");
                }
            }
        }
        Ok(())
    }
    .await;
    store.close().await;
    result
}

/// A client as `--json` prints it (never its secret's hash).
fn describe(client: &Client) -> serde_json::Value {
    json!({
        "client_id": client.id.as_str(),
        "name": client.name,
        "public": client.kind == ClientKind::Public,
        "first_party": client.first_party,
        "redirect_uris": client.redirect_uris.iter().map(url::Url::as_str).collect::<Vec<_>>(),
        "post_logout_redirect_uris": client.post_logout_redirect_uris.iter().map(url::Url::as_str).collect::<Vec<_>>(),
        "id_token_signed_response_alg": client.id_token_algorithm.as_str(),
        "backchannel_logout_uri": client.backchannel_logout_uri.as_ref().map(url::Url::as_str),
        "from_config": client.from_config,
        "created_at": client.created_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    })
}

/// Runs a `keys` command.
///
/// # Errors
/// Without a configured secret (keys sealed under a passing development secret would be
/// lost), a missing database, or a storage failure.
pub async fn keys(settings: &Settings, command: KeysCommand, program: Program) -> anyhow::Result<()> {
    let store = crate::wiring::open_migrated(settings, program).await?;
    let result = async {
        match command {
            KeysCommand::List => {
                for key in store.signing_keys.signing_keys().await? {
                    let state = key.retired_at.map_or_else(
                        || "current".to_owned(),
                        |at| format!("retired {}", at.format("%Y-%m-%d %H:%M UTC")),
                    );
                    println!(
                        "{}  {:<5}  made {}  {state}",
                        key.kid,
                        key.algorithm.as_str(),
                        key.created_at.format("%Y-%m-%d %H:%M UTC")
                    );
                }
            }
            KeysCommand::Rotate => {
                anyhow::ensure!(
                    !settings.secret.expose().is_empty(),
                    "no AUTH_SECRET is configured: keys are sealed under it, and the service's own secret of this \
                     run is not known here"
                );
                let secrets = crate::wiring::secret_ring(settings);
                let clock: std::sync::Arc<dyn ports::Clock> = std::sync::Arc::new(adapters::clock::SystemClock);
                let signer = crate::wiring::token_signer(&store, &secrets, &clock);
                let now = chrono::Utc::now();
                for kid in signer.rotate(now).await? {
                    println!("New signing key {kid}");
                }
                crate::wiring::operator_did(&store, AuditKind::OperatorCommand, None, "keys rotate").await?;
                let deleted =
                    store.signing_keys.delete_retired_keys(now - crate::wiring::retired_key_lifetime(settings)).await?;
                println!(
                    "The old keys are retired: still published for {} minutes, until every ID token they signed has \
                     expired{}",
                    crate::wiring::retired_key_lifetime(settings).num_minutes(),
                    if deleted > 0 { format!("; {deleted} long-retired key(s) deleted") } else { String::new() }
                );
            }
        }
        Ok(())
    }
    .await;
    store.close().await;
    result
}
