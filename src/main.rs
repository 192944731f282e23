//! The `custagg` binary: parse the command line, build the configuration, run, and map errors to
//! exit codes (SPEC §6). Everything else lives in the library.

mod bars;
mod cli;

use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use clap::{CommandFactory, Parser};
use custagg::progress::{NoProgress, Progress};
use custagg::sink::connect::Connection;
use custagg::{Error, Summary};

use cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn"))
        .format_timestamp_millis()
        .init();
    let started = Instant::now();
    let progress: Box<dyn Progress> = if !cli.run.quiet && std::io::stderr().is_terminal() {
        Box::new(bars::Bars::new())
    } else {
        Box::new(NoProgress)
    };
    let result = run(&cli, progress.as_ref());
    progress.finish();
    let code = match &result {
        Ok(_) => 0,
        Err(e) => e.exit_code(),
    };
    if let Some(path) = &cli.run.report
        && cli.command.is_none()
    {
        let summary = result.as_ref().ok().and_then(|(s, _)| s.as_ref());
        let error = result.as_ref().err().map(|e| e.to_string());
        if let Err(e) = write_report(path, summary, error.as_deref(), code, started) {
            eprintln!("custagg: {e}");
        }
    }
    match result {
        Ok((Some(summary), target)) => {
            if !cli.run.quiet {
                print_summary(&summary, &target, &cli.run.config());
            }
            ExitCode::SUCCESS
        }
        Ok((None, _)) => ExitCode::SUCCESS,
        Err(e) => {
            match &e {
                // `file:line: column: reason` stands first on its line, as compilers print it.
                Error::BadRow(_) | Error::TooManyBadRows { .. } => eprintln!("{e}"),
                _ => eprintln!("custagg: {e}"),
            }
            ExitCode::from(code)
        }
    }
}

/// Runs what the command line asks; returns the run's summary and where the rows went.
fn run(cli: &Cli, progress: &dyn Progress) -> Result<(Option<Summary>, String), Error> {
    match &cli.command {
        Some(Command::Generate(args)) => {
            let bytes = custagg::generate::generate(&args.config())?;
            if !args.quiet {
                eprintln!(
                    "custagg: wrote {} rows ({}) to {}",
                    args.rows,
                    human_bytes(bytes),
                    args.out.display()
                );
            }
            return Ok((None, args.out.display().to_string()));
        }
        Some(Command::Completions { shell }) => {
            clap_complete::generate(
                *shell,
                &mut Cli::command(),
                "custagg",
                &mut std::io::stdout(),
            );
            return Ok((None, String::new()));
        }
        Some(Command::Man) => {
            clap_mangen::Man::new(Cli::command())
                .render(&mut std::io::stdout())
                .map_err(|e| Error::io("stdout", "cannot write the manual page", e))?;
            return Ok((None, String::new()));
        }
        None => {}
    }
    let args = &cli.run;
    let config = args.config();
    match (&args.output, &args.table) {
        (Some(output), _) => Ok((
            Some(custagg::run_to_csv(&config, output, progress)?),
            output.display().to_string(),
        )),
        (None, Some(table)) => {
            let connection = Connection::new(&args.connect_options())?;
            let summary = custagg::pipeline::run_to_postgres(
                &config,
                &connection,
                table,
                args.lock_timeout(),
                progress,
            )?;
            Ok((Some(summary), format!("{table} in {}", connection.shown())))
        }
        (None, None) => unreachable!("clap requires --table or --output"),
    }
}

/// The figures of a run as JSON, for schedulers; written on failure too.
fn write_report(
    path: &Path,
    summary: Option<&Summary>,
    error: Option<&str>,
    exit_status: u8,
    started: Instant,
) -> Result<(), Error> {
    let seconds = |d: Option<std::time::Duration>| d.map(|d| d.as_secs_f64());
    let report = serde_json::json!({
        "exit_status": exit_status,
        "error": error,
        "rows_read": summary.map(|s| s.rows_read),
        "rows_rejected": summary.map(|s| s.rows_rejected),
        "rows_aggregated": summary.map(|s| s.rows_aggregated),
        "customers": summary.map(|s| s.customers),
        "bytes": summary.map(|s| s.bytes),
        "partitions": summary.map(|s| s.partitions),
        "spilled_bytes": summary.map(|s| s.spilled_bytes),
        "seconds": {
            "read": seconds(summary.map(|s| s.read_time)),
            "reduce": seconds(summary.map(|s| s.reduce_time)),
            "write": seconds(summary.map(|s| s.write_time)),
            "copy_during_reduce": seconds(summary.map(|s| s.copy_time)),
            "total": started.elapsed().as_secs_f64(),
        },
        "peak_memory_bytes": summary
            .and_then(|s| s.peak_memory)
            .or_else(custagg::progress::peak_memory),
    });
    let mut file = custagg::atomic::AtomicFile::create(path, "cannot write the report")?;
    file.write_with(|f| {
        serde_json::to_writer_pretty(&mut *f, &report)?;
        std::io::Write::write_all(f, b"\n")
    })?;
    file.commit()
}

/// The summary of SPEC §7, on stderr: what was done, then time per phase, then memory.
fn print_summary(s: &Summary, target: &str, config: &custagg::Config) {
    let total = s.read_time + s.reduce_time + s.write_time;
    let rate = |bytes: u64, secs: f64| human_bytes((bytes as f64 / secs.max(1e-9)) as u64);
    eprintln!(
        "custagg: {} rows read, {} rejected, {} customers -> {target}",
        s.rows_read, s.rows_rejected, s.customers
    );
    if s.rows_rejected > 0 {
        eprintln!("  rejected rows are in {}", config.rejects.display());
    }
    eprintln!(
        "  read    {:>7.2} s   {} at {}/s",
        s.read_time.as_secs_f64(),
        human_bytes(s.bytes),
        rate(s.bytes, s.read_time.as_secs_f64())
    );
    eprintln!(
        "  reduce  {:>7.2} s   {} partitions, {} spilled",
        s.reduce_time.as_secs_f64(),
        s.partitions,
        human_bytes(s.spilled_bytes)
    );
    let copy = if s.copy_time.is_zero() {
        String::new()
    } else {
        format!(
            " (and COPY {:.2} s during the reduce)",
            s.copy_time.as_secs_f64()
        )
    };
    eprintln!("  write   {:>7.2} s{copy}", s.write_time.as_secs_f64());
    eprintln!(
        "  total   {:>7.2} s   {}/s; peak memory {}",
        total.as_secs_f64(),
        rate(s.bytes, total.as_secs_f64()),
        s.peak_memory.map_or("unknown".into(), human_bytes)
    );
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}
