use std::process::ExitCode;

fn main() -> ExitCode {
    authprobe::install_crypto_provider();
    authprobe::surface::cli::main()
}
