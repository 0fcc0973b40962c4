//! `hoist exec`: run a command in one replica, wherever it runs, with an
//! interactive terminal when attached to one; the command's exit code is ours.

use super::Global;
use super::project_args::ProjectArgs;
use crate::engine;
use crate::observe;
use anyhow::{Context, Result, bail};
use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
use clap::Args;
use futures_util::StreamExt;
use std::io::{IsTerminal, Read, Write};
use std::process::ExitCode;
use tokio::io::AsyncWriteExt;

/// Run a command in a replica of SERVICE (the first running one unless --slot or --machine say which).
#[derive(Args)]
#[command(
    after_help = "Examples:\n  hoist exec web sh\n  hoist exec db --machine m2 -- pg_dump app\n  hoist exec web --slot 3 -T -- cat /etc/hostname\n\nExit codes: the command's own exit code; 1 when hoist itself fails."
)]
pub struct ExecArgs {
    service: String,
    /// The command and its arguments.
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
    /// Which replica, by slot number.
    #[arg(long)]
    slot: Option<u32>,
    /// Which replica, by machine.
    #[arg(long)]
    machine: Option<String>,
    /// No pseudo-terminal, even when stdin is one.
    #[arg(short = 'T', long = "no-tty")]
    no_tty: bool,
    /// Run as this user.
    #[arg(short, long)]
    user: Option<String>,
    /// Working directory inside the container.
    #[arg(short, long)]
    workdir: Option<String>,
    /// Extra environment variables (KEY=VALUE).
    #[arg(short, long = "env")]
    env: Vec<String>,
}

pub async fn run(global: &Global, project_args: &ProjectArgs, args: ExecArgs) -> Result<ExitCode> {
    let project_name = super::project_name(project_args)?;
    let project = project_name.as_str();
    let fleet = super::load_fleet(global)?;
    let conns = engine::connect_all(&fleet, global.timeout).await?;
    let result = exec(&conns, project_args, project, &args).await;
    conns.close().await;
    result
}

async fn exec(
    conns: &engine::Connections,
    project_args: &ProjectArgs,
    project: &str,
    args: &ExecArgs,
) -> Result<ExitCode> {
    if let Some(m) = &args.machine
        && !conns.results.iter().any(|(x, _)| &x.name == m)
    {
        let names: Vec<&str> = conns.results.iter().map(|(x, _)| x.name.as_str()).collect();
        bail!(
            "--machine {m}: no machine of that name in the machines file; its machines are: {}",
            names.join(", ")
        );
    }
    let seen = observe::observe(conns, project).await;
    super::services::check_known(
        project_args,
        project,
        &seen,
        std::slice::from_ref(&args.service),
    )?;
    let mut candidates = Vec::new();
    for (machine, state) in &seen.machines {
        let Ok(state) = state else { continue };
        for c in observe::current(&state.containers) {
            if c.service == args.service
                && c.state == "running"
                && args
                    .slot
                    .is_none_or(|s| c.slot.as_ref().and_then(|x| x.number()) == Some(s))
                && args.machine.as_deref().is_none_or(|m| m == machine)
            {
                candidates.push((machine.clone(), c.clone()));
            }
        }
    }
    candidates.sort_by(|a, b| (&a.1.slot, &a.0).cmp(&(&b.1.slot, &b.0)));
    let Some((machine, container)) = candidates.into_iter().next() else {
        let mut which = String::new();
        if let Some(slot) = args.slot {
            which.push_str(&format!(" in slot {slot}"));
        }
        if let Some(m) = &args.machine {
            which.push_str(&format!(" on machine {m}"));
        }
        bail!(
            "service {} has no running replica{which}; `hoist ps` shows where its replicas are \
             and their state",
            args.service
        );
    };
    let docker = &conns
        .results
        .iter()
        .find(|(m, _)| m.name == machine)
        .and_then(|(_, r)| r.as_ref().ok())
        .with_context(|| format!("{machine}: not connected any more; run the command again"))?
        .docker;
    let tty = !args.no_tty && std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    let created = docker
        .create_exec(
            &container.id,
            CreateExecOptions {
                cmd: Some(args.command.clone()),
                attach_stdin: Some(true),
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                tty: Some(tty),
                user: args.user.clone(),
                working_dir: args.workdir.clone(),
                env: (!args.env.is_empty()).then(|| args.env.clone()),
                ..Default::default()
            },
        )
        .await
        .with_context(|| format!("{machine}: creating the exec in {}", container.name))?;
    let started = docker
        .start_exec(
            &created.id,
            Some(StartExecOptions {
                detach: false,
                tty,
                output_capacity: None,
            }),
        )
        .await
        .with_context(|| format!("{machine}: starting the exec"))?;
    let StartExecResults::Attached {
        mut output,
        mut input,
    } = started
    else {
        bail!("{machine}: the engine did not attach to the exec");
    };
    let _raw = if tty { RawMode::enable() } else { None };
    if tty && let Some((cols, rows)) = terminal_size() {
        let _ = docker
            .resize_exec(
                &created.id,
                bollard::query_parameters::ResizeExecOptions {
                    h: rows as i32,
                    w: cols as i32,
                },
            )
            .await;
    }
    // Our stdin goes to the command until it ends; the command's output ending
    // (it exited) ends the exec, whether or not our stdin is still open.
    let mut stdin = stdin_chunks();
    let stdin_pump = tokio::spawn(async move {
        while let Some(chunk) = stdin.recv().await {
            if input.write_all(&chunk).await.is_err() || input.flush().await.is_err() {
                return;
            }
        }
        let _ = input.shutdown().await;
    });
    while let Some(chunk) = output.next().await {
        match chunk {
            Ok(bollard::container::LogOutput::StdErr { message }) => {
                let mut e = std::io::stderr().lock();
                let _ = e.write_all(&message);
                let _ = e.flush();
            }
            Ok(other) => {
                let mut o = std::io::stdout().lock();
                let _ = o.write_all(&other.into_bytes());
                let _ = o.flush();
            }
            Err(_) => break,
        }
    }
    stdin_pump.abort();
    let code = exit_code(docker, &created.id).await;
    Ok(ExitCode::from(code.clamp(0, 255) as u8))
}

/// Our stdin, read on a thread of its own: a read of a terminal or pipe cannot be
/// cancelled, and tokio's stdin would keep the runtime (and so hoist) alive until
/// the next line or EOF after the command has exited. A plain thread dies with the
/// process. The channel closes at EOF or on a read error.
fn stdin_chunks() -> tokio::sync::mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let mut buf = vec![0u8; 8192];
        loop {
            match stdin.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => {
                    if tx.blocking_send(buf[..n].to_vec()).is_err() {
                        return;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return,
            }
        }
    });
    rx
}

/// The exec's exit code. The engine closes the output when the process ends, and
/// may record the code a moment later: ask again (briefly) while it says running.
async fn exit_code(docker: &bollard::Docker, exec_id: &str) -> i64 {
    for attempt in 0..50u64 {
        match docker.inspect_exec(exec_id).await {
            Ok(i) if i.running != Some(true) => return i.exit_code.unwrap_or(1),
            Ok(_) => {
                tokio::time::sleep(std::time::Duration::from_millis(10 * attempt.min(10))).await
            }
            Err(_) => return 1,
        }
    }
    1
}

/// The terminal in raw mode for an interactive exec; restored on drop.
struct RawMode {
    saved: libc::termios,
}

impl RawMode {
    fn enable() -> Option<RawMode> {
        // SAFETY: tcgetattr/tcsetattr on stdin with a zeroed termios we own.
        unsafe {
            let mut t: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(0, &mut t) != 0 {
                return None;
            }
            let saved = t;
            libc::cfmakeraw(&mut t);
            if libc::tcsetattr(0, libc::TCSANOW, &t) != 0 {
                return None;
            }
            Some(RawMode { saved })
        }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // SAFETY: restores the attributes read in `enable`.
        unsafe {
            libc::tcsetattr(0, libc::TCSANOW, &self.saved);
        }
    }
}

fn terminal_size() -> Option<(u16, u16)> {
    // SAFETY: TIOCGWINSZ fills a winsize we own.
    unsafe {
        let mut ws: libc::winsize = std::mem::zeroed();
        (libc::ioctl(1, libc::TIOCGWINSZ, &mut ws) == 0 && ws.ws_col > 0)
            .then_some((ws.ws_col, ws.ws_row))
    }
}
