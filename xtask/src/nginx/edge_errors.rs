//! The answers nginx gives by itself (no upstream involved), in the API's one error shape
//! `{"error":{"code","message","request_id"}}`, so a client parses an edge 413 or 502 exactly as it parses
//! the API's own errors. Each becomes an internal location that `error_page` redirects to; the location
//! answers with `return 200 '<body>'`, and nginx keeps the original status of an error_page redirect
//! (403 is the exception, answered as 404 so internal paths are not confirmed to exist).

use serde::Serialize;

use super::model::EdgeModel;

/// One internal error location: `/_edge/<name>.json`.
#[derive(Debug, Clone, Serialize)]
pub struct EdgeError {
    pub name: &'static str,
    /// The statuses `error_page` sends here, e.g. `502 504`.
    pub statuses: &'static str,
    /// `=404` rewrites the status (used for 403); empty keeps it.
    pub rewrite: &'static str,
    /// Sent as `Retry-After`, when set.
    pub retry_after: Option<u32>,
    /// The JSON body, escaped for a single-quoted nginx string; `$avalon_request_id` is interpolated.
    pub body: String,
}

/// Every status nginx may produce itself, with the API's code for it (docs/api.md).
pub fn edge_errors(model: &EdgeModel) -> Vec<EdgeError> {
    let plain = |name, statuses, rewrite, code: &str, message: &str| EdgeError {
        name,
        statuses,
        rewrite,
        retry_after: None,
        body: body(code, message, None),
    };
    vec![
        plain(
            "bad_request",
            "400",
            "",
            "BAD_REQUEST",
            "the request could not be read",
        ),
        plain("not_found", "404", "", "NOT_FOUND", "no such route"),
        plain("forbidden", "403", "=404", "NOT_FOUND", "no such route"),
        plain(
            "method_not_allowed",
            "405",
            "",
            "METHOD_NOT_ALLOWED",
            "method not allowed on this route",
        ),
        plain(
            "payload_too_large",
            "413",
            "",
            "PAYLOAD_TOO_LARGE",
            &format!("request body above {} bytes", model.api_body_limit),
        ),
        plain(
            "uri_too_long",
            "414",
            "",
            "URI_TOO_LONG",
            "request line too long",
        ),
        EdgeError {
            name: "rate_limited",
            statuses: "429",
            rewrite: "",
            retry_after: Some(model.rate_limits.api_retry_after),
            body: body(
                "RATE_LIMITED",
                "too many requests; slow down",
                Some(model.rate_limits.api_retry_after),
            ),
        },
        plain(
            "internal",
            "500",
            "",
            "INTERNAL",
            "the edge failed to answer; please retry",
        ),
        plain(
            "unavailable",
            "502 504",
            "",
            "UPSTREAM_UNAVAILABLE",
            "the service is temporarily unavailable; please retry",
        ),
        EdgeError {
            name: "maintenance",
            statuses: "503",
            rewrite: "",
            retry_after: Some(model.maintenance.retry_after),
            body: body(
                "MAINTENANCE",
                &model.maintenance.message,
                Some(model.maintenance.retry_after),
            ),
        },
    ]
}

/// The API's error body with the request id nginx passes upstream as `X-Request-ID`.
fn body(code: &str, message: &str, retry_after: Option<u32>) -> String {
    let message = serde_json::Value::from(message).to_string();
    let retry = retry_after
        .map(|seconds| format!(",\"retry_after\":{seconds}"))
        .unwrap_or_default();
    let json = format!(
        "{{\"error\":{{\"code\":\"{code}\",\"message\":{}{retry},\"request_id\":\"@REQUEST_ID@\"}}}}",
        json_without_dollar(&message)
    );
    nginx_single_quoted(&json).replace("@REQUEST_ID@", "$avalon_request_id")
}

/// `$` would start an nginx variable inside the string; `\u0024` is the same character to a JSON reader.
fn json_without_dollar(json: &str) -> String {
    json.replace('$', "\\u0024")
}

/// Inside `'…'` nginx unescapes `\\` and `\'`; everything else is literal.
fn nginx_single_quoted(text: &str) -> String {
    text.replace('\\', "\\\\").replace('\'', "\\'")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What nginx's parser makes of a single-quoted string (the two escapes it knows).
    fn as_nginx_reads(text: &str) -> String {
        let mut out = String::new();
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            if c == '\\' {
                match chars.next() {
                    Some(next @ ('\\' | '\'' | '"')) => out.push(next),
                    Some(other) => {
                        out.push('\\');
                        out.push(other);
                    }
                    None => out.push('\\'),
                }
            } else {
                out.push(c);
            }
        }
        out
    }

    #[test]
    fn bodies_are_the_api_error_shape_and_survive_hostile_messages() {
        let mut model = EdgeModel::default();
        model.maintenance.message = r#"Back at 5 $PM — it's "soon" \o/"#.to_owned();
        for error in edge_errors(&model) {
            let served = as_nginx_reads(&error.body).replace("$avalon_request_id", "abc123");
            assert!(!served.contains('$'), "{}: {served}", error.name);
            let json: serde_json::Value = serde_json::from_str(&served)
                .unwrap_or_else(|e| panic!("{}: {e}: {served}", error.name));
            assert_eq!(json["error"]["request_id"], "abc123");
            assert!(
                json["error"]["code"]
                    .as_str()
                    .is_some_and(|c| !c.is_empty())
            );
            if error.name == "maintenance" {
                assert_eq!(json["error"]["message"], model.maintenance.message);
                assert_eq!(json["error"]["retry_after"], model.maintenance.retry_after);
            }
        }
    }

    #[test]
    fn every_status_nginx_produces_has_exactly_one_page() {
        let errors = edge_errors(&EdgeModel::default());
        let mut statuses: Vec<&str> = errors
            .iter()
            .flat_map(|error| error.statuses.split(' '))
            .collect();
        statuses.sort_unstable();
        assert_eq!(
            statuses,
            [
                "400", "403", "404", "405", "413", "414", "429", "500", "502", "503", "504"
            ]
        );
    }
}
