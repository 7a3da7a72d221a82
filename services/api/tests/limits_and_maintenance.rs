//! Rate limits shared by two API instances through one real redis-server, trusted-proxy client IPs, and
//! maintenance mode from the configuration and from Redis, and the deliberate faults of FAULT_INJECT_5XX_RATE.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use redis::AsyncCommands;
use serde_json::json;
use support::{Answer, Api, Redis, borrowed, client, dev_login, get_auth};

async fn get(url: &str, forwarded_for: Option<&str>) -> Answer {
    let mut request = client().get(url);
    if let Some(ip) = forwarded_for {
        request = request.header("x-forwarded-for", ip);
    }
    Answer::of(request.send().await.unwrap()).await
}

#[tokio::test]
async fn rate_limits_hold_across_two_instances_sharing_redis() {
    let Some(redis) = Redis::start() else { return };
    let mut env = redis.env();
    env.push(("RATE_LIMIT_IP", "6".to_owned()));
    env.push(("RATE_LIMIT_USER", "4".to_owned()));
    env.push(("DEV_LOGIN", "true".to_owned()));
    env.push(("TRUSTED_PROXIES", "127.0.0.1".to_owned()));
    let data_a = tempfile::tempdir().unwrap();
    let data_b = tempfile::tempdir().unwrap();
    let a = Api::start(data_a.path(), &borrowed(&env)).await;
    let b = Api::start(data_b.path(), &borrowed(&env)).await;

    // Per IP: six requests in all, alternating instances, then both refuse.
    let url = |api: &Api| api.url("/openapi.json");
    let mut statuses = Vec::new();
    for round in 0..4 {
        statuses.push(get(&url(&a), Some("198.51.100.1")).await.status);
        statuses.push(get(&url(&b), Some("198.51.100.1")).await.status);
        assert!(round < 4);
    }
    assert_eq!(statuses, [200, 200, 200, 200, 200, 200, 429, 429]);
    let refused = get(&url(&a), Some("198.51.100.1")).await;
    assert_eq!(refused.code(), "RATE_LIMITED");
    let retry_after: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry_after));
    assert_eq!(refused.header("ratelimit-limit").as_deref(), Some("6"));
    assert_eq!(refused.header("ratelimit-remaining").as_deref(), Some("0"));
    // Another client behind the same trusted proxy has its own budget.
    let other = get(&url(&b), Some("198.51.100.2")).await;
    assert_eq!(other.status, 200);
    assert_eq!(other.header("ratelimit-remaining").as_deref(), Some("5"));

    // Per user: four requests across both instances, from different IPs. (`/realtime` needs no user record,
    // which lives in each instance's own embedded store here.)
    let session = dev_login(&a, "galahad").await;
    let token = session["access_token"].as_str().unwrap();
    let mut statuses = Vec::new();
    for (i, api) in [&a, &b, &a, &b, &a].into_iter().enumerate() {
        let answer = Answer::of(
            client()
                .get(api.url("/realtime"))
                .bearer_auth(token)
                .header("x-forwarded-for", format!("203.0.113.{}", 10 + i))
                .send()
                .await
                .unwrap(),
        )
        .await;
        statuses.push(answer.status);
    }
    assert_eq!(statuses, [200, 200, 200, 200, 429]);
}

#[tokio::test]
async fn forwarded_for_from_an_untrusted_peer_is_ignored() {
    let data = tempfile::tempdir().unwrap();
    let api = Api::start(data.path(), &[("RATE_LIMIT_IP", "2")]).await;
    let url = api.url("/openapi.json");
    assert_eq!(get(&url, Some("198.51.100.1")).await.status, 200);
    assert_eq!(get(&url, Some("198.51.100.2")).await.status, 200);
    // Spoofing a new X-Forwarded-For each time does not buy a new budget.
    let third = get(&url, Some("198.51.100.3")).await;
    assert_eq!((third.status, third.code()), (429, "RATE_LIMITED"));
    // Health endpoints are never limited.
    assert_eq!(get(&format!("{}/livez", api.base), None).await.status, 200);
}

#[tokio::test]
async fn maintenance_from_config_answers_503_except_for_admins() {
    let data = tempfile::tempdir().unwrap();
    let seed = Api::start(data.path(), &[("DEV_LOGIN", "true")]).await;
    let admin = dev_login(&seed, "admin").await;
    let admin_id = admin["user"]["id"].as_str().unwrap().to_owned();
    let admin_token = admin["access_token"].as_str().unwrap().to_owned();
    let player = dev_login(&seed, "player").await;
    let player_token = player["access_token"].as_str().unwrap().to_owned();
    drop(seed);

    let allow = format!("user:{admin_id},192.0.2.0/24");
    let api = Api::start(
        data.path(),
        &[
            ("DEV_LOGIN", "true"),
            ("MAINTENANCE_MODE", "true"),
            ("MAINTENANCE_MESSAGE", "Back at noon"),
            ("ADMIN_ALLOWLIST", &allow),
            ("TRUSTED_PROXIES", "127.0.0.1/32"),
        ],
    )
    .await;
    let refused = get_auth(&api.url("/users/me"), &player_token).await;
    assert_eq!((refused.status, refused.code()), (503, "MAINTENANCE"));
    assert_eq!(refused.body["error"]["message"], "Back at noon");
    assert!(
        refused
            .header("retry-after")
            .unwrap()
            .parse::<u64>()
            .unwrap()
            > 0
    );
    let anonymous = get(&api.url("/openapi.json"), None).await;
    assert_eq!(anonymous.status, 503);
    assert_eq!(
        get_auth(&api.url("/users/me"), &admin_token).await.status,
        200
    );
    assert_eq!(
        get(&api.url("/openapi.json"), Some("192.0.2.7"))
            .await
            .status,
        200
    );
    for probe in ["/livez", "/readyz", "/health"] {
        assert_eq!(
            get(&format!("{}{probe}", api.base), None).await.status,
            200,
            "{probe}"
        );
    }
}

#[tokio::test]
async fn maintenance_flag_in_redis_reaches_every_instance() {
    let Some(redis) = Redis::start() else { return };
    let env = redis.env();
    let (data_a, data_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = Api::start(data_a.path(), &borrowed(&env)).await;
    let b = Api::start(data_b.path(), &borrowed(&env)).await;
    let mut connection = redis.connection().await;
    let flag = json!({ "enabled": true, "message": "Upgrading", "retry_after": 42 }).to_string();
    let () = connection.set("avalon:maintenance", flag).await.unwrap();

    for api in [&a, &b] {
        let mut answer = get(&api.url("/openapi.json"), None).await;
        for _ in 0..50 {
            if answer.status == 503 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            answer = get(&api.url("/openapi.json"), None).await;
        }
        assert_eq!((answer.status, answer.code()), (503, "MAINTENANCE"));
        assert_eq!(answer.body["error"]["message"], "Upgrading");
        assert_eq!(answer.header("retry-after").as_deref(), Some("42"));
        assert_eq!(get(&format!("{}/readyz", api.base), None).await.status, 200);
    }

    let () = connection.del("avalon:maintenance").await.unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    for api in [&a, &b] {
        let mut answer = get(&api.url("/openapi.json"), None).await;
        for _ in 0..30 {
            if answer.status == 200 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            answer = get(&api.url("/openapi.json"), None).await;
        }
        assert_eq!(answer.status, 200);
    }
}

#[tokio::test]
async fn fault_injection_answers_its_share_with_500_and_leaves_health_alone() {
    let data = tempfile::tempdir().unwrap();
    let always = Api::start(data.path(), &[("FAULT_INJECT_5XX_RATE", "1")]).await;
    let broken = get(&always.url("/openapi.json"), None).await;
    assert_eq!((broken.status, broken.code()), (500, "FAULT_INJECTED"));
    // The instance must still look healthy, or the canary would never get the traffic that exposes it.
    for probe in ["/livez", "/readyz", "/health"] {
        assert_eq!(
            get(&format!("{}{probe}", always.base), None).await.status,
            200,
            "{probe}"
        );
    }
    drop(always);

    let half = Api::start(
        data.path(),
        &[
            ("FAULT_INJECT_5XX_RATE", "0.5"),
            ("RATE_LIMIT_IP", "100000"),
        ],
    )
    .await;
    let mut failed = 0;
    for _ in 0..200 {
        let answer = get(&half.url("/openapi.json"), None).await;
        match answer.status {
            500 => failed += 1,
            200 => {}
            other => panic!("unexpected {other}: {:?}", answer.body),
        }
    }
    // Binomial(200, 0.5): the standard deviation is about 7, so 50..=150 fails only for a broken gate.
    assert!((50..=150).contains(&failed), "{failed} of 200 answered 500");
}
