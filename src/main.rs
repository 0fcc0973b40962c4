//! The `hoist` command: everything lives in the library; see `hoist::cli`.

fn main() -> std::process::ExitCode {
    hoist::cli::main()
}
