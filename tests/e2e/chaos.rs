//! Chaos (issue 12): 1,000 agendas of 3–5 operations over two customers,
//! handlers that fail their first run with probability 0.3 (and a few that
//! always fail), `maximumAttempts` 3, the server `kill -9`ed three times at
//! random moments and restarted, random handler processes killed, and the
//! reaper deleting completed agendas after 1 s all along. At the end every
//! agenda completed as its failures say it must, none was lost, no
//! operation that succeeded ran again, the reaper deleted only completed
//! agendas, and the store is sound.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use pop_store::{ObjectKind, Query, SqliteOptions, SqliteStore, Store};
use serde_json::{Value, json};

use crate::execution::global_insight;
use crate::harness::*;

const AGENDAS: usize = 1000;
const KILLS: usize = 3;
const CHAOS_TYPE: &str = "chaos";

/// A small deterministic generator (the run is reproducible from its seed).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// True with probability `p`.
    fn chance(&mut self, p: f64) -> bool {
        (self.next() % 1_000_000) as f64 / 1_000_000.0 < p
    }

    fn between(&mut self, low: u64, high: u64) -> u64 {
        low + self.next() % (high - low + 1)
    }
}

/// What the test planned for one agenda.
#[derive(Debug, Clone)]
struct Planned {
    progress_id: String,
    /// Operations that fail their first run.
    fail_first: usize,
    /// Whether one operation fails every run.
    always_fails: bool,
}

/// The wrapper every `chaos` operation runs: the first run of an operation
/// whose payload says `failFirst` fails (a marker directory per agenda and
/// operation, made before failing); everything else runs POP's sample
/// handler, which reports through its report file (so a run that finished
/// while the server was down is adopted, not run again) and logs each run
/// to `POP_SAMPLE_RUN_LOG`.
fn registry(markers: &Path, sample_handler: &Path) -> Value {
    let script = format!(
        "case \"$PAYLOAD\" in *'\"failFirst\":true'*) \
           if mkdir '{markers}'/\"$AGENDA_ID-$OPERATION_NAME\" 2>/dev/null; then echo 'first run fails' >&2; exit 3; fi;; \
         esac; exec '{handler}'",
        markers = markers.display(),
        handler = sample_handler.display()
    );
    json!({
        "baseProcessConfig": {"timeoutMs": 120000, "stdoutTimeoutMs": 120000, "endOfLogIdentifier": "HandlerComplete"},
        CHAOS_TYPE: {"processConfig": {"program": "sh", "args": ["-c", script],
            "env": {"POP_CHAOS": markers.display().to_string()}}}
    })
}

fn agenda_body(rng: &mut Rng, customer: &str, n: usize) -> (Value, usize, bool) {
    let operations = rng.between(3, 5) as usize;
    let mut fail_first = 0;
    let mut always_fails = false;
    let mut ops = Vec::with_capacity(operations);
    for i in 0..operations {
        let always = rng.chance(0.01);
        let first = !always && rng.chance(0.3);
        always_fails |= always;
        fail_first += usize::from(first);
        let input = if i == 0 {
            json!("start")
        } else {
            json!(format!("@<op{}.out::/from>", i - 1))
        };
        let actions = if always {
            json!([{"action": "exception", "paramsMap": {"exceptionMessage": "this operation always fails"}}])
        } else {
            json!([{"action": "log", "paramsMap": {"logMessage": "working", "sleepMilliseconds": 10}}])
        };
        ops.push(json!({"name": format!("op{i}"), "type": CHAOS_TYPE, "payload": {
            "failFirst": first, "actions": actions, "resultPayload": {"from": format!("op{i}"), "input": input}}}));
    }
    let body = json!({"customerId": customer, "linkId": "chaos", "title": format!("chaos {n}"),
        "params": {"maximumAttempts": 3, "retryBackoffMs": 100}, "operations": ops});
    (body, fail_first, always_fails)
}

/// Handler processes of this test that are running now: (pid, agenda id).
fn running_handlers(marker: &str) -> Vec<(u32, String)> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in entries.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        let vars: Vec<String> = environ
            .split(|b| *b == 0)
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .collect();
        if !vars.iter().any(|v| v == &format!("POP_CHAOS={marker}")) {
            continue;
        }
        if let Some(agenda) = vars.iter().find_map(|v| v.strip_prefix("AGENDA_ID=")) {
            found.push((pid, agenda.to_owned()));
        }
    }
    found
}

/// What the reaper's log says it deleted (or was about to, when a kill
/// came): agenda id → the line, which names the outcome it had.
fn reaped(log: &Path) -> HashMap<String, String> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .filter_map(|line| {
            // Logged before each deletion (a kill right after it cannot hide it).
            let rest = line.split_once("reaping agenda ")?.1;
            let (agenda, _) = rest.split_once(' ')?;
            Some((agenda.to_owned(), line.to_owned()))
        })
        .collect()
}

/// Records every agenda the listing shows final.
async fn observe(server: &Server, observed: &mut HashMap<String, Value>) {
    let listing = server
        .client(ADMIN)
        .get("/pop/progress/agenda?bylinkId=chaos&bylimit=10000")
        .await;
    if listing.status == 200 {
        for progress in listing.all() {
            if is_final(&progress) {
                let agenda = progress["agendaId"].as_str().unwrap_or_default().to_owned();
                observed.insert(agenda, progress);
            }
        }
    }
}

/// Final: COMPLETE, and no retry will follow.
fn is_final(progress: &Value) -> bool {
    progress["processingState"] == json!("COMPLETE") && progress["retryState"] != json!("pending")
}

fn last_diagnostic(progress: &Value) -> String {
    progress["diagnosticEvents"]
        .as_array()
        .and_then(|events| events.last())
        .and_then(|event| event["message"].as_str())
        .unwrap_or_default()
        .to_owned()
}

fn chaos_options(workspace: &Workspace, run_log: &Path, server_log: &Path) -> Options {
    let mut options = Options::running()
        .env("POP_EXECUTION_LIMIT", "16")
        .env("POP_SAMPLE_RUN_LOG", run_log.display().to_string())
        .env("POP_RETRY_INTERVAL_MS", "100")
        .env("POP_REAP_INTERVAL_MS", "250")
        .env("POP_RETENTION_MS", "1000")
        .env("POP_RECLAIM_INTERVAL_MS", "1000")
        .env("POP_RECLAIM_AFTER_MS", "10000")
        .env("RUST_LOG", "warn,pop_app=info");
    options.log_file = Some(server_log.to_path_buf());
    let _ = workspace;
    options
}

#[tokio::test]
async fn chaos_loses_nothing_and_runs_no_succeeded_operation_twice() {
    let workspace = Workspace::new();
    let dir = workspace.dir.path();
    let markers = dir.join("markers");
    std::fs::create_dir_all(&markers).unwrap();
    let run_log = dir.join("runs.log");
    let server_log = dir.join("server.log");
    let sample_handler: PathBuf = Path::new(env!("CARGO_BIN_EXE_pop")).with_file_name("pop-sample-handler");
    std::fs::create_dir_all(workspace.data_dir()).unwrap();
    std::fs::write(
        workspace.data_dir().join("registry.json"),
        registry(&markers, &sample_handler).to_string(),
    )
    .unwrap();
    let options = chaos_options(&workspace, &run_log, &server_log);
    let mut server = workspace.start_running(&options);
    setup_tenancy(&server).await;
    global_insight(&server, "insight-chaos", &[CHAOS_TYPE]).await;
    server
        .client(ADMIN)
        .put("/pop/insight/insight-chaos", json!({"queueSize": 64}))
        .await
        .first();

    // Submit, over two customers.
    let seed = 0x0005_eedc_4a05_u64;
    let mut rng = Rng(seed);
    let mut bodies = Vec::with_capacity(AGENDAS);
    for n in 0..AGENDAS {
        let (token, customer) = if n % 2 == 0 { (ALICE, "acme") } else { (BOB, "globex") };
        let (body, fail_first, always_fails) = agenda_body(&mut rng, customer, n);
        bodies.push((token, body, fail_first, always_fails));
    }
    let mut planned: HashMap<String, Planned> = HashMap::new();
    for chunk in bodies.chunks(50) {
        let posts = chunk.iter().map(|(token, body, _, _)| {
            let client = server.client(token);
            let body = body.clone();
            async move { client.post("/pop/agenda", body).await.first() }
        });
        for (agenda, (_, _, fail_first, always_fails)) in join_all(posts).await.into_iter().zip(chunk) {
            planned.insert(
                agenda["id"].as_str().unwrap().to_owned(),
                Planned {
                    progress_id: agenda["progressId"].as_str().unwrap().to_owned(),
                    fail_first: *fail_first,
                    always_fails: *always_fails,
                },
            );
        }
    }

    // Chaos: between kills, handler processes die at random; the server is
    // killed KILLS times at random moments, each after some progress.
    let marker = markers.display().to_string();
    let mut killed_handlers: HashSet<String> = HashSet::new();
    let mut observed: HashMap<String, Value> = HashMap::new();
    for kill in 0..KILLS {
        let phase = Duration::from_millis(rng.between(1_500, 4_000));
        let until = Instant::now() + phase;
        while Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(150)).await;
            let handlers = running_handlers(&marker);
            if !handlers.is_empty() && rng.chance(0.5) {
                let (pid, agenda) = &handlers[rng.next() as usize % handlers.len()];
                let _ = std::process::Command::new("kill")
                    .args(["-9", &pid.to_string()])
                    .status();
                killed_handlers.insert(agenda.clone());
            }
        }
        let unfinished = server
            .client(ADMIN)
            .get("/pop/progress/agenda?bylinkId=chaos&byprocessingState=WAITING&bycount=true")
            .await;
        assert!(
            unfinished.body["count"].as_u64().unwrap_or(0) > 0,
            "kill {kill}: everything finished before the chaos ended; make the work longer"
        );
        server.kill();
        server = workspace.start_running(&options);
    }

    // Let it finish: every agenda is observed final, or the reaper says it
    // deleted it after it was.
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        observe(&server, &mut observed).await;
        let deleted = reaped(&server_log);
        let missing: Vec<&String> = planned
            .keys()
            .filter(|a| !observed.contains_key(*a) && !deleted.contains_key(*a))
            .collect();
        if missing.is_empty() {
            break;
        }
        if Instant::now() >= deadline {
            let admin = server.client(ADMIN);
            let mut details = Vec::new();
            for agenda in missing.iter().take(3) {
                let progress = admin
                    .get(&format!("/pop/progress/agenda?byagendaId={agenda}"))
                    .await
                    .body;
                let queued = admin.get(&format!("/pop/queue?byagendaId={agenda}")).await.body;
                let log: Vec<String> = std::fs::read_to_string(&server_log)
                    .unwrap_or_default()
                    .lines()
                    .filter(|l| l.contains(agenda.as_str()))
                    .map(str::to_owned)
                    .collect();
                details.push(format!("{agenda}: progress {progress}\nqueue {queued}\nlog {log:#?}"));
            }
            panic!("{} agendas never completed:\n{}", missing.len(), details.join("\n"));
        }
        tokio::time::sleep(Duration::from_millis(1000)).await;
    }
    let queued = server.client(ADMIN).get("/pop/queue").await.all();
    assert!(queued.is_empty(), "nothing left queued: {queued:?}");
    assert_eq!(server.terminate().code(), Some(0), "a clean shutdown");
    // What the kills cut short (a reap between its head and its rows leaves
    // operation rows of no progress) is the reclaimer's to finish: run it
    // until it finds nothing more, as the next minutes of a server would.
    let server = workspace.start_running(&options.clone().env("POP_RECLAIM_AFTER_MS", "0"));
    for _ in 0..20 {
        let run = server.client(ADMIN).post("/pop/jobs/reclaim/run", json!({})).await;
        assert_eq!(run.status, 200, "{}", run.body);
        if run.body["all"][0]["acted"] == json!(0) && run.body["all"][0]["complete"] == json!(true) {
            break;
        }
    }
    assert_eq!(server.terminate().code(), Some(0), "a clean shutdown");

    // Outcomes: each agenda ended as its failures say.
    let deleted = reaped(&server_log);
    let mut succeeded = 0;
    let mut gave_up = 0;
    for (agenda_id, plan) in &planned {
        let (message, attempts, gave_up_line) = match observed.get(agenda_id) {
            Some(progress) => (
                progress["processingStateMessage"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                progress["attemptsCompleted"].as_i64().unwrap_or(0),
                last_diagnostic(progress).contains("gave up after 3 attempts"),
            ),
            None => {
                let line = &deleted[agenda_id];
                assert!(
                    line.contains("(COMPLETE "),
                    "the reaper deleted a completed agenda only: {line}"
                );
                let message = if line.contains("(COMPLETE succeeded") {
                    "succeeded"
                } else {
                    "failed"
                };
                let attempts = line
                    .split_once(", ")
                    .and_then(|(_, rest)| rest.split_once(' '))
                    .and_then(|(n, _)| n.parse().ok())
                    .unwrap_or(0);
                (message.to_owned(), attempts, line.contains("retryState \"gaveUp\""))
            }
        };
        match message.as_str() {
            "succeeded" => {
                succeeded += 1;
                assert!(
                    !plan.always_fails,
                    "{agenda_id} succeeded with an operation that always fails"
                );
                assert!((1..=3).contains(&attempts), "{agenda_id}: {attempts} attempts");
            }
            "failed" => {
                gave_up += 1;
                assert_eq!(attempts, 3, "{agenda_id} failed after {attempts} attempts, not 3");
                assert!(
                    gave_up_line,
                    "{agenda_id}: a terminal failure says it gave up after 3 attempts"
                );
                // Fewer failures than attempts must have succeeded.
                assert!(
                    plan.always_fails || plan.fail_first >= 3 || killed_handlers.contains(agenda_id),
                    "{agenda_id} failed with {} first-run failures, no failing operation and no killed handler",
                    plan.fail_first
                );
            }
            other => panic!("{agenda_id} ended {other:?}"),
        }
        let _ = &plan.progress_id;
    }
    assert_eq!(succeeded + gave_up, AGENDAS, "no agenda lost");
    eprintln!(
        "chaos: {succeeded} succeeded, {gave_up} gave up, {} reaped while running, {} with a killed handler",
        deleted.len(),
        killed_handlers.len()
    );
    assert!(
        deleted.len() > AGENDAS / 2,
        "the reaper ran all along: {}",
        deleted.len()
    );
    assert!(
        gave_up > 0 && succeeded > AGENDAS / 2,
        "{succeeded} succeeded, {gave_up} gave up"
    );

    // No operation that succeeded ran again.
    let mut succeeded_runs: HashMap<String, usize> = HashMap::new();
    for line in std::fs::read_to_string(&run_log).unwrap().lines() {
        if let Some(op) = line.strip_suffix(" succeeded") {
            *succeeded_runs.entry(op.to_owned()).or_default() += 1;
        }
    }
    let twice: Vec<_> = succeeded_runs.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "operations that succeeded twice: {twice:?}");

    // The reaper deleted only completed agendas, and the store is sound:
    // SQLite's own check, no row of a unit the reaper left half-deleted, no
    // backlog or queue row left.
    for line in deleted.values() {
        assert!(
            line.contains("(COMPLETE ") && !line.contains("retryState \"pending\""),
            "{line}"
        );
    }
    let store = SqliteStore::open(workspace.data_dir().join("pop.db"), SqliteOptions::default()).unwrap();
    assert_eq!(store.integrity_check().unwrap(), Vec::<String>::new());
    let progress_ids: HashSet<String> = store
        .query(ObjectKind::AgendaProgress, &Query::all(), None)
        .await
        .unwrap()
        .iter()
        .filter_map(|p| p["id"].as_str().map(String::from))
        .collect();
    let rows = store
        .query(ObjectKind::OperationProgress, &Query::all(), None)
        .await
        .unwrap();
    let orphans: Vec<_> = rows
        .iter()
        .filter(|row| !progress_ids.contains(row["agendaProgressId"].as_str().unwrap_or_default()))
        .collect();
    assert!(orphans.is_empty(), "operation rows of no progress: {}", orphans.len());
    for kind in [ObjectKind::ReadyAgenda, ObjectKind::QueuedAgenda] {
        assert_eq!(
            store.count(kind, &Query::all(), None).await.unwrap(),
            0,
            "{kind} rows left"
        );
    }
    for progress_id in &progress_ids {
        let progress = store
            .get(ObjectKind::AgendaProgress, progress_id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(progress["processingState"], json!("COMPLETE"), "{progress:?}");
    }
}
