//! `cargo run -p json-client -- [MAGICLINK_URL] [EMAIL]`: signs in through the JSON API against
//! a development magiclink (`cargo xtask serve`), reading the code from its dev mailbox, then
//! signs out.

use anyhow::Context as _;
use json_client::Client;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let base = args.next().unwrap_or_else(|| "http://127.0.0.1:3000".to_owned());
    let email = args.next().unwrap_or_else(|| "json-client@example.com".to_owned());
    let mut client = Client::connect(&base).await.with_context(|| format!("is magiclink running at {base}?"))?;
    let minutes = client.request_code(&email).await?;
    println!("A code was sent to {email}; it lasts {minutes} minutes.");
    // The worker delivers within moments; a person would be reading their email meanwhile.
    let mut code = client.code_from_dev_mailbox(&email).await;
    for _ in 0..50 {
        if code.is_ok() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        code = client.code_from_dev_mailbox(&email).await;
    }
    client.sign_in_with_code(&code?).await?;
    println!("Signed in as {}", client.signed_in_as().await?.unwrap_or_default());
    client.sign_out().await?;
    println!("Signed out: {}", client.signed_in_as().await?.is_none());
    Ok(())
}
