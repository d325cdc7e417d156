//! The command line: one subcommand per face of Slipway.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "slipway",
    version,
    about = "A self-hosted Docker learning lab",
    long_about = "Slipway serves a Docker course as lessons with exercises, gives every learner \
                  browser terminals into sandboxed nodes, and grades exercises live.\n\n\
                  Every option of `serve` can also be set in slipway.toml (--config, ./slipway.toml \
                  or /etc/slipway/slipway.toml) or by a SLIPWAY_* environment variable; \
                  flags win over variables, variables over the file."
)]
pub struct Cli {
    /// The settings file (TOML). Default: ./slipway.toml, then /etc/slipway/slipway.toml.
    #[arg(long, global = true, env = "SLIPWAY_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the course site (lessons, progress, accounts).
    Serve(ServeArgs),
    /// Work with the course's lessons.
    #[command(subcommand)]
    Lessons(LessonsCommand),
    /// Turn Markdown course notes into a module of lessons.
    Import(ImportArgs),
    /// Measure the speed targets against a peer in the same run.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Run OCI bundles with Slipway's own runtime, as runc and crun do.
    Runtime(RuntimeArgs),
    /// Playgrounds on a running server: new, exec, ls, rm.
    #[command(visible_alias = "pg")]
    Playground(PlaygroundArgs),
    /// Images: the store, the offline catalog, and the builder.
    #[command(visible_alias = "image")]
    Images(ImagesArgs),
}

#[derive(Debug, Args)]
pub struct PlaygroundArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// The server's URL [default: from DATA_DIR/server.json].
    #[arg(long, env = "SLIPWAY_SERVER", value_name = "URL")]
    pub server: Option<String>,
    /// The admin token [default: from DATA_DIR/server.json].
    #[arg(long, env = "SLIPWAY_TOKEN", value_name = "TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    #[command(subcommand)]
    pub command: PlaygroundCommand,
}

#[derive(Debug, Subcommand)]
pub enum PlaygroundCommand {
    /// Make a playground; prints its ID and, per node, its Engine API socket.
    New {
        #[arg(long, default_value_t = 1)]
        nodes: usize,
        #[arg(long)]
        json: bool,
    },
    /// Run a command in a node; exits with the command's exit code.
    Exec {
        id: String,
        node: String,
        #[arg(required = true, last = true)]
        cmd: Vec<String>,
    },
    /// List playgrounds.
    Ls {
        #[arg(long)]
        json: bool,
    },
    /// Remove a playground and everything in it.
    Rm { id: String },
}

#[derive(Debug, Args)]
pub struct ImagesArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(subcommand)]
    pub command: ImagesCommand,
}

#[derive(Debug, Subcommand)]
pub enum ImagesCommand {
    /// List images.
    #[command(visible_alias = "list")]
    Ls {
        /// Also the untagged intermediate images of builds.
        #[arg(long, short)]
        all: bool,
        #[arg(long)]
        json: bool,
    },
    /// Build the catalog's images that are missing (all of them without NAMEs).
    Ensure { names: Vec<String> },
    /// Build an image from a Dockerfile with the classic builder.
    Build {
        /// Name and optionally a tag (name:tag); may be repeated.
        #[arg(long, short)]
        tag: Vec<String>,
        /// The Dockerfile, relative to the context [default: Dockerfile].
        #[arg(long, short)]
        file: Option<PathBuf>,
        /// A build-time variable (KEY=VALUE); may be repeated.
        #[arg(long = "build-arg", value_name = "KEY=VALUE")]
        build_arg: Vec<String>,
        /// The stage to build.
        #[arg(long)]
        target: Option<String>,
        /// Do not use the cache.
        #[arg(long)]
        no_cache: bool,
        /// Print only the image ID.
        #[arg(long, short)]
        quiet: bool,
        /// RUN steps' network: `host` (reaches the package mirrors) or `none` (loopback only).
        #[arg(long, default_value = "host", value_parser = ["host", "none"])]
        network: String,
        /// The build context directory.
        context: PathBuf,
    },
    /// Give an image another name.
    Tag { source: String, target: String },
    /// Remove images (tags, then the image once no tag is left).
    Rm {
        #[arg(long, short)]
        force: bool,
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// An image's configuration, as JSON.
    Inspect { name: String },
    /// An image's layers and the steps that made them.
    History { name: String },
    /// Write images to a tar (docker save's format, which is also an OCI layout).
    Save {
        #[arg(long, short)]
        output: PathBuf,
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Read images from a tar written by `save` or `docker save`.
    Load {
        #[arg(long, short)]
        input: PathBuf,
    },
    /// Delete blobs and layers no image needs.
    Gc,
}

#[derive(Debug, Args)]
pub struct RuntimeArgs {
    /// Where container state is kept.
    #[arg(long, default_value = "/run/slipway/runtime", value_name = "DIR")]
    pub root: PathBuf,
    #[command(subcommand)]
    pub command: RuntimeCommand,
}

#[derive(Debug, Subcommand)]
pub enum RuntimeCommand {
    /// Write a config.json holding Docker's defaults (capabilities, masked and read-only
    /// paths, seccomp profile, mounts).
    Spec {
        /// The bundle directory to write config.json into.
        #[arg(long, short, default_value = ".")]
        bundle: PathBuf,
        /// The process to run [default: sh].
        #[arg(last = true)]
        args: Vec<String>,
        /// Do not give the process a terminal.
        #[arg(long)]
        no_terminal: bool,
    },
    /// Create and start a container, wait for it, and remove it; exits with its exit code.
    Run {
        #[arg(long, short, default_value = ".")]
        bundle: PathBuf,
        /// Leave it running in the background (remove it with `delete`).
        #[arg(long, short)]
        detach: bool,
        id: String,
    },
    /// Create a container; its process waits for `start`.
    Create {
        #[arg(long, short, default_value = ".")]
        bundle: PathBuf,
        /// A Unix socket to receive the console's pty master (process.terminal).
        #[arg(long)]
        console_socket: Option<PathBuf>,
        #[arg(long)]
        pid_file: Option<PathBuf>,
        id: String,
    },
    /// Start a created container's process.
    Start { id: String },
    /// Print a container's state as OCI JSON.
    State { id: String },
    /// Send a signal (default SIGTERM) to a container's process.
    Kill { id: String, signal: Option<String> },
    /// Remove a stopped container (--force kills it first).
    Delete {
        #[arg(long, short)]
        force: bool,
        id: String,
    },
    /// List containers.
    List,
    /// (internal) Monitor one container for the server: reads its configuration on stdin.
    #[command(hide = true)]
    Monitor { id: String },
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Lesson pages per second and their latency (wrk), against nginx serving the same page.
    Site {
        #[command(flatten)]
        common: CommonArgs,
        /// Seconds per scenario.
        #[arg(long, default_value_t = 10)]
        duration: u32,
        /// Concurrent connections.
        #[arg(long, default_value_t = 64)]
        connections: u32,
        /// wrk threads (the server keeps the other cores).
        #[arg(long, default_value_t = 1)]
        threads: u32,
        /// Print the figures as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Create, start, wait and delete of /bin/true with Slipway, crun and runc on one
    /// busybox bundle, interleaved; medians and ratios.
    Runtime {
        /// Measured runs per runtime and bundle.
        #[arg(long, default_value_t = 200)]
        runs: usize,
        #[arg(long, default_value_t = 5)]
        warmup: usize,
        #[arg(long)]
        json: bool,
    },
    /// A no-op rebuild of the python recipe (all cache hits), and unpacking a 100 MiB
    /// layer against GNU tar and the disk's write speed.
    Images {
        #[command(flatten)]
        common: CommonArgs,
        /// Timed rebuilds.
        #[arg(long, default_value_t = 20)]
        rebuilds: usize,
        /// Interleaved unpack rounds per contender.
        #[arg(long, default_value_t = 5)]
        rounds: usize,
        #[arg(long)]
        json: bool,
    },
    /// The Engine API through the real clients in a node: `docker run --rm busybox true`
    /// (against `docker version`, the CLI's floor) and `docker compose up -d` of a
    /// three-service stack (against `docker compose ps`). Needs root and the catalog.
    Engine {
        /// The catalog whose store (DIR/images) holds slipway/node, busybox and redis.
        #[arg(
            long,
            env = "SLIPWAY_CATALOG_DIR",
            value_name = "DIR",
            default_value = "/var/cache/slipway/catalog"
        )]
        catalog_dir: PathBuf,
        /// Timed `docker run` rounds.
        #[arg(long, default_value_t = 50)]
        runs: usize,
        /// Untimed `docker run` rounds first.
        #[arg(long, default_value_t = 5)]
        warmup: usize,
        /// Timed compose up/down rounds (after one untimed).
        #[arg(long, default_value_t = 10)]
        compose_runs: usize,
        #[arg(long)]
        json: bool,
    },
    /// Live grading: from an engine event to the check's new result on the lesson page's
    /// socket (target: median ≤ 50 ms), against one check-script evaluation in the node.
    /// Needs root and slipway/node in the catalog.
    Grading {
        #[arg(
            long,
            env = "SLIPWAY_CATALOG_DIR",
            value_name = "DIR",
            default_value = "/var/cache/slipway/catalog"
        )]
        catalog_dir: PathBuf,
        /// Timed rounds, each a volume created and removed (two samples).
        #[arg(long, default_value_t = 50)]
        rounds: usize,
        #[arg(long)]
        json: bool,
    },
    /// Playgrounds: POST to the shell's prompt (against a bare start of the node image),
    /// keystroke echo with 100 typing terminals (against bash on plain PTYs), and host
    /// memory per idle playground. Needs root and slipway/node in the catalog.
    Playground {
        /// The catalog whose store (DIR/images) holds slipway/node.
        #[arg(
            long,
            env = "SLIPWAY_CATALOG_DIR",
            value_name = "DIR",
            default_value = "/var/cache/slipway/catalog"
        )]
        catalog_dir: PathBuf,
        /// Timed playground starts (each removed after).
        #[arg(long, default_value_t = 20)]
        runs: usize,
        /// Terminals typing at once, for the echo figure.
        #[arg(long, default_value_t = 100)]
        terminals: usize,
        /// Terminals per playground, on its node1 (1 to 16).
        #[arg(long, default_value_t = 10)]
        terminals_per_playground: usize,
        /// Seconds of measured typing (after a 2 s warm-up).
        #[arg(long, default_value_t = 15)]
        seconds: u64,
        /// Idle playgrounds for the memory figure.
        #[arg(long, default_value_t = 20)]
        idle: usize,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args, Default, Clone)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "SLIPWAY_LISTEN", value_name = "ADDR")]
    pub listen: Option<SocketAddr>,

    /// Catalog images to build in the background at start when the store lacks them:
    /// `all`, `none`, or names separated by commas [default: all].
    #[arg(long, env = "SLIPWAY_CATALOG", value_name = "NAMES")]
    pub catalog: Option<String>,

    #[command(flatten)]
    pub common: CommonArgs,
}

/// Options shared by every subcommand that touches the course or the data directory.
#[derive(Debug, Args, Default, Clone)]
pub struct CommonArgs {
    /// Where Slipway keeps its database, keys and state [default: /var/lib/slipway].
    #[arg(long, env = "SLIPWAY_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// The lessons directory [default: the repository's lessons/].
    #[arg(long, env = "SLIPWAY_LESSONS", value_name = "DIR")]
    pub lessons: Option<PathBuf>,

    /// The image store, which several servers on one machine may share
    /// [default: DATA_DIR/images].
    #[arg(long, env = "SLIPWAY_IMAGES", value_name = "DIR")]
    pub images: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum LessonsCommand {
    /// Check every lesson and name the file and line of each problem; exits 1 on any error.
    Lint {
        #[command(flatten)]
        common: CommonArgs,
        /// Treat warnings as errors.
        #[arg(long)]
        strict: bool,
    },
    /// Lesson CI: for every graded exercise, a fresh playground and its setup, where every
    /// check must fail; then its solution through the real docker CLI, after which every
    /// check must pass. A report line per exercise; exits 1 on any failure.
    Verify {
        #[command(flatten)]
        common: CommonArgs,
        /// Only this lesson file (may be given more than once).
        #[arg(long = "lesson", value_name = "PATH")]
        only: Vec<PathBuf>,
        /// The image catalog (its images/ store holds slipway/node and the course's images).
        #[arg(
            long,
            env = "SLIPWAY_CATALOG_DIR",
            value_name = "DIR",
            default_value = "/var/cache/slipway/catalog"
        )]
        catalog_dir: PathBuf,
        /// Exercises verified at once.
        #[arg(long, default_value_t = 2)]
        jobs: usize,
        /// Seconds the checks may take to pass after the solution ran.
        #[arg(long, default_value_t = 60)]
        settle: u64,
        /// Print the reports as JSON as well.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The notes to import, in order; together they make one module.
    #[arg(required = true, value_name = "NOTES.md")]
    pub notes: Vec<PathBuf>,

    /// The module directory to write (created; must be empty or absent unless --force).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,

    /// The heading level to split lessons at [default: found from the notes].
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=6))]
    pub split_level: Option<u8>,

    /// The module's title [default: the notes' title].
    #[arg(long)]
    pub title: Option<String>,

    /// Write into a non-empty directory, replacing lessons of the same name.
    #[arg(long)]
    pub force: bool,

    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}
