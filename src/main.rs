use clap::Parser;

fn main() -> std::process::ExitCode {
    ibq::cli::quiet_caught_library_panics();
    let cli = match ibq::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    if cli.prints_and_exits() {
        // `ibq list | head -1`: a reader that stops early ends the command quietly, as it
        // ends `cat`, instead of a panic on the broken pipe.
        ibq::cli::default_sigpipe();
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ibq: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(ibq::cli::run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        // `ibq doctor` printed what to fix; the status alone says it is not ready.
        Err(e) if e.is::<ibq::doctor::NotReady>() => std::process::ExitCode::FAILURE,
        Err(e) => {
            // Errors quote what they were given (a symbol, an id, a row's text).
            eprintln!("ibq: {}", ibq::text::clean(&ibq::cli::error_line(&e)));
            std::process::ExitCode::FAILURE
        }
    }
}

/// Help and version as clap prints them; a usage error quotes the argument it refuses, so
/// it is printed cleaned of control characters.
fn usage_error(e: clap::Error) -> std::process::ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        e.exit();
    }
    // Parsed again without styles, the message holds no escape sequence of clap's own,
    // only the argument as given: cleaned, that shows as visible escapes.
    let plain = <ibq::cli::Cli as clap::CommandFactory>::command()
        .styles(clap::builder::Styles::plain())
        .try_get_matches()
        .err()
        .unwrap_or(e);
    eprint!(
        "{}",
        ibq::text::clean_lines(&plain.render().ansi().to_string())
    );
    std::process::ExitCode::from(plain.exit_code().clamp(0, 255) as u8)
}
