//! Bad input gets a 4xx with an errorResponse naming the problem.

use serde_json::json;

use crate::harness::*;

#[tokio::test]
async fn authentication_and_malformed_requests() {
    let workspace = Workspace::new();
    let server = workspace.start();
    setup_tenancy(&server).await;
    let anonymous = server.anonymous();
    anonymous
        .get("/pop/agenda")
        .await
        .expect_error(401, "Authorization header is required");
    let forged = server.client("not-a-token");
    forged.get("/pop/agenda").await.expect_error(401, "not valid");
    forged
        .post("/pop/agenda", two_step_agenda("acme", "x"))
        .await
        .expect_error(401, "not valid");

    let alice = server.client(ALICE);
    alice
        .post_raw("/pop/agenda", "{\"customerId\": \"acme\", ")
        .await
        .expect_error(400, "not valid JSON");
    alice.post_raw("/pop/customer", "").await.expect_error(400, "empty");
    alice
        .post_raw("/pop/agenda", "[1,2]")
        .await
        .expect_error(422, "JSON object");
    alice
        .post("/pop/agenda", json!({"customerId": "acme", "operations": "nope"}))
        .await
        .expect_error(422, "operations");
    alice
        .post(
            "/pop/insight",
            json!({"customerId": "acme", "title": "t", "queueSize": "many"}),
        )
        .await
        .expect_error(422, "queueSize");
    for limit in [json!(-1), json!("many"), json!(1.5)] {
        alice
            .post(
                "/pop/insight",
                json!({"customerId": "acme", "title": "t", "executionLimit": limit}),
            )
            .await
            .expect_error(422, "executionLimit");
    }
    alice
        .post("/pop/customer", json!({"customerId": "acme"}))
        .await
        .expect_error(422, "title");
    alice
        .post("/pop/customer", json!({"title": "x"}))
        .await
        .expect_error(422, "customerId");
    alice.get("/pop/agenda?bylimit=-1").await.expect_error(400, "bylimit");
    alice
        .get("/pop/nothing-here")
        .await
        .expect_error(404, "/pop/nothing-here");
    alice
        .post_raw("/pop/agenda/service/run", "{}")
        .await
        .expect_error(422, "agendaTemplateId and payload");
    alice
        .post(
            "/pop/agenda/service/run",
            json!({"agendaTemplateId": "t", "payload": "{oops"}),
        )
        .await
        .expect_error(400, "Unable to parse input payload as JSON");
    alice
        .post("/pop/progress/agenda/service", json!({}))
        .await
        .expect_error(422, "LinkId is required");
    alice
        .post("/pop/agenda/service/rerun", json!({}))
        .await
        .expect_error(422, "agendaId must be specified");
    let put_method = server.client(ALICE).delete("/pop/agenda/service/run").await;
    put_method.expect_error(405, "DELETE");
    // A duplicate create is a conflict.
    server
        .client(ADMIN)
        .post("/pop/customer", json!({"customerId": "acme", "title": "again"}))
        .await
        .expect_error(409, "acme");
}

#[tokio::test]
async fn agenda_validation_is_422_with_pop_messages() {
    let workspace = Workspace::new();
    let server = workspace.start();
    setup_tenancy(&server).await;
    let alice = server.client(ALICE);
    let op = |name: &str, payload: serde_json::Value| json!({"name": name, "type": "sample", "payload": payload});
    let cases = vec![
        (
            json!({"customerId": "acme", "operations": []}),
            "No operations specified in Agenda.",
        ),
        (json!({"customerId": "acme"}), "No operations specified in Agenda."),
        (
            json!({"customerId": "acme", "operations": [{"type": "sample"}]}),
            "Operations must have names.",
        ),
        (
            json!({"customerId": "acme", "operations": [op("Encode", json!({})), op("encode", json!({}))]}),
            "Operation names must be unique.",
        ),
        (
            json!({"customerId": "acme", "operations": [op("a", json!({"x": "@<ghost.out::/y>"}))]}),
            "Invalid references found in operation [a] payload",
        ),
        (
            json!({"customerId": "acme", "operations": [op("a", json!("@<b.out>")), op("b", json!("@<a.out>"))]}),
            "There is a circular reference involving the operation: a",
        ),
        (
            json!({"customerId": "acme", "operations": [op("a", json!("@<c.out>")), op("b", json!("@<a.out>")), op("c", json!("@<b.out>"))]}),
            "There is a circular reference involving the operation: c",
        ),
        (
            json!({"operations": [op("a", json!({}))]}),
            "The customerId field must be specified.",
        ),
    ];
    for (agenda, message) in cases {
        let reply = alice.post("/pop/agenda", agenda.clone()).await;
        reply.expect_error(422, message);
        assert_eq!(
            reply.body["errorResponse"]["title"],
            json!("ValidationException"),
            "{agenda}"
        );
    }
    // Built-in pop.* references are accepted.
    let ok = json!({"customerId": "acme", "operations": [op("a", json!({"id": "@<pop.agendaId>", "p": "@<pop.payload::/x>"}))]});
    alice.post("/pop/agenda", ok).await.first();
    // Nothing from the rejected submissions was stored.
    assert_eq!(alice.get("/pop/agenda?bycount=true").await.body["count"], json!(1));
    assert_eq!(
        alice.get("/pop/progress/agenda?bycount=true").await.body["count"],
        json!(1)
    );
}
