//! What the smoke asks of the cluster through the Ingress, and how an answer is judged (pure): the
//! `/health` alias answers 200 with its readiness report, a Socket.IO polling handshake opens a session,
//! the ops endpoints stay inside the cluster, and plain HTTP is sent to HTTPS.

use serde_json::Value;

/// One request through the Ingress and what its answer must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// `GET /health` over HTTPS: 200 and a JSON readiness report whose status is `ok`.
    Health,
    /// `GET /socket.io/?EIO=4&transport=polling` over HTTPS: 200 and an Engine.IO open packet
    /// (`0{"sid":…}`).
    Handshake,
    /// An ops path (`/metrics`, `/livez`, `/readyz`) over HTTPS: anything but the service's answer.
    NotPublic(&'static str),
    /// `GET /health` over plain HTTP: a redirect to HTTPS (the Ingress has TLS).
    RedirectsToHttps,
}

pub const HANDSHAKE_PATH: &str = "/socket.io/?EIO=4&transport=polling";
pub const OPS_PATHS: [&str; 3] = ["/metrics", "/livez", "/readyz"];

impl Check {
    /// Every check, in the order they run: `/health` first, because it is also the wait for the
    /// ingress controller to have picked up the Ingress.
    pub fn all() -> Vec<Check> {
        let mut checks = vec![Check::Health, Check::Handshake];
        checks.extend(OPS_PATHS.into_iter().map(Check::NotPublic));
        checks.push(Check::RedirectsToHttps);
        checks
    }

    pub fn path(self) -> &'static str {
        match self {
            Check::Health | Check::RedirectsToHttps => "/health",
            Check::Handshake => HANDSHAKE_PATH,
            Check::NotPublic(path) => path,
        }
    }

    pub fn https(self) -> bool {
        !matches!(self, Check::RedirectsToHttps)
    }

    pub fn describe(self) -> String {
        match self {
            Check::Health => "GET /health through the Ingress is 200".to_owned(),
            Check::Handshake => {
                "a Socket.IO polling handshake through the Ingress opens a session".to_owned()
            }
            Check::NotPublic(path) => format!("{path} is not reachable through the Ingress"),
            Check::RedirectsToHttps => "plain HTTP is redirected to HTTPS".to_owned(),
        }
    }

    /// Ok with what was seen, or Err with why not.
    pub fn judge(self, status: u16, body: &str) -> Result<String, String> {
        match self {
            Check::Health => {
                if status != 200 {
                    return Err(format!("status {status}: {}", excerpt(body)));
                }
                let report: Value = serde_json::from_str(body)
                    .map_err(|_| format!("200 but not JSON: {}", excerpt(body)))?;
                match report["status"].as_str() {
                    Some("ok") => Ok(format!(
                        "200, status ok, checks {}",
                        report["checks"]
                            .as_object()
                            .map(|checks| checks.keys().cloned().collect::<Vec<_>>().join(", "))
                            .unwrap_or_default()
                    )),
                    other => Err(format!("200 but status {other:?}: {}", excerpt(body))),
                }
            }
            Check::Handshake => {
                if status != 200 {
                    return Err(format!("status {status}: {}", excerpt(body)));
                }
                open_packet_sid(body)
                    .map(|sid| format!("200, open packet, sid {sid}"))
                    .ok_or_else(|| format!("200 but no open packet: {}", excerpt(body)))
            }
            Check::NotPublic(path) => {
                // Prometheus text or a probe's JSON means the service answered: the path is public.
                let served = body.contains("# TYPE") || body.contains("\"uptime_seconds\"");
                if status == 200 || served {
                    Err(format!(
                        "{path} answered {status} through the Ingress: {}",
                        excerpt(body)
                    ))
                } else {
                    Ok(format!("{status}"))
                }
            }
            Check::RedirectsToHttps => {
                if matches!(status, 301 | 302 | 307 | 308) {
                    Ok(format!("{status}"))
                } else {
                    Err(format!(
                        "status {status}, not a redirect: {}",
                        excerpt(body)
                    ))
                }
            }
        }
    }
}

/// The session id of an Engine.IO v4 open packet: `0` followed by JSON with a non-empty `sid`.
pub fn open_packet_sid(body: &str) -> Option<String> {
    let json = body.trim().strip_prefix('0')?;
    let open: Value = serde_json::from_str(json).ok()?;
    open["sid"]
        .as_str()
        .filter(|sid| !sid.is_empty())
        .map(str::to_owned)
}

/// curl's output with `--write-out '\n%{http_code}'`: the body and the status code.
pub fn split_status(output: &str) -> Option<(u16, &str)> {
    let (body, code) = output.rsplit_once('\n')?;
    let status = code.trim().parse().ok()?;
    Some((status, body))
}

fn excerpt(body: &str) -> String {
    let flat: String = body.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() > 200 {
        format!("{}…", flat.chars().take(200).collect::<String>())
    } else {
        flat
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn health_needs_200_and_a_ready_report() {
        let ok = r#"{"status":"ok","service":"avalon-api","checks":{"mongodb":{"ok":true},"redis":{"ok":true}}}"#;
        assert_eq!(
            Check::Health.judge(200, ok).unwrap(),
            "200, status ok, checks mongodb, redis"
        );
        assert!(Check::Health.judge(503, ok).is_err());
        assert!(
            Check::Health
                .judge(200, r#"{"status":"degraded"}"#)
                .is_err()
        );
        assert!(Check::Health.judge(200, "<html>").is_err());
    }

    #[test]
    fn a_handshake_is_an_open_packet_with_a_session_id() {
        let open = r#"0{"sid":"lv_VI97HAXpY6yYWAAAC","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}"#;
        assert_eq!(
            Check::Handshake.judge(200, open).unwrap(),
            "200, open packet, sid lv_VI97HAXpY6yYWAAAC"
        );
        assert!(Check::Handshake.judge(200, r#"0{"sid":""}"#).is_err());
        assert!(Check::Handshake.judge(200, r#"4{"sid":"x"}"#).is_err());
        assert!(Check::Handshake.judge(502, "").is_err());
    }

    #[test]
    fn an_ops_path_passes_only_when_the_service_did_not_answer() {
        let metrics = Check::NotPublic("/metrics");
        assert_eq!(
            metrics.judge(404, "<html>404 Not Found</html>").unwrap(),
            "404"
        );
        assert!(metrics.judge(200, "# TYPE http_requests counter").is_err());
        assert!(
            metrics.judge(503, "# HELP x\n# TYPE x gauge\nx 1").is_err(),
            "the exporter's text with any status is the service answering"
        );
        assert!(
            Check::NotPublic("/livez")
                .judge(200, r#"{"status":"ok","uptime_seconds":3}"#)
                .is_err()
        );
    }

    #[test]
    fn plain_http_must_redirect() {
        assert_eq!(Check::RedirectsToHttps.judge(308, "").unwrap(), "308");
        assert!(Check::RedirectsToHttps.judge(200, "{}").is_err());
    }

    #[test]
    fn health_runs_first_and_every_ops_path_is_checked() {
        let all = Check::all();
        assert_eq!(all[0], Check::Health);
        for path in ["/metrics", "/livez", "/readyz"] {
            assert!(all.contains(&Check::NotPublic(path)), "{path}");
        }
        assert!(!Check::RedirectsToHttps.https());
    }

    #[test]
    fn curl_output_splits_into_body_and_status() {
        assert_eq!(split_status("{\"a\":1}\n200"), Some((200, "{\"a\":1}")));
        assert_eq!(split_status("line\nbody\n404"), Some((404, "line\nbody")));
        assert_eq!(split_status("\n000"), Some((0, "")));
        assert_eq!(split_status("no status"), None);
    }
}
