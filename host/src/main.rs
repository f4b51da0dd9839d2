//! The `postern` binary: everything lives in the library; this only hands
//! over to its command line.

fn main() -> std::process::ExitCode {
    postern::cli::main()
}
