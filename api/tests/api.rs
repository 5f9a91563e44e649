//! The API through its router (`tower::ServiceExt::oneshot`): authentication,
//! the permission table, input errors, and the ingest push.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use custos::accounts::{AccountStore, PasswordPolicy, SetBy};
use custos::auth::{Role, TokenStore};
use custos::pipeline::PipelineStats;
use custos::server::{AppState, Permission, Turns, permits, router};
use custos::views::{Stored, Views};
use http_body_util::BodyExt;
use ingest::bus::{Bus, EmbeddedBus, RAW, Subscriber};
use ingest::{Format, RawRecord};
use ledger::{Ledger, LedgerOptions, NoteSigner};
use serde_json::Value;
use tower::ServiceExt;

struct Fixture {
    app: axum::Router,
    views: Arc<Views>,
    ledger: Arc<Ledger>,
    tokens: HashMap<Role, String>,
    token_store: Arc<TokenStore>,
    accounts: Arc<AccountStore>,
    raw: Subscriber<RawRecord>,
    stats: Arc<PipelineStats>,
    follow: Arc<custos::follow::FollowState>,
    _follower: custos::follow::Follower,
    _dir: tempfile::TempDir,
}

async fn fixture() -> Fixture {
    fixture_with(LedgerOptions::default(), turns(2, 2, Turns::WAIT)).await
}

/// Turns as the server's defaults, but no free room asked of the disk the
/// tests run on (the room check has a test of its own).
fn turns(exports: usize, sql: usize, wait: std::time::Duration) -> Turns {
    Turns::new(exports, sql, wait).with_export_room(0)
}

async fn fixture_with(options: LedgerOptions, turns: Turns) -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let origin = "custos.test/ledger";
    let key = NoteSigner::generate(origin).expect("key").encode();
    let (ledger, _) = Ledger::open(&dir.path().join("ledger"), origin, NoteSigner::parse(&key).expect("key"), options)
        .expect("ledger");
    let views = Arc::new(Views::new(100, 3_600_000, correlate::AlarmPolicy::default()));
    let mut e = ingest::Event::new(ingest::event::EventClass::PhysicalAccess, 2, 1_000, 2_000, b"raw");
    e.zone = Some("cell-1".into());
    views.add_events([Stored { index: 1, item: Arc::new(e) }]);
    let tokens =
        Arc::new(TokenStore::open(dir.path().join("tokens.json")).expect("tokens").with_session_idle(30 * 60_000));
    let issued = Role::ALL.iter().map(|r| (*r, tokens.issue(&format!("{r:?}"), *r).expect("issue"))).collect();
    // Room for every sign-in event a test's logins and signatures put on the raw topic.
    let bus = EmbeddedBus::new(1024);
    let ledger = Arc::new(ledger);
    // The quality reviewer's token belongs to a person who can sign, with a
    // password of their own. Passwords last 90 days and may not repeat the last 3.
    let policy = PasswordPolicy { max_age_ms: 90 * DAY_MS, history: 3 };
    let accounts =
        Arc::new(AccountStore::open(dir.path().join("accounts.json")).expect("accounts").with_policy(policy));
    let (password, now) = ("correct horse battery", ingest::source::now_millis());
    accounts
        .set("QualityReviewer", "Quinn Adams", Role::QualityReviewer, password, SetBy::Holder, now)
        .expect("account");
    // The engine's side of reloads: this one refuses every rule set and
    // inventory (the pipeline's side has its own end-to-end test).
    let (reload, mut reloads) = custos::reload::Reloads::channel();
    tokio::spawn(async move {
        while let Some(r) = reloads.recv().await {
            let file = match r.what {
                custos::reload::Reload::Rules => "rules/bad.yml:3",
                custos::reload::Reload::Inventory => "inventory.toml",
            };
            let _ = r.reply.send(Err(vec![format!("{file}: refused for {}", r.by)]));
        }
    });
    // The engine's side of presence: a real engine that has seen badge events.
    let (on_site, mut asks) = custos::on_site::OnSiteAsks::channel();
    let engine = on_site_engine(ingest::source::now_millis());
    tokio::spawn(async move {
        while let Some(ask) = asks.recv().await {
            let answer = custos::on_site::OnSiteAnswer {
                people: engine.on_site(ask.at),
                unidentified: engine.unidentified_entries(ask.at),
                timeout_ms: 12 * 3_600_000,
                inventory: engine.inventory().clone(),
            };
            let _ = ask.reply.send(answer);
        }
    });
    // Search and SQL follow the ledger, publishing at once.
    let options = custos::follow::FollowOptions {
        search_commit: std::time::Duration::ZERO,
        archive_flush: std::time::Duration::ZERO,
        archive_rows: 1,
    };
    let derived = custos::follow::Derived::open(dir.path(), options).expect("views");
    let stats = Arc::new(PipelineStats::default());
    let searcher = derived.searcher();
    let follower = custos::follow::Follower::spawn(derived, ledger.clone()).expect("follower");
    let state = AppState::new(
        views.clone(),
        ledger.clone(),
        tokens.clone(),
        bus.publisher(RAW).expect("publisher"),
        [("badge".to_owned(), Format::BadgeJson)].into(),
        stats.clone(),
        reload,
    )
    .with_evidence(NoteSigner::parse(&key).expect("key"), dir.path().to_path_buf())
    .with_accounts(accounts.clone())
    .with_search(searcher, follower.state.clone(), custos::sql::SqlEngine::new(&dir.path().join("archive")))
    .with_turns(turns)
    .with_on_site(on_site);
    Fixture {
        follow: follower.state.clone(),
        _follower: follower,
        app: router(state, 1024),
        views,
        ledger,
        tokens: issued,
        token_store: tokens,
        accounts,
        raw: bus.subscriber(RAW).expect("subscriber"),
        stats,
        _dir: dir,
    }
}

/// A correlation engine that has seen, in the ten minutes before `now`:
/// Alice badge into the control room, Bob into the QC lab, and Carol into
/// the control room and out again.
fn on_site_engine(now: i64) -> correlate::Engine {
    // The plant of the parser fixtures: Alice 1001, Bob 2002, Carol 3003,
    // CR-DOOR-1 into control-room-1, LAB-DOOR into qc-lab.
    let inventory =
        ingest::Inventory::from_toml(include_str!("../../ingest/fixtures/inventory.toml")).expect("inventory");
    let inventory = Arc::new(inventory);
    let mut engine = correlate::Engine::new(inventory.clone(), correlate::EngineConfig::default());
    // And a tailgate the door's sensor detected into the control room, 3
    // minutes ago: someone no badge names.
    let badges = [
        (10, "1001", "CR-DOOR-1", "in", "granted"),
        (8, "2002", "LAB-DOOR", "in", "granted"),
        (6, "3003", "CR-DOOR-1", "in", "granted"),
        (4, "3003", "CR-DOOR-1", "out", "granted"),
        (3, "", "CR-DOOR-1", "in", "tailgate_detected"),
    ];
    for (index, (minutes, badge, door, direction, result)) in badges.into_iter().enumerate() {
        let at = ingest::time::format_rfc3339(now - minutes * 60_000);
        let line = format!(
            r#"{{"time":"{at}","badge":"{badge}","door":"{door}","result":"{result}","direction":"{direction}"}}"#
        );
        let raw = RawRecord::new("badge".into(), Format::BadgeJson, now, line.into_bytes());
        let ingest::Normalized::Event(e) = ingest::normalize(raw, &inventory, 0).record else {
            panic!("a badge event")
        };
        engine.on_event(index as u64, &e);
    }
    engine
}

/// A high-severity alert of rule `r` about `id` in cell-1.
fn alert(kind: correlate::EntityKind, id: &str) -> correlate::Alert {
    correlate::Alert {
        id: "r:1".into(),
        rule: "r".into(),
        title: "t".into(),
        severity_id: 4,
        attack: vec![],
        time: 0,
        entity: correlate::Entity { kind, id: id.into() },
        zone: Some("cell-1".into()),
        events: vec![1],
        summary: "s".into(),
    }
}

async fn call(app: &axum::Router, method: &str, uri: &str, token: Option<&str>, body: &str) -> (StatusCode, Value) {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let resp = app.clone().oneshot(req.body(Body::from(body.to_owned())).expect("request")).await.expect("response");
    let status = resp.status();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned())),
    )
}

#[tokio::test]
async fn health_is_open_everything_else_needs_a_token() {
    let f = fixture().await;
    assert_eq!(call(&f.app, "GET", "/healthz", None, "").await.0, StatusCode::OK);
    let (s, b) = call(&f.app, "GET", "/readyz", None, "").await;
    assert_eq!((s, b["status"].as_str()), (StatusCode::OK, Some("ready")), "a signed checkpoint exists: {b}");
    assert_eq!(b["ledger_size"], f.ledger.size());
    for uri in [
        "/api/v1/incidents",
        "/api/v1/incidents/INC-1",
        "/api/v1/events",
        "/api/v1/alerts",
        "/api/v1/dead-letters",
        "/api/v1/collectors",
        "/api/v1/ledger/checkpoint",
        "/api/v1/alarms",
        "/metrics",
    ] {
        let (status, body) = call(&f.app, "GET", uri, None, "").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{uri}");
        assert_eq!(body["error"]["code"], "unauthorized");
        assert_eq!(call(&f.app, "GET", uri, Some("cus_not_a_token"), "").await.0, StatusCode::UNAUTHORIZED, "{uri}");
    }
    assert_eq!(call(&f.app, "POST", "/api/v1/ingest/badge", None, "{}").await.0, StatusCode::UNAUTHORIZED);
}

/// Every documented operation × every role against the permission table: a
/// role the table permits gets past the check (whatever the handler then says
/// of the request), any other gets 403 `forbidden`. The walk names every
/// operation of the OpenAPI document, so a new route cannot be left out.
#[tokio::test]
async fn every_role_on_every_route_follows_the_permission_table() {
    use Permission::*;
    let f = fixture().await;
    let badge = r#"{"time":"2026-11-26T10:00:00Z","badge":"1","door":"D","result":"granted"}"#;
    let signature = r#"{"record_index":1,"meaning":"reviewed","reason":"walk","password":"correct horse battery"}"#;
    // `None`: any holder of a token.
    let routes: [(&str, &str, &str, Option<Permission>, &str); 35] = [
        ("GET", "/api/v1/incidents", "", Some(ReadIncidents), ""),
        ("GET", "/api/v1/incidents/{id}", "", Some(ReadIncidents), ""),
        ("GET", "/api/v1/incidents/{id}/timeline", "", Some(ReadIncidents), ""),
        ("POST", "/api/v1/incidents/{id}/transition", "", Some(HandleIncidents), r#"{"to":"closed","reason":"walk"}"#),
        ("POST", "/api/v1/incidents/{id}/notes", "", Some(HandleIncidents), r#"{"text":"walk"}"#),
        ("POST", "/api/v1/incidents/{id}/assign", "", Some(HandleIncidents), r#"{"assignee":null}"#),
        ("GET", "/api/v1/alerts", "", Some(ReadIncidents), ""),
        ("GET", "/api/v1/events", "", Some(ReadEvents), ""),
        ("GET", "/api/v1/dead-letters", "", Some(ReadEvents), ""),
        ("GET", "/api/v1/collectors", "", Some(ReadEvents), ""),
        ("GET", "/api/v1/presence", "", Some(ReadPresence), ""),
        ("GET", "/api/v1/search", "?q=badge", Some(ReadEvents), ""),
        ("POST", "/api/v1/query/sql", "", Some(ReadEvents), r#"{"sql": "SELECT 1 AS one"}"#),
        ("GET", "/api/v1/ledger/checkpoint", "", Some(ReadLedger), ""),
        ("GET", "/api/v1/ledger/records/{index}", "", Some(ReadLedger), ""),
        ("GET", "/api/v1/ledger/proof/consistency", "?old=1", Some(ReadLedger), ""),
        ("GET", "/api/v1/ledger/retention", "", Some(ReadLedger), ""),
        ("GET", "/api/v1/in-force", "", Some(ReadLedger), ""),
        (
            "POST",
            "/api/v1/ledger/retention",
            "",
            Some(SetRetention),
            r#"{"record_kind":"event","keep_days":3650,"reason":"walk"}"#,
        ),
        ("POST", "/api/v1/ledger/legal-holds", "", Some(PlaceLegalHold), r#"{"asset":"PLC-01","reason":"walk"}"#),
        ("POST", "/api/v1/signatures", "", Some(Sign), signature),
        (
            "POST",
            "/api/v1/audit-trail/reviews",
            "",
            Some(Sign),
            r#"{"from":"2026-11-26T10:00:00Z","to":"2026-11-26T11:00:00Z","reason":"walk","password":"x"}"#,
        ),
        (
            "POST",
            "/api/v1/evidence/exports",
            "",
            Some(ExportEvidence),
            r#"{"from":"2026-11-26T10:00:00Z","to":"2026-11-26T11:00:00Z"}"#,
        ),
        ("GET", "/metrics", "", Some(ReadMetrics), ""),
        ("POST", "/api/v1/ingest/{source}", "", Some(Ingest), badge),
        ("GET", "/api/v1/alarms", "", Some(HandleAlarms), ""),
        ("POST", "/api/v1/alarms/acknowledge", "", Some(HandleAlarms), r#"{"key":"r/PLC-01","reason":"walk"}"#),
        ("POST", "/api/v1/alarms/shelve", "", Some(HandleAlarms), r#"{"key":"r/PLC-01","reason":"walk","minutes":5}"#),
        ("POST", "/api/v1/alarms/unshelve", "", Some(HandleAlarms), r#"{"key":"r/PLC-01","reason":"walk"}"#),
        ("POST", "/api/v1/rules/reload", "", Some(ManageRules), ""),
        ("POST", "/api/v1/inventory/reload", "", Some(ManageInventory), ""),
        ("GET", "/api/v1/openapi.json", "", None, ""),
        ("POST", "/api/v1/logout", "", None, ""),
        (
            "POST",
            "/api/v1/password",
            "",
            None,
            r#"{"current_password":"not it at all","new_password":"a brand new one!"}"#,
        ),
        ("GET", "/api/v1/accounts", "", Some(ReviewAccess), ""),
    ];
    for role in Role::ALL {
        for (method, path, query, perm, body) in routes {
            let uri = path.replace("{id}", "INC-1").replace("{index}", "1").replace("{source}", "badge") + query;
            let (status, b) = call(&f.app, method, &uri, Some(&f.tokens[&role]), body).await;
            let code = b["error"]["code"].as_str();
            if perm.is_none_or(|p| permits(role, p)) {
                assert!(
                    !matches!(code, Some("unauthorized" | "forbidden")),
                    "{role:?} {method} {uri} got {status} {b}"
                );
            } else {
                assert_eq!((status, code), (StatusCode::FORBIDDEN, Some("forbidden")), "{role:?} {method} {uri}");
            }
        }
    }
    // Every operation is walked, but the three open ones.
    let doc = serde_json::to_value(custos::server::openapi()).expect("json");
    let mut documented: Vec<(String, String)> = doc["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(path, item)| item.as_object().expect("item").keys().map(|m| (m.to_uppercase(), path.clone())))
        .filter(|(_, path)| !["/healthz", "/readyz", "/api/v1/login"].contains(&path.as_str()))
        .collect();
    let mut walked: Vec<(String, String)> = routes.iter().map(|r| (r.0.to_owned(), r.1.to_owned())).collect();
    documented.sort();
    walked.sort();
    assert_eq!(walked, documented);
}

#[tokio::test]
async fn bad_input_gets_a_clear_4xx() {
    let f = fixture().await;
    let admin = Some(f.tokens[&Role::Admin].as_str());
    let (s, b) = call(&f.app, "GET", "/api/v1/events?limit=abc", admin, "").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(b["error"]["message"].as_str().unwrap_or("").contains("limit"), "{b}");
    assert_eq!(call(&f.app, "GET", "/api/v1/events?limit=0", admin, "").await.0, StatusCode::BAD_REQUEST);
    assert_eq!(call(&f.app, "GET", "/api/v1/events?limit=100000", admin, "").await.0, StatusCode::BAD_REQUEST);
    assert_eq!(call(&f.app, "GET", "/api/v1/events?colour=red", admin, "").await.0, StatusCode::BAD_REQUEST);
    assert_eq!(call(&f.app, "GET", "/api/v1/incidents/INC-404", admin, "").await.0, StatusCode::NOT_FOUND);
    assert_eq!(call(&f.app, "GET", "/api/v1/nope", admin, "").await.0, StatusCode::NOT_FOUND);
    assert_eq!(call(&f.app, "POST", "/api/v1/ingest/teleporter", admin, "{}").await.0, StatusCode::NOT_FOUND);
    assert_eq!(call(&f.app, "POST", "/api/v1/ingest/badge", admin, "  ").await.0, StatusCode::BAD_REQUEST);
    assert_eq!(call(&f.app, "POST", "/api/v1/ingest/badge", admin, "[1,").await.0, StatusCode::BAD_REQUEST);
    let big = "x".repeat(2048);
    assert_eq!(call(&f.app, "POST", "/api/v1/ingest/badge", admin, &big).await.0, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn events_filter_and_ingest_keeps_exact_bytes() {
    let mut f = fixture().await;
    let admin = Some(f.tokens[&Role::Admin].as_str());
    let (s, b) = call(&f.app, "GET", "/api/v1/events?zone=cell-1&limit=5", admin, "").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["events"][0]["ledger_index"], 1);
    assert_eq!(b["events"][0]["type_uid"], 900_102);
    let (_, b) = call(&f.app, "GET", "/api/v1/events?zone=elsewhere", admin, "").await;
    assert_eq!(b["events"].as_array().map(Vec::len), Some(0));

    let collector = Some(f.tokens[&Role::Collector].as_str());
    let (s, b) = call(&f.app, "POST", "/api/v1/ingest/badge", collector, "[{\"a\": 1}, {\"b\":2}]").await;
    assert_eq!((s, b["accepted"].as_u64()), (StatusCode::ACCEPTED, Some(2)));
    let got = f.raw.next().await.expect("batch").items;
    assert_eq!(
        got.iter().map(|r| r.bytes.clone()).collect::<Vec<_>>(),
        vec![b"{\"a\": 1}".to_vec(), b"{\"b\":2}".to_vec()]
    );
    let (s, _) = call(&f.app, "POST", "/api/v1/ingest/badge", collector, "{\"x\":1}\nnot json\n").await;
    assert_eq!(s, StatusCode::ACCEPTED, "lines that will not parse are accepted and dead-lettered downstream");
    assert_eq!(f.raw.next().await.expect("batch").items.len(), 2);
}

/// The control room sees, acknowledges and shelves alarms; each action is an
/// `audit` record; shelving needs a reason and an expiry.
#[tokio::test]
async fn alarms_acknowledge_and_shelve_are_audited() {
    let f = fixture().await;
    let alert = alert(correlate::EntityKind::Asset, "PLC-01");
    assert_eq!(f.views.alarms.lock().expect("board").raise(&alert, 0).len(), 1);
    let cr = Some(f.tokens[&Role::ControlRoom].as_str());
    let (s, b) = call(&f.app, "GET", "/api/v1/alarms", cr, "").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["alarms"][0]["alarm"]["key"], "r/PLC-01");
    assert_eq!(b["alarms"][0]["alarm"]["priority"], 2);
    for (uri, body, status) in [
        ("/api/v1/alarms/shelve", r#"{"key":"r/PLC-01","minutes":30}"#, StatusCode::BAD_REQUEST),
        ("/api/v1/alarms/shelve", r#"{"key":"r/PLC-01","reason":"x"}"#, StatusCode::BAD_REQUEST),
        ("/api/v1/alarms/shelve", r#"{"key":"r/PLC-01","reason":"x","minutes":5000}"#, StatusCode::BAD_REQUEST),
        ("/api/v1/alarms/shelve", r#"{"key":"r/PLC-01","reason":" ","minutes":30}"#, StatusCode::BAD_REQUEST),
        ("/api/v1/alarms/acknowledge", r#"{"key":"r/PLC-01","minutes":30}"#, StatusCode::BAD_REQUEST),
        ("/api/v1/alarms/acknowledge", r#"{"key":"nope"}"#, StatusCode::NOT_FOUND),
        ("/api/v1/alarms/acknowledge", r#"{"key":1}"#, StatusCode::BAD_REQUEST),
    ] {
        assert_eq!(call(&f.app, "POST", uri, cr, body).await.0, status, "{uri} {body}");
    }
    let before = f.ledger.size();
    let (s, b) = call(&f.app, "POST", "/api/v1/alarms/acknowledge", cr, r#"{"key":"r/PLC-01","reason":"seen"}"#).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["alarm"]["acknowledged"][0], "ControlRoom");
    let (s, b) = call(
        &f.app,
        "POST",
        "/api/v1/alarms/shelve",
        cr,
        r#"{"key":"r/PLC-01","reason":"PLC-01 under maintenance","minutes":60}"#,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["alarm"]["shelved"]["reason"], "PLC-01 under maintenance");
    assert_eq!(f.ledger.size(), before + 2, "two audit records");
    // A second acknowledgement is recorded as who did it; the board keeps the first.
    let soc = Some(f.tokens[&Role::SocAnalyst].as_str());
    let (s, b) =
        call(&f.app, "POST", "/api/v1/alarms/acknowledge", soc, r#"{"key":"r/PLC-01","reason":"me too"}"#).await;
    assert_eq!((s, &b["alarm"]["acknowledged"][0]), (StatusCode::OK, &Value::from("ControlRoom")), "{b}");
    let audit = last_audit(&f);
    assert_eq!((audit["actor"].as_str(), audit["action"].as_str()), (Some("SocAnalyst"), Some("alarm.acknowledge")));
    assert_eq!((audit["reason"].as_str(), audit["details"]["key"].as_str()), (Some("me too"), Some("r/PLC-01")));
    let auditor = Some(f.tokens[&Role::Auditor].as_str());
    let (s, _) = call(&f.app, "POST", "/api/v1/alarms/acknowledge", auditor, r#"{"key":"r/PLC-01"}"#).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(f.views.alarms.lock().expect("board").raise(&alert, 1).is_empty(), "shelved: not announced");
    // Back in service before the shelf runs out: a reason, and an audit record naming the shelf.
    for (body, status, code) in [
        (r#"{"key":"r/PLC-01"}"#, StatusCode::BAD_REQUEST, "bad_request"),
        (r#"{"key":"r/PLC-01","reason":"  "}"#, StatusCode::BAD_REQUEST, "bad_request"),
        (r#"{"key":"nope","reason":"x"}"#, StatusCode::NOT_FOUND, "not_found"),
    ] {
        let (s, b) = call(&f.app, "POST", "/api/v1/alarms/unshelve", cr, body).await;
        assert_eq!((s, b["error"]["code"].as_str()), (status, Some(code)), "{body}: {b}");
    }
    let back = r#"{"key":"r/PLC-01","reason":"maintenance finished early"}"#;
    let (s, b) = call(&f.app, "POST", "/api/v1/alarms/unshelve", cr, back).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert!(b["alarm"]["shelved"].is_null(), "{b}");
    assert_eq!(
        (&b["shelf"]["reason"], &b["shelf"]["by"]),
        (&Value::from("PLC-01 under maintenance"), &Value::from("ControlRoom"))
    );
    let audit = last_audit(&f);
    assert_eq!(
        (audit["action"].as_str(), audit["reason"].as_str()),
        (Some("alarm.unshelve"), Some("maintenance finished early"))
    );
    assert_eq!(audit["details"]["shelf"]["reason"], "PLC-01 under maintenance");
    assert_eq!(b["audit_index"].as_u64(), Some(f.ledger.size() - 1));
    let (s, b) = call(&f.app, "POST", "/api/v1/alarms/unshelve", cr, back).await;
    assert_eq!((s, b["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("not_shelved")), "{b}");
    assert_eq!(f.views.alarms.lock().expect("board").raise(&alert, 2).len(), 1, "announced again");
}

/// Only admins reload rules or the inventory; a refusal answers 422 with
/// every message.
#[tokio::test]
async fn reloads_are_admin_only_and_refusals_are_explained() {
    let f = fixture().await;
    for (uri, code, message) in [
        ("/api/v1/rules/reload", "bad_rules", "rules/bad.yml:3: refused for Admin"),
        ("/api/v1/inventory/reload", "bad_inventory", "inventory.toml: refused for Admin"),
    ] {
        for role in Role::ALL {
            let (s, b) = call(&f.app, "POST", uri, Some(&f.tokens[&role]), "").await;
            if role == Role::Admin {
                assert_eq!(
                    (s, &b["error"]["code"], &b["error"]["message"]),
                    (StatusCode::UNPROCESSABLE_ENTITY, &Value::from(code), &Value::from(message))
                );
            } else {
                assert_eq!(s, StatusCode::FORBIDDEN, "{role:?} {uri}");
            }
        }
    }
}

/// What was in force at a time comes from the ledger's in-force records
/// (here without `in-force.json`, so rebuilt from them): each file by
/// SHA-256 with its stating record, and the changes by then, newest first.
#[tokio::test]
async fn what_was_in_force_at_a_time() {
    let f = fixture().await;
    let audit = |at: i64, action: &str, details: Value| {
        let data =
            serde_json::json!({"action": action, "actor": "system", "reason": "found at start", "details": details});
        ledger::record::encode(ledger::RecordKind::Audit, at, &data).expect("record")
    };
    let inventory = |text: &str, was: Option<&str>| serde_json::json!({"path": "inventory.toml", "sha256": custos::in_force::sha256(text.as_bytes()), "was_sha256": was, "text": text});
    let base = 1_780_000_000_000;
    let first = f.ledger.size();
    f.ledger
        .append(vec![
            audit(base, "inventory.change", inventory("v1", None)),
            audit(base, "rules.change", serde_json::json!({"files": 1, "added": [{"path": "r/a.yml", "sha256": "aa", "text": "a"}], "changed": [], "removed": []})),
            audit(base + 60_000, "inventory.reload", {
                let mut d = inventory("v2", Some(&custos::in_force::sha256(b"v1")));
                d["changed"] = true.into();
                d
            }),
        ])
        .await
        .expect("append");
    let admin = Some(f.tokens[&Role::Admin].as_str());
    let at = |t: i64| format!("/api/v1/in-force?at={}", ingest::time::format_rfc3339(t).replace('+', "%2B"));
    let (s, b) = call(&f.app, "GET", &at(base + 30_000), admin, "").await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(
        (&b["inventory"]["sha256"], &b["inventory"]["record"]),
        (&Value::from(custos::in_force::sha256(b"v1")), &Value::from(first))
    );
    assert_eq!(b["rules"], serde_json::json!([{"path": "r/a.yml", "sha256": "aa", "record": first + 1}]));
    assert_eq!((&b["changes_total"], &b["changes"][0]["action"]), (&Value::from(2), &Value::from("rules.change")));
    assert!(b["inventory"].get("text").is_none(), "texts only when asked: {b}");
    let (_, with_text) = call(&f.app, "GET", &format!("{}&text=true", at(base + 30_000)), admin, "").await;
    assert_eq!(
        (&with_text["inventory"]["text"], &with_text["rules"][0]["text"]),
        (&Value::from("v1"), &Value::from("a"))
    );
    let (_, now) = call(&f.app, "GET", "/api/v1/in-force", admin, "").await;
    assert_eq!(
        (&now["inventory"]["record"], &now["changes"][0]["action"]),
        (&Value::from(first + 2), &Value::from("inventory.reload"))
    );
    let (_, before) = call(&f.app, "GET", &at(base - 1), admin, "").await;
    assert_eq!((&before["inventory"], &before["changes_total"]), (&Value::Null, &Value::from(0)));
    let audit = last_audit(&f);
    assert_eq!((audit["action"].as_str(), audit["actor"].as_str()), (Some("in_force.read"), Some("Admin")));
    // When a record was ledgered: the reload decides only what comes after it.
    let record = |n: u64| format!("/api/v1/in-force?record={n}");
    let (_, at_reload) = call(&f.app, "GET", &record(first + 2), admin, "").await;
    let (_, after) = call(&f.app, "GET", &record(first + 3), admin, "").await;
    assert_eq!(
        (&at_reload["inventory"]["record"], &at_reload["record"]),
        (&Value::from(first), &Value::from(first + 2))
    );
    assert_eq!(after["inventory"]["record"], first + 2);
    let (s, b) = call(&f.app, "GET", &format!("{}&at=2026-11-26T00:00:00Z", record(1)), admin, "").await;
    assert_eq!((s, b["error"]["message"].as_str()), (StatusCode::BAD_REQUEST, Some("give at or record, not both")));
    let (s, b) = call(&f.app, "GET", "/api/v1/in-force?at=yesterday", admin, "").await;
    assert_eq!(
        (s, b["error"]["message"].as_str()),
        (StatusCode::BAD_REQUEST, Some("at: \"yesterday\" is not an RFC 3339 time"))
    );
}

/// Incidents move on with a reason; each move is an `incident` and an
/// `audit` record; illegal moves are 409, bad input 400, other roles 403.
#[tokio::test]
async fn incident_transitions_need_a_reason_and_are_audited() {
    let f = fixture().await;
    let alert = alert(correlate::EntityKind::Person, "mallory");
    let id = f.views.file_unledgered(std::slice::from_ref(&alert)).await.incident_of[0].clone();
    let uri = format!("/api/v1/incidents/{id}/transition");
    let soc = Some(f.tokens[&Role::SocAnalyst].as_str());
    for (body, status) in [
        (r#"{"to":"closed"}"#, StatusCode::BAD_REQUEST),
        (r#"{"to":"closed","reason":" "}"#, StatusCode::BAD_REQUEST),
        (r#"{"to":"asleep","reason":"x"}"#, StatusCode::BAD_REQUEST),
        (r#"{"to":"new","reason":"x"}"#, StatusCode::CONFLICT),
    ] {
        assert_eq!(call(&f.app, "POST", &uri, soc, body).await.0, status, "{body}");
    }
    let missing = call(&f.app, "POST", "/api/v1/incidents/INC-999/transition", soc, r#"{"to":"closed","reason":"x"}"#);
    assert_eq!(missing.await.0, StatusCode::NOT_FOUND);
    let before = f.ledger.size();
    let (s, b) = call(&f.app, "POST", &uri, soc, r#"{"to":"false_positive","reason":"badge reader fault"}"#).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["incident"]["state"], "false_positive");
    assert_eq!(b["incident"]["history"][0]["by"], "SocAnalyst");
    assert_eq!(f.ledger.size(), before + 2, "an incident record and an audit record");
    let (s, _) = call(&f.app, "POST", &uri, soc, r#"{"to":"investigating","reason":"x"}"#).await;
    assert_eq!(s, StatusCode::CONFLICT, "final states stay final");
    let cr = Some(f.tokens[&Role::ControlRoom].as_str());
    assert_eq!(call(&f.app, "POST", &uri, cr, r#"{"to":"closed","reason":"x"}"#).await.0, StatusCode::FORBIDDEN);
}

/// Notes go on an incident, open or closed, each a new `incident` version
/// and an `audit` record; an open incident is given to an account whose
/// role handles incidents, or to no one; the list filters on both.
#[tokio::test]
async fn incidents_take_notes_and_assignees() {
    let f = fixture().await;
    let now = ingest::source::now_millis();
    f.accounts
        .set("SocAnalyst", "Sam Okafor", Role::SocAnalyst, "sam's own passphrase", SetBy::Holder, now)
        .expect("sam");
    let id = f.views.file_unledgered(&[alert(correlate::EntityKind::Person, "mallory")]).await.incident_of[0].clone();
    let other = f.views.file_unledgered(&[alert(correlate::EntityKind::Person, "bob")]).await.incident_of[0].clone();
    let soc = Some(f.tokens[&Role::SocAnalyst].as_str());
    let (notes, assign) = (format!("/api/v1/incidents/{id}/notes"), format!("/api/v1/incidents/{id}/assign"));
    for (body, code) in [(r#"{"text":"   "}"#, "bad_request"), (r#"{}"#, "bad_request")] {
        let (s, b) = call(&f.app, "POST", &notes, soc, body).await;
        assert_eq!((s, b["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some(code)), "{b}");
    }
    let missing = call(&f.app, "POST", "/api/v1/incidents/INC-999/notes", soc, r#"{"text":"x"}"#).await;
    assert_eq!(missing.0, StatusCode::NOT_FOUND);
    let before = f.ledger.size();
    let (s, b) = call(&f.app, "POST", &notes, soc, r#"{"text":" called the shift lead: Mallory is on leave "}"#).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["incident"]["notes"][0]["text"], "called the shift lead: Mallory is on leave");
    assert_eq!(b["incident"]["notes"][0]["by"], "SocAnalyst");
    assert_eq!(f.ledger.size(), before + 2, "an incident record and an audit record");
    let audit = last_audit(&f);
    assert_eq!((audit["action"].as_str(), audit["details"]["note"].as_u64()), (Some("incident.note"), Some(1)));
    let ledgered = ledger::record::decode(&f.ledger.record(before).expect("record")).expect("decode");
    assert_eq!(
        (ledgered.kind, &ledgered.data["notes"][0]["by"]),
        (ledger::RecordKind::Incident, &Value::from("SocAnalyst"))
    );

    for (body, status) in [
        (r#"{"assignee":"nobody"}"#, StatusCode::BAD_REQUEST),
        (r#"{"assignee":"QualityReviewer"}"#, StatusCode::BAD_REQUEST),
        (r#"{"assignee":7}"#, StatusCode::BAD_REQUEST),
    ] {
        assert_eq!(call(&f.app, "POST", &assign, soc, body).await.0, status, "{body}");
    }
    let (s, b) = call(&f.app, "POST", &assign, soc, r#"{"assignee":"SocAnalyst","reason":"on shift"}"#).await;
    assert_eq!((s, b["incident"]["assignee"].as_str()), (StatusCode::OK, Some("SocAnalyst")), "{b}");
    let audit = last_audit(&f);
    assert_eq!(
        (
            audit["action"].as_str(),
            &audit["details"]["from"],
            audit["details"]["to"].as_str(),
            audit["reason"].as_str()
        ),
        (Some("incident.assign"), &Value::Null, Some("SocAnalyst"), Some("on shift"))
    );
    let listed = |query: &str| {
        let (app, uri) = (f.app.clone(), format!("/api/v1/incidents?{query}"));
        async move {
            let (_, b) = call(&app, "GET", &uri, soc, "").await;
            b["incidents"]
                .as_array()
                .expect("list")
                .iter()
                .map(|i| i["id"].as_str().unwrap_or_default().to_owned())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(listed("assignee=SocAnalyst").await, [id.as_str()]);
    assert_eq!(listed("unassigned=true").await, [other.as_str()]);
    assert_eq!(listed("unassigned=false").await, [id.as_str()]);
    assert_eq!(call(&f.app, "GET", "/api/v1/incidents?unassigned=maybe", soc, "").await.0, StatusCode::BAD_REQUEST);
    // Closed: no longer anyone's to work on, but findings still go on it.
    call(&f.app, "POST", &format!("/api/v1/incidents/{id}/transition"), soc, r#"{"to":"closed","reason":"on leave"}"#)
        .await;
    let (s, b) = call(&f.app, "POST", &assign, soc, r#"{"assignee":null}"#).await;
    assert_eq!((s, b["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("incident_final")));
    assert_eq!(call(&f.app, "POST", &notes, soc, r#"{"text":"lessons learnt"}"#).await.0, StatusCode::OK);
    let cr = Some(f.tokens[&Role::ControlRoom].as_str());
    assert_eq!(call(&f.app, "POST", &notes, cr, r#"{"text":"x"}"#).await.0, StatusCode::FORBIDDEN);
}

/// A record comes with an inclusion proof against the signed checkpoint, and
/// consistency proofs link tree sizes: both check out with the ledger crate's
/// verifiers, without trusting the server.
#[tokio::test]
async fn ledger_records_and_proofs_verify_offline() {
    use ledger::merkle::{leaf_hash, verify_consistency, verify_inclusion};
    let f = fixture().await;
    let recs: Vec<Vec<u8>> = (0..40)
        .map(|i| ledger::record::encode(ledger::RecordKind::Audit, i, &serde_json::json!({"n": i})).expect("record"))
        .collect();
    f.ledger.append(recs).await.expect("append");
    let covering = || {
        let note = f.ledger.latest_checkpoint()?;
        let body = &note[..note.find("\n\n").map_or(note.len(), |i| i + 1)];
        Some(ledger::Checkpoint::parse_body(body).expect("checkpoint")).filter(|cp| cp.size >= 41)
    };
    eventually("no checkpoint covering the records", 10, || covering().is_some()).await;
    let cp = covering().expect("checkpoint");
    let auditor = Some(f.tokens[&Role::Auditor].as_str());
    let hex32 = |v: &Value| -> [u8; 32] {
        hex::decode(v.as_str().unwrap_or_default()).ok().and_then(|b| b.try_into().ok()).unwrap_or([0; 32])
    };
    let before = f.ledger.size();
    let (s, b) = call(&f.app, "GET", "/api/v1/ledger/records/17", auditor, "").await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(f.ledger.size(), before + 1, "reading evidence is an audit record");
    let text = b["record_text"].as_str().unwrap_or_default();
    let leaf = leaf_hash(text.as_bytes());
    assert_eq!(hex::encode(leaf), b["leaf_hash"]);
    let proof: Vec<[u8; 32]> = b["inclusion_proof"].as_array().cloned().unwrap_or_default().iter().map(hex32).collect();
    assert!(verify_inclusion(17, cp.size, &leaf, &proof, &cp.root), "the proof checks out against the signed root");
    assert_eq!(b["record"]["kind"], "audit");

    let (s, b0) = call(&f.app, "GET", "/api/v1/ledger/records/0", auditor, "").await;
    assert_eq!(s, StatusCode::OK);
    let first_root = leaf_hash(b0["record_text"].as_str().unwrap_or_default().as_bytes());
    let (s, c) = call(&f.app, "GET", "/api/v1/ledger/proof/consistency?old=1", auditor, "").await;
    assert_eq!(s, StatusCode::OK, "{c}");
    let proof: Vec<[u8; 32]> = c["proof"].as_array().cloned().unwrap_or_default().iter().map(hex32).collect();
    assert!(verify_consistency(1, cp.size, &proof, &first_root, &cp.root));

    for (uri, status) in [
        ("/api/v1/ledger/records/abc", StatusCode::BAD_REQUEST),
        // Past the end is not there at all; a record past the signed size only waits for a checkpoint.
        ("/api/v1/ledger/records/100000", StatusCode::NOT_FOUND),
        ("/api/v1/ledger/proof/consistency?old=0", StatusCode::BAD_REQUEST),
        ("/api/v1/ledger/proof/consistency?old=5&new=2", StatusCode::BAD_REQUEST),
        ("/api/v1/ledger/proof/consistency", StatusCode::BAD_REQUEST),
    ] {
        assert_eq!(call(&f.app, "GET", uri, auditor, "").await.0, status, "{uri}");
    }
    let cr = Some(f.tokens[&Role::ControlRoom].as_str());
    assert_eq!(call(&f.app, "GET", "/api/v1/ledger/records/1", cr, "").await.0, StatusCode::FORBIDDEN);
}

/// Quality reviewers export bundles through the API; the bundle verifies
/// offline and the export is an audit record.
#[tokio::test]
async fn evidence_export_through_the_api() {
    let f = fixture().await;
    let recs: Vec<Vec<u8>> = (0..10)
        .map(|i| {
            ledger::record::encode(ledger::RecordKind::Audit, 1_795_687_200_000 + i, &serde_json::json!({"n": i}))
                .expect("record")
        })
        .collect();
    f.ledger.append(recs).await.expect("append");
    eventually("no checkpoint of size 11", 10, || f.ledger.latest_checkpoint().is_some_and(|n| n.contains("\n11\n")))
        .await;
    let qr = f.tokens[&Role::QualityReviewer].as_str();
    let body = r#"{"from":"2026-11-26T10:00:00Z","to":"2026-11-26T10:00:00.004Z","reason":"batch 7 release review"}"#;
    let mut req = Request::builder().method("POST").uri("/api/v1/evidence/exports");
    req = req.header("authorization", format!("Bearer {qr}"));
    let resp = f.app.clone().oneshot(req.body(Body::from(body)).expect("request")).await.expect("response");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "application/x-tar");
    let before = f.ledger.size();
    let (length, digest) = (resp.headers()["content-length"].clone(), resp.headers()["x-custos-sha256"].clone());
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    assert_eq!(length.to_str().ok(), Some(bytes.len().to_string().as_str()));
    assert_eq!(digest.to_str().ok(), Some(hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes)).as_str()));
    let report = ledger::verify_bundle(&bytes, None).expect("the bundle verifies offline");
    assert_eq!(report.records, 5, "records ledgered in the 5 ms asked for");
    assert!(before >= 12, "the export is an audit record");
    let audit: Value = serde_json::from_slice(&f.ledger.record(before - 1).expect("audit record")).expect("json");
    assert_eq!(audit["data"]["action"], "evidence.export");
    assert_eq!(audit["data"]["reason"], "batch 7 release review", "why, with who and what");
    for (role, body, status) in [
        (Role::ControlRoom, body, StatusCode::FORBIDDEN),
        (Role::QualityReviewer, r#"{"from":"yesterday","to":"2026-11-26T10:00:00Z"}"#, StatusCode::BAD_REQUEST),
        (Role::QualityReviewer, r#"{"from":"2026-11-26T10:00:00Z"}"#, StatusCode::BAD_REQUEST),
        // Nothing signed matches: no empty bundle that reads as "nothing happened".
        (
            Role::Auditor,
            r#"{"from":"2026-11-26T10:00:00Z","to":"2026-11-26T10:01:00Z","asset":"PLC-99"}"#,
            StatusCode::NOT_FOUND,
        ),
        (
            Role::Auditor,
            r#"{"from":"2026-11-26T10:00:00Z","to":"2026-11-26T10:01:00Z","incident":"INC-9"}"#,
            StatusCode::NOT_FOUND,
        ),
        (Role::Auditor, r#"{"from":"2020-01-01T00:00:00Z","to":"2020-01-02T00:00:00Z"}"#, StatusCode::NOT_FOUND),
    ] {
        assert_eq!(
            call(&f.app, "POST", "/api/v1/evidence/exports", Some(&f.tokens[&role]), body).await.0,
            status,
            "{role:?} {body}"
        );
    }
}

/// Until a checkpoint covers them, records wait: reading one or exporting
/// its time range answers 409 (retry), neither a server error nor an empty
/// bundle.
#[tokio::test]
async fn evidence_not_yet_signed_is_a_409() {
    let options = LedgerOptions { checkpoint_interval: std::time::Duration::from_secs(3600), ..Default::default() };
    let f = fixture_with(options, turns(2, 2, Turns::WAIT)).await;
    let rec = ledger::record::encode(ledger::RecordKind::Audit, 1_795_687_200_000, &serde_json::json!({"n": 1}));
    f.ledger.append(vec![rec.expect("record")]).await.expect("append");
    assert!(f.ledger.latest_checkpoint().is_some_and(|n| n.contains("\n1\n")), "only the key record is signed");
    let auditor = Some(f.tokens[&Role::Auditor].as_str());
    let export = r#"{"from":"2026-11-26T10:00:00Z","to":"2026-11-26T11:00:00Z"}"#;
    for (method, uri, body) in [("GET", "/api/v1/ledger/records/1", ""), ("POST", "/api/v1/evidence/exports", export)] {
        let (s, b) = call(&f.app, method, uri, auditor, body).await;
        assert_eq!(s, StatusCode::CONFLICT, "{uri}: {b}");
        assert_eq!(b["error"]["code"], "not_yet_signed", "{uri}");
    }
}

/// An e-signature needs the signer's password again; it is a `signature`
/// record naming the printed name, meaning, time, reason and the signed
/// record's index and hash. Wrong passwords are refused and audited.
#[tokio::test]
async fn e_signatures_need_the_password_and_are_ledgered() {
    let f = fixture().await;
    let rec =
        ledger::record::encode(ledger::RecordKind::Audit, 1, &serde_json::json!({"batch": "B-42"})).expect("record");
    let signed_index = f.ledger.append(vec![rec.clone()]).await.expect("append").start;
    let qr = Some(f.tokens[&Role::QualityReviewer].as_str());
    let body = |meaning: &str, password: &str| {
        format!(
            r#"{{"record_index":{signed_index},"meaning":"{meaning}","reason":"batch record reviewed","password":"{password}"}}"#
        )
    };
    let before = f.ledger.size();
    let (s, b) = call(&f.app, "POST", "/api/v1/signatures", qr, &body("approved", "wrong password!!")).await;
    assert_eq!((s, b["error"]["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("bad_password")));
    assert_eq!(f.ledger.size(), before + 1, "the refusal is audited");
    assert_eq!(
        call(&f.app, "POST", "/api/v1/signatures", qr, &body("liked", "correct horse battery")).await.0,
        StatusCode::BAD_REQUEST
    );
    let (s, b) = call(&f.app, "POST", "/api/v1/signatures", qr, &body("approved", "correct horse battery")).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["signature"]["printed_name"], "Quinn Adams");
    assert_eq!(b["signature"]["meaning"], "approved");
    assert_eq!(b["signature"]["record_index"], signed_index);
    assert_eq!(b["signature"]["record_sha256"], hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&rec)));
    let index = b["signature_index"].as_u64().expect("index");
    let stored = f.ledger.record(index).expect("signature record");
    assert!(String::from_utf8_lossy(&stored).contains(r#""kind":"signature""#));
    for (role, code) in [(Role::Auditor, "forbidden"), (Role::SocAnalyst, "forbidden"), (Role::Admin, "no_account")] {
        let (s, b) = call(&f.app, "POST", "/api/v1/signatures", Some(&f.tokens[&role]), &body("reviewed", "x")).await;
        assert_eq!((s, b["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some(code)), "{role:?}");
    }
}

/// Audit records name the printed name of people with accounts, the server
/// time and the clock it came from.
#[tokio::test]
async fn audit_records_carry_printed_name_and_clock() {
    let f = fixture().await;
    let rec = ledger::record::encode(ledger::RecordKind::Audit, 1, &serde_json::json!({"x": 1})).expect("record");
    let i = f.ledger.append(vec![rec]).await.expect("append").start;
    let qr = Some(f.tokens[&Role::QualityReviewer].as_str());
    let body = format!(r#"{{"record_index":{i},"meaning":"reviewed","reason":"r","password":"not it at all"}}"#);
    assert_eq!(call(&f.app, "POST", "/api/v1/signatures", qr, &body).await.0, StatusCode::UNAUTHORIZED);
    let audit = f.ledger.record(f.ledger.size() - 1).expect("audit record");
    let v: Value = serde_json::from_slice(&audit).expect("json");
    assert_eq!(v["kind"], "audit");
    assert_eq!(v["data"]["action"], "signature.refused");
    assert_eq!(v["data"]["printed_name"], "Quinn Adams");
    assert_eq!(v["data"]["role"], "quality_reviewer");
    assert_eq!(v["data"]["clock"]["source"], "system clock, UTC");
    assert!(v["data"]["time"].as_str().is_some_and(|t| t.ends_with('Z')), "{v}");
}

/// Retention policies (admin) and legal holds (admin, quality reviewer) are
/// ledger records with who and why; nothing is deleted.
#[tokio::test]
async fn retention_and_legal_holds_are_recorded() {
    let f = fixture().await;
    let admin = Some(f.tokens[&Role::Admin].as_str());
    let qr = Some(f.tokens[&Role::QualityReviewer].as_str());
    let policy = r#"{"record_kind":"event","keep_days":3650,"reason":"GMP record retention SOP-12"}"#;
    let (s, b) = call(&f.app, "POST", "/api/v1/ledger/retention", admin, policy).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(call(&f.app, "POST", "/api/v1/ledger/retention", qr, policy).await.0, StatusCode::FORBIDDEN);
    let hold = r#"{"asset":"PLC-01","reason":"deviation DEV-7 investigation"}"#;
    let (s, b) = call(&f.app, "POST", "/api/v1/ledger/legal-holds", qr, hold).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let hold_index = b["index"].as_u64().expect("index");
    for (uri, body) in [
        ("/api/v1/ledger/retention", r#"{"record_kind":"everything","keep_days":1,"reason":"x"}"#),
        ("/api/v1/ledger/retention", r#"{"record_kind":"event","keep_days":0,"reason":"x"}"#),
        ("/api/v1/ledger/legal-holds", r#"{"reason":"no scope"}"#),
        ("/api/v1/ledger/legal-holds", r#"{"from":"last week","reason":"x"}"#),
    ] {
        assert_eq!(call(&f.app, "POST", uri, admin, body).await.0, StatusCode::BAD_REQUEST, "{body}");
    }
    let (s, b) = call(&f.app, "GET", "/api/v1/ledger/retention", Some(f.tokens[&Role::Auditor].as_str()), "").await;
    assert_eq!(s, StatusCode::OK);
    let records = b["records"].as_array().cloned().unwrap_or_default();
    assert_eq!(records.len(), 2);
    assert_eq!(records[1]["printed_name"], "Quinn Adams");
    assert_eq!(records[1]["asset"], "PLC-01");
    let stored = f.ledger.record(hold_index).expect("record");
    assert!(String::from_utf8_lossy(&stored).contains(r#""kind":"legal_hold""#));
}

/// People log in with their password for a session token; failures are
/// audited and say nothing about which part was wrong.
#[tokio::test]
async fn login_gives_a_session_and_failures_are_audited() {
    let mut f = fixture().await;
    let (s, b) =
        call(&f.app, "POST", "/api/v1/login", None, r#"{"name":"QualityReviewer","password":"correct horse battery"}"#)
            .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["role"], "quality_reviewer");
    let token = b["token"].as_str().unwrap_or_default().to_owned();
    assert_eq!(call(&f.app, "GET", "/api/v1/incidents", Some(&token), "").await.0, StatusCode::OK);
    // Logging out ends that session (audited); an API token is not a session.
    let api_token = Some(f.tokens[&Role::QualityReviewer].as_str());
    let (s, b) = call(&f.app, "POST", "/api/v1/logout", api_token, "").await;
    assert_eq!((s, b["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("bad_request")), "{b}");
    assert_eq!(call(&f.app, "GET", "/api/v1/incidents", api_token, "").await.0, StatusCode::OK, "still works");
    assert_eq!(call(&f.app, "POST", "/api/v1/logout", Some(&token), "").await.0, StatusCode::OK);
    let audit = last_audit(&f);
    assert_eq!((audit["action"].as_str(), audit["actor"].as_str()), (Some("logout"), Some("QualityReviewer")));
    assert_eq!(call(&f.app, "GET", "/api/v1/incidents", Some(&token), "").await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(call(&f.app, "POST", "/api/v1/logout", Some(&token), "").await.0, StatusCode::UNAUTHORIZED);
    let before = f.ledger.size();
    for body in [r#"{"name":"QualityReviewer","password":"nope nope nope"}"#, r#"{"name":"nobody","password":"x"}"#] {
        let (s, b) = call(&f.app, "POST", "/api/v1/login", None, body).await;
        assert_eq!((s, b["error"]["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("bad_credentials")), "{body}");
    }
    assert_eq!(f.ledger.size(), before + 2, "each failed login is an audit record");
    assert_eq!(call(&f.app, "POST", "/api/v1/login", None, "{}").await.0, StatusCode::BAD_REQUEST);
    // A guessed name locks as a real one does: a lock-out does not tell that a name exists.
    for name in ["QualityReviewer", "nobody"] {
        let body = format!(r#"{{"name":"{name}","password":"nope nope nope"}}"#);
        let mut codes = Vec::new();
        for _ in 0..5 {
            codes.push(call(&f.app, "POST", "/api/v1/login", None, &body).await.1["error"]["code"].clone());
        }
        assert_eq!(codes.last().and_then(Value::as_str), Some("locked"), "{name}: {codes:?}");
    }
    // Every attempt is also a sign-in event on the raw topic, as a CEF record
    // from the source `custos`: (name, signature id) in order.
    let want = |name: &str, sig: &str| (name.to_owned(), sig.to_owned());
    let mut expected = vec![
        want("QualityReviewer", "login.success"),
        // The logged-out session's two requests: reported once (held back for
        // a minute), naming whose it was.
        want("QualityReviewer", "token.ended"),
        want("QualityReviewer", "login.failed"),
        want("nobody", "login.failed"),
    ];
    for name in ["QualityReviewer", "nobody"] {
        // One failure was counted above: the fifth wrong password locks, the next is refused.
        expected.extend([want(name, "login.failed"), want(name, "login.failed"), want(name, "login.failed")]);
        expected.extend([want(name, "login.locked"), want(name, "login.refused")]);
    }
    let mut events = Vec::new();
    while events.len() < expected.len() {
        let batch =
            tokio::time::timeout(std::time::Duration::from_secs(10), f.raw.next()).await.expect("sign-in events");
        for r in batch.expect("batch").items {
            assert_eq!((&*r.source, r.format), ("custos", ingest::Format::Cef));
            let line = String::from_utf8(r.bytes).expect("utf-8");
            let field = |i: usize| line.split('|').nth(i).unwrap_or_default().to_owned();
            let user = line.split(" suser=").nth(1).unwrap_or_default().to_owned();
            events.push((user, field(4)));
        }
    }
    assert_eq!(events, expected);
}

/// A sign-in event ingest cannot take is counted for monitoring; the
/// login itself is answered and audited as ever.
#[tokio::test]
async fn a_sign_in_event_ingest_cannot_take_is_counted() {
    let f = fixture().await;
    let admin = Some(f.tokens[&Role::Admin].as_str());
    let dropped = async || {
        let metrics = call(&f.app, "GET", "/metrics", admin, "").await.1;
        let metrics = metrics.as_str().unwrap_or_default();
        metrics.lines().find_map(|l| l.strip_prefix("custos_sign_in_events_dropped_total ").map(str::to_owned))
    };
    let login = r#"{"name":"QualityReviewer","password":"correct horse battery"}"#;
    assert_eq!(call(&f.app, "POST", "/api/v1/login", None, login).await.0, StatusCode::OK);
    assert_eq!(dropped().await.as_deref(), Some("0"));
    // Ingest has gone: its end of the raw topic is closed.
    drop(f.raw);
    let before = f.ledger.size();
    assert_eq!(call(&f.app, "POST", "/api/v1/login", None, login).await.0, StatusCode::OK);
    let wrong = r#"{"name":"QualityReviewer","password":"nope nope nope"}"#;
    assert_eq!(call(&f.app, "POST", "/api/v1/login", None, wrong).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(f.ledger.size(), before + 2, "both attempts are audit records");
    assert_eq!(dropped().await.as_deref(), Some("2"));
}

/// A person changes their own password with the current one: wrong, too
/// short or unchanged is refused (and audited); once changed, the old
/// password no longer logs in, the other sessions end, this one and the API
/// token stay. A token holder without an account has no password to change.
#[tokio::test]
async fn a_person_changes_their_own_password() {
    let f = fixture().await;
    let login = |password: &str| {
        let body = format!(r#"{{"name":"QualityReviewer","password":"{password}"}}"#);
        let app = f.app.clone();
        async move { call(&app, "POST", "/api/v1/login", None, &body).await }
    };
    let (this, other) = (login("correct horse battery").await.1, login("correct horse battery").await.1);
    let (this, other) = (this["token"].as_str().expect("session"), other["token"].as_str().expect("session"));
    let change = |current: &str, new: &str| format!(r#"{{"current_password":"{current}","new_password":"{new}"}}"#);
    for (body, status, code) in [
        (change("wrong horse battery", "a brand new passphrase"), StatusCode::UNAUTHORIZED, "bad_password"),
        (change("correct horse battery", "short"), StatusCode::BAD_REQUEST, "bad_request"),
        (change("correct horse battery", "correct horse battery"), StatusCode::BAD_REQUEST, "bad_request"),
        (r#"{"new_password":"a brand new passphrase"}"#.to_owned(), StatusCode::BAD_REQUEST, "bad_request"),
    ] {
        let (s, b) = call(&f.app, "POST", "/api/v1/password", Some(this), &body).await;
        assert_eq!((s, b["error"]["code"].as_str()), (status, Some(code)), "{body}: {b}");
    }
    assert_eq!(last_audit(&f)["action"], "account.password.refused");
    let body = change("correct horse battery", "a brand new passphrase");
    let (s, b) = call(&f.app, "POST", "/api/v1/password", Some(this), &body).await;
    assert_eq!((s, b["sessions_ended"].as_u64()), (StatusCode::OK, Some(1)), "{b}");
    let audit = last_audit(&f);
    assert_eq!(
        (audit["action"].as_str(), audit["actor"].as_str()),
        (Some("account.password"), Some("QualityReviewer"))
    );
    assert_eq!(login("correct horse battery").await.0, StatusCode::UNAUTHORIZED, "the old password is gone");
    assert_eq!(login("a brand new passphrase").await.0, StatusCode::OK);
    let qr_api = f.tokens[&Role::QualityReviewer].as_str();
    for (token, want) in [(this, StatusCode::OK), (other, StatusCode::UNAUTHORIZED), (qr_api, StatusCode::OK)] {
        assert_eq!(call(&f.app, "GET", "/api/v1/incidents", Some(token), "").await.0, want);
    }
    let analyst = Some(f.tokens[&Role::SocAnalyst].as_str());
    let (s, b) =
        call(&f.app, "POST", "/api/v1/password", analyst, &change("anything at all", "a brand new one!!")).await;
    assert_eq!((s, b["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some("no_account")));
}

const DAY_MS: i64 = 86_400_000;

/// A password an administrator set is temporary, and one past its age has
/// expired: the login's session may only change it (or log out), and it
/// signs nothing, by an API token either, until its holder chooses a new
/// one. A new password may not repeat the last three.
#[tokio::test]
async fn a_temporary_or_expired_password_is_changed_before_anything_else() {
    let f = fixture().await;
    let now = ingest::source::now_millis();
    let set = |name: &str, password: &str, by: SetBy, at: i64| {
        f.accounts.set(name, "Robin Vale", Role::QualityReviewer, password, by, at).expect("account");
        f.token_store.issue(name, Role::QualityReviewer).expect("API token")
    };
    let login = |name: &str, password: &str| {
        let body = format!(r#"{{"name":"{name}","password":"{password}"}}"#);
        let app = f.app.clone();
        async move { call(&app, "POST", "/api/v1/login", None, &body).await }
    };
    let sign = |token: String, password: &str| {
        let body = format!(r#"{{"record_index":0,"meaning":"approved","reason":"batch 7","password":"{password}"}}"#);
        let app = f.app.clone();
        async move { call(&app, "POST", "/api/v1/signatures", Some(&token), &body).await }
    };
    let change = |token: &str, current: &str, new: &str| {
        let body = format!(r#"{{"current_password":"{current}","new_password":"{new}"}}"#);
        let (app, token) = (f.app.clone(), token.to_owned());
        async move { call(&app, "POST", "/api/v1/password", Some(&token), &body).await }
    };
    f.ledger.append(plant_events()).await.expect("a record to sign");
    let refused = |(s, b): (StatusCode, Value)| {
        assert_eq!((s, b["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some("password_change_required")), "{b}");
    };

    // Set by an administrator: temporary.
    let api = set("robin", "told by the administrator", SetBy::Administrator, now);
    let (s, b) = login("robin", "told by the administrator").await;
    assert_eq!((s, b["password_change_required"].as_str()), (StatusCode::OK, Some("temporary")), "{b}");
    let expires = ingest::time::parse_rfc3339(b["password_expires_at"].as_str().expect("ageing is on")).expect("time");
    assert!((expires - (now + 90 * DAY_MS)).abs() < 60_000, "{b}");
    let audit = last_audit(&f);
    assert_eq!(
        (audit["action"].as_str(), audit["details"]["password_change_required"].as_str()),
        (Some("login"), Some("temporary"))
    );
    let session = b["token"].as_str().expect("a session").to_owned();
    for (method, uri, body) in [
        ("GET", "/api/v1/incidents", ""),
        ("GET", "/api/v1/ledger/records/0", ""),
        ("POST", "/api/v1/evidence/exports", "{}"),
    ] {
        refused(call(&f.app, method, uri, Some(&session), body).await);
    }
    // The administrator holds the API token and knows the password: no signature.
    let size = f.ledger.size();
    refused(sign(api.clone(), "told by the administrator").await);
    let audit = last_audit(&f);
    assert_eq!(audit["action"], "signature.refused");
    assert!(audit["details"]["why"].as_str().is_some_and(|w| w.contains("temporary")), "{audit}");
    assert_eq!(f.ledger.size(), size + 1, "the refusal alone is ledgered");

    // Its holder chooses their own; the same session may then do the rest.
    assert_eq!(change(&session, "told by the administrator", "robin's first own one").await.0, StatusCode::OK);
    assert_eq!(call(&f.app, "GET", "/api/v1/incidents", Some(&session), "").await.0, StatusCode::OK);
    let (s, b) = sign(api.clone(), "robin's first own one").await;
    assert_eq!((s, b["signature"]["printed_name"].as_str()), (StatusCode::OK, Some("Robin Vale")), "{b}");
    let (s, b) = login("robin", "robin's first own one").await;
    assert!(s == StatusCode::OK && b.get("password_change_required").is_none(), "{b}");

    // Not any of the last three: the current one and the two before it.
    let reused = |(s, b): (StatusCode, Value)| {
        let said = b["error"]["message"].as_str().unwrap_or_default().to_owned();
        assert!(s == StatusCode::BAD_REQUEST && said.contains("any of the last 3"), "{s} {b}");
    };
    reused(change(&session, "robin's first own one", "told by the administrator").await);
    assert_eq!(last_audit(&f)["action"], "account.password.refused");
    assert_eq!(change(&session, "robin's first own one", "robin's second own one").await.0, StatusCode::OK);
    reused(change(&session, "robin's second own one", "told by the administrator").await);
    assert_eq!(change(&session, "robin's second own one", "robin's third own one").await.0, StatusCode::OK);
    assert_eq!(
        change(&session, "robin's third own one", "told by the administrator").await.0,
        StatusCode::OK,
        "fourth last"
    );

    // Chosen by its holder 91 days ago: expired.
    let api = set("kit", "kit's own long one", SetBy::Holder, now - 91 * DAY_MS);
    let (s, b) = login("kit", "kit's own long one").await;
    assert_eq!((s, b["password_change_required"].as_str()), (StatusCode::OK, Some("expired")), "{b}");
    refused(call(&f.app, "GET", "/api/v1/alerts", b["token"].as_str(), "").await);
    refused(sign(api.clone(), "kit's own long one").await);
    assert_eq!(
        change(b["token"].as_str().expect("session"), "kit's own long one", "kit's next long one").await.0,
        StatusCode::OK
    );
    assert_eq!(sign(api, "kit's next long one").await.0, StatusCode::OK);

    // The access review shows each password's state.
    let (_, b) = call(&f.app, "GET", "/api/v1/accounts", Some(f.tokens[&Role::Auditor].as_str()), "").await;
    let kit = b["accounts"].as_array().expect("accounts").iter().find(|a| a["name"] == "kit").expect("kit").clone();
    assert_eq!(kit["temporary_password"], false);
    assert!(kit["password_set_at"].as_str().is_some() && kit["password_expires_at"].as_str().is_some(), "{kit}");
    set("lee", "told by the administrator", SetBy::Administrator, now);
    let (_, b) = call(&f.app, "GET", "/api/v1/accounts", Some(f.tokens[&Role::Auditor].as_str()), "").await;
    let lee = b["accounts"].as_array().expect("accounts").iter().find(|a| a["name"] == "lee").expect("lee").clone();
    assert_eq!(lee["temporary_password"], true, "{lee}");
}

/// A quality reviewer e-signs the review of a period's audit trail: the
/// `signature` record names how many `audit` records the period holds, the
/// first and last, and the Merkle root after the last (which the ledger
/// itself gives); SQL lists it; bad periods, an empty one and a wrong
/// password are refused, the last as an audit record.
#[tokio::test]
async fn the_audit_trail_review_is_e_signed_and_bound_to_the_ledger() {
    let f = fixture().await;
    let from = ingest::source::now_millis() - 1;
    let auditor = Some(f.tokens[&Role::Auditor].as_str());
    for _ in 0..3 {
        assert_eq!(call(&f.app, "GET", "/api/v1/accounts", auditor, "").await.0, StatusCode::OK);
    }
    f.ledger.append(plant_events()).await.expect("events in between, not audit records");
    let to = ingest::source::now_millis() + 1;
    while ingest::source::now_millis() < to {
        tokio::task::yield_now().await;
    }
    let qr = Some(f.tokens[&Role::QualityReviewer].as_str());
    let review = |from: i64, to: i64, password: &str| {
        let (from, to) = (ingest::time::format_rfc3339(from), ingest::time::format_rfc3339(to));
        format!(r#"{{"from":"{from}","to":"{to}","reason":"November audit trail review","password":"{password}"}}"#)
    };
    let (mut audits, mut first, mut last) = (0, None, 0);
    for index in 0..f.ledger.size() {
        let r = ledger::record::decode(&f.ledger.record(index).expect("record")).expect("decode");
        if r.kind == ledger::RecordKind::Audit && (from..to).contains(&r.recorded_at) {
            (audits, last) = (audits + 1, index);
            first.get_or_insert(index);
        }
    }
    assert_eq!(audits, 3, "the three reads of the access review");
    let (s, b) =
        call(&f.app, "POST", "/api/v1/audit-trail/reviews", qr, &review(from, to, "correct horse battery")).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let signed = &b["signature"];
    assert_eq!((signed["printed_name"].as_str(), signed["meaning"].as_str()), (Some("Quinn Adams"), Some("reviewed")));
    let r = &signed["review"];
    assert_eq!(
        (r["audit_records"].as_u64(), r["first_index"].as_u64(), r["last_index"].as_u64()),
        (Some(3), first, Some(last))
    );
    let root = hex::encode(f.ledger.root_at(last + 1).expect("root"));
    assert_eq!((r["tree_size"].as_u64(), r["root_hash"].as_str()), (Some(last + 1), Some(root.as_str())));
    let index = b["signature_index"].as_u64().expect("index");
    let ledgered = ledger::record::decode(&f.ledger.record(index).expect("record")).expect("decode");
    assert_eq!((ledgered.kind, &ledgered.data), (ledger::RecordKind::Signature, signed));

    let later = ingest::source::now_millis() + 3_600_000;
    for (body, status) in [
        (review(to, from, "correct horse battery"), StatusCode::BAD_REQUEST),
        (review(from, later, "correct horse battery"), StatusCode::BAD_REQUEST),
        (r#"{"from":"yesterday","to":"today","reason":"r","password":"p"}"#.to_owned(), StatusCode::BAD_REQUEST),
        (review(1_000, 2_000, "correct horse battery"), StatusCode::NOT_FOUND),
    ] {
        assert_eq!(call(&f.app, "POST", "/api/v1/audit-trail/reviews", qr, &body).await.0, status, "{body}");
    }
    let (s, b) = call(&f.app, "POST", "/api/v1/audit-trail/reviews", qr, &review(from, to, "wrong password!")).await;
    assert_eq!((s, b["error"]["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("bad_password")));
    let refused = last_audit(&f);
    assert_eq!(
        (refused["action"].as_str(), refused["details"]["review"]["from"].is_string()),
        (Some("signature.refused"), true)
    );

    // A bundle holding the review proves, offline, that the tree it signed is
    // the start of the bundle's signed tree.
    let covered = || {
        f.ledger.latest_checkpoint().and_then(|n| ledger::Checkpoint::of_note(&n).ok()).is_some_and(|c| c.size > index)
    };
    eventually("no checkpoint covering the review", 10, covered).await;
    let (from_s, to_s) =
        (ingest::time::format_rfc3339(from), ingest::time::format_rfc3339(ingest::source::now_millis()));
    let body = format!(r#"{{"from":"{from_s}","to":"{to_s}"}}"#);
    let mut req = Request::builder().method("POST").uri("/api/v1/evidence/exports");
    req = req.header("authorization", format!("Bearer {}", f.tokens[&Role::QualityReviewer]));
    let resp = f.app.clone().oneshot(req.body(Body::from(body)).expect("request")).await.expect("response");
    assert_eq!(resp.status(), StatusCode::OK);
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    let (_, lines) = custos::evidence::verify_bundle(&bytes[..], None).expect("the bundle verifies");
    let said = lines.join("\n");
    assert!(
        said.contains(&format!("record {index}, by Quinn Adams: ")) && said.contains("(consistency proof checked)"),
        "{said}"
    );

    caught_up(&f).await;
    let sql = r#"{"sql": "SELECT printed_name, review FROM signatures WHERE review IS NOT NULL"}"#;
    let (s, b) = call(&f.app, "POST", "/api/v1/query/sql", qr, sql).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let row = &b["rows"][0];
    let listed: Value = serde_json::from_str(row["review"].as_str().expect("review as JSON text")).expect("json");
    assert_eq!((row["printed_name"].as_str(), &listed), (Some("Quinn Adams"), r));
}

/// An API token issued for a time is refused once it has passed, saying so.
#[tokio::test]
async fn an_expired_api_token_is_refused_saying_when() {
    let mut f = fixture().await;
    let now = ingest::source::now_millis();
    let live = f.token_store.issue_valid_until("soar", Role::SocAnalyst, Some(now + 60_000)).expect("token");
    assert_eq!(call(&f.app, "GET", "/api/v1/incidents", Some(&live), "").await.0, StatusCode::OK);
    let gone = f.token_store.issue_valid_until("siem", Role::SocAnalyst, Some(now - 1)).expect("token");
    let (s, b) = call(&f.app, "GET", "/api/v1/incidents", Some(&gone), "").await;
    let said = b["error"]["message"].as_str().unwrap_or_default();
    assert!(s == StatusCode::UNAUTHORIZED && said.starts_with("the API token expired at 20"), "{s} {b}");
    // Each refusal is a sign-in event naming the account, but at most one a
    // minute: the next two are held back, and an unknown token is reported
    // on its own, at once.
    for _ in 0..2 {
        assert_eq!(call(&f.app, "GET", "/api/v1/alerts", Some(&gone), "").await.0, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(call(&f.app, "GET", "/api/v1/alerts", Some("no-such-token"), "").await.0, StatusCode::UNAUTHORIZED);
    let mut lines = Vec::new();
    while lines.len() < 2 {
        let batch = tokio::time::timeout(std::time::Duration::from_secs(10), f.raw.next()).await.expect("events");
        for r in batch.expect("batch").items {
            assert_eq!((&*r.source, r.format), ("custos", ingest::Format::Cef));
            lines.push(String::from_utf8(r.bytes).expect("utf-8"));
        }
    }
    let field = |line: &str, i: usize| line.split('|').nth(i).unwrap_or_default().to_owned();
    assert_eq!(
        (field(&lines[0], 4), field(&lines[1], 4)),
        ("token.expired".into(), "token.unknown".into()),
        "{lines:?}"
    );
    assert!(lines[0].ends_with(" cnt=1 suser=siem"), "{}", lines[0]);
    assert!(lines[1].ends_with(" cnt=1"), "{}", lines[1]);
    // The gauge to alert on before it happens: the live one only.
    let (_, text) = call(&f.app, "GET", "/metrics", Some(f.tokens[&Role::Admin].as_str()), "").await;
    let text = text.as_str().expect("text").to_owned();
    // Every refusal is counted, reported or held back.
    for counted in [r#"custos_api_tokens_refused_total{reason="expired"} 3"#, r#"{reason="unknown"} 1"#] {
        assert!(text.lines().any(|l| l.ends_with(counted)), "{counted}: {text}");
    }
    let left: Vec<&str> = text.lines().filter(|l| l.starts_with("custos_api_token_valid_seconds{")).collect();
    assert_eq!(left.len(), 1, "{text}");
    let seconds: u64 = left[0]
        .strip_prefix("custos_api_token_valid_seconds{name=\"soar\",role=\"soc_analyst\"} ")
        .and_then(|n| n.parse().ok())
        .expect("soar's");
    assert!((55..=60).contains(&seconds), "{seconds}");
}

/// A session unused past the idle limit (30 minutes here) is ended at its
/// next request: 401 saying why, once, and a `logout.idle` audit record.
#[tokio::test]
async fn an_idle_session_is_logged_off() {
    let f = fixture().await;
    let now = ingest::source::now_millis();
    let idle = f
        .token_store
        .issue_session("QualityReviewer", Role::QualityReviewer, now - 31 * 60_000, now + 3_600_000)
        .expect("session");
    let busy = f
        .token_store
        .issue_session("QualityReviewer", Role::QualityReviewer, now - 29 * 60_000, now + 3_600_000)
        .expect("session");
    assert_eq!(call(&f.app, "GET", "/api/v1/incidents", Some(&busy), "").await.0, StatusCode::OK);
    let (s, b) = call(&f.app, "GET", "/api/v1/incidents", Some(&idle), "").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(b["error"]["message"].as_str().is_some_and(|m| m.contains("30 minutes without use")), "{b}");
    let audit = last_audit(&f);
    assert_eq!((audit["action"].as_str(), audit["actor"].as_str()), (Some("logout.idle"), Some("QualityReviewer")));
    let size = f.ledger.size();
    let (s, b) = call(&f.app, "GET", "/api/v1/incidents", Some(&idle), "").await;
    let said = b["error"]["message"].as_str();
    assert_eq!(
        (s, said),
        (StatusCode::UNAUTHORIZED, Some("the token is no longer valid: the session ended; log in again"))
    );
    assert_eq!(f.ledger.size(), size, "logged off once");
}

/// A session past its 8 hours is refused as expired, naming when, not as an
/// unknown token: the person logs in again.
#[tokio::test]
async fn an_expired_session_says_so() {
    let f = fixture().await;
    let now = ingest::source::now_millis();
    let at = now - 1_000;
    let old = f
        .token_store
        .issue_session("QualityReviewer", Role::QualityReviewer, now - 8 * 3_600_000, at)
        .expect("session");
    let (s, b) = call(&f.app, "GET", "/api/v1/incidents", Some(&old), "").await;
    let expected = format!("the session expired at {}; log in again", ingest::time::format_rfc3339(at));
    assert_eq!((s, b["error"]["message"].as_str()), (StatusCode::UNAUTHORIZED, Some(expected.as_str())), "{b}");
    assert_eq!(b["error"]["code"], "unauthorized");
}

/// An access review lists accounts and token holders, never a secret, and
/// is itself audited.
#[tokio::test]
async fn the_access_review_lists_accounts_and_token_holders() {
    let f = fixture().await;
    let auditor = Some(f.tokens[&Role::Auditor].as_str());
    let login = r#"{"name":"QualityReviewer","password":"correct horse battery"}"#;
    assert_eq!(call(&f.app, "POST", "/api/v1/login", None, login).await.0, StatusCode::OK);
    let (s, b) = call(&f.app, "GET", "/api/v1/accounts", auditor, "").await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let text = b.to_string();
    assert!(!text.contains("argon2") && !text.contains("cus_"), "no secret leaves: {text}");
    let quinn = &b["accounts"].as_array().expect("accounts")[0];
    assert_eq!(
        (quinn["name"].as_str(), quinn["printed_name"].as_str(), quinn["role"].as_str(), quinn["disabled"].as_bool()),
        (Some("QualityReviewer"), Some("Quinn Adams"), Some("quality_reviewer"), Some(false))
    );
    assert!(quinn["locked_until"].is_null());
    assert!(quinn["last_login"].as_str().is_some_and(|t| t.ends_with('Z')), "the login's time: {quinn}");
    let holders = b["token_holders"].as_array().expect("holders");
    assert_eq!(holders.len(), Role::ALL.len(), "one API token per role's name: {b}");
    let qr = holders.iter().find(|h| h["name"] == "QualityReviewer").expect("holder");
    assert_eq!((qr["api_token"].as_bool(), qr["sessions"].as_u64()), (Some(true), Some(1)), "{qr}");
    let audit = last_audit(&f);
    assert_eq!((audit["action"].as_str(), audit["actor"].as_str()), (Some("accounts.read"), Some("Auditor")));
    // Five wrong passwords later the account shows as locked.
    let wrong = r#"{"name":"QualityReviewer","password":"nope nope nope"}"#;
    for _ in 0..5 {
        call(&f.app, "POST", "/api/v1/login", None, wrong).await;
    }
    let (_, b) = call(&f.app, "GET", "/api/v1/accounts", auditor, "").await;
    assert!(b["accounts"][0]["locked_until"].as_str().is_some_and(|t| t.ends_with('Z')), "{b}");
}

/// Each collector heard on the status topic, in its state now by the
/// core's clock and its own interval, beside this process's own sources.
#[tokio::test]
async fn collectors_are_listed_with_their_state_clock_and_counts() {
    use ingest::heartbeat::{Heartbeat, SourceCounts};
    let f = fixture().await;
    let analyst = Some(f.tokens[&Role::SocAnalyst].as_str());
    let now = ingest::source::now_millis();
    // This process read one firewall line itself.
    let raw = RawRecord::new("fw".into(), Format::Syslog, now, b"<13>1 2026-11-29T10:00:00Z fw1 a - - - hi".to_vec());
    let sizes = custos::metrics::IngestMetrics::sizes(std::slice::from_ref(&raw));
    f.stats.ingest.record_batch(&sizes, &[ingest::normalize(raw, &ingest::Inventory::default(), 0)]);
    let minute = 60_000;
    let beat = |name: &str, heard_ago: i64, interval_ms: Option<u64>, stopped: bool| {
        let fw = SourceCounts { source: "fw".into(), format: "syslog".into(), lines: 7, ..SourceCounts::default() };
        let beat = Heartbeat {
            collector: name.into(),
            version: "0.1.0".into(),
            // Its clock 45 s behind the core's.
            sent_at: now - heard_ago - 45_000,
            stopped,
            interval_ms,
            sources: vec![fw],
            ..Heartbeat::default()
        };
        assert!(f.stats.collectors.record(beat, now - heard_ago));
    };
    beat("dmz-1", 0, Some(15_000), false);
    // Five minutes without a word: silent at 15 s (and at the unsaid default)...
    beat("dmz-2", 5 * minute, None, false);
    // ...not when it beats every ten minutes, nor when it said it stopped.
    beat("dmz-3", 5 * minute, Some(600_000), false);
    beat("dmz-4", 5 * minute, Some(15_000), true);
    let (status, b) = call(&f.app, "GET", "/api/v1/collectors", analyst, "").await;
    assert_eq!(status, StatusCode::OK, "{b}");
    assert_eq!(b["local"]["sources"][0]["source"], "fw", "{b}");
    assert_eq!(b["local"]["sources"][0]["lines"], 1);
    assert_eq!(b["local"]["parsers"][0]["parser"], "syslog/text");
    let states: Vec<(&str, &str)> = b["collectors"]
        .as_array()
        .expect("collectors")
        .iter()
        .map(|c| (c["collector"].as_str().unwrap_or(""), c["state"].as_str().unwrap_or("")))
        .collect();
    assert_eq!(states, [("dmz-1", "running"), ("dmz-2", "silent"), ("dmz-3", "running"), ("dmz-4", "stopped")]);
    assert_eq!(b["silent"], 1);
    let dmz1 = &b["collectors"][0];
    assert_eq!(dmz1["clock_offset_seconds"], -45.0, "{dmz1}");
    assert_eq!(dmz1["clock_off_since"], ingest::time::format_rfc3339(now), "off since the core first read it so");
    assert_eq!(b["collectors"][3]["clock_off_since"], Value::Null, "stopped: no clock to judge");
    assert_eq!(dmz1["heard_at"], ingest::time::format_rfc3339(now));
    assert_eq!(dmz1["sent_at"], ingest::time::format_rfc3339(now - 45_000));
    assert_eq!(
        (dmz1["heartbeat_interval_seconds"].as_f64(), dmz1["silent_after_seconds"].as_f64()),
        (Some(15.0), Some(120.0))
    );
    assert_eq!(dmz1["sources"][0]["lines"], 7);
    assert_eq!(b["collectors"][2]["silent_after_seconds"], 1230.0);
    assert!(b["collectors"][1]["since_heard_seconds"].as_f64().is_some_and(|s| s >= 300.0), "{b}");
    // Only the silent ones; the count of silent ones stays.
    let (status, b) = call(&f.app, "GET", "/api/v1/collectors?state=silent", analyst, "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (b["collectors"].as_array().map(Vec::len), b["collectors"][0]["collector"].as_str()),
        (Some(1), Some("dmz-2"))
    );
    for bad in ["?state=dead", "?colour=red"] {
        let (status, b) = call(&f.app, "GET", &format!("/api/v1/collectors{bad}"), analyst, "").await;
        assert_eq!((status, b["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("bad_request")), "{bad}: {b}");
    }
    let (_, b) = call(&f.app, "GET", "/api/v1/collectors?state=dead", analyst, "").await;
    assert!(b["error"]["message"].as_str().is_some_and(|m| m.contains("running, stopped or silent")), "{b}");
}

#[tokio::test]
async fn metrics_count_requests_by_route_pattern() {
    let f = fixture().await;
    let admin = Some(f.tokens[&Role::Admin].as_str());
    for _ in 0..3 {
        assert_eq!(call(&f.app, "GET", "/api/v1/incidents", admin, "").await.0, StatusCode::OK);
    }
    assert_eq!(call(&f.app, "GET", "/api/v1/incidents/INC-404", admin, "").await.0, StatusCode::NOT_FOUND);
    assert_eq!(call(&f.app, "GET", "/api/v1/incidents/INC-405", admin, "").await.0, StatusCode::NOT_FOUND);
    let (s, body) = call(&f.app, "GET", "/metrics", admin, "").await;
    assert_eq!(s, StatusCode::OK);
    let text = body.as_str().expect("text");
    assert!(
        text.contains("custos_http_requests_total{route=\"/api/v1/incidents\",method=\"GET\",status=\"200\"} 3"),
        "{text}"
    );
    // Ids in the path do not make new series.
    assert!(
        text.contains("custos_http_requests_total{route=\"/api/v1/incidents/{id}\",method=\"GET\",status=\"404\"} 2"),
        "{text}"
    );
    assert!(text.contains("custos_http_request_duration_seconds_count{route=\"/api/v1/incidents\",method=\"GET\"} 3"));
}

#[tokio::test]
async fn metrics_show_how_far_search_and_archive_have_got() {
    let f = fixture().await;
    f.ledger.append(plant_events()).await.expect("append");
    caught_up(&f).await;
    let size = f.ledger.size();
    assert!(size >= 3);
    let admin = Some(f.tokens[&Role::Admin].as_str());
    let (s, body) = call(&f.app, "GET", "/metrics", admin, "").await;
    assert_eq!(s, StatusCode::OK);
    let text = body.as_str().expect("text");
    for view in ["search", "archive"] {
        assert!(text.contains(&format!("custos_view_records{{view=\"{view}\"}} {size}\n")), "{view}: {text}");
        assert!(text.contains(&format!("custos_view_lag_records{{view=\"{view}\"}} 0\n")), "{view}: {text}");
    }
    // The room left in the data directory, to alert on before the ledger cannot append.
    let room = text.lines().find_map(|l| l.strip_prefix("custos_data_dir_available_bytes "));
    assert!(room.and_then(|n| n.parse::<u64>().ok()).is_some_and(|n| n > 0), "{text}");
}

/// Polls `ready` until it holds; fails with `what` after `secs` seconds.
async fn eventually(what: &str, secs: u64, mut ready: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while !ready() {
        assert!(std::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// Waits until search and SQL have every ledger record.
async fn caught_up(f: &Fixture) {
    use std::sync::atomic::Ordering::Relaxed;
    let size = f.ledger.size();
    eventually("the views did not catch up with the ledger", 20, || {
        f.follow.searchable.load(Relaxed) >= size && f.follow.archived.load(Relaxed) >= size
    })
    .await;
}

fn plant_events() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for (i, (zone, person, raw)) in [
        ("control-room", "alice", "Door CR-1 access denied badge 4711"),
        ("control-room", "bob", "Door CR-1 access granted badge 4712"),
        ("cell-1", "alice", "Door C1-2 access granted badge 4711"),
    ]
    .into_iter()
    .enumerate()
    {
        let mut e = ingest::Event::new(
            ingest::event::EventClass::PhysicalAccess,
            1,
            1_795_687_200_000 + i as i64 * 1000,
            1_795_687_200_000,
            raw.as_bytes(),
        );
        e.zone = Some(zone.into());
        e.actor_mut().person = Some(person.into());
        e.message = raw.into();
        out.push(ledger::record::encode(ledger::RecordKind::Event, 1, &e).expect("encode"));
    }
    out
}

fn last_audit(f: &Fixture) -> Value {
    let rec = f.ledger.record(f.ledger.size() - 1).expect("record");
    let rec = ledger::record::decode(&rec).expect("decode");
    assert_eq!(rec.kind, ledger::RecordKind::Audit);
    rec.data
}

#[tokio::test]
async fn search_finds_events_pages_and_is_audited() {
    let f = fixture().await;
    let range = f.ledger.append(plant_events()).await.expect("append");
    caught_up(&f).await;
    let analyst = Some(f.tokens[&Role::SocAnalyst].as_str());
    let (s, b) = call(&f.app, "GET", "/api/v1/search?q=zone:control-room&facets=zone,class", analyst, "").await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["total"], 2);
    assert_eq!(b["hits"][0]["ledger_index"], range.start + 1, "newest first");
    assert_eq!(b["hits"][0]["record"]["actor"]["person"], "bob");
    assert_eq!(b["hits"][0]["time"], "2026-11-26T10:00:01.000Z");
    assert_eq!(b["facets"]["zone"][0], serde_json::json!({"value": "control-room", "count": 2}));
    let audit = last_audit(&f);
    assert_eq!((audit["action"].as_str(), audit["details"]["q"].as_str()), (Some("search"), Some("zone:control-room")));

    let (_, b) = call(&f.app, "GET", "/api/v1/search?q=denied%20AND%20person:alice", analyst, "").await;
    assert_eq!(b["total"], 1);
    let (_, page1) = call(&f.app, "GET", "/api/v1/search?q=badge&limit=2", analyst, "").await;
    let cursor = page1["next_cursor"].as_str().expect("cursor").to_owned();
    let (_, page2) = call(&f.app, "GET", &format!("/api/v1/search?q=badge&limit=2&cursor={cursor}"), analyst, "").await;
    assert_eq!(page2["hits"].as_array().map(Vec::len), Some(1));
    assert_eq!(page2["next_cursor"], Value::Null);
    let (_, b) =
        call(&f.app, "GET", "/api/v1/search?from=2026-11-26T10:00:01Z&to=2026-11-26T10:00:02Z", analyst, "").await;
    assert_eq!(b["total"], 1);
    let (_, b) = call(&f.app, "GET", "/api/v1/search?q=zone:control-room&order=oldest", analyst, "").await;
    assert_eq!(b["hits"][0]["ledger_index"], range.start, "oldest first");
    // A cursor names the order it continues; with the other order it is refused, saying which.
    let (_, page1) = call(&f.app, "GET", "/api/v1/search?q=badge&limit=2&order=oldest", analyst, "").await;
    let oldest_cursor = page1["next_cursor"].as_str().expect("cursor").to_owned();
    let next = format!("/api/v1/search?q=badge&limit=2&order=oldest&cursor={oldest_cursor}");
    let (_, page2) = call(&f.app, "GET", &next, analyst, "").await;
    assert_eq!(page2["hits"].as_array().map(Vec::len), Some(1));
    for (order, cursor, wanted) in [("newest", &oldest_cursor, "oldest"), ("oldest", &cursor, "newest")] {
        let (s, b) =
            call(&f.app, "GET", &format!("/api/v1/search?q=badge&order={order}&cursor={cursor}"), analyst, "").await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
        let message = b["error"]["message"].as_str().unwrap_or_default();
        assert!(message.ends_with(&format!("pass order={wanted} with it")), "{message}");
    }

    for bad in [
        "/api/v1/search?q=zone:(",
        "/api/v1/search?q=colour:red",
        "/api/v1/search?from=yesterday",
        "/api/v1/search?cursor=xyz",
        "/api/v1/search?facets=colour",
        "/api/v1/search?timeout_ms=0",
        "/api/v1/search?timeout_ms=10001",
        "/api/v1/search?order=sideways",
    ] {
        let (s, b) = call(&f.app, "GET", bad, analyst, "").await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}: {b}");
        assert_eq!(b["error"]["code"], "bad_request");
    }
    // A refused search is audited with what was asked and why it was refused,
    // whether its parameters or the index refused it.
    let audit = last_audit(&f);
    assert_eq!((audit["action"].as_str(), audit["details"]["q"].as_str()), (Some("search"), None));
    assert!(audit["details"]["refused"].as_str().is_some_and(|m| m.contains("sideways")), "{audit}");
    let before = f.ledger.size();
    call(&f.app, "GET", "/api/v1/search?from=yesterday", analyst, "").await;
    let audit = last_audit(&f);
    assert_eq!((f.ledger.size(), audit["details"]["from"].as_str()), (before + 1, Some("yesterday")));
    assert!(audit["details"]["refused"].as_str().is_some_and(|m| m.contains("RFC 3339")), "{audit}");
    call(&f.app, "GET", "/api/v1/search?q=zone:(", analyst, "").await;
    let audit = last_audit(&f);
    assert_eq!((audit["details"]["q"].as_str(), audit["actor"].as_str()), (Some("zone:("), Some("SocAnalyst")));
    assert!(audit["details"]["refused"].as_str().is_some_and(|m| m.contains("Syntax Error")), "{audit}");
    // Nesting deep enough to overflow the parser's stack is refused, and the server stays up.
    let deep = format!("/api/v1/search?q={}a{}", "%28".repeat(500), "%29".repeat(500));
    let (s, b) = call(&f.app, "GET", &deep, analyst, "").await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    assert!(b["error"]["message"].as_str().is_some_and(|m| m.contains("500 parentheses")), "{b}");
}

/// Who is on site: everyone a badge put somewhere, not who left, with the
/// badge event's time and ledger index; filters; every call audited.
#[tokio::test]
async fn presence_lists_who_is_on_site() {
    let f = fixture().await;
    let control_room = Some(f.tokens[&Role::ControlRoom].as_str());
    // Logons inside with no badge in: Mallory's counts; Alice is on site by
    // her badge anyway, and Dave's logon was longer ago than a badge-in counts.
    let now = ingest::source::now_millis();
    let logon = |who: &str, minutes: i64, index: u64| {
        let mut a = alert(correlate::EntityKind::Person, who);
        (a.id, a.rule, a.time) = (
            format!("custos-logon-without-badge-in:{index}"),
            "custos-logon-without-badge-in".into(),
            now - minutes * 60_000,
        );
        Stored { index, item: Arc::new(a) }
    };
    f.views.add_alerts([logon("dave", 13 * 60, 50), logon("mallory", 2, 51), logon("alice", 1, 52)]);
    let (s, b) = call(&f.app, "GET", "/api/v1/presence?reason=fire%20drill", control_room, "").await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let who: Vec<(&str, &str, u64)> = b["on_site"]
        .as_array()
        .expect("list")
        .iter()
        .map(|o| {
            (
                o["person"].as_str().unwrap_or(""),
                o["area"].as_str().unwrap_or(""),
                o["ledger_index"].as_u64().unwrap_or(99),
            )
        })
        .collect();
    assert_eq!(who, [("alice", "control-room-1", 0), ("bob", "qc-lab", 1)], "Carol left: {b}");
    let seen = &b["seen_without_badge"];
    assert_eq!(seen.as_array().map(Vec::len), Some(1), "{b}");
    assert_eq!(
        (seen[0]["person"].as_str(), seen[0]["zone"].as_str(), seen[0]["ledger_index"].as_u64()),
        (Some("mallory"), Some("cell-1"), Some(51))
    );
    assert!(b["on_site"][0]["since"].as_str().is_some_and(|t| t.ends_with('Z')), "{b}");
    // Names from the inventory, so a muster can call them out.
    fn named(o: &Value) -> (Option<&str>, Option<&str>, Option<bool>) {
        (o["name"].as_str(), o["employer"].as_str(), o["vendor"].as_bool())
    }
    assert_eq!(named(&b["on_site"][1]), (Some("Bob Berg"), Some("Acme Automation"), Some(true)), "{b}");
    assert_eq!(named(&seen[0]), (Some("Mallory Moss"), Some("Packaging"), Some(false)), "{b}");
    let audit = last_audit(&f);
    assert_eq!((audit["action"].as_str(), audit["reason"].as_str()), (Some("presence.read"), Some("fire drill")));
    assert_eq!((audit["actor"].as_str(), audit["details"]["found"].as_u64()), (Some("ControlRoom"), Some(2)));
    assert_eq!(audit["details"]["seen_without_badge"].as_u64(), Some(1));
    assert_eq!(audit["details"]["unidentified_entries"].as_u64(), Some(1));
    let unnamed = &b["unidentified_entries"];
    assert_eq!(unnamed.as_array().map(Vec::len), Some(1), "{b}");
    assert_eq!(
        (unnamed[0]["door"].as_str(), unnamed[0]["how"].as_str(), unnamed[0]["area"].as_str()),
        (Some("CR-DOOR-1"), Some("tailgating"), Some("control-room-1")),
        "{b}"
    );
    assert_eq!(unnamed[0]["ledger_index"].as_u64(), Some(4));
    let unnamed_in = |q: &'static str| {
        let app = f.app.clone();
        async move { call(&app, "GET", q, control_room, "").await.1["unidentified_entries"].as_array().map(Vec::len) }
    };
    assert_eq!(unnamed_in("/api/v1/presence?area=control-room-1").await, Some(1));
    assert_eq!(unnamed_in("/api/v1/presence?zone=qc-lab").await, Some(0));
    assert_eq!(unnamed_in("/api/v1/presence?person=alice").await, Some(0), "not when one person is asked for");
    let found = |q: &'static str| {
        let app = f.app.clone();
        async move {
            let (_, b) = call(&app, "GET", q, control_room, "").await;
            b["on_site"]
                .as_array()
                .map(|l| l.iter().map(|o| o["person"].as_str().unwrap_or("").to_owned()).collect::<Vec<_>>())
        }
    };
    assert_eq!(found("/api/v1/presence?area=control-room-1").await, Some(vec!["alice".to_owned()]));
    assert_eq!(found("/api/v1/presence?zone=qc-lab").await, Some(vec!["bob".to_owned()]));
    assert_eq!(found("/api/v1/presence?person=carol").await, Some(vec![]));
    let (s, b) = call(&f.app, "GET", "/api/v1/presence?floor=2", control_room, "").await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");

    // As of a past time: five minutes ago Carol was still in the control
    // room, and Mallory's logon (two minutes ago) had not happened yet.
    let at = ingest::time::format_rfc3339(now - 5 * 60_000);
    let (s, b) = call(&f.app, "GET", &format!("/api/v1/presence?at={at}"), control_room, "").await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let who: Vec<&str> = b["on_site"].as_array().expect("list").iter().filter_map(|o| o["person"].as_str()).collect();
    assert_eq!((who, b["at"].as_str()), (vec!["alice", "bob", "carol"], Some(at.as_str())), "{b}");
    assert_eq!(b["seen_without_badge"].as_array().map(Vec::len), Some(0), "{b}");
    assert_eq!(b["unidentified_entries"].as_array().map(Vec::len), Some(0), "the tailgate came later: {b}");
    assert_eq!(last_audit(&f)["details"]["at"].as_str(), Some(at.as_str()));
    for (at, status, code) in [
        (now - 13 * 3_600_000, StatusCode::UNPROCESSABLE_ENTITY, "too_old"),
        (now + 3_600_000, StatusCode::BAD_REQUEST, "bad_request"),
    ] {
        let uri = format!("/api/v1/presence?at={}", ingest::time::format_rfc3339(at));
        let (s, b) = call(&f.app, "GET", &uri, control_room, "").await;
        assert_eq!((s, b["error"]["code"].as_str()), (status, Some(code)), "{b}");
    }
    let (s, b) = call(&f.app, "GET", "/api/v1/presence?at=yesterday", control_room, "").await;
    assert!(s == StatusCode::BAD_REQUEST && b["error"]["message"].as_str().is_some_and(|m| m.contains("at:")), "{b}");

    // The muster list as CSV, for printing or an evacuation system.
    let req = Request::builder()
        .uri("/api/v1/presence?zone=cell-1")
        .header("authorization", format!("Bearer {}", f.tokens[&Role::ControlRoom]))
        .header("accept", "text/csv")
        .body(Body::empty())
        .expect("request");
    let resp = f.app.clone().oneshot(req).await.expect("response");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "text/csv; charset=utf-8");
    assert!(
        resp.headers()["content-disposition"]
            .to_str()
            .is_ok_and(|d| d.starts_with("attachment; filename=\"custos-muster-"))
    );
    let text = String::from_utf8(resp.into_body().collect().await.expect("body").to_bytes().to_vec()).expect("utf-8");
    let lines: Vec<Vec<&str>> = text.lines().map(|l| l.split(',').collect()).collect();
    assert_eq!(
        lines[0],
        ["status", "person", "name", "employer", "vendor", "zone", "area", "since", "ledger_index", "door", "how"]
    );
    let rows: Vec<[&str; 8]> = lines[1..].iter().map(|l| [l[0], l[1], l[2], l[4], l[5], l[6], l[9], l[10]]).collect();
    assert_eq!(
        rows,
        [
            ["on_site", "alice", "Alice Adams", "false", "cell-1", "control-room-1", "", ""],
            ["seen_without_badge", "mallory", "Mallory Moss", "false", "cell-1", "", "", ""],
            ["unidentified_entry", "", "", "", "cell-1", "control-room-1", "CR-DOOR-1", "tailgating"],
        ],
        "{text}"
    );
    let audit = last_audit(&f);
    assert_eq!((audit["action"].as_str(), audit["details"]["format"].as_str()), (Some("presence.read"), Some("csv")));
}

/// Every query of the README's list for quality teams runs against the
/// archive's tables as they are (the README cannot drift from the schema).
#[tokio::test]
async fn the_readme_quality_queries_run() {
    let f = fixture().await;
    f.ledger.append(plant_events()).await.expect("append");
    caught_up(&f).await;
    let reviewer = Some(f.tokens[&Role::QualityReviewer].as_str());
    let readme = include_str!("../../README.md");
    let block = readme
        .split_once("Queries a quality team runs:\n\n```sql\n")
        .and_then(|(_, rest)| rest.split_once("```"))
        .map(|(sql, _)| sql)
        .expect("the README's quality queries");
    let statements: Vec<String> = block
        .split(';')
        .map(|s| s.lines().filter(|l| !l.trim_start().starts_with("--")).collect::<Vec<_>>().join("\n"))
        .filter(|s| !s.trim().is_empty())
        .collect();
    assert!(statements.len() >= 8, "{statements:?}");
    for sql in statements {
        let body = serde_json::json!({"sql": sql, "reason": "README check"}).to_string();
        let (s, b) = call(&f.app, "POST", "/api/v1/query/sql", reviewer, &body).await;
        assert_eq!(s, StatusCode::OK, "{sql}\n{b}");
    }
}

#[tokio::test]
async fn sql_answers_read_only_queries_and_is_audited() {
    let f = fixture().await;
    f.ledger.append(plant_events()).await.expect("append");
    caught_up(&f).await;
    let reviewer = Some(f.tokens[&Role::QualityReviewer].as_str());
    let body =
        r#"{"sql": "SELECT zone, count(*) AS n FROM events GROUP BY zone ORDER BY zone", "reason": "batch 7 review"}"#;
    let (s, b) = call(&f.app, "POST", "/api/v1/query/sql", reviewer, body).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["rows"], serde_json::json!([{"zone": "cell-1", "n": 1}, {"zone": "control-room", "n": 2}]));
    assert_eq!(b["truncated"], false);
    let audit = last_audit(&f);
    assert_eq!(audit["action"], "query.sql");
    assert_eq!(audit["reason"], "batch 7 review");
    assert!(audit["details"]["sql"].as_str().unwrap_or("").contains("GROUP BY zone"));

    let (_, b) =
        call(&f.app, "POST", "/api/v1/query/sql", reviewer, r#"{"sql": "SELECT * FROM events", "max_rows": 2}"#).await;
    assert_eq!((b["rows"].as_array().map(Vec::len), &b["truncated"]), (Some(2), &Value::Bool(true)));

    let (s, b) = call(&f.app, "POST", "/api/v1/query/sql", reviewer, r#"{"sql": "DROP TABLE events"}"#).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    assert!(last_audit(&f)["details"]["refused"].is_string(), "refused queries are audited too");
    for bad in [r#"{"sql": ""}"#, r#"{"sql": "SELECT 1", "max_rows": 0}"#, r#"{"query": "SELECT 1"}"#, "not json"] {
        assert_eq!(call(&f.app, "POST", "/api/v1/query/sql", reviewer, bad).await.0, StatusCode::BAD_REQUEST, "{bad}");
    }
    // An expression deep enough to overflow DataFusion's stack is refused, and the server stays up.
    let deep = format!(r#"{{"sql": "SELECT {}1 AS n"}}"#, "1+".repeat(200));
    let (s, b) = call(&f.app, "POST", "/api/v1/query/sql", reviewer, &deep).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    assert!(b["error"]["message"].as_str().is_some_and(|m| m.contains("200 operators")), "{b}");
    // A query past its time limit (here the caller's own) is stopped: 422, audited.
    let slow = r#"{"sql": "SELECT count(*) FROM generate_series(1, 100000000000)", "timeout_ms": 50}"#;
    let (s, b) = call(&f.app, "POST", "/api/v1/query/sql", reviewer, slow).await;
    assert_eq!((s, b["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("timeout")), "{b}");
    assert!(last_audit(&f)["details"]["refused"].as_str().is_some_and(|m| m.contains("longer than")));
    for timeout in ["0", "30001"] {
        let body = format!(r#"{{"sql": "SELECT 1", "timeout_ms": {timeout}}}"#);
        assert_eq!(call(&f.app, "POST", "/api/v1/query/sql", reviewer, &body).await.0, StatusCode::BAD_REQUEST);
    }
    let control_room = Some(f.tokens[&Role::ControlRoom].as_str());
    assert_eq!(
        call(&f.app, "POST", "/api/v1/query/sql", control_room, r#"{"sql": "SELECT 1"}"#).await.0,
        StatusCode::FORBIDDEN
    );
}

/// An export keeps its turn until its bundle is sent or the client goes
/// away: the unsent bundle takes room in the data directory.
#[tokio::test]
async fn an_export_keeps_its_turn_until_its_bundle_is_sent() {
    let f = fixture_with(LedgerOptions::default(), turns(1, 1, std::time::Duration::ZERO)).await;
    let recs: Vec<Vec<u8>> = (0..3)
        .map(|i| ledger::record::encode(ledger::RecordKind::Audit, 1_795_687_200_000 + i, &serde_json::json!({"n": i})))
        .collect::<Result<_, _>>()
        .expect("records");
    f.ledger.append(recs).await.expect("append");
    eventually("no checkpoint of size 4", 10, || f.ledger.latest_checkpoint().is_some_and(|n| n.contains("\n4\n")))
        .await;
    let reviewer = f.tokens[&Role::QualityReviewer].as_str();
    let export = || async {
        let req = Request::builder()
            .method("POST")
            .uri("/api/v1/evidence/exports")
            .header("authorization", format!("Bearer {reviewer}"))
            .body(Body::from(r#"{"from":"2026-11-26T10:00:00Z","to":"2026-11-26T11:00:00Z"}"#))
            .expect("request");
        f.app.clone().oneshot(req).await.expect("response")
    };
    let unread = export().await;
    assert_eq!(unread.status(), StatusCode::OK);
    assert_eq!(export().await.status(), StatusCode::SERVICE_UNAVAILABLE, "the first bundle is not sent yet");
    let bytes = unread.into_body().collect().await.expect("body").to_bytes();
    assert_eq!(ledger::verify_bundle(&bytes, None).expect("verifies").records, 3);
    // The turn passes on once the body is gone (its release runs on a task
    // of its own): the bundle read above, then one dropped unread.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    for what in ["the read bundle's", "the dropped bundle's"] {
        while export().await.status() != StatusCode::OK {
            assert!(std::time::Instant::now() < deadline, "{what} turn was not passed on");
            tokio::task::yield_now().await;
        }
    }
}

/// An export does not start when it could take the room the ledger needs.
#[tokio::test]
async fn an_export_needs_room_in_the_data_directory() {
    let turns = Turns::new(1, 1, std::time::Duration::ZERO).with_export_room(u64::MAX);
    let f = fixture_with(LedgerOptions::default(), turns).await;
    let reviewer = Some(f.tokens[&Role::QualityReviewer].as_str());
    let body = r#"{"from":"2026-11-26T10:00:00Z","to":"2026-11-26T11:00:00Z"}"#;
    // Twice: the first refusal gave its one turn back (else the second is `busy`).
    for _ in 0..2 {
        let (s, b) = call(&f.app, "POST", "/api/v1/evidence/exports", reviewer, body).await;
        assert_eq!((s, b["error"]["code"].as_str()), (StatusCode::SERVICE_UNAVAILABLE, Some("unavailable")), "{b}");
        assert!(b["error"]["message"].as_str().is_some_and(|m| m.contains("MB free")), "{b}");
        let audit = last_audit(&f);
        assert_eq!(audit["action"], "evidence.export");
        assert!(audit["details"]["refused"].as_str().is_some_and(|m| m.contains("MB free")), "{audit}");
    }
    // A body that is not a selection is refused, and audited, too.
    let (s, b) = call(&f.app, "POST", "/api/v1/evidence/exports", reviewer, r#"{"from": 1}"#).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    let audit = last_audit(&f);
    assert_eq!((audit["action"].as_str(), audit["details"]["from"].as_str()), (Some("evidence.export"), None));
    assert!(audit["details"]["refused"].as_str().is_some_and(|m| m.starts_with("body:")), "{audit}");
}

/// With no turn free, an export and a query are turned away with 503 `busy`
/// and a Retry-After; each refusal is audited, with what was asked.
#[tokio::test]
async fn exports_and_queries_without_a_free_turn_are_busy() {
    let f = fixture_with(LedgerOptions::default(), turns(0, 0, std::time::Duration::ZERO)).await;
    let reviewer = f.tokens[&Role::QualityReviewer].as_str();
    let export = r#"{"from":"2026-11-26T10:00:00Z","to":"2026-11-26T11:00:00Z","reason":"batch 42"}"#;
    for (uri, body, action, asked) in [
        ("/api/v1/evidence/exports", export, "evidence.export", ("from", "2026-11-26T10:00:00Z")),
        ("/api/v1/query/sql", r#"{"sql": "SELECT 1"}"#, "query.sql", ("sql", "SELECT 1")),
    ] {
        let req = Request::builder().method("POST").uri(uri).header("authorization", format!("Bearer {reviewer}"));
        let resp = f.app.clone().oneshot(req.body(Body::from(body)).expect("request")).await.expect("response");
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE, "{uri}");
        assert_eq!(resp.headers()["retry-after"], "10", "{uri}");
        let b: Value =
            serde_json::from_slice(&resp.into_body().collect().await.expect("body").to_bytes()).expect("json");
        assert_eq!(b["error"]["code"], "busy", "{uri}: {b}");
        let audit = last_audit(&f);
        assert_eq!((audit["action"].as_str(), audit["details"][asked.0].as_str()), (Some(action), Some(asked.1)));
        assert!(audit["details"]["refused"].as_str().is_some_and(|m| m.contains("turn")), "{audit}");
    }
}

/// A timeline page's entries as (kind, ledger index).
fn timeline_entries(b: &Value) -> Vec<(String, u64)> {
    b["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .map(|e| (e["entry"].as_str().unwrap_or("").to_owned(), e["ledger_index"].as_u64().unwrap_or(0)))
        .collect()
}

#[tokio::test]
async fn incidents_filter_and_the_timeline_merges_events_and_alerts() {
    let f = fixture().await;
    let a = alert(correlate::EntityKind::Person, "mallory");
    let id = f.views.file_unledgered(std::slice::from_ref(&a)).await.incident_of[0].clone();
    f.views.add_alerts([Stored { index: 7, item: Arc::new(a) }]);
    let soc = Some(f.tokens[&Role::SocAnalyst].as_str());
    let count = |b: &Value| b["incidents"].as_array().map(Vec::len);
    let (_, b) = call(&f.app, "GET", "/api/v1/incidents?severity=high&zone=cell-1", soc, "").await;
    assert_eq!(count(&b), Some(1));
    let (_, b) = call(&f.app, "GET", "/api/v1/incidents?severity=critical", soc, "").await;
    assert_eq!(count(&b), Some(0));
    let (_, b) = call(&f.app, "GET", "/api/v1/incidents?from=2026-01-01T00:00:00Z", soc, "").await;
    assert_eq!(count(&b), Some(0), "the alert is from 1970");
    assert_eq!(call(&f.app, "GET", "/api/v1/incidents?severity=bad", soc, "").await.0, StatusCode::BAD_REQUEST);
    let (_, b) = call(&f.app, "GET", "/api/v1/incidents?state=new", soc, "").await;
    assert_eq!(count(&b), Some(1));
    let (_, b) = call(&f.app, "GET", "/api/v1/incidents?state=acknowledged,investigating", soc, "").await;
    assert_eq!(count(&b), Some(0));
    let (_, b) = call(&f.app, "GET", "/api/v1/incidents?state=closed,new", soc, "").await;
    assert_eq!(count(&b), Some(1));
    // A misspelt state is a 400 naming the states, not an empty list.
    let (s, b) = call(&f.app, "GET", "/api/v1/incidents?state=open", soc, "").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(b["error"]["message"].as_str().is_some_and(|m| m.contains("\"open\" is not one of new,")), "{b}");

    let (s, b) = call(&f.app, "GET", &format!("/api/v1/incidents/{id}/timeline"), soc, "").await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let entries = timeline_entries(&b);
    assert_eq!(entries, vec![("alert".to_owned(), 7), ("event".to_owned(), 1)], "event-time order");
    assert_eq!(call(&f.app, "GET", "/api/v1/incidents/INC-9/timeline", soc, "").await.0, StatusCode::NOT_FOUND);

    // An alert long out of the recent view (it keeps 100 here) is read back from the ledger.
    let mut old = alert(correlate::EntityKind::Asset, "PLC-07");
    old.id = "old:1".into();
    let range = f.ledger.append(vec![ledger::record::encode(ledger::RecordKind::Alert, 5, &old).expect("record")]);
    let index = range.await.expect("append").start;
    let id = f.views.file_unledgered(std::slice::from_ref(&old)).await.incident_of[0].clone();
    f.views.add_alerts([Stored { index, item: Arc::new(old) }]);
    f.views.add_alerts((0..100).map(|i| {
        let mut a = alert(correlate::EntityKind::Asset, "noise");
        a.id = format!("noise:{i}");
        Stored { index: 1_000 + i, item: Arc::new(a) }
    }));
    let (_, b) = call(&f.app, "GET", &format!("/api/v1/incidents/{id}/timeline"), soc, "").await;
    let alert_entry = b["timeline"].as_array().and_then(|t| t.iter().find(|e| e["entry"] == "alert")).cloned();
    assert_eq!(
        alert_entry.map(|e| (e["id"].clone(), e["ledger_index"].clone())),
        Some(("old:1".into(), index.into())),
        "{b}"
    );

    // Events no longer in the recent view come from the ledger too, in event
    // time order; an index naming a record of another kind is left out.
    let mut records: Vec<Vec<u8>> = [30i64, 10, 20]
        .iter()
        .map(|t| {
            let e = ingest::Event::new(ingest::event::EventClass::PhysicalAccess, 2, *t, *t, b"old badge read");
            ledger::record::encode(ledger::RecordKind::Event, *t, &e).expect("record")
        })
        .collect();
    records
        .push(ledger::record::encode(ledger::RecordKind::Audit, 40, &serde_json::json!({"time": 40})).expect("audit"));
    let first = f.ledger.append(records).await.expect("append").start;
    let mut late = alert(correlate::EntityKind::Asset, "PLC-08");
    late.id = "late:1".into();
    late.time = 25;
    late.events = vec![first, first + 1, first + 2, first + 3];
    let id = f.views.file_unledgered(std::slice::from_ref(&late)).await.incident_of[0].clone();
    f.views.add_alerts([Stored { index: 2_000, item: Arc::new(late) }]);
    let (_, b) = call(&f.app, "GET", &format!("/api/v1/incidents/{id}/timeline"), soc, "").await;
    let entries = timeline_entries(&b);
    let at = |kind: &str, i: u64| (kind.to_owned(), i);
    assert_eq!(
        entries,
        [at("event", first + 1), at("event", first + 2), at("alert", 2_000), at("event", first)],
        "{b}"
    );
    assert_eq!(b["total"], 4, "the audit record named as an event is left out");
}

/// A timeline of hundreds of entries comes in pages, in event-time order,
/// each entry once; the detail shows the first hundred and where the rest are.
#[tokio::test]
async fn a_long_timeline_comes_in_pages() {
    let f = fixture().await;
    let alerts: Vec<correlate::Alert> = (0..250i64)
        .map(|i| {
            let mut a = alert(correlate::EntityKind::Person, "mallory");
            a.id = format!("burst:{i}");
            // Times interleave with ledger indices, and two alerts share each time.
            a.time = 1_000 - i / 2;
            a.events = vec![];
            a
        })
        .collect();
    let filed = f.views.file_unledgered(&alerts).await;
    let id = filed.incident_of[0].clone();
    // Ledgered for real: the recent view keeps 100, the rest are read back.
    let records = alerts.iter().map(|a| ledger::record::encode(ledger::RecordKind::Alert, 5, a).expect("record"));
    let first = f.ledger.append(records.collect()).await.expect("append").start;
    f.views.add_alerts(alerts.into_iter().zip(first..).map(|(a, index)| Stored { index, item: Arc::new(a) }));
    let soc = Some(f.tokens[&Role::SocAnalyst].as_str());
    let key = |e: &Value| (e["at"].as_str().unwrap_or("").to_owned(), e["ledger_index"].as_u64().unwrap_or(0));

    let (_, whole) = call(&f.app, "GET", &format!("/api/v1/incidents/{id}/timeline"), soc, "").await;
    let whole: Vec<_> = whole["timeline"].as_array().expect("timeline").iter().map(key).collect();
    assert_eq!(whole.len(), 250, "the default page holds it all");
    assert!(whole.windows(2).all(|w| w[0] < w[1]), "event time, then ledger index");

    let (mut paged, mut after, mut pages) = (Vec::new(), String::new(), 0);
    loop {
        let uri = format!("/api/v1/incidents/{id}/timeline?limit=100{after}");
        let (s, b) = call(&f.app, "GET", &uri, soc, "").await;
        assert_eq!((s, b["total"].as_u64()), (StatusCode::OK, Some(250)), "{b}");
        paged.extend(b["timeline"].as_array().expect("page").iter().map(key));
        pages += 1;
        match b["next"].as_str() {
            Some(next) => after = format!("&after={next}"),
            None => break,
        }
    }
    assert_eq!((pages, paged), (3, whole.clone()), "three pages, the same entries in the same order");

    let (_, detail) = call(&f.app, "GET", &format!("/api/v1/incidents/{id}"), soc, "").await;
    let shown: Vec<_> = detail["timeline"].as_array().expect("timeline").iter().map(key).collect();
    assert_eq!((shown.as_slice(), detail["timeline_total"].as_u64()), (&whole[..100], Some(250)));
    let next = detail["timeline_next"].as_str().expect("more to read").to_owned();
    let (_, rest) = call(&f.app, "GET", &format!("/api/v1/incidents/{id}/timeline?after={next}"), soc, "").await;
    assert_eq!(rest["timeline"].as_array().map(|t| t.iter().map(key).collect::<Vec<_>>()), Some(whole[100..].to_vec()));
    assert_eq!(rest["next"], Value::Null);

    for bad in ["after=yesterday", "after=5", "limit=0", "limit=1001"] {
        let (s, b) = call(&f.app, "GET", &format!("/api/v1/incidents/{id}/timeline?{bad}"), soc, "").await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}: {b}");
    }
}

/// The OpenAPI document is a contract: a change to it shows in review as a
/// change to this golden file (`CUSTOS_UPDATE_GOLDEN=1` rewrites it).
#[tokio::test]
async fn openapi_document_is_golden_and_every_operation_is_guarded() {
    let doc = custos::server::openapi().to_pretty_json().expect("json");
    let golden = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/openapi.json");
    if std::env::var_os("CUSTOS_UPDATE_GOLDEN").is_some() {
        std::fs::write(&golden, &doc).expect("write golden");
    }
    assert_eq!(doc, std::fs::read_to_string(&golden).expect("golden file"), "the OpenAPI document changed");

    let f = fixture().await;
    let admin = Some(f.tokens[&Role::Admin].as_str());
    let (s, served) = call(&f.app, "GET", "/api/v1/openapi.json", admin, "").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(served["openapi"], "3.1.0");
    assert_eq!(served, serde_json::from_str::<Value>(&doc).expect("doc"));

    // Each documented operation exists (no 404 / 405) and needs a token.
    let open = ["/healthz", "/readyz", "/api/v1/login"];
    let mut operations = 0;
    for (path, item) in served["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("item").keys() {
            let uri = path.replace("{id}", "INC-1").replace("{index}", "1").replace("{source}", "badge");
            let (status, _) = call(&f.app, &method.to_uppercase(), &uri, None, "{}").await;
            operations += 1;
            if open.contains(&path.as_str()) {
                assert_ne!(status, StatusCode::UNAUTHORIZED, "{method} {path} is open");
            } else {
                assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}");
            }
        }
    }
    assert_eq!(operations, 38, "every route is documented");
}
