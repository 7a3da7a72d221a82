//! The OpenAPI document and docs/api.md stay true to the routes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::{Api, client};

#[tokio::test]
async fn openapi_document_lists_exactly_the_served_routes_and_docs_name_them() {
    let data = tempfile::tempdir().unwrap();
    let api = Api::start(data.path(), &[]).await;
    let document: serde_json::Value = client()
        .get(api.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(document["openapi"], "3.1.0");
    let docs =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/api.md")).unwrap();
    let mut documented = 0;
    for (path, operations) in document["paths"].as_object().unwrap() {
        for (method, operation) in operations.as_object().unwrap() {
            documented += 1;
            assert!(
                operation["responses"]
                    .as_object()
                    .is_some_and(|r| !r.is_empty())
            );
            // Served: an unknown route answers NOT_FOUND / METHOD_NOT_ALLOWED, a real one anything else.
            let url = format!("{}{}", api.base, path.replace("{id}", "some-id"));
            let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let response = client().request(method.clone(), &url).send().await.unwrap();
            let status = response.status().as_u16();
            let body: serde_json::Value = response.json().await.unwrap_or_default();
            let code = body["error"]["code"].as_str().unwrap_or("");
            let dev_login_off = path.ends_with("/auth/dev-login");
            assert!(
                status != 405 && (code != "NOT_FOUND" || dev_login_off),
                "{method} {path} is documented but not served ({status} {code})"
            );
            let heading = format!("{method} {path}");
            assert!(
                docs.contains(&heading),
                "docs/api.md does not describe `{heading}`"
            );
        }
    }
    assert_eq!(documented, avalon_api::routes::table().len());
}
