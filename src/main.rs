use clap::Parser;

fn main() -> std::process::ExitCode {
    ibq::cli::quiet_caught_library_panics();
    let cli = ibq::cli::Cli::parse();
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
        Err(e) => {
            eprintln!("ibq: {}", ibq::cli::error_line(&e));
            std::process::ExitCode::FAILURE
        }
    }
}
