//! `hoist completions` and `hoist manpage`: shell completions and a man page,
//! generated from the same definitions that parse the command line, so they
//! never drift from it.

use clap::{Args, CommandFactory, ValueEnum};
use std::process::ExitCode;

#[derive(Clone, Copy, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
    Elvish,
    Powershell,
}

/// Print a shell completion script.
#[derive(Args)]
#[command(
    after_help = "Examples:\n  hoist completions bash > /etc/bash_completion.d/hoist\n  hoist completions zsh > \"${fpath[1]}/_hoist\"\n  hoist completions fish > ~/.config/fish/completions/hoist.fish"
)]
pub struct CompletionsArgs {
    shell: Shell,
}

/// Print the man page (roff) of hoist and its verbs.
#[derive(Args)]
#[command(
    after_help = "Example:\n  hoist manpage > /usr/local/share/man/man1/hoist.1 && man hoist"
)]
pub struct ManpageArgs {}

pub fn completions(args: CompletionsArgs) -> ExitCode {
    use clap_complete::Shell as S;
    let shell = match args.shell {
        Shell::Bash => S::Bash,
        Shell::Zsh => S::Zsh,
        Shell::Fish => S::Fish,
        Shell::Elvish => S::Elvish,
        Shell::Powershell => S::PowerShell,
    };
    let mut cmd = super::Cli::command();
    clap_complete::generate(shell, &mut cmd, "hoist", &mut std::io::stdout());
    ExitCode::SUCCESS
}

pub fn manpage(_args: ManpageArgs) -> anyhow::Result<ExitCode> {
    let cmd = super::Cli::command();
    let mut out = std::io::stdout();
    clap_mangen::Man::new(cmd.clone()).render(&mut out)?;
    // One section per verb, after the main page, as `git`'s single page does.
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        let name: &'static str = Box::leak(format!("hoist-{}", sub.get_name()).into_boxed_str());
        let sub = sub.clone().name(name);
        clap_mangen::Man::new(sub).render(&mut out)?;
    }
    Ok(ExitCode::SUCCESS)
}
