//! Reference resolution and agenda validation on a 1,000-operation agenda,
//! the size the executor and the submission path must handle comfortably.

use std::collections::HashMap;
use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use pop_core::reference::{resolve, resolve_in_place};
use pop_core::validation::validate_agenda;
use pop_core::{Agenda, Operation};
use serde_json::{Value, json};

const OPS: usize = 1_000;

/// Each op reads the previous op's output through exact tokens, pointers into
/// arrays, composite strings and `?` defaults; every tenth also fans in from
/// the first op and a `dependsOn`.
fn agenda() -> Agenda {
    let mut ops = Vec::with_capacity(OPS);
    for i in 0..OPS {
        let prev = if i == 0 {
            "pop.payload".to_string()
        } else {
            format!("op{}.out", i - 1)
        };
        let mut params = serde_json::Map::new();
        let mut payload = json!({
            "input": format!("@<{prev}::/result>"),
            "whole": format!("@<{prev}>"),
            "first": format!("@<{prev}::/streams/0/bitrate>"),
            "label": format!("step {i}: @<{prev}::/name> at @<{prev}::/streams/1/bitrate> kbps"),
            "optional": format!("@<{prev}::/absent?>"),
            "fallback": format!("@<{prev}::/absent?plan-b>"),
            "static": {"nested": ["no tokens here", 1, true, null, "still none"]},
            "id": "@<pop.agendaId>-@<pop.operationName>"
        });
        if i % 10 == 0 && i > 0 {
            payload["fanIn"] = json!(["@<op0.out::/result>", format!("@<op{}.out::/name>", i / 2)]);
            params.insert("dependsOn".into(), json!(format!("op{}, op{}", i / 3, i / 4)));
        }
        ops.push(Operation {
            name: Some(format!("op{i}")),
            op_type: Some("sample".into()),
            payload: Some(payload),
            params: Some(pop_core::ParamsMap(params)),
            ..Default::default()
        });
    }
    let mut agenda = Agenda {
        operations: Some(ops),
        ..Default::default()
    };
    agenda.envelope.customer_id = Some("bench".into());
    agenda
}

fn context() -> HashMap<String, Value> {
    let mut ctx: HashMap<String, Value> = (0..OPS)
        .map(|i| {
            let out = json!({
                "result": {"path": format!("s3://bucket/op{i}/out.mp4"), "size": i * 1024},
                "name": format!("op{i} output"),
                "streams": [{"bitrate": 5_000 + i}, {"bitrate": 128}]
            });
            (format!("op{i}.out"), out)
        })
        .collect();
    ctx.insert(
        "pop.payload".into(),
        json!({"result": "seed", "name": "payload", "streams": [{"bitrate": 1}, {"bitrate": 2}]}),
    );
    ctx.insert("pop.agendaId".into(), json!("agenda-1"));
    ctx.insert("pop.operationName".into(), json!("op"));
    ctx
}

fn bench(c: &mut Criterion) {
    let agenda = agenda();
    let ctx = context();
    let payloads: Vec<Value> = agenda
        .operations()
        .iter()
        .map(|op| op.payload.clone().unwrap())
        .collect();

    // Sanity: everything resolves, so the benchmark measures the full path.
    for p in &payloads {
        let (_, refs) = resolve(p, &ctx);
        assert!(refs.is_empty(), "{refs:?}");
    }
    validate_agenda(&agenda).expect("bench agenda is valid");

    // Baseline: the copy alone, to tell resolution cost from allocation cost.
    c.bench_function("clone 1000 op payloads (baseline)", |b| {
        b.iter(|| {
            for p in &payloads {
                black_box(p.clone());
            }
        })
    });
    c.bench_function("resolve 1000 op payloads (copy)", |b| {
        b.iter(|| {
            for p in &payloads {
                black_box(resolve(black_box(p), &ctx));
            }
        })
    });
    c.bench_function("resolve 1000 op payloads (in place, incl. clone)", |b| {
        b.iter(|| {
            for p in &payloads {
                let mut v = p.clone();
                black_box(resolve_in_place(&mut v, &ctx));
                black_box(v);
            }
        })
    });
    c.bench_function("validate_agenda 1000 ops", |b| {
        b.iter(|| validate_agenda(black_box(&agenda)))
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
