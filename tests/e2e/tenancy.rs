//! Customers never see, count or touch each other's objects.

use serde_json::json;

use crate::harness::*;

#[tokio::test]
async fn cross_customer_access_is_denied_without_leaking() {
    let workspace = Workspace::new();
    let server = workspace.start();
    setup_tenancy(&server).await;
    let alice = server.client(ALICE);
    let bob = server.client(BOB);
    let admin = server.client(ADMIN);

    let agenda = alice
        .post("/pop/agenda", two_step_agenda("acme", "secret-link"))
        .await
        .first();
    let agenda_id = agenda["id"].as_str().unwrap();
    let progress_id = agenda["progressId"].as_str().unwrap();
    bob.post("/pop/agenda", two_step_agenda("globex", "bob-link"))
        .await
        .first();

    // Reads by id: 404, the same answer as for an id that does not exist.
    let missing = bob.get("/pop/agenda/does-not-exist").await;
    missing.expect_error(404, "not found");
    for path in [
        format!("/pop/agenda/{agenda_id}"),
        format!("/pop/progress/agenda/{progress_id}"),
        format!("/pop/progress/operation/{progress_id}-first"),
        "/pop/customer/acme".to_string(),
    ] {
        let reply = bob.get(&path).await;
        reply.expect_error(404, "not found");
        assert_eq!(
            reply.body["errorResponse"]["title"],
            missing.body["errorResponse"]["title"]
        );
    }

    // Lists and by-queries only return bob's own objects.
    for path in [
        "/pop/agenda",
        "/pop/agenda?bylinkId=secret-link",
        "/pop/agenda?bycustomerId=acme",
        "/pop/progress/agenda?bylinkId=secret-link",
        "/pop/progress/operation",
        "/pop/customer",
    ] {
        let all = bob.get(path).await.all();
        assert!(
            all.iter().all(|o| o["customerId"] == json!("globex")),
            "{path}: {all:?}"
        );
    }
    assert_eq!(bob.get("/pop/agenda?bylinkId=secret-link").await.all().len(), 0);
    assert_eq!(bob.get("/pop/agenda").await.all().len(), 1);

    // Counts do not include other customers' objects.
    let count = bob.get("/pop/agenda?bycount=true&bycustomerId=acme").await;
    assert_eq!(count.body["count"], json!(0));
    assert_eq!(
        bob.get(&format!("/pop/agenda/{agenda_id}?bycount=true")).await.body["count"],
        json!(0)
    );
    assert_eq!(alice.get("/pop/agenda?bycount=true").await.body["count"], json!(1));
    assert_eq!(admin.get("/pop/agenda?bycount=true").await.body["count"], json!(2));

    // Writes: 404 for objects bob cannot see, 403 for creating as acme.
    bob.put(&format!("/pop/agenda/{agenda_id}"), json!({"title": "pwned"}))
        .await
        .expect_error(404, "not found");
    bob.delete(&format!("/pop/agenda/{agenda_id}"))
        .await
        .expect_error(404, "not found");
    bob.put(
        &format!("/pop/progress/agenda/{progress_id}"),
        json!({"processingState": "COMPLETE"}),
    )
    .await
    .expect_error(404, "not found");
    bob.post("/pop/agenda", two_step_agenda("acme", "forged"))
        .await
        .expect_error(403, "acme");
    bob.post("/pop/customer", json!({"customerId": "acme", "title": "x"}))
        .await
        .expect_error(403, "acme");
    // Moving one's own object to another customer is forbidden too.
    let own = bob.get("/pop/agenda").await.first();
    bob.put(
        &format!("/pop/agenda/{}", own["id"].as_str().unwrap()),
        json!({"customerId": "acme"}),
    )
    .await
    .expect_error(403, "acme");
    bob.post("/pop/agenda/service/rerun", json!({"agendaId": agenda_id}))
        .await
        .expect_error(404, "not found");
    let summary = bob
        .post("/pop/progress/agenda/service", json!({"linkId": "secret-link"}))
        .await;
    assert_eq!(summary.body["progressList"], json!([]));

    // Nothing changed for alice.
    let still = alice.get(&format!("/pop/agenda/{agenda_id}")).await.first();
    assert_eq!(still["title"], json!("acme job"));

    // Shared objects: the global insight is readable by both but writable by neither.
    assert_eq!(
        bob.get("/pop/insight/insight-sample").await.first()["id"],
        json!("insight-sample")
    );
    bob.put("/pop/insight/insight-sample", json!({"queueSize": 99}))
        .await
        .expect_error(403, "ops");
    bob.delete("/pop/insight/insight-sample").await.expect_error(403, "ops");
}

#[tokio::test]
async fn sparse_put_mismatched_id_and_lower_cased_allowed_customers() {
    let workspace = Workspace::new();
    let server = workspace.start();
    setup_tenancy(&server).await;
    let alice = server.client(ALICE);
    let bob = server.client(BOB);
    let template = json!({"customerId": "acme", "title": "tpl", "allowedCustomerIds": ["GLOBEX"],
        "params": {"a": 1}, "agenda": {"operations": [{"name": "x", "type": "sample"}]}});
    let created = alice.post("/pop/agendatemplate", template).await.first();
    let id = created["id"].as_str().unwrap();
    assert_eq!(created["allowedCustomerIds"], json!(["globex"]));
    assert_eq!(created["isGlobal"], json!(false));
    assert_eq!(created["isDefaultTemplate"], json!(false));
    // bob is an allowed customer: he may read, not write.
    assert_eq!(
        bob.get(&format!("/pop/agendatemplate/{id}")).await.first()["id"],
        json!(id)
    );
    bob.put(&format!("/pop/agendatemplate/{id}"), json!({"title": "mine"}))
        .await
        .expect_error(403, "acme");

    let updated = alice
        .put(&format!("/pop/agendatemplate/{id}"), json!({"title": "renamed"}))
        .await
        .first();
    assert_eq!(updated["title"], json!("renamed"));
    assert_eq!(updated["params"], json!({"a": 1}), "unset fields are kept");
    assert_eq!(updated["agenda"], created["agenda"]);
    assert_eq!(updated["addedTime"], created["addedTime"]);
    assert!(updated["updatedTime"].as_i64() >= created["updatedTime"].as_i64());

    alice
        .put(
            &format!("/pop/agendatemplate/{id}"),
            json!({"id": "other", "title": "x"}),
        )
        .await
        .expect_error(400, "Mismatched Id");
    alice
        .put("/pop/agendatemplate/nope", json!({"title": "x"}))
        .await
        .expect_error(404, "nope");
    alice
        .put("/pop/agendatemplate", json!({"title": "x"}))
        .await
        .expect_error(400, "without specifying an id");
}
