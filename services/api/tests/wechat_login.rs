//! WeChat sign-in against a local stub of the WeChat server API.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use base64::Engine;
use serde_json::json;
use support::{
    Api, STUB_APPID, STUB_SECRET, STUB_SESSION_KEY, WechatStub, client, post_json,
    start_wechat_stub,
};

async fn api_against(stub_base: &str, extra: &[(&str, &str)]) -> (Api, tempfile::TempDir) {
    let data = tempfile::tempdir().unwrap();
    let mut env = vec![
        ("WECHAT_API_BASE", stub_base),
        ("WECHAT_APPID", STUB_APPID),
        ("WECHAT_SECRET", STUB_SECRET),
        ("WECHAT_TIMEOUT", "1s"),
    ];
    env.extend_from_slice(extra);
    (Api::start(data.path(), &env).await, data)
}

#[tokio::test]
async fn wechat_code_signs_in_and_session_key_never_leaks() {
    let stub = WechatStub::default();
    let base = start_wechat_stub(stub.clone()).await;
    let (api, _data) = api_against(&base, &[("LOG_LEVEL", "trace")]).await;

    let first = post_json(&api.url("/auth/wechat"), json!({ "code": "alice" })).await;
    assert_eq!(first.status, 200, "{}", first.text);
    let again = post_json(&api.url("/auth/wechat"), json!({ "code": "alice" })).await;
    assert_eq!(
        again.body["user"]["id"], first.body["user"]["id"],
        "same openid → same user"
    );
    let other = post_json(&api.url("/auth/wechat"), json!({ "code": "bob" })).await;
    assert_ne!(other.body["user"]["id"], first.body["user"]["id"]);

    // Neither the response, nor the token's payload, nor any log line carries session_key.
    assert!(!first.text.contains(STUB_SESSION_KEY) && !first.text.contains("session_key"));
    let access = first.body["access_token"].as_str().unwrap();
    for part in access.split('.').take(2) {
        let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part)
            .unwrap();
        let decoded = String::from_utf8_lossy(&decoded);
        assert!(
            !decoded.contains(STUB_SESSION_KEY) && !decoded.contains("session_key"),
            "{decoded}"
        );
    }
    let me = support::get_auth(&api.url("/users/me"), access).await;
    assert!(!me.text.contains(STUB_SESSION_KEY));
    assert!(
        !api.logs().contains(STUB_SESSION_KEY),
        "session_key reached the logs"
    );
    assert!(
        !api.logs().contains(STUB_SECRET),
        "the AppSecret reached the logs"
    );
    assert_eq!(stub.calls.lock().unwrap().len(), 3);
}

#[tokio::test]
async fn each_wechat_errcode_gets_its_own_stable_answer() {
    let base = start_wechat_stub(WechatStub::default()).await;
    let (api, _data) = api_against(&base, &[]).await;
    let cases = [
        ("err40029", 400, "WECHAT_CODE_INVALID"),
        ("err40163", 400, "WECHAT_CODE_USED"),
        ("err45011", 429, "WECHAT_RATE_LIMITED"),
        ("err40226", 403, "WECHAT_USER_BLOCKED"),
        ("err-1", 503, "WECHAT_BUSY"),
        ("err99999", 502, "WECHAT_ERROR"),
        ("slow", 504, "WECHAT_TIMEOUT"),
    ];
    for (code, status, stable) in cases {
        let answer = post_json(&api.url("/auth/wechat"), json!({ "code": code })).await;
        assert_eq!(
            (answer.status, answer.code()),
            (status, stable),
            "code {code}: {}",
            answer.text
        );
        assert!(answer.body["error"]["message"].is_string());
    }
    let retry = post_json(&api.url("/auth/wechat"), json!({ "code": "err45011" })).await;
    assert!(retry.header("retry-after").is_some());
    let empty = post_json(&api.url("/auth/wechat"), json!({ "code": "" })).await;
    assert_eq!((empty.status, empty.code()), (400, "INVALID_CODE"));
}

#[tokio::test]
async fn an_unreachable_or_unconfigured_wechat_is_a_clear_5xx() {
    let port = avalon_testkit::free_port();
    let (api, _data) = api_against(&format!("http://127.0.0.1:{port}"), &[]).await;
    let answer = post_json(&api.url("/auth/wechat"), json!({ "code": "alice" })).await;
    assert_eq!((answer.status, answer.code()), (502, "WECHAT_UNREACHABLE"));
    assert!(!answer.text.contains(STUB_SECRET));

    let data = tempfile::tempdir().unwrap();
    let bare = Api::start(data.path(), &[]).await;
    let answer = post_json(&bare.url("/auth/wechat"), json!({ "code": "alice" })).await;
    assert_eq!(
        (answer.status, answer.code()),
        (503, "WECHAT_NOT_CONFIGURED")
    );
}

#[tokio::test]
async fn nicknames_go_through_msg_sec_check_when_configured() {
    let stub = WechatStub::default();
    stub.risky_words.lock().unwrap().push("badword".to_owned());
    let base = start_wechat_stub(stub.clone()).await;
    let (api, _data) = api_against(&base, &[("WECHAT_MSG_SEC_CHECK", "true")]).await;
    let session = post_json(&api.url("/auth/wechat"), json!({ "code": "carol" })).await;
    let token = session.body["access_token"].as_str().unwrap();
    let rename = |nickname: &str| {
        let request = client()
            .patch(api.url("/users/me"))
            .bearer_auth(token)
            .json(&json!({ "nickname": nickname }));
        async move { support::Answer::of(request.send().await.unwrap()).await }
    };
    let refused = rename("a badword here").await;
    assert_eq!((refused.status, refused.code()), (422, "NICKNAME_REJECTED"));
    let accepted = rename("Guinevere").await;
    assert_eq!(accepted.status, 200, "{}", accepted.text);
    assert_eq!(accepted.body["nickname"], "Guinevere");
    let calls = stub.calls.lock().unwrap().clone();
    // The stable token is fetched once and reused.
    assert_eq!(
        calls.iter().filter(|call| *call == "stable_token").count(),
        1,
        "{calls:?}"
    );
    assert_eq!(
        calls.iter().filter(|call| *call == "msg_sec_check").count(),
        2,
        "{calls:?}"
    );
}
