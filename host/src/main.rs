//! The `postern` binary: everything lives in the library; this only hands
//! over to its command line.

/// Many small per-message allocations on several threads: mimalloc keeps
/// them thread-local (glibc's malloc measured ~14% of the server's CPU).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    postern::cli::main()
}
