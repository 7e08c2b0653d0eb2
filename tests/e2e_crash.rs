//! Crash safety: kill -9 during a stream of attestations, restart on the same data. The audit
//! chain verifies, every token a client received is in the audit log, no used nonce can be
//! used again, and revocations hold. Also: SIGTERM shuts down cleanly, and an edited audit
//! database is caught by `attest-broker admin audit verify`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "support/mod.rs"]
mod support;

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use attest_broker::client::{Body, Client};
use serde_json::{json, Value};
use support::{policy_for, Broker};

fn audit_verify(broker: &Broker) -> (i32, Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_attest-broker"))
        .args(["admin", "--broker", &broker.url, "--credential-file"])
        .arg(broker.data.join("admin-credential"))
        .args(["audit", "verify"])
        .output()
        .unwrap();
    let json = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!(
            "stdout {:?} stderr {:?}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap(), json)
}

#[test]
fn kill_9_during_attestations_loses_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let log = tmp.path().join("broker.log");
    let mut broker = Broker::start_in(&data, log);
    let host = broker.host();
    let secret = broker.enroll("acme", "snp-agents", policy_for(&host), "agent-1");

    // A revocation made before the crash.
    let client = broker.client();
    let revoked = host.attest(&client, &secret).unwrap();
    broker.admin(
        "POST",
        "/v1/revoke",
        Body::Form(vec![("token".into(), revoked.token.clone())]),
    );

    // Two clients attest in a loop; we kill the broker under them.
    let received: Arc<Mutex<Vec<String>>> = Arc::default();
    let used_nonces: Arc<Mutex<Vec<Value>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..2)
        .map(|_| {
            let (received, used_nonces, stop) =
                (received.clone(), used_nonces.clone(), stop.clone());
            let host = broker.host();
            let client = Client::new(&broker.url);
            let secret = secret.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let Ok(nonce) = host.challenge(&client) else {
                        break;
                    };
                    let body = host.attest_body(&nonce).unwrap();
                    match host.post_attest(&client, &secret, body.clone()) {
                        Ok(reply) if reply.ok() => {
                            received
                                .lock()
                                .unwrap()
                                .push(reply.body["access_token"].as_str().unwrap().to_string());
                            used_nonces.lock().unwrap().push(body);
                        }
                        _ => break,
                    }
                }
            })
        })
        .collect();
    while received.lock().unwrap().len() < 20 {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    broker.kill9();
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    let received = received.lock().unwrap().clone();
    assert!(received.len() >= 20);

    // Restart on the same data directory and address.
    let broker = broker.restart();
    let (status, verdict) = audit_verify(&broker);
    assert_eq!(status, 0, "{verdict}");
    assert_eq!(verdict["valid"], true);

    // Every token a client received is in the audit log (by jti).
    let audit = broker
        .admin("GET", "/v1/admin/audit?limit=10000", Body::Empty)
        .to_string();
    for token in &received {
        let jti = jsonwebtoken::dangerous::insecure_decode::<Value>(token)
            .unwrap()
            .claims["jti"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(
            audit.contains(&jti),
            "token {jti} was handed out but is not in the audit log"
        );
        let active = broker.admin(
            "POST",
            "/v1/introspect",
            Body::Form(vec![("token".into(), token.clone())]),
        );
        assert_eq!(active["active"], true, "issued tokens survive the crash");
    }
    // No nonce can be used again.
    let client = broker.client();
    let body = used_nonces.lock().unwrap().last().cloned().unwrap();
    let reply = host.post_attest(&client, &secret, body).unwrap();
    assert_eq!((reply.status, reply.code()), (409, Some("nonce.replayed")));
    // The revocation holds.
    let r = broker.admin(
        "POST",
        "/v1/introspect",
        Body::Form(vec![("token".into(), revoked.token.clone())]),
    );
    assert_eq!(r, json!({"active": false}));
    // And the broker works as before.
    host.attest(&client, &secret).unwrap();
}

#[test]
fn sigterm_stops_cleanly_and_an_edited_audit_log_is_caught() {
    let mut broker = Broker::start();
    let host = broker.host();
    let secret = broker.enroll("acme", "snp-agents", policy_for(&host), "agent-1");
    host.attest(&broker.client(), &secret).unwrap();
    let (status, verdict) = audit_verify(&broker);
    assert_eq!((status, verdict["valid"].clone()), (0, json!(true)));
    let entries = verdict["entries"].as_u64().unwrap();
    assert!(entries >= 5);

    let status = broker.terminate();
    assert!(status.success(), "SIGTERM exit: {status:?}");

    // Edit one audit row behind the broker's back, then restart and verify.
    let db = rusqlite::Connection::open(broker.data.join("broker.db")).unwrap();
    db.execute(
        "UPDATE audit SET subject = 'someone-else' WHERE seq = 3",
        [],
    )
    .unwrap();
    drop(db);
    let broker = broker.restart();
    let (status, verdict) = audit_verify(&broker);
    assert_eq!(status, 1, "{verdict}");
    assert_eq!(verdict["valid"], false);
    assert!(
        verdict["error"].as_str().unwrap().contains("entry 3"),
        "{verdict}"
    );

    // Removing an entry is caught too (edited while the broker is stopped, as an attacker with
    // the file would).
    let mut broker = broker;
    assert!(broker.terminate().success());
    let db = rusqlite::Connection::open(broker.data.join("broker.db")).unwrap();
    db.execute(
        "UPDATE audit SET subject = (SELECT subject FROM audit WHERE seq = 2) WHERE seq = 3",
        [],
    )
    .unwrap();
    db.execute("DELETE FROM audit WHERE seq = 4", []).unwrap();
    drop(db);
    let broker = broker.restart();
    let (status, verdict) = audit_verify(&broker);
    assert_eq!(
        (status, verdict["valid"].clone()),
        (1, json!(false)),
        "{verdict}"
    );
}
