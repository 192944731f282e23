//! The `custagg` binary: parse the command line, build the configuration, run, and map errors to
//! exit codes (contract §6). Everything else lives in the library.
//!
//! The binary's own parts: [`cli`] (the flags), [`bars`] (progress bars on a terminal),
//! [`summary`] (the closing summary) and [`report`] (`--report` JSON).

mod bars;
mod cli;
mod report;
mod summary;

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Instant;

use clap::{CommandFactory, Parser};
use custagg::db::connect::Connection;
use custagg::progress::{NoProgress, Progress};
use custagg::{Error, Summary};

use cli::{Cli, Command};
use report::write_report;
use summary::{human_bytes, print_summary};

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
    let mut incremental = None;
    let result = run(&cli, progress.as_ref(), &mut incremental);
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
        let written = write_report(
            path,
            summary,
            incremental.as_ref(),
            error.as_deref(),
            code,
            started,
        );
        if let Err(e) = written {
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

/// Runs what the command line asks; returns the run's summary and where the rows went. An
/// incremental run also says what it loaded and skipped in `incremental`, for `--report`.
fn run(
    cli: &Cli,
    progress: &dyn Progress,
    incremental: &mut Option<serde_json::Value>,
) -> Result<(Option<Summary>, String), Error> {
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
        Some(Command::State(args)) => {
            state(args)?;
            return Ok((None, String::new()));
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
    if args.reload && !args.incremental() {
        return Err(Error::Usage(
            "--reload goes with --mode incremental (a replace run reads every source anyway)"
                .into(),
        ));
    }
    if args.incremental() && args.output.is_some() {
        return Err(Error::Usage(
            "--mode incremental loads a table (its state lives next to it in PostgreSQL); \
             give --table instead of --output"
                .into(),
        ));
    }
    match (&args.output, &args.table) {
        (Some(output), _) => Ok((
            Some(custagg::run_to_csv(&config, output, progress)?),
            output.display().to_string(),
        )),
        (None, Some(table)) if args.incremental() => {
            let connection = Connection::new(&args.connect_options())?;
            let outcome = custagg::pipeline::run_incremental(
                &config,
                &connection,
                table,
                args.lock_timeout(),
                args.reload,
                progress,
            )?;
            let target = format!("{table} in {}", connection.shown());
            *incremental = Some(serde_json::json!({
                "loaded": outcome.loaded,
                "skipped": outcome.skipped.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
                "customers_merged": outcome.merged.customers,
                "new_customers": outcome.merged.new_customers,
                "first_load": outcome.merged.first,
            }));
            if !args.quiet {
                for skipped in &outcome.skipped {
                    eprintln!("custagg: {skipped}");
                }
                let merged = &outcome.merged;
                match &outcome.summary {
                    None => eprintln!("custagg: nothing new to load into {target}"),
                    Some(_) => eprintln!(
                        "custagg: {} loaded; {} customers merged ({} new){}",
                        outcome.loaded.join(", "),
                        merged.customers,
                        merged.new_customers,
                        if merged.first {
                            "; the table's first incremental load"
                        } else {
                            ""
                        }
                    ),
                }
            }
            Ok((outcome.summary, target))
        }
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

/// `custagg state`: the ledger and the state's size, or `--reset`.
fn state(args: &cli::StateArgs) -> Result<(), Error> {
    let mut out = String::new();
    use custagg::sink::postgres::incremental::{reset_state, state_report};
    let connection = Connection::new(&args.connect.options())?;
    let table = &args.table;
    if args.reset {
        match reset_state(&connection, table)? {
            true => {
                out +=
                    &format!("dropped the incremental state of {table}; the table itself stays\n")
            }
            false => out += &format!("{table} has no incremental state\n"),
        }
        return print_out(&out);
    }
    let Some(report) = state_report(&connection, table)? else {
        out += &format!(
            "{table} has no incremental state (it was never loaded with --mode incremental)\n"
        );
        return print_out(&out);
    };
    let count = |n: i64, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
    let loads = report.ledger.iter().map(|l| l.load).max().unwrap_or(0);
    out += &format!(
        "{table} in {}: {} loaded in {}; state of {}, {} on disk (ledger {})\n",
        connection.shown(),
        count(report.ledger.len() as i64, "source"),
        count(loads, "load"),
        count(report.customers, "customer"),
        human_bytes(report.state_bytes as u64),
        human_bytes(report.ledger_bytes as u64),
    );
    let mut lines = vec![[
        "load".to_string(),
        "loaded at".into(),
        "rows".into(),
        "customers".into(),
        "bytes".into(),
        "source".into(),
        "content hash".into(),
    ]];
    for row in &report.ledger {
        lines.push([
            row.load.to_string(),
            row.loaded_at.clone(),
            row.rows.to_string(),
            row.customers.to_string(),
            row.bytes.to_string(),
            row.source.clone(),
            row.content_hash.clone(),
        ]);
    }
    let mut widths = [0; 7];
    for line in &lines {
        for (width, field) in widths.iter_mut().zip(line) {
            *width = (*width).max(field.chars().count());
        }
    }
    if lines.len() > 1 {
        for line in &lines {
            let [load, at, rows, customers, bytes, source, hash] = line;
            out += &format!(
                "{load:>w0$}  {at:<w1$}  {rows:>w2$}  {customers:>w3$}  {bytes:>w4$}  \
                 {source:<w5$}  {hash}\n",
                w0 = widths[0],
                w1 = widths[1],
                w2 = widths[2],
                w3 = widths[3],
                w4 = widths[4],
                w5 = widths[5],
            );
        }
    }
    print_out(&out)
}

/// Writes `text` to standard output; a closed pipe (`| head`) ends it quietly.
fn print_out(text: &str) -> Result<(), Error> {
    use std::io::Write;
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(Error::io("stdout", "cannot write", e))
        }
        _ => Ok(()),
    }
}
