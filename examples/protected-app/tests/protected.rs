//! The example application over the real wiring: `/reports` refuses people and programs without
//! a session, and shows the signed-in person's reports once they signed in through magiclink's
//! routes nested in the same application.

use poem::http::StatusCode;
use system_tests::TestApp;

#[tokio::test]
async fn the_protected_route_sends_people_to_sign_in_and_lets_them_in_afterwards() {
    let app = TestApp::spawn_embedded(|_| {}, protected_app::app).await;

    let person = app.get("/reports?year=2026").await;
    let program = app.get_json("/reports").await;
    let whoami = app.get("/whoami").await;
    // magiclink's own routes answer inside the application.
    let signed_in = app.sign_in("reader@example.com", "/reports").await;
    let reports = app.get("/reports").await;
    let greeted = app.get("/whoami").await;

    assert_eq!(person.status, StatusCode::SEE_OTHER);
    assert_eq!(person.location(), "/signin?callbackUrl=%2Freports%3Fyear%3D2026");
    assert_eq!(program.status, StatusCode::UNAUTHORIZED);
    assert_eq!(program.header("content-type"), "application/problem+json");
    assert_eq!(whoami.status, StatusCode::SEE_OTHER, "the extractor alone refuses too");
    assert_eq!(signed_in.location(), "/reports");
    assert_eq!((reports.status, reports.body.as_str()), (StatusCode::OK, "Reports for reader@example.com"));
    assert_eq!(greeted.body, "You are reader@example.com");
}

#[tokio::test]
async fn after_sign_out_the_protected_route_refuses_again() {
    let app = TestApp::spawn_embedded(|_| {}, protected_app::app).await;
    app.sign_in("leaver@example.com", "/").await;
    assert_eq!(app.get("/reports").await.status, StatusCode::OK);

    let token = app.csrf_token().await;
    app.post_form("/api/auth/signout", &[("csrfToken", &token)], None).await;

    assert_eq!(app.get("/reports").await.status, StatusCode::SEE_OTHER);
}
