//! Replays AdmissionReview bodies recorded from a real kube-apiserver (tests/fixtures/apiserver,
//! written by `FG_RECORD_FIXTURES=1 cargo test --test e2e`) against the server over HTTPS: the
//! exact bytes the API server sends, answered as the e2e suite saw them answered.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use common::{Server, apply_response_patch};
use serde_json::Value;

/// What each recorded request must get: (file, allowed, patched, text in the message or warning).
const EXPECTED: &[(&str, bool, bool, &str)] = &[
    ("0000-mutate.json", true, true, ""),
    ("0001-validate.json", true, false, ""),
    ("0002-mutate.json", true, false, ""),
    (
        "0003-validate.json",
        false,
        false,
        "FG103 DestinationRule bookinfo/ratings: ",
    ),
    ("0004-mutate.json", true, true, ""),
    (
        "0005-validate.json",
        false,
        false,
        "FG209 ServiceEntry bookinfo/reviews-failover: ",
    ),
    ("0006-mutate.json", true, true, ""),
    ("0008-mutate.json", true, false, ""),
    (
        "0009-validate.json",
        true,
        false,
        "FG102 DestinationRule bookinfo/productpage",
    ),
    ("0010-mutate.json", true, true, ""),
    ("0011-validate.json", true, false, ""),
    (
        "0013-validate.json",
        false,
        false,
        "FG103 DestinationRule bookinfo/reviews: ",
    ),
];

#[test]
fn recorded_api_server_requests() {
    let server = Server::start(None, &[]);
    let dir = common::repo_path("tests/fixtures/apiserver");
    for (file, allowed, patched, needle) in EXPECTED {
        let body = std::fs::read(dir.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        let request: Value = serde_json::from_slice(&body).unwrap();
        let path = if file.contains("mutate") {
            "/mutate"
        } else {
            "/validate"
        };
        let (status, text) = server.post(path, &body);
        assert_eq!(status, 200, "{file}: {text}");
        let answer: Value = serde_json::from_str(&text).unwrap();
        let response = &answer["response"];
        assert_eq!(response["uid"], request["request"]["uid"], "{file}");
        assert_eq!(response["allowed"], *allowed, "{file}: {response}");
        assert_eq!(
            response.get("patch").is_some(),
            *patched,
            "{file}: {response}"
        );
        if !needle.is_empty() {
            let said = format!("{} {}", response["status"]["message"], response["warnings"]);
            assert!(said.contains(needle), "{file}: {said}");
        }
        if *patched {
            let object = &request["request"]["object"];
            let result = apply_response_patch(object, &answer);
            assert!(
                result["metadata"]["annotations"]["failover-guard.io/mutated"].is_string(),
                "{file}"
            );
        }
    }
}
