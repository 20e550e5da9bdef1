//! The example client against a real magiclink on a loopback port with the development mailer.

use json_client::Client;
use system_tests::RunningServer;

#[tokio::test]
async fn the_client_signs_in_with_the_code_and_signs_out() {
    let server = RunningServer::start().await;
    let mut delivered = server.mailbox.as_ref().expect("the dev mailer is configured").subscribe();
    let mut client = Client::connect(&server.base_url).await.expect("connects");

    let minutes = client.request_code("mobile@example.com").await.expect("a code is sent");
    server.mail_after(&mut delivered, 0, "mobile@example.com").await;
    let code = client.code_from_dev_mailbox("mobile@example.com").await.expect("the code");
    let wrong = client.sign_in_with_code(if code.starts_with('A') { "BBBBBBBB" } else { "AAAAAAAA" }).await;
    client.sign_in_with_code(&code).await.expect("signed in");
    let signed_in_as = client.signed_in_as().await.expect("session read");
    client.sign_out().await.expect("signed out");

    assert_eq!(minutes, 10);
    let refusal = wrong.expect_err("a wrong code is refused").to_string();
    assert!(refusal.contains("400"), "{refusal}");
    assert_eq!(signed_in_as.as_deref(), Some("mobile@example.com"));
    assert_eq!(client.signed_in_as().await.expect("session read"), None);
}
