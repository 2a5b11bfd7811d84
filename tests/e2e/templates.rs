//! `run`: templates expanded with static parameters and the payload.

use serde_json::json;

use crate::harness::*;

#[tokio::test]
async fn template_run_substitutes_parameters() {
    let workspace = Workspace::new();
    let server = workspace.start();
    setup_tenancy(&server).await;
    let admin = server.client(ADMIN);
    let alice = server.client(ALICE);
    let bob = server.client(BOB);
    let template = json!({
        "id": "tpl-encode",
        "customerId": "ops",
        "title": "Encode template",
        "isGlobal": true,
        "staticParameters": {"preset": {"codec": "h264", "crf": 23}, "region": "us-east"},
        "agenda": {
            "customerId": "@<pop.payload::/customer>",
            "linkId": "@<pop.payload::/job/id>",
            "params": {"priority": "@<pop.payload::/priority?5>", "flag": "@<pop.payload::/flag>"},
            "operations": [
                {"name": "fetch", "type": "sample", "payload": {
                    "url": "@<pop.payload::/job/url>",
                    "label": "job-@<pop.payload::/job/id>-in-@<region>",
                    "note": "@<pop.payload::/missing?none>",
                    "optional": "@<pop.payload::/missing?>"}},
                {"name": "encode", "type": "sample", "payload": {
                    "preset": "@<preset>",
                    "input": "@<fetch.out::/path>",
                    "original": "@<pop.payload>"}}
            ]
        }
    });
    admin.post("/pop/agendatemplate", template).await.first();
    let payload = json!({"customer": "acme", "job": {"id": "j-1", "url": "s3://in/a.mov"}, "flag": true});
    let request = json!({"agendaTemplateId": "tpl-encode", "payload": payload.to_string()});
    let reply = alice.post("/pop/agenda/service/run", request.clone()).await;
    let agenda = reply.first();
    assert_eq!(reply.body["agendas"][0]["id"], agenda["id"]);
    assert_eq!(agenda["customerId"], json!("acme"));
    assert_eq!(agenda["linkId"], json!("j-1"));
    assert_eq!(
        agenda["title"],
        json!("Encode template"),
        "title defaults to the template's"
    );
    assert_eq!(agenda["params"]["priority"], json!("5"), "default from ?5");
    assert_eq!(agenda["params"]["flag"], json!(true), "booleans are substituted");
    let fetch = &agenda["operations"][0]["payload"];
    assert_eq!(fetch["url"], json!("s3://in/a.mov"));
    assert_eq!(fetch["label"], json!("job-j-1-in-us-east"));
    assert_eq!(fetch["note"], json!("none"));
    assert_eq!(fetch["optional"], json!(null));
    let encode = &agenda["operations"][1]["payload"];
    assert_eq!(
        encode["preset"],
        json!({"codec": "h264", "crf": 23}),
        "object parameter keeps its type"
    );
    assert_eq!(
        encode["input"],
        json!("@<fetch.out::/path>"),
        "operation references wait for the executor"
    );
    assert_eq!(encode["original"], payload);

    // The submission is authorized as the caller: bob cannot make an agenda for acme.
    bob.post("/pop/agenda/service/run", request)
        .await
        .expect_error(403, "acme");

    // Unknown or invisible templates are 404; a missing payload field without default is 422.
    alice
        .post(
            "/pop/agenda/service/run",
            json!({"agendaTemplateId": "nope", "payload": "{}"}),
        )
        .await
        .expect_error(404, "AgendaTemplate nope not found");
    let incomplete = json!({"agendaTemplateId": "tpl-encode", "payload": json!({"customer": "acme"}).to_string()});
    alice
        .post("/pop/agenda/service/run", incomplete)
        .await
        .expect_error(422, "/job/url");

    // A template parameter that collides with a payload name is rejected.
    let dup = json!({"id": "acme:tpl-dup", "customerId": "acme", "staticParameters": {"pop.payload": 1},
        "agenda": {"customerId": "acme", "operations": [{"name": "a", "type": "sample"}]}});
    alice.post("/pop/agendatemplate", dup).await.first();
    alice
        .post(
            "/pop/agenda/service/run",
            json!({"agendaTemplateId": "acme:tpl-dup", "payload": "{}"}),
        )
        .await
        .expect_error(422, "Parameter [pop.payload] is duplicated.");
    let private = json!({"id": "acme:tpl-private", "customerId": "acme", "agenda": {"customerId": "globex", "operations": [{"name": "a", "type": "sample"}]}});
    alice.post("/pop/agendatemplate", private).await.first();
    bob.post(
        "/pop/agenda/service/run",
        json!({"agendaTemplateId": "acme:tpl-private", "payload": "{}"}),
    )
    .await
    .expect_error(404, "AgendaTemplate acme:tpl-private not found");
}
