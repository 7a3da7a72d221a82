//! Sign-in and sessions as a client sees them, on the embedded store in development.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use avalon_runtime::auth::issue_access_token;
use avalon_runtime::config::Secret;
use base64::Engine;
use serde_json::json;
use support::{Answer, Api, DEV_JWT_SECRET, client, dev_login, get_auth, post_json};

#[tokio::test]
async fn dev_login_then_users_me_works_on_the_embedded_store() {
    let data = tempfile::tempdir().unwrap();
    let api = Api::start(data.path(), &[("DEV_LOGIN", "true")]).await;

    let session = dev_login(&api, "arthur").await;
    assert_eq!(session["token_type"], "Bearer");
    assert!(session["expires_in"].as_u64().unwrap() > 0);
    let token = session["access_token"].as_str().unwrap();
    let me = get_auth(&api.url("/users/me"), token).await;
    assert_eq!(me.status, 200, "{}", me.text);
    assert_eq!(me.body["id"], session["user"]["id"]);
    assert!(me.body.get("openid").is_none(), "openid must not be shown");

    let renamed = support::Answer::of(
        client()
            .patch(api.url("/users/me"))
            .bearer_auth(token)
            .json(&json!({ "nickname": "  King Arthur " }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(renamed.status, 200, "{}", renamed.text);
    assert_eq!(renamed.body["nickname"], "King Arthur");
    let bad = Answer::of(
        client()
            .patch(api.url("/users/me"))
            .bearer_auth(token)
            .json(&json!({ "nickname": "x".repeat(40) }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((bad.status, bad.code()), (422, "INVALID_NICKNAME"));

    // Same openid again → same user, and the data survives a restart of the embedded store.
    drop(api);
    let api = Api::start(data.path(), &[("DEV_LOGIN", "true")]).await;
    let again = dev_login(&api, "arthur").await;
    assert_eq!(again["user"]["id"], session["user"]["id"]);
    assert_eq!(again["user"]["nickname"], "King Arthur");
}

/// The blue and green slots of a deploy are two API processes on one DATA_DIR: both must start, and a
/// user who signed in on one is known to the other (and a refresh token used on one is spent on both).
#[tokio::test]
async fn two_api_processes_share_one_embedded_store() {
    let data = tempfile::tempdir().unwrap();
    let blue = Api::start(data.path(), &[("DEV_LOGIN", "true")]).await;
    let green = Api::start(data.path(), &[("DEV_LOGIN", "true")]).await;

    let session = dev_login(&blue, "gawain").await;
    let token = session["access_token"].as_str().unwrap();
    let me = get_auth(&green.url("/users/me"), token).await;
    assert_eq!(me.status, 200, "{}", me.text);
    assert_eq!(me.body["id"], session["user"]["id"]);
    assert_eq!(
        dev_login(&green, "gawain").await["user"]["id"],
        session["user"]["id"],
        "the same openid on the other slot is the same user"
    );

    let refresh_token = session["refresh_token"].as_str().unwrap();
    let body = json!({ "refresh_token": refresh_token });
    let first = post_json(&green.url("/auth/refresh"), body.clone()).await;
    assert_eq!(first.status, 200, "{}", first.text);
    let replay = post_json(&blue.url("/auth/refresh"), body).await;
    assert_eq!(
        (replay.status, replay.code()),
        (401, "REFRESH_TOKEN_REUSED")
    );

    // Concurrent sign-ins on both slots: every one answers, none is lost to a lock.
    let logins = (0..20).map(|n| {
        let api = if n % 2 == 0 { &blue } else { &green };
        let url = api.url("/auth/dev-login");
        async move { post_json(&url, json!({ "openid": format!("knight-{n}") })).await }
    });
    for answer in futures_util::future::join_all(logins).await {
        assert_eq!(answer.status, 200, "{}", answer.text);
    }
}

#[tokio::test]
async fn dev_login_is_absent_unless_enabled() {
    let data = tempfile::tempdir().unwrap();
    let api = Api::start(data.path(), &[]).await;
    let answer = post_json(&api.url("/auth/dev-login"), json!({ "openid": "arthur" })).await;
    assert_eq!((answer.status, answer.code()), (404, "NOT_FOUND"));
}

#[tokio::test]
async fn refresh_rotates_and_a_replayed_token_revokes_the_session() {
    let data = tempfile::tempdir().unwrap();
    let api = Api::start(data.path(), &[("DEV_LOGIN", "true")]).await;
    let first = dev_login(&api, "lancelot").await;
    let refresh = |token: &str| {
        let url = api.url("/auth/refresh");
        let body = json!({ "refresh_token": token });
        async move { post_json(&url, body).await }
    };
    let original = first["refresh_token"].as_str().unwrap().to_owned();

    let second = refresh(&original).await;
    assert_eq!(second.status, 200, "{}", second.text);
    let rotated = second.body["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(rotated, original);
    assert_eq!(
        get_auth(
            &api.url("/users/me"),
            second.body["access_token"].as_str().unwrap()
        )
        .await
        .status,
        200
    );

    // Someone replays the first token: refused, and the whole family goes with it.
    let replay = refresh(&original).await;
    assert_eq!(
        (replay.status, replay.code()),
        (401, "REFRESH_TOKEN_REUSED")
    );
    let after = refresh(&rotated).await;
    assert_eq!((after.status, after.code()), (401, "REFRESH_TOKEN_REVOKED"));

    let unknown = refresh("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").await;
    assert_eq!(
        (unknown.status, unknown.code()),
        (401, "REFRESH_TOKEN_INVALID")
    );
    let garbage = refresh("not a token").await;
    assert_eq!(
        (garbage.status, garbage.code()),
        (400, "INVALID_REFRESH_TOKEN")
    );

    // Logout ends a session: its refresh token no longer works.
    let session = dev_login(&api, "lancelot").await;
    let token = session["refresh_token"].as_str().unwrap();
    let logout = post_json(&api.url("/auth/logout"), json!({ "refresh_token": token })).await;
    assert_eq!(logout.status, 204);
    let refused = refresh(token).await;
    assert_eq!(refused.status, 401);
}

#[tokio::test]
async fn expired_tampered_and_missing_tokens_are_refused_with_stable_codes() {
    let data = tempfile::tempdir().unwrap();
    let api = Api::start(data.path(), &[("DEV_LOGIN", "true")]).await;
    let session = dev_login(&api, "mordred").await;
    let token = session["access_token"].as_str().unwrap();

    let secret = Secret::new(DEV_JWT_SECRET);
    let user_id = session["user"]["id"].as_str().unwrap();
    let (expired, _) = issue_access_token(&secret, user_id, "x", "s", Duration::ZERO).unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let answer = get_auth(&api.url("/users/me"), &expired).await;
    assert_eq!((answer.status, answer.code()), (401, "TOKEN_EXPIRED"));
    assert_eq!(answer.header("www-authenticate").as_deref(), Some("Bearer"));

    // Change the first character of the signature (the last one may only carry padding bits).
    let (signed, signature) = token.rsplit_once('.').unwrap();
    let first = signature.chars().next().unwrap();
    let swapped = if first == 'A' { 'B' } else { 'A' };
    let tampered = format!("{signed}.{swapped}{}", &signature[1..]);
    let answer = get_auth(&api.url("/users/me"), &tampered).await;
    assert_eq!((answer.status, answer.code()), (401, "TOKEN_INVALID"));
    // A payload changed to another user, with the original signature, is refused too.
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(&parts[1])
        .unwrap();
    let payload = String::from_utf8(payload)
        .unwrap()
        .replace(user_id, "someone-else");
    parts[1] = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(payload);
    let answer = get_auth(&api.url("/users/me"), &parts.join(".")).await;
    assert_eq!((answer.status, answer.code()), (401, "TOKEN_INVALID"));

    let forged_secret = Secret::new("an-attacker-secret-that-is-long-enough!!");
    let (forged, _) =
        issue_access_token(&forged_secret, user_id, "x", "s", Duration::from_secs(60)).unwrap();
    assert_eq!(
        get_auth(&api.url("/users/me"), &forged).await.code(),
        "TOKEN_INVALID"
    );

    let missing = Answer::of(client().get(api.url("/users/me")).send().await.unwrap()).await;
    assert_eq!((missing.status, missing.code()), (401, "UNAUTHENTICATED"));
    // Every error carries the request id the response header names.
    assert_eq!(
        missing.body["error"]["request_id"].as_str(),
        missing.header("x-request-id").as_deref()
    );
}

#[tokio::test]
async fn errors_share_one_json_shape() {
    let data = tempfile::tempdir().unwrap();
    let api = Api::start(
        data.path(),
        &[("DEV_LOGIN", "true"), ("API_BODY_LIMIT", "1024")],
    )
    .await;
    let unknown = Answer::of(client().get(api.url("/nope")).send().await.unwrap()).await;
    assert_eq!((unknown.status, unknown.code()), (404, "NOT_FOUND"));
    let wrong_method =
        Answer::of(client().delete(api.url("/users/me")).send().await.unwrap()).await;
    assert_eq!(
        (wrong_method.status, wrong_method.code()),
        (405, "METHOD_NOT_ALLOWED")
    );
    let not_json = Answer::of(
        client()
            .post(api.url("/auth/dev-login"))
            .header("content-type", "application/json")
            .body("{oops")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((not_json.status, not_json.code()), (400, "INVALID_JSON"));
    let wrong_shape = post_json(&api.url("/auth/dev-login"), json!({ "open_id": "x" })).await;
    assert_eq!(
        (wrong_shape.status, wrong_shape.code()),
        (422, "INVALID_BODY")
    );
    let too_big = post_json(
        &api.url("/auth/dev-login"),
        json!({ "openid": "x".repeat(4096) }),
    )
    .await;
    assert_eq!((too_big.status, too_big.code()), (413, "PAYLOAD_TOO_LARGE"));
    for answer in [&unknown, &wrong_method, &not_json, &wrong_shape, &too_big] {
        assert!(
            answer.body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{}",
            answer.text
        );
        assert!(
            answer.body["error"]["request_id"].is_string(),
            "{}",
            answer.text
        );
    }
}

#[tokio::test]
async fn cors_answers_only_configured_origins() {
    let data = tempfile::tempdir().unwrap();
    let api = Api::start(
        data.path(),
        &[("CORS_ALLOWED_ORIGINS", "https://game.example")],
    )
    .await;
    let preflight = |origin: &str| {
        client()
            .request(reqwest::Method::OPTIONS, api.url("/users/me"))
            .header("origin", origin)
            .header("access-control-request-method", "GET")
            .header("access-control-request-headers", "authorization")
            .send()
    };
    let allowed = Answer::of(preflight("https://game.example").await.unwrap()).await;
    assert_eq!(
        allowed.header("access-control-allow-origin").as_deref(),
        Some("https://game.example")
    );
    let other = Answer::of(preflight("https://evil.example").await.unwrap()).await;
    assert_eq!(other.header("access-control-allow-origin"), None);
}
