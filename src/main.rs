//! The `custagg` binary: parse the command line, build the configuration, run, and map errors to
//! exit codes (SPEC §6). Everything else lives in the library.

mod cli;

use std::process::ExitCode;

use clap::Parser;
use custagg::sink::connect::Connection;
use custagg::{Error, Summary};

use cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            match &e {
                // `file:line: column: reason` stands first on its line, as compilers print it.
                Error::BadRow(_) | Error::TooManyBadRows { .. } => eprintln!("{e}"),
                _ => eprintln!("custagg: {e}"),
            }
            ExitCode::from(e.exit_code())
        }
    }
}

fn run(cli: &Cli) -> Result<(), Error> {
    if let Some(Command::Generate(args)) = &cli.command {
        let bytes = custagg::generate::generate(&args.config())?;
        if !cli.run.quiet {
            eprintln!(
                "custagg: wrote {} rows ({}) to {}",
                args.rows,
                human_bytes(bytes),
                args.out.display()
            );
        }
        return Ok(());
    }
    let args = &cli.run;
    let config = args.config();
    let (summary, target) = match (&args.output, &args.table) {
        (Some(output), _) => (
            custagg::run_to_csv(&config, output)?,
            output.display().to_string(),
        ),
        (None, Some(table)) => {
            let connection = Connection::new(&args.connect_options())?;
            let summary = custagg::pipeline::run_to_postgres(
                &config,
                &connection,
                table,
                args.lock_timeout(),
            )?;
            (summary, format!("{table} in {}", connection.shown()))
        }
        (None, None) => unreachable!("clap requires --table or --output"),
    };
    if !args.quiet {
        print_summary(&summary, &target, &config);
    }
    Ok(())
}

fn print_summary(s: &Summary, target: &str, config: &custagg::Config) {
    let total = s.read_time + s.reduce_time + s.write_time;
    let rate = s.bytes as f64 / total.as_secs_f64().max(1e-9);
    eprintln!(
        "custagg: {} rows read, {} rejected, {} customers -> {target}",
        s.rows_read, s.rows_rejected, s.customers
    );
    if s.rows_rejected > 0 {
        eprintln!("custagg: rejected rows are in {}", config.rejects.display());
    }
    eprintln!(
        "custagg: {} in {:.2} s ({}/s): read {:.2} s, reduce {:.2} s, write {:.2} s{}; \
         {} partitions, {} spilled",
        human_bytes(s.bytes),
        total.as_secs_f64(),
        human_bytes(rate as u64),
        s.read_time.as_secs_f64(),
        s.reduce_time.as_secs_f64(),
        s.write_time.as_secs_f64(),
        if s.copy_time.is_zero() {
            String::new()
        } else {
            format!(
                " (COPY {:.2} s during the reduce)",
                s.copy_time.as_secs_f64()
            )
        },
        s.partitions,
        human_bytes(s.spilled_bytes),
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
