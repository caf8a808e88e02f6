//! Black-box tests of the admin API: office scoping and the audit log.

use crate::common;

use common::{Db, Service, fresh_pg_database};
use geoward_ingest::api::{Role, create_token};
use geoward_ingest::store::Store;

async fn request(
    svc: &Service,
    method: &str,
    path: &str,
    token: &str,
    body: Option<&str>,
) -> (u16, String) {
    common::api(svc, method, path, token, body).await
}

async fn audit_rows(store: &Store, action: &str) -> i64 {
    geoward_ingest::with_pool!(store, p => sqlx::query_scalar("SELECT COUNT(*) FROM audit_chain WHERE action = $1")
        .bind(action).fetch_one(p).await.unwrap())
}

async fn officer_of_one_office_sees_nothing_of_another(db: Db) {
    let svc = Service::start(db).await;
    let admin = create_token(&svc.store, "root", Role::Admin, None)
        .await
        .unwrap();
    for body in [
        r#"{"id":"city","parent_id":null,"name":"City bureau","kind":"city_bureau"}"#,
        r#"{"id":"offA","parent_id":"city","name":"Office A","kind":"justice_office"}"#,
        r#"{"id":"offB","parent_id":"city","name":"Office B","kind":"justice_office"}"#,
    ] {
        assert_eq!(
            request(&svc, "POST", "/api/offices", &admin, Some(body))
                .await
                .0,
            201,
            "{body}"
        );
    }
    for body in [
        r#"{"id":"subjA","office_id":"offA","name":"A","supervision_level":"normal"}"#,
        r#"{"id":"subjB","office_id":"offB","name":"B","supervision_level":"strict"}"#,
    ] {
        assert_eq!(
            request(&svc, "POST", "/api/subjects", &admin, Some(body))
                .await
                .0,
            201
        );
    }
    let officer_a = create_token(&svc.store, "officer-a", Role::Officer, Some("offA"))
        .await
        .unwrap();
    let bureau = create_token(&svc.store, "bureau", Role::Bureau, Some("city"))
        .await
        .unwrap();

    // Reads.
    let (st, body) = request(&svc, "GET", "/api/subjects", &officer_a, None).await;
    assert_eq!(st, 200);
    assert!(body.contains("subjA") && !body.contains("subjB"), "{body}");
    assert_eq!(
        request(&svc, "GET", "/api/subjects/subjA", &officer_a, None)
            .await
            .0,
        200
    );
    let track = "/track?from=2020-01-01T00:00:00Z&to=2030-01-01T00:00:00Z";
    for path in [
        "/api/subjects/subjB".to_owned(),
        format!("/api/subjects/subjB{track}"),
        "/api/subjects/subjB/orders".to_owned(),
        "/api/subjects/subjB/rules".to_owned(),
        "/api/subjects/subjB/leave-permits".to_owned(),
        "/api/subjects/subjB/devices".to_owned(),
    ] {
        assert_eq!(
            request(&svc, "GET", &path, &officer_a, None).await.0,
            404,
            "{path}"
        );
    }
    let (_, offices) = request(&svc, "GET", "/api/offices", &officer_a, None).await;
    assert!(!offices.contains("offB"), "{offices}");

    // Changes.
    let upd = r#"{"name":"renamed"}"#;
    assert_eq!(
        request(&svc, "PUT", "/api/subjects/subjB", &officer_a, Some(upd))
            .await
            .0,
        404
    );
    assert_eq!(
        request(&svc, "DELETE", "/api/subjects/subjB", &officer_a, None)
            .await
            .0,
        404
    );
    let move_in = r#"{"office_id":"offB"}"#;
    assert_eq!(
        request(
            &svc,
            "PUT",
            "/api/subjects/subjA",
            &officer_a,
            Some(move_in)
        )
        .await
        .0,
        403
    );
    let new_b = r#"{"id":"subjB2","office_id":"offB","name":"x","supervision_level":"normal"}"#;
    assert_eq!(
        request(&svc, "POST", "/api/subjects", &officer_a, Some(new_b))
            .await
            .0,
        403
    );
    let order = r#"{"id":"o1","legal_basis":"own_request","approver":"x","starts_at":"2026-01-01T00:00:00Z","ends_at":"2026-02-01T00:00:00Z","renews_order_id":null}"#;
    assert_eq!(
        request(
            &svc,
            "POST",
            "/api/subjects/subjB/orders",
            &officer_a,
            Some(order)
        )
        .await
        .0,
        404
    );
    let dev = r#"{"id":"devX","kind":"bracelet"}"#;
    assert_eq!(
        request(
            &svc,
            "POST",
            "/api/subjects/subjB/devices",
            &officer_a,
            Some(dev)
        )
        .await
        .0,
        404
    );
    let zone = r#"{"id":"z1","office_id":"offB","name":"z","kind":"home","geojson":"{\"type\":\"Polygon\",\"coordinates\":[]}"}"#;
    assert_eq!(
        request(&svc, "POST", "/api/zones", &officer_a, Some(zone))
            .await
            .0,
        403
    );
    let (_, b) = request(&svc, "GET", "/api/subjects/subjB", &admin, None).await;
    assert!(b.contains("\"name\":\"B\""), "subject B unchanged: {b}");

    // Office A can act on its own subject; orders longer than 3 months are refused.
    assert_eq!(
        request(
            &svc,
            "POST",
            "/api/subjects/subjA/orders",
            &officer_a,
            Some(order)
        )
        .await
        .0,
        201
    );
    let long = order
        .replace("\"o1\"", "\"o2\"")
        .replace("2026-02-01", "2026-06-01");
    assert_eq!(
        request(
            &svc,
            "POST",
            "/api/subjects/subjA/orders",
            &officer_a,
            Some(&long)
        )
        .await
        .0,
        400
    );

    // The bureau sees its subtree; no token sees nothing.
    let (_, all) = request(&svc, "GET", "/api/subjects", &bureau, None).await;
    assert!(all.contains("subjA") && all.contains("subjB"), "{all}");
    assert_eq!(
        request(&svc, "GET", "/api/subjects", "nope", None).await.0,
        401
    );

    // Track reads are audited, refused ones are not data reads.
    let before = audit_rows(&svc.store, "track.read").await;
    let (st, t) = request(
        &svc,
        "GET",
        &format!("/api/subjects/subjA{track}"),
        &officer_a,
        None,
    )
    .await;
    assert_eq!(st, 200, "{t}");
    assert_eq!(audit_rows(&svc.store, "track.read").await, before + 1);

    let (st, doc) = common::http_get(svc.http, "/api/openapi.json")
        .await
        .unwrap();
    assert_eq!(st, 200);
    assert!(serde_json::from_str::<serde_json::Value>(&doc).unwrap()["paths"]["/api/subjects/{id}/track"].is_object());
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_officer_of_one_office_sees_nothing_of_another() {
    officer_of_one_office_sees_nothing_of_another(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_officer_of_one_office_sees_nothing_of_another() {
    officer_of_one_office_sees_nothing_of_another(Db::Postgres(fresh_pg_database().await)).await;
}
