//! Channel identity pairing over HTTP: adapters ask for codes and resolve senders, users
//! redeem for themselves, admins list and approve, and guessing is bounded.

use std::sync::Arc;

use ownership_tests::app::{Backend, spawn_app, spawn_app_with};
use serde_json::json;

use crate::support::*;

on_both_backends!(
    an_adapter_gets_a_code_then_the_same_pending_one,
    a_user_redeems_a_code_and_the_adapter_resolves_them,
    member_cannot_list_pending_pairings_but_can_redeem,
    an_admin_approves_a_code_for_a_named_user,
    a_chat_account_bound_to_another_owner_is_never_silently_moved,
    blank_codes_are_400_and_wrong_codes_are_404,
    a_channel_token_is_refused_on_another_channel,
    pairing_requests_refuse_bad_input,
    the_per_channel_cap_answers_429,
    twelve_users_redeeming_one_code_get_exactly_one_success,
    failed_redemptions_are_limited_per_user,
    the_channel_failure_budget_burns_pending_codes,
);

async fn an_adapter_gets_a_code_then_the_same_pending_one(backend: Backend) {
    let app = spawn_app(backend).await;
    let telegram = service_token(&app, &["channel:telegram"]).await;
    let first = app
        .post(
            "/v1/channels/telegram/pairing-requests",
            &telegram,
            json!({"external_id": "42", "meta": {"name": "Alice"}}),
        )
        .await;
    assert_eq!(first.status, 201, "{}", first.text);
    assert_eq!(first.body["created"], true);
    assert!(first.body["expires_at"].is_string());
    let code = first.body["code"].as_str().unwrap();
    assert_eq!(code.len(), 9, "ABCD-EFGH: {code}");
    assert_eq!(code.as_bytes()[4], b'-');
    assert!(
        code.chars()
            .filter(|c| *c != '-')
            .all(|c| "ABCDEFGHJKLMNPQRSTUVWXYZ23456789".contains(c)),
        "{code}"
    );

    // The same sender, on the channel named in any case: the same live code.
    let again = app
        .post(
            "/v1/channels/Telegram/pairing-requests",
            &telegram,
            json!({"external_id": "42"}),
        )
        .await;
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(again.body["created"], false);
    assert_eq!(again.body["code"], code);
    assert_eq!(again.body["expires_at"], first.body["expires_at"]);

    // Another sender: another code.
    let other = pairing_code(&app, &telegram, "telegram", "43").await;
    assert_ne!(other, code);
}

async fn a_user_redeems_a_code_and_the_adapter_resolves_them(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.create_user("alice", "member").await;
    let telegram = service_token(&app, &["channel:telegram"]).await;
    assert_error(
        &resolve(&app, &telegram, "telegram", "42").await,
        404,
        "not_found",
    );

    let code = pairing_code(&app, &telegram, "telegram", "42").await;
    // Codes are normalized on input: case, spaces and dashes.
    let typed = format!(" {} ", code.to_lowercase().replace('-', " "));
    let r = app
        .post(
            "/v1/pairing/TELEGRAM/redeem",
            &alice,
            json!({ "code": typed }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.body,
        json!({"channel": "telegram", "external_id": "42", "owner_id": "alice"})
    );

    let resolved = resolve(&app, &telegram, "telegram", "42").await;
    assert_eq!(resolved.status, 200, "{}", resolved.text);
    assert_eq!(
        resolved.body,
        json!({"owner_id": "alice", "role": "member"})
    );
    let resolved = resolve(&app, &telegram, "TELEGRAM", "42").await;
    assert_eq!(
        resolved.body["owner_id"], "alice",
        "channel names are normalized"
    );

    // A code is accepted once.
    let reuse = app
        .post(
            "/v1/pairing/telegram/redeem",
            &alice,
            json!({ "code": code }),
        )
        .await;
    assert_error(&reuse, 404, "invalid_code");
    let pending = app
        .get("/v1/admin/pairing/telegram", &app.owner_token)
        .await;
    assert_eq!(pending.body, json!({"requests": []}), "consumed");

    // A role change reaches the adapter at once.
    let r = app
        .call(
            "PUT",
            "/v1/admin/users/alice/role",
            Some(&app.owner_token),
            Some(json!({"role": "admin"})),
        )
        .await;
    assert_eq!(r.status, 200);
    let resolved = resolve(&app, &telegram, "telegram", "42").await;
    assert_eq!(resolved.body["role"], "admin", "{}", resolved.text);
}

async fn member_cannot_list_pending_pairings_but_can_redeem(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.create_user("alice", "member").await;
    let admin = app.create_user("adm", "admin").await;
    let telegram = service_token(&app, &["channel:telegram"]).await;
    let r = app
        .post(
            "/v1/channels/telegram/pairing-requests",
            &telegram,
            json!({"external_id": "42", "meta": {"name": "Alice"}}),
        )
        .await;
    let code = r.body["code"].as_str().unwrap().to_owned();

    assert_error(
        &app.get("/v1/admin/pairing/telegram", &alice).await,
        403,
        "forbidden",
    );
    // Channel adapters cannot enumerate either.
    assert_error(
        &app.get("/v1/admin/pairing/telegram", &telegram).await,
        403,
        "forbidden",
    );

    for token in [&admin, &app.owner_token] {
        let list = app.get("/v1/admin/pairing/telegram", token).await;
        assert_eq!(list.status, 200, "{}", list.text);
        let requests = list.body["requests"].as_array().unwrap();
        assert_eq!(requests.len(), 1, "{}", list.text);
        assert_eq!(requests[0]["external_id"], "42");
        assert_eq!(requests[0]["meta"], json!({"name": "Alice"}));
        assert!(requests[0]["id"].is_string());
        assert!(requests[0]["created_at"].is_string());
        assert!(requests[0]["expires_at"].is_string());
        assert!(
            !list.text.contains(&code) && !list.text.contains(&code.replace('-', "")),
            "a listing shows a code: {}",
            list.text
        );
    }
    let other = app.get("/v1/admin/pairing/slack", &app.owner_token).await;
    assert_eq!(other.body, json!({"requests": []}));

    let r = app
        .post(
            "/v1/pairing/telegram/redeem",
            &alice,
            json!({ "code": code }),
        )
        .await;
    assert_eq!(r.status, 200, "a member redeems: {}", r.text);
    assert_eq!(r.body["owner_id"], "alice");
}

async fn an_admin_approves_a_code_for_a_named_user(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_user("alice", "member").await;
    let admin = app.create_user("adm", "admin").await;
    let telegram = service_token(&app, &["channel:telegram"]).await;
    let code = pairing_code(&app, &telegram, "telegram", "42").await;
    let approve = |body: serde_json::Value| {
        let app = &app;
        let admin = admin.clone();
        async move {
            app.post("/v1/admin/pairing/telegram/approve", &admin, body)
                .await
        }
    };

    assert_error(
        &approve(json!({"code": code, "owner_id": "default"})).await,
        400,
        "invalid_request",
    );
    assert_error(
        &approve(json!({"code": "", "owner_id": "alice"})).await,
        400,
        "invalid_request",
    );
    assert_error(
        &approve(json!({"code": "ABCD-EFGH", "owner_id": "alice"})).await,
        404,
        "invalid_code",
    );
    let nobody = approve(json!({"code": code, "owner_id": "nobody"})).await;
    assert_eq!(nobody.status, 404, "{}", nobody.text);

    let r = approve(json!({"code": code, "owner_id": "alice"})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.body,
        json!({"channel": "telegram", "external_id": "42", "owner_id": "alice"})
    );
    assert_eq!(
        resolve(&app, &telegram, "telegram", "42").await.body["owner_id"],
        "alice"
    );
    assert_error(
        &approve(json!({"code": code, "owner_id": "alice"})).await,
        404,
        "invalid_code",
    );
}

async fn a_chat_account_bound_to_another_owner_is_never_silently_moved(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.create_user("alice", "member").await;
    let bob = app.create_user("bob", "member").await;
    let telegram = service_token(&app, &["channel:telegram"]).await;
    link(&app, &telegram, &alice, "telegram", "42").await;

    // The bound sender asks again; Bob redeems, an Owner approves for Bob: both 409.
    let code = pairing_code(&app, &telegram, "telegram", "42").await;
    let r = app
        .post("/v1/pairing/telegram/redeem", &bob, json!({ "code": code }))
        .await;
    assert_error(&r, 409, "conflict");
    let r = app
        .post(
            "/v1/admin/pairing/telegram/approve",
            &app.owner_token,
            json!({"code": code, "owner_id": "bob"}),
        )
        .await;
    assert_error(&r, 409, "conflict");
    assert_eq!(
        resolve(&app, &telegram, "telegram", "42").await.body["owner_id"],
        "alice"
    );

    // Once Alice unlinks it, the same code (not consumed by the conflicts) binds Bob.
    let r = app
        .call(
            "DELETE",
            "/v1/me/identities/telegram/42",
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(r.status, 204);
    let r = app
        .post("/v1/pairing/telegram/redeem", &bob, json!({ "code": code }))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        resolve(&app, &telegram, "telegram", "42").await.body["owner_id"],
        "bob"
    );
}

async fn blank_codes_are_400_and_wrong_codes_are_404(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.create_user("alice", "member").await;
    let telegram = service_token(&app, &["channel:telegram"]).await;
    let code = pairing_code(&app, &telegram, "telegram", "42").await;

    // Refused before any store read, and not counted against the user: many of them
    // never reach the per-user limit.
    for blank in [
        "",
        " ",
        "--",
        " - ",
        "ABC",
        "ABCD-EFGH-J",
        "0000-0000",
        "ABCD EFG!",
    ] {
        for _ in 0..2 {
            let r = app
                .post(
                    "/v1/pairing/telegram/redeem",
                    &alice,
                    json!({ "code": blank }),
                )
                .await;
            assert_error(&r, 400, "invalid_request");
        }
    }
    let wrong = if code == "ABCD-EFGH" {
        "HGFE-DCBA"
    } else {
        "ABCD-EFGH"
    };
    let r = app
        .post(
            "/v1/pairing/telegram/redeem",
            &alice,
            json!({ "code": wrong }),
        )
        .await;
    assert_error(&r, 404, "invalid_code");
    // The right code on the wrong channel is just as unknown.
    let r = app
        .post("/v1/pairing/slack/redeem", &alice, json!({ "code": code }))
        .await;
    assert_error(&r, 404, "invalid_code");
    let r = app
        .post("/v1/pairing/telegram/redeem", &alice, json!({}))
        .await;
    assert_error(&r, 400, "invalid_request");
    let r = app
        .post(
            "/v1/pairing/telegram/redeem",
            &alice,
            json!({ "code": code }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);

    // Redemption is a `manage` operation.
    let (_, api) = mint(&app, &alice, &["api"]).await;
    let r = app
        .post("/v1/pairing/telegram/redeem", &api, json!({ "code": code }))
        .await;
    assert_error(&r, 403, "forbidden");
    assert_unauthenticated(
        &app.call(
            "POST",
            "/v1/pairing/telegram/redeem",
            None,
            Some(json!({ "code": code })),
        )
        .await,
    );
}

async fn a_channel_token_is_refused_on_another_channel(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.create_user("alice", "member").await;
    let telegram = service_token(&app, &["channel:telegram"]).await;
    link(&app, &telegram, &alice, "telegram", "42").await;

    let r = app
        .post(
            "/v1/channels/slack/pairing-requests",
            &telegram,
            json!({"external_id": "42"}),
        )
        .await;
    assert_error(&r, 403, "forbidden");
    assert_error(
        &resolve(&app, &telegram, "slack", "42").await,
        403,
        "forbidden",
    );

    // Neither does a person's token (nor a `verify` token) act as a channel adapter.
    let verify = service_token(&app, &["verify"]).await;
    for token in [&alice, &app.owner_token, &verify] {
        assert_error(
            &resolve(&app, token, "telegram", "42").await,
            403,
            "forbidden",
        );
        let r = app
            .post(
                "/v1/channels/telegram/pairing-requests",
                token,
                json!({"external_id": "7"}),
            )
            .await;
        assert_error(&r, 403, "forbidden");
    }
    assert_unauthenticated(
        &app.call("GET", "/v1/channels/telegram/identities/42", None, None)
            .await,
    );
}

async fn pairing_requests_refuse_bad_input(backend: Backend) {
    let app = spawn_app(backend).await;
    let telegram = service_token(&app, &["channel:telegram"]).await;
    for body in [
        json!({"external_id": ""}),
        json!({"external_id": "42", "meta": {"blob": "x".repeat(3000)}}),
        json!({"external_id": "42", "owner_id": "alice"}),
        json!({}),
    ] {
        let r = app
            .post("/v1/channels/telegram/pairing-requests", &telegram, body)
            .await;
        assert_error(&r, 400, "invalid_request");
    }
    let pending = app
        .get("/v1/admin/pairing/telegram", &app.owner_token)
        .await;
    assert_eq!(pending.body, json!({"requests": []}), "nothing stored");
}

async fn the_per_channel_cap_answers_429(backend: Backend) {
    let app = spawn_app_with(backend, |c| c.service.pairing.max_pending_per_channel = 2).await;
    let telegram = service_token(&app, &["channel:telegram"]).await;
    let slack = service_token(&app, &["channel:slack"]).await;
    pairing_code(&app, &telegram, "telegram", "1").await;
    pairing_code(&app, &telegram, "telegram", "2").await;
    let r = app
        .post(
            "/v1/channels/telegram/pairing-requests",
            &telegram,
            json!({"external_id": "3"}),
        )
        .await;
    assert_rate_limited(&r);
    // A sender with a live code still gets it; other channels are not affected.
    let r = app
        .post(
            "/v1/channels/telegram/pairing-requests",
            &telegram,
            json!({"external_id": "1"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    pairing_code(&app, &slack, "slack", "3").await;
}

async fn twelve_users_redeeming_one_code_get_exactly_one_success(backend: Backend) {
    let app = Arc::new(spawn_app(backend).await);
    let telegram = service_token(&app, &["channel:telegram"]).await;
    let mut users = Vec::new();
    for i in 0..12 {
        users.push((
            format!("u{i:02}"),
            app.create_user(&format!("u{i:02}"), "member").await,
        ));
    }
    let code = pairing_code(&app, &telegram, "telegram", "42").await;

    let start = Arc::new(tokio::sync::Barrier::new(users.len()));
    let tasks: Vec<_> = users
        .into_iter()
        .map(|(id, token)| {
            let app = Arc::clone(&app);
            let start = Arc::clone(&start);
            let code = code.clone();
            tokio::spawn(async move {
                start.wait().await;
                let r = app
                    .post(
                        "/v1/pairing/telegram/redeem",
                        &token,
                        json!({ "code": code }),
                    )
                    .await;
                (id, r)
            })
        })
        .collect();
    let mut winners = Vec::new();
    for task in tasks {
        let (id, r) = task.await.unwrap();
        match r.status {
            200 => winners.push((id, r.body["owner_id"].as_str().unwrap().to_owned())),
            _ => assert_error(&r, 404, "invalid_code"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one redemption wins: {winners:?}");
    let (winner, bound_to) = &winners[0];
    assert_eq!(winner, bound_to);
    let resolved = resolve(&app, &telegram, "telegram", "42").await;
    assert_eq!(resolved.body["owner_id"], winner.as_str());
    let events = app.get("/v1/admin/audit", &app.owner_token).await;
    let approvals = events.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "pairing.approved")
        .count();
    assert_eq!(approvals, 1, "one binding, one audit event");
}

async fn failed_redemptions_are_limited_per_user(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.create_user("alice", "member").await;
    let bob = app.create_user("bob", "member").await;
    let telegram = service_token(&app, &["channel:telegram"]).await;
    let code = pairing_code(&app, &telegram, "telegram", "42").await;
    let wrong = if code == "ABCD-EFGH" {
        "HGFE-DCBA"
    } else {
        "ABCD-EFGH"
    };

    // Five failures are answered...
    for attempt in 1..=5 {
        let r = app
            .post(
                "/v1/pairing/telegram/redeem",
                &alice,
                json!({ "code": wrong }),
            )
            .await;
        assert_eq!(r.status, 404, "failure {attempt}: {}", r.text);
    }
    // ...then the user is refused before their guess is evaluated, even a right one.
    let r = app
        .post(
            "/v1/pairing/telegram/redeem",
            &alice,
            json!({ "code": code }),
        )
        .await;
    assert_rate_limited(&r);
    let r = app
        .post(
            "/v1/admin/pairing/telegram/approve",
            &app.owner_token,
            json!({"code": wrong, "owner_id": "owner"}),
        )
        .await;
    assert_eq!(r.status, 404, "only that user is limited: {}", r.text);

    // The limit is the user's, not the code's: Bob redeems it.
    let r = app
        .post("/v1/pairing/telegram/redeem", &bob, json!({ "code": code }))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    // Other routes are unaffected for Alice.
    assert_eq!(app.get("/v1/me", &alice).await.status, 200);
}

async fn the_channel_failure_budget_burns_pending_codes(backend: Backend) {
    let app = spawn_app_with(backend, |c| {
        c.limits.pairing.per_channel = 4;
    })
    .await;
    let telegram = service_token(&app, &["channel:telegram"]).await;
    let slack = service_token(&app, &["channel:slack"]).await;
    let mut users = Vec::new();
    for i in 0..3 {
        users.push(app.create_user(&format!("u{i}"), "member").await);
    }
    let code = pairing_code(&app, &telegram, "telegram", "42").await;
    let slack_code = pairing_code(&app, &slack, "slack", "42").await;
    let wrong = if code == "ABCD-EFGH" {
        "HGFE-DCBA"
    } else {
        "ABCD-EFGH"
    };

    // Spread over users, so no per-user limit is reached.
    for (i, user) in users.iter().cycle().take(5).enumerate() {
        let r = app
            .post(
                "/v1/pairing/telegram/redeem",
                user,
                json!({ "code": wrong }),
            )
            .await;
        assert_eq!(r.status, 404, "failure {i}: {}", r.text);
    }
    let pending = app
        .get("/v1/admin/pairing/telegram", &app.owner_token)
        .await;
    assert_eq!(pending.body, json!({"requests": []}), "burned");
    let r = app
        .post(
            "/v1/pairing/telegram/redeem",
            &users[0],
            json!({ "code": code }),
        )
        .await;
    assert_error(&r, 404, "invalid_code");

    // Other channels keep their codes; the sender asks again and gets a fresh one.
    let r = app
        .post(
            "/v1/pairing/slack/redeem",
            &users[1],
            json!({ "code": slack_code }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let fresh = app
        .post(
            "/v1/channels/telegram/pairing-requests",
            &telegram,
            json!({"external_id": "42"}),
        )
        .await;
    assert_eq!(fresh.status, 201, "{}", fresh.text);
    let fresh = fresh.body["code"].as_str().unwrap().to_owned();
    assert_ne!(fresh, code);
    // After a burn the channel starts a fresh budget: one more failure burns nothing.
    let r = app
        .post(
            "/v1/pairing/telegram/redeem",
            &users[2],
            json!({ "code": wrong }),
        )
        .await;
    assert_error(&r, 404, "invalid_code");
    let r = app
        .post(
            "/v1/pairing/telegram/redeem",
            &users[2],
            json!({ "code": fresh }),
        )
        .await;
    assert_eq!(r.status, 200, "the fresh code was burned too: {}", r.text);
}
