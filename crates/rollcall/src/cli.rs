use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use rollcall_server::LogFormat;
use rollcall_sim_metabase::MetabaseSimArgs;
use rollcall_sim_mode::ModeSimArgs;

/// Rollcall: one self-hosted User Directory API for Mode and Metabase.
#[derive(Debug, Parser)]
#[command(name = "rollcall", version, about)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Config file (default: $ROLLCALL_CONFIG, else ./rollcall.toml if present).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Log format: pretty or json (overrides config).
    #[arg(long, global = true, value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,
    /// Store URL, e.g. sqlite://rollcall.db (overrides config).
    #[arg(long, global = true, value_name = "URL")]
    pub database_url: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the API.
    Serve {
        /// Address to listen on (overrides config), e.g. 127.0.0.1:8080.
        #[arg(long)]
        listen: Option<SocketAddr>,
    },
    /// Apply the store's pending migrations and exit.
    Migrate,
    /// Copy a SQLite deployment into an empty PostgreSQL database, all or
    /// nothing (the nodes then need the same master key).
    CopyStore {
        /// The SQLite store, e.g. sqlite://rollcall.db.
        #[arg(long)]
        from: String,
        /// The PostgreSQL database, e.g. postgres://rollcall@db/rollcall.
        #[arg(long)]
        to: String,
    },
    /// Exit 0 if the server at --url is up and its store answers.
    Healthcheck {
        /// Base URL (default: from the configured listen address).
        #[arg(long)]
        url: Option<String>,
    },
    /// Manage tenant API keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Run a vendor simulator on its own.
    #[command(subcommand)]
    Sim(SimCommand),
    /// Serve a ready-to-try Rollcall with simulated Mode and Metabase accounts.
    Demo(DemoArgs),
    /// Users of a linked account, through a running server.
    #[command(subcommand)]
    Users(UsersCommand),
    /// Groups of a linked account, through a running server.
    #[command(subcommand)]
    Groups(GroupsCommand),
    /// Group memberships of a linked account, through a running server.
    #[command(subcommand)]
    Members(MembersCommand),
    /// Sync a linked account now and follow it to the end, with progress.
    Sync(SyncArgs),
    /// Change events, oldest first.
    Events(EventsArgs),
    /// Webhook subscriptions, their deliveries, and checking a signature.
    #[command(subcommand)]
    Webhooks(WebhooksCommand),
    /// Reports across the tenant's synced accounts: people, admins, inactive.
    Reports(ReportsArgs),
    /// Time-bound access grants: a group membership that ends on its own.
    #[command(subcommand)]
    Grants(GrantsCommand),
    /// Compute a plan: a group sync from a YAML or JSON file, or
    /// deprovisioning inactive users. Prints every change and why.
    Plan(PlanArgs),
    /// Apply a plan's changes, one by one, and print each result.
    Apply(ApplyArgs),
    /// Print the OpenAPI document of the whole API.
    ExportOpenapi,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportKind {
    People,
    Admins,
    Inactive,
}

#[derive(Debug, Args)]
pub struct ReportsArgs {
    #[command(flatten)]
    pub server: Server,
    pub report: ReportKind,
    /// Inactive: no activity in this many days.
    #[arg(long, default_value_t = 90)]
    pub days: u32,
    /// Print the whole report as CSV.
    #[arg(long, conflicts_with = "json")]
    pub csv: bool,
}

#[derive(Debug, Subcommand)]
pub enum GrantsCommand {
    /// Add a user to a group until an expiry.
    Create {
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        user: String,
        #[arg(long)]
        group: String,
        /// How long, like `90m`, `8h` or `2d`.
        #[arg(
            long,
            conflicts_with = "expires_at",
            required_unless_present = "expires_at"
        )]
        duration: Option<String>,
        /// RFC 3339 time, like 2026-12-31T18:00:00Z.
        #[arg(long)]
        expires_at: Option<String>,
        #[arg(long)]
        reason: Option<String>,
    },
    List {
        #[command(flatten)]
        server: Server,
        /// active, expiring, expired or revoked.
        #[arg(long)]
        status: Option<String>,
    },
    /// Revoke a grant now.
    Revoke {
        #[command(flatten)]
        server: Server,
        id: String,
    },
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub target: Target,
    /// Group sync: a YAML or JSON file, `groups: {<group name or id>: [emails]}`
    /// (optionally `prune: true`).
    #[arg(short = 'f', long = "file", conflicts_with = "deprovision_inactive")]
    pub file: Option<PathBuf>,
    /// Also remove members the file leaves out.
    #[arg(long)]
    pub prune: bool,
    /// Instead: deprovision users inactive for --days days.
    #[arg(long)]
    pub deprovision_inactive: bool,
    #[arg(long, default_value_t = 90)]
    pub days: u32,
    /// With --deprovision-inactive: admins too.
    #[arg(long)]
    pub include_admins: bool,
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    #[command(flatten)]
    pub server: Server,
    pub plan_id: String,
}

/// Where the server is and who is asking.
#[derive(Debug, Args)]
pub struct Server {
    /// Rollcall's URL.
    #[arg(long, env = "ROLLCALL_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// A tenant API key.
    #[arg(long, env = "ROLLCALL_API_KEY", hide_env_values = true)]
    pub api_key: String,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct SyncArgs {
    #[command(flatten)]
    pub target: Target,
    /// Queue the sync and print its id without waiting for it.
    #[arg(long)]
    pub no_wait: bool,
}

#[derive(Debug, Args)]
pub struct EventsArgs {
    #[command(flatten)]
    pub server: Server,
    /// A cursor from an earlier run (printed last); default: from the first event.
    #[arg(long)]
    pub after: Option<String>,
    #[arg(long, default_value_t = 100)]
    pub limit: u32,
}

#[derive(Debug, Subcommand)]
pub enum WebhooksCommand {
    /// Subscribe a URL; prints the signing secret once.
    Create {
        #[command(flatten)]
        server: Server,
        #[arg(long)]
        url: String,
        /// Event types (repeat, or comma-separated); `*` for all.
        #[arg(long = "event", value_delimiter = ',', required = true)]
        events: Vec<String>,
    },
    List {
        #[command(flatten)]
        server: Server,
    },
    Delete {
        #[command(flatten)]
        server: Server,
        id: String,
    },
    /// A webhook's deliveries, newest first.
    Deliveries {
        #[command(flatten)]
        server: Server,
        id: String,
    },
    /// Check a delivery's `x-rollcall-signature` as a receiver would; exit 0
    /// if it is genuine and fresh.
    Verify {
        /// The webhook's secret (`whsec_...`).
        #[arg(long, env = "ROLLCALL_WEBHOOK_SECRET", hide_env_values = true)]
        secret: String,
        /// The `x-rollcall-signature` header's value.
        #[arg(long)]
        signature: String,
        /// A file with the raw request body (`-` for stdin).
        #[arg(long)]
        body: PathBuf,
        /// Seconds a signature's timestamp may be away from now.
        #[arg(long, default_value_t = 300)]
        tolerance: i64,
    },
}

/// Where the server is, who is asking, and about which account.
#[derive(Debug, Args)]
pub struct Target {
    /// Rollcall's URL.
    #[arg(long, env = "ROLLCALL_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// A tenant API key.
    #[arg(long, env = "ROLLCALL_API_KEY", hide_env_values = true)]
    pub api_key: String,
    /// The integrated account id.
    #[arg(long)]
    pub account: String,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// List users (every page with --all).
    List {
        #[command(flatten)]
        target: Target,
        /// active, inactive or invited.
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        email: Option<String>,
        /// Only admins (true) or non-admins (false).
        #[arg(long)]
        admin: Option<bool>,
        /// Only members of this group.
        #[arg(long)]
        group: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// Follow every page.
        #[arg(long)]
        all: bool,
        /// Read the last sync's snapshot instead of asking the vendor.
        #[arg(long)]
        cache: bool,
    },
    /// One user, with every field the vendor has.
    Get {
        #[command(flatten)]
        target: Target,
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum GroupsCommand {
    List {
        #[command(flatten)]
        target: Target,
        #[arg(long, default_value_t = 100)]
        limit: u32,
        #[arg(long)]
        all: bool,
    },
    Get {
        #[command(flatten)]
        target: Target,
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum MembersCommand {
    List {
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        group: Option<String>,
        #[arg(long)]
        user: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: u32,
        #[arg(long)]
        all: bool,
    },
    /// Add a user to a group (an existing membership is left as it is).
    Add {
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        group: String,
        #[arg(long)]
        user: String,
    },
    /// Remove a user from a group.
    Remove {
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        group: String,
        #[arg(long)]
        user: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create an API key for a tenant (created if new); prints the key once.
    Create {
        #[arg(long)]
        tenant: String,
        /// A note to recognise the key by later.
        #[arg(long, default_value = "cli")]
        label: String,
    },
    /// Re-seal every stored vendor credential under a new master key, with
    /// servers running. With a key file, the new key is written to it and old
    /// keys are dropped once unused; with ROLLCALL_MASTER_KEY, put a new key
    /// first in it (see generate-master) and roll the servers before this.
    RotateMaster,
    /// Print a new random master key entry (`ID:BASE64`) for ROLLCALL_MASTER_KEY.
    GenerateMaster,
}

#[derive(Debug, Subcommand)]
pub enum SimCommand {
    /// The Mode Analytics API simulator.
    Mode {
        #[arg(long, default_value_t = 9101)]
        port: u16,
        #[arg(long, default_value = "127.0.0.1")]
        host: std::net::IpAddr,
        #[command(flatten)]
        args: ModeSimArgs,
    },
    /// The Metabase API simulator.
    Metabase {
        #[arg(long, default_value_t = 9102)]
        port: u16,
        #[arg(long, default_value = "127.0.0.1")]
        host: std::net::IpAddr,
        #[command(flatten)]
        args: MetabaseSimArgs,
    },
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where the demo keeps its database.
    #[arg(long, default_value = "rollcall-demo")]
    pub data_dir: PathBuf,
    /// Address for the API.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Users in each simulated vendor account.
    #[arg(long, default_value_t = 200)]
    pub users: usize,
}
