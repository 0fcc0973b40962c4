//! The `hoist` command: everything lives in the library; see `hoist::cli`.

fn main() -> std::process::ExitCode {
    hoist::output::started();
    // Like other Unix tools, end quietly when the reader of our output goes away
    // (`hoist ps | head`) instead of panicking on a broken pipe.
    // SAFETY: restoring the default disposition of SIGPIPE before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    hoist::cli::main()
}
