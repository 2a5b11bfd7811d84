//! Command-line interface.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "pop",
    version,
    about = "POP: fair, priority-aware scheduling of whole workflows for many customers"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the POP server on the embedded store.
    Serve(Box<ServeOptions>),
    /// Measure the server: agenda submissions per second over real HTTP.
    Bench(BenchOptions),
    /// Submit an agenda from a JSON file (`-` for stdin).
    Submit {
        /// The agenda JSON.
        file: PathBuf,
        /// Follow its progress live until it completes (exit code 1 if it fails).
        #[arg(long)]
        watch: bool,
        #[command(flatten)]
        client: ClientOptions,
    },
    /// Show an agenda's progress (by agenda id or progress id).
    Progress {
        id: String,
        /// Follow it live until it completes.
        #[arg(long)]
        watch: bool,
        #[command(flatten)]
        client: ClientOptions,
    },
    /// Background jobs: `pop job run retry|reclaim|reap [--log-only]` runs one once
    /// on the server and prints what it did.
    Job {
        #[command(subcommand)]
        command: JobCommand,
    },
    /// Claim an insight's agendas from a POP server over HTTP and run them, in this process or
    /// as executor pods (`--executor-pods`), at most the insight's `executionLimit` at once.
    Puller(PullerOptions),
    /// Run the one agenda the environment carries (what an executor pod runs) and report
    /// through the server's ResourcePool service.
    Executor(ExecutorOptions),
    /// List the most recent agendas with their state.
    Ls {
        /// How many agendas to show.
        #[arg(long, short = 'n', default_value_t = 20)]
        count: usize,
        #[command(flatten)]
        client: ClientOptions,
    },
}

#[derive(Debug, Subcommand)]
pub enum JobCommand {
    /// Run one job once now.
    Run {
        /// retry, reclaim or reap.
        #[arg(value_parser = ["retry", "reclaim", "reap"])]
        job: String,
        /// Report what the job would do, change nothing.
        #[arg(long)]
        log_only: bool,
        #[command(flatten)]
        client: ClientOptions,
    },
}

/// How the client commands reach the server.
#[derive(Debug, Clone, Args)]
pub struct ClientOptions {
    /// Base URL of the POP server.
    #[arg(long, env = "POP_SERVER", default_value = "http://127.0.0.1:8080")]
    pub server: String,
    /// Bearer token; default: the admin token in the data directory.
    #[arg(long, env = "POP_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Data directory whose admin token to use when no token is given.
    #[arg(long, env = "POP_DATA_DIR", default_value = "./pop-data")]
    pub data_dir: PathBuf,
}

#[derive(Debug, Clone, Args)]
pub struct ServeOptions {
    /// Directory holding the store (pop.db) and the generated admin token.
    #[arg(long, env = "POP_DATA_DIR", default_value = "./pop-data")]
    pub data_dir: PathBuf,
    /// Address to listen on (port 0 picks a free port; the chosen address is printed).
    #[arg(long, env = "POP_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Token file: {"tokens":[{"token","userId","accounts","superUser"}]}.
    /// Without it a super-user token is generated into the data directory.
    #[arg(long, env = "POP_TOKENS")]
    pub tokens: Option<PathBuf>,
    /// How often each insight's queue is topped up from its backlog, in milliseconds.
    #[arg(long, env = "POP_SCHEDULE_INTERVAL_MS", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    pub schedule_interval_ms: u64,
    /// Nominal time of one scheduler, insight-matcher or visibility plugin call, in
    /// milliseconds. A call is bounded by its instruction budget (fuel, machine-independent);
    /// the wall clock stops it only at 10 times this, as a backstop. Either way the host falls back.
    #[arg(long, env = "POP_PLUGIN_DEADLINE_MS", default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub plugin_deadline_ms: u64,
    /// Agendas of one insight this server runs at once, for insights that set no
    /// `executionLimit` (0: run nothing here; external pullers use getAgenda).
    #[arg(long, env = "POP_EXECUTION_LIMIT", default_value_t = 8)]
    pub execution_limit: usize,
    /// Operations of one agenda run at once.
    #[arg(long, env = "POP_OPERATION_PARALLELISM", default_value_t = 50, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=10_000))]
    pub operation_parallelism: usize,
    /// Lease on a running agenda, in milliseconds; renewed while it runs. After a
    /// crash of another server, its agendas are delivered again once it runs out.
    #[arg(long, env = "POP_LEASE_MS", default_value_t = 30_000, value_parser = clap::value_parser!(u64).range(100..=86_400_000))]
    pub lease_ms: u64,
    /// How often a running agenda's progress and lease are refreshed, in milliseconds.
    #[arg(long, env = "POP_HEARTBEAT_MS", default_value_t = 5_000, value_parser = clap::value_parser!(u64).range(10..=3_600_000))]
    pub heartbeat_ms: u64,
    /// Handlers registry (operation type → process, wasm component or pod). Default:
    /// `registry.json` in the data directory if present, else the built-in registry.
    #[arg(long, env = "POP_REGISTRY")]
    pub registry: Option<PathBuf>,
    #[command(flatten)]
    pub jobs: JobOptions,
    #[command(flatten)]
    pub jwt: JwtOptions,
    /// Where the data lives: `embedded` (SQLite and a blob directory in the data directory) or
    /// `aws` (DynamoDB tables and an S3 bucket, found with the AWS SDK's default chain:
    /// `AWS_REGION`, `AWS_ENDPOINT_URL`, credentials, profiles, instance roles; needs a `pop`
    /// built with `--features aws`).
    #[arg(long, env = "POP_BACKEND", value_enum, default_value_t = BackendKind::Embedded)]
    pub backend: BackendKind,
    /// Prefix of every AWS table and bucket name (`<prefix>Agenda`, `<prefix>pop-blobs`).
    #[arg(long, env = "POP_AWS_PREFIX", default_value = "pop-")]
    pub aws_prefix: String,
    /// Create the AWS tables and bucket that are missing at start (development and tests;
    /// in production CloudFormation creates them).
    #[arg(long, env = "POP_AWS_CREATE_RESOURCES")]
    pub aws_create_resources: bool,
    /// Run `podConfig` operations as Kubernetes pods, on the cluster found the standard way
    /// (`KUBECONFIG`, `~/.kube/config`, the in-cluster service account). Needs a `pop` built
    /// with `--features kubernetes`.
    #[arg(long, env = "POP_KUBERNETES")]
    pub kubernetes: bool,
    /// The namespace pods are created in, unless the agenda's resource pool gives its customer
    /// one (`namespaces` of the ResourcePool).
    #[arg(long, env = "POP_KUBERNETES_NAMESPACE", default_value = "pop")]
    pub kubernetes_namespace: String,
    /// More namespaces the pod reaper cleans (comma-separated): the customers' namespaces of
    /// the resource pools, when pods may be left there by an earlier process.
    #[arg(long, env = "POP_KUBERNETES_REAP_NAMESPACES", value_delimiter = ',')]
    pub kubernetes_reap_namespaces: Vec<String>,
    /// Run pods only on nodes labelled `<zone>: "true"` (POP's `pop.kubernetes.zone`).
    #[arg(long, env = "POP_KUBERNETES_ZONE")]
    pub kubernetes_zone: Option<String>,
}

/// The background jobs (retry, reclaim, reap): how often each runs and how much it does.
#[derive(Debug, Clone, Args)]
pub struct JobOptions {
    /// How often failed agendas whose retry is due are rerun, in milliseconds (0: never).
    #[arg(long, env = "POP_RETRY_INTERVAL_MS", default_value_t = 1_000)]
    pub retry_interval_ms: u64,
    /// How often the reclaimer looks for stuck work, in milliseconds (0: never).
    #[arg(long, env = "POP_RECLAIM_INTERVAL_MS", default_value_t = 60_000)]
    pub reclaim_interval_ms: u64,
    /// How often the data reaper runs, in milliseconds (0: never).
    #[arg(long, env = "POP_REAP_INTERVAL_MS", default_value_t = 300_000)]
    pub reap_interval_ms: u64,
    /// Most documents one run of the retry job looks at.
    #[arg(long, env = "POP_RETRY_BATCH", default_value_t = 500, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1_000_000))]
    pub retry_batch: usize,
    /// Most documents one run of the reclaimer looks at (shared by its walks).
    #[arg(long, env = "POP_RECLAIM_BATCH", default_value_t = 500, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1_000_000))]
    pub reclaim_batch: usize,
    /// Most documents one run of the data reaper looks at.
    #[arg(long, env = "POP_REAP_BATCH", default_value_t = 500, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1_000_000))]
    pub reap_batch: usize,
    /// Pause between two pages of one run, in milliseconds: the jobs' rate limit, leaving
    /// the store to the foreground.
    #[arg(long, env = "POP_JOB_PAGE_PAUSE_MS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(0..=60_000))]
    pub job_page_pause_ms: u64,
    /// Most time one run of a job takes, in milliseconds.
    #[arg(long, env = "POP_JOB_MAX_RUN_MS", default_value_t = 20_000, value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    pub job_max_run_ms: u64,
    /// The reclaimer leaves alone what changed more recently than this, in milliseconds.
    #[arg(long, env = "POP_RECLAIM_AFTER_MS", default_value_t = 300_000)]
    pub reclaim_after_ms: u64,
    /// A queue entry delivered more often than this without completing fails its agenda.
    #[arg(long, env = "POP_MAX_DELIVERIES", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_deliveries: u32,
    /// How long completed agendas are kept, in milliseconds (default 3 days).
    #[arg(long, env = "POP_RETENTION_MS", default_value_t = 3 * 24 * 3_600_000)]
    pub retention_ms: u64,
    /// The jobs report what they would do and change nothing.
    #[arg(long, env = "POP_JOBS_LOG_ONLY")]
    pub jobs_log_only: bool,
}

#[derive(Debug, Clone, Args)]
pub struct BenchOptions {
    /// Number of agendas to submit.
    #[arg(long, default_value_t = 5000)]
    pub agendas: usize,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Operations per submitted agenda (a chain with references).
    #[arg(long, default_value_t = 3)]
    pub operations: usize,
    /// Pending agendas submitted to measure memory per pending agenda.
    #[arg(long, default_value_t = 20_000)]
    pub pending_agendas: usize,
    /// Run one section only: submissions, execution, isolation, latency, memory, or soak
    /// (the store's size under a steady load with the reaper on; only run when asked).
    #[arg(long, value_parser = ["submissions", "execution", "isolation", "latency", "memory", "pods", "aws", "soak"])]
    pub only: Option<String>,
    /// The AWS endpoint (moto's server) the `aws` section runs the aws backend on.
    #[arg(long, env = "POP_BENCH_AWS_ENDPOINT")]
    pub aws_endpoint: Option<String>,
    /// Agendas the soak submits.
    #[arg(long, default_value_t = 100_000)]
    pub soak_agendas: usize,
    /// Agendas per second the soak submits.
    #[arg(long, default_value_t = 200)]
    pub soak_rate: usize,
    /// The `pop` binary whose `serve` is measured (default: this one), e.g. an older build to
    /// compare with; its `pop-sample-handler` must sit next to it.
    #[arg(long)]
    pub server: Option<PathBuf>,
    /// An older `pop` binary measured in the same run beside `--server` where a section
    /// supports it (latency), with the ratio printed.
    #[arg(long)]
    pub baseline: Option<PathBuf>,
}

/// `pop puller`.
#[derive(Debug, Clone, Args)]
pub struct PullerOptions {
    /// Base URL of the POP server.
    #[arg(long, env = "POP_SERVER")]
    pub server: String,
    /// A token scoped to the insight (token file: `"insights": ["<id>"]`).
    #[arg(long, env = "POP_TOKEN", hide_env_values = true)]
    pub token: String,
    /// The insight whose agendas to run.
    #[arg(long, env = "POP_INSIGHT")]
    pub insight: String,
    /// The name leases are held under (default: a new one per process).
    #[arg(long, env = "POP_PULLER_ID")]
    pub puller_id: Option<String>,
    /// Lease length; a running agenda extends it every third of it.
    #[arg(long, env = "POP_LEASE_MS", default_value_t = 60_000, value_parser = clap::value_parser!(u64).range(1_000..=86_400_000))]
    pub lease_ms: u64,
    /// How often to look for work when there was none, or no room.
    #[arg(long, env = "POP_POLL_MS", default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(10..=600_000))]
    pub poll_ms: u64,
    /// Agendas run at once when the insight sets no `executionLimit`.
    #[arg(long, env = "POP_EXECUTION_LIMIT", default_value_t = 4)]
    pub default_execution_limit: usize,
    /// Handlers registry (operation type → process or pod; `executor` is the executor pod).
    /// Default: the built-in registry.
    #[arg(long, env = "POP_REGISTRY")]
    pub registry: Option<PathBuf>,
    /// Run each agenda as an executor pod (needs `--features kubernetes`), counting the
    /// insight's running executor pods against its `executionLimit`.
    #[arg(long, env = "POP_EXECUTOR_PODS")]
    pub executor_pods: bool,
    /// In-process runs start `podConfig` operations as pods (needs `--features kubernetes`).
    #[arg(long, env = "POP_KUBERNETES")]
    pub kubernetes: bool,
    /// The namespace of executor and operation pods unless the agenda's resource pool gives
    /// its customer one.
    #[arg(long, env = "POP_KUBERNETES_NAMESPACE", default_value = "pop")]
    pub kubernetes_namespace: String,
    /// Executor pods delete themselves when done (POP's `executor.reap.self`).
    #[arg(long, env = "POP_EXECUTOR_REAP_SELF", default_value_t = true, action = clap::ArgAction::Set)]
    pub executor_reap_self: bool,
    /// Report files of local handler processes.
    #[arg(long, env = "POP_RUNS_DIR", default_value = "./pop-puller-runs")]
    pub runs_dir: PathBuf,
    /// Serve `GET /healthz` on this address (for a Deployment's probes).
    #[arg(long, env = "POP_HEALTH_LISTEN")]
    pub health_listen: Option<String>,
}

/// `pop executor`: everything from the environment an executor pod gets.
#[derive(Debug, Clone, Args)]
pub struct ExecutorOptions {
    /// Base URL of the POP server.
    #[arg(long, env = "POP_SERVER")]
    pub server: String,
    /// A token scoped to the agenda's insight.
    #[arg(long, env = "POP_TOKEN", hide_env_values = true)]
    pub token: String,
    /// The puller holding the lease (`POP_LEASE`).
    #[arg(long, env = "POP_PULLER")]
    pub puller: String,
    /// Lease length; extended every third of it.
    #[arg(long, env = "POP_LEASE_MS", default_value_t = 60_000, value_parser = clap::value_parser!(u64).range(1_000..=86_400_000))]
    pub lease_ms: u64,
    /// Handlers registry. Default: the built-in registry.
    #[arg(long, env = "POP_REGISTRY")]
    pub registry: Option<PathBuf>,
    /// Start `podConfig` operations as pods (needs `--features kubernetes`).
    #[arg(long, env = "POP_KUBERNETES")]
    pub kubernetes: bool,
    /// The namespace of the operations' pods.
    #[arg(long, env = "POP_KUBERNETES_NAMESPACE", default_value = "pop")]
    pub kubernetes_namespace: String,
    /// Delete the executor's own pod when done (in a pod: `MY_POD_NAME`, `POD_NAMESPACE`).
    #[arg(long, env = "POP_EXECUTOR_REAP_SELF", default_value_t = true, action = clap::ArgAction::Set)]
    pub reap_self: bool,
    /// Report files of local handler processes.
    #[arg(long, env = "POP_RUNS_DIR", default_value = "/tmp/pop-executor-runs")]
    pub runs_dir: PathBuf,
}

/// Where `pop serve` keeps its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendKind {
    /// SQLite and a blob directory under `--data-dir`.
    Embedded,
    /// DynamoDB and S3.
    Aws,
}

/// Bearer JWTs instead of the token file (`pop serve`; needs `--features jwt`).
#[derive(Debug, Clone, Args)]
pub struct JwtOptions {
    /// Authenticate callers by bearer JWTs from this issuer (`iss`).
    #[arg(long, env = "POP_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,
    /// The audience (`aud`) tokens must carry.
    #[arg(long, env = "POP_JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,
    /// The issuer's JWKS (RS256 and ES256 keys), fetched and cached.
    #[arg(long, env = "POP_JWT_JWKS_URL")]
    pub jwt_jwks_url: Option<String>,
    /// How long fetched keys are kept.
    #[arg(long, env = "POP_JWT_JWKS_TTL_SECS", default_value_t = 300)]
    pub jwt_jwks_ttl_secs: u64,
    /// A file holding the HS256 secret (at least 32 bytes), instead of a JWKS.
    #[arg(long, env = "POP_JWT_HS256_SECRET_FILE")]
    pub jwt_hs256_secret_file: Option<PathBuf>,
    /// The claim listing the caller's accounts (a list, or ids separated by `|`).
    #[arg(long, env = "POP_JWT_ACCOUNTS_CLAIM", default_value = "accounts")]
    pub jwt_accounts_claim: String,
    /// A claim that makes a super user when it is `true` (none by default: no token does).
    #[arg(long, env = "POP_JWT_SUPER_USER_CLAIM")]
    pub jwt_super_user_claim: Option<String>,
    /// A claim listing the insights a puller's token is scoped to.
    #[arg(long, env = "POP_JWT_INSIGHTS_CLAIM")]
    pub jwt_insights_claim: Option<String>,
    /// Clock skew allowed on `exp` and `nbf`, in seconds.
    #[arg(long, env = "POP_JWT_LEEWAY_SECS", default_value_t = 30)]
    pub jwt_leeway_secs: u64,
}
